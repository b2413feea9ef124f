"""GET and POST /api/silence/<token>: the page a "Silence…" link in an alert opens.

GET shows what the link's alert is (its matchers, masked as alerts are), a form to silence such
alerts (1 h, 4 h, 1 d or a custom number of hours up to 7 days, a comment and a name) and the
silences in force for them, each with an "Expire" button. POST (the form, with its single-use
form token) starts or expires a silence through the store's `Silences` contract, as
`python -m triage silence` does, and answers with the same page: never a redirect.

Anything but a token this app signed, for a time not yet past, is 404 with nothing in it; so is
every request while links are not configured. Plain HTML and CSS, no script: usable on a phone,
labelled fields, visible focus, high-contrast colours.
"""

from __future__ import annotations

import hashlib
import html
import logging
import secrets
from base64 import b64encode
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from urllib.parse import parse_qs

from msgspec import Struct

from .ingest import header
from .mask import mask_text
from .matchers import Matcher
from .model import Facts
from .render.content import format_time
from .silence_link import LINK_LIFETIME, SilenceLinks
from .store import Claim, SilenceRule, Store

__all__ = ["DURATIONS", "MAX_HOURS", "NOT_FOUND", "Answer", "answer"]

log = logging.getLogger("triage")

# The choices the form offers, by their form value.
DURATIONS: dict[str, tuple[str, timedelta]] = {
    "1h": ("1 hour", timedelta(hours=1)),
    "4h": ("4 hours", timedelta(hours=4)),
    "1d": ("1 day", timedelta(days=1)),
}
MAX_HOURS = 7 * 24  # a custom duration: whole hours, at most 7 days
MAX_COMMENT, MAX_NAME = 500, 100
_MAX_FORM_BYTES = 8192
_FORM_CLAIM_TTL = LINK_LIFETIME + timedelta(hours=1)  # a form works as long as its link, no longer

_CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; font: 1rem/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: #1b1b1b; background: #fff; }
main { max-width: 38rem; margin: 0 auto; padding: 1rem; }
h1 { font-size: 1.4rem; margin: 0.5rem 0 1rem; }
h2 { font-size: 1.1rem; margin: 1.5rem 0 0.5rem; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.25rem 1rem; margin: 0; }
dt { font-weight: 600; }
dd { margin: 0; overflow-wrap: anywhere; }
fieldset { border: 1px solid #6b6b6b; border-radius: 6px; margin: 1rem 0; padding: 0.5rem 1rem 1rem; }
legend { font-weight: 600; padding: 0 0.25rem; }
.choice { display: flex; align-items: center; gap: 0.5rem; min-height: 2.75rem; }
.choice input { width: 1.25rem; height: 1.25rem; margin: 0; }
label.field { display: block; font-weight: 600; margin-top: 1rem; }
input[type=text], input[type=number], textarea { display: block; width: 100%; min-height: 2.75rem;
  margin-top: 0.25rem; padding: 0.5rem; font: inherit; color: #1b1b1b; background: #fff;
  border: 1px solid #595959; border-radius: 4px; }
textarea { min-height: 5rem; }
.hint { color: #4a4a4a; font-size: 0.9rem; margin: 0.25rem 0 0; }
button { min-height: 2.75rem; padding: 0.5rem 1.25rem; font: inherit; font-weight: 600;
  border: 2px solid transparent; border-radius: 4px; color: #fff; background: #0b5cad; cursor: pointer; }
button.expire { background: #a4161a; }
button:hover { text-decoration: underline; }
:focus-visible { outline: 3px solid #1b1b1b; outline-offset: 2px; }
input:focus-visible, textarea:focus-visible { outline: 3px solid #0b5cad; outline-offset: 1px; }
.notice { border-left: 6px solid #0b5cad; background: #eef4fb; padding: 0.75rem 1rem; margin: 1rem 0; }
.problem { border-left: 6px solid #a4161a; background: #fbeeee; padding: 0.75rem 1rem; margin: 1rem 0; }
.problem ul { margin: 0.25rem 0 0; padding-left: 1.25rem; }
ul.silences { list-style: none; padding: 0; margin: 0; }
ul.silences li { border: 1px solid #bdbdbd; border-radius: 6px; padding: 0.75rem 1rem; margin: 0.5rem 0; }
ul.silences form { margin-top: 0.5rem; }
"""
_STYLE_HASH = b64encode(hashlib.sha256(_CSS.encode()).digest()).decode()
_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    # The token is in the URL: no page may receive it as a referrer, frame it, or load anything into it.
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}


class Answer(Struct, frozen=True):
    """An HTTP answer of the page (the service passes it on as its own Answer)."""

    status: int
    body: bytes
    headers: dict[str, str]


NOT_FOUND = Answer(
    404, b"Not found\n", {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"}
)


class _Form(Struct):
    """What a POST asks, read from its urlencoded body."""

    action: str
    form_token: str
    duration: str
    hours: str
    comment: str
    name: str
    silence: str


def answer(
    links: SilenceLinks | None,
    store: Store,
    method: str,
    token: str,
    *,
    headers: Mapping[str, str],
    body: bytes,
    now: datetime,
    mask: bool = True,
) -> tuple[Answer, bool]:
    """The route's answer, and whether the silences changed (the caller's cache must forget
    them). 404 for anything but a valid token; 503 when the store fails; never a 500."""
    found = links.read(token, now) if links is not None else None
    if links is None or found is None:
        return NOT_FOUND, False
    facts, ends = found
    page = _Page(links, token, facts, ends, now=now, mask=mask)
    try:
        if method == "GET":
            return page.render(200, store), False
        if method != "POST":
            return Answer(405, b"", {"Allow": "GET, POST"}), False
        return _post(page, store, headers, body)
    except Exception as err:  # the store: the person can try again; nothing was half done
        log.warning("silence page: storage failed (%s)", type(err).__name__)
        return page.problem_only(
            503, "The silences cannot be read or written right now. Try again in a minute."
        ), False


def _post(page: _Page, store: Store, headers: Mapping[str, str], body: bytes) -> tuple[Answer, bool]:
    content_type = (header(headers, "content-type") or "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return page.render(415, store, problems=["Send the form from this page."]), False
    if len(body) > _MAX_FORM_BYTES:
        return page.render(413, store, problems=["The form is too large."]), False
    form = _read_form(body)
    if form is None:
        return page.render(400, store, problems=["The form could not be read. Fill it in again."]), False
    nonce = page.links.read_form(form.form_token, page.token, page.ends)
    if nonce is None:
        return page.render(403, store, problems=["This form is not from this page. Fill it in again."]), False
    if form.action == "expire":
        return _expire(page, store, form, nonce)
    if form.action != "silence":
        return page.render(400, store, problems=["Unknown action."]), False
    duration, problems = _check(form)
    if problems or duration is None:
        return page.render(400, store, problems=problems, form=form), False
    silence = SilenceRule(
        id=secrets.token_hex(4),
        matcher=page.matcher(),
        starts=page.now,
        ends=page.now + duration,
        comment=form.comment,
        created_by=form.name,
    )
    if not _once(store, nonce, page.now, lambda: store.add_silence(silence)):
        return page.render(409, store, problems=[_REPLAYED]), False
    log.info("silence %s started from a link, until %s", silence.id, format_time(silence.ends))
    said = f"Silenced until {format_time(silence.ends)} (silence {silence.id})."
    return page.render(200, store, notice=said), True


_REPLAYED = "This form was sent already; nothing was changed. Use the form below to do more."


def _expire(page: _Page, store: Store, form: _Form, nonce: str) -> tuple[Answer, bool]:
    if not any(s.id == form.silence for s in page.in_force(store)):
        return page.render(400, store, problems=["That silence is not in force for these alerts."]), False
    if not _once(store, nonce, page.now, lambda: store.expire_silence(form.silence, page.now)):
        return page.render(409, store, problems=[_REPLAYED]), False
    log.info("silence %s expired from a link", form.silence)
    return page.render(200, store, notice=f"Silence {form.silence} has ended; its summary follows."), True


def _once(store: Store, nonce: str, now: datetime, change: Callable[[], object]) -> bool:
    """Make `change` the first time a form's nonce is used, and say so: a form sent again
    changes nothing. If the change fails, the nonce is given back so that the form can be sent again."""
    key = f"silence-form|{nonce}"
    if store.claim([key], now, _FORM_CLAIM_TTL)[0] is not Claim.NEW:
        return False
    try:
        change()
    except Exception:
        store.release([key])
        raise
    return True


def _read_form(body: bytes) -> _Form | None:
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        return None

    def one(name: str) -> str:
        values = fields.get(name, [""])
        return values[0].strip() if len(values) == 1 else ""

    return _Form(
        action=one("action"),
        form_token=one("form"),
        duration=one("duration"),
        hours=one("hours"),
        comment=one("comment"),
        name=one("name"),
        silence=one("silence"),
    )


def _check(form: _Form) -> tuple[timedelta | None, list[str]]:
    """The duration asked for, and what is wrong with the form (each problem one sentence)."""
    problems: list[str] = []
    duration: timedelta | None = None
    if form.duration in DURATIONS:
        duration = DURATIONS[form.duration][1]
    elif form.duration == "custom":
        if form.hours.isdigit() and 1 <= int(form.hours) <= MAX_HOURS:
            duration = timedelta(hours=int(form.hours))
        else:
            problems.append(f"Custom duration: give a whole number of hours from 1 to {MAX_HOURS} (7 days).")
    else:
        problems.append("Choose how long to silence these alerts.")
    if not form.comment:
        problems.append("Comment: say why (it is shown when the silence ends).")
    elif len(form.comment) > MAX_COMMENT:
        problems.append(f"Comment: at most {MAX_COMMENT} characters.")
    if not form.name:
        problems.append("Name: say who you are.")
    elif len(form.name) > MAX_NAME:
        problems.append(f"Name: at most {MAX_NAME} characters.")
    return duration, problems


class _Page:
    """One page for one valid link: its alert's facts, and each render's fresh form tokens."""

    def __init__(
        self, links: SilenceLinks, token: str, facts: Facts, ends: datetime, *, now: datetime, mask: bool
    ) -> None:
        self.links = links
        self.token = token
        self.facts = facts
        self.ends = ends
        self.now = now
        self.mask = mask

    def matcher(self) -> Matcher:
        """The silence of this alert's fingerprint: its kind, code, subcode and resource."""
        facts = self.facts
        conditions: dict[str, list[object]] = {"kinds": [facts.kind], "resources": [facts.resource]}
        if facts.code is not None:
            conditions["codes"] = [facts.code]
        if facts.subcode is not None:
            conditions["subcodes"] = [facts.subcode]
        return Matcher.model_validate(conditions)

    def in_force(self, store: Store) -> list[SilenceRule]:
        """The silences in force now that hold back this alert."""
        return [
            s for s in store.list_silences(self.now) if s.active(self.now) and s.matcher.matches(self.facts)
        ]

    def _shown(self, text: str) -> str:
        return html.escape(mask_text(text) if self.mask else text)

    def _form_token(self) -> str:
        return html.escape(self.links.form_token(self.token, self.now))

    def render(
        self,
        status: int,
        store: Store,
        *,
        notice: str = "",
        problems: list[str] | None = None,
        form: _Form | None = None,
    ) -> Answer:
        """The whole page: what the alert is, the form, the silences in force."""
        parts = [self._matchers()]
        if notice:
            parts.insert(0, f'<p class="notice" role="status">{html.escape(notice)}</p>')
        if problems:
            parts.insert(0, _problems(problems))
        parts.append(self._silence_form(form, problems or []))
        parts.append(self._in_force_list(self.in_force(store)))
        return self._document(status, "".join(parts))

    def problem_only(self, status: int, problem: str) -> Answer:
        """A page with one problem and nothing else (the store did not answer)."""
        return self._document(status, _problems([problem]))

    def _document(self, status: int, main: str) -> Answer:
        facts = self.facts
        code = "/".join(str(c) for c in (facts.code, facts.subcode) if c is not None) or "no code"
        title = self._shown(f"Silence {facts.kind} {code} on {facts.resource}")
        text = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta name="referrer" content="no-referrer"><title>{title} · acs-triage</title>'
            f"<style>{_CSS}</style></head><body><main><h1>Silence alerts like this one</h1>"
            f"{main}</main></body></html>"
        )
        return Answer(status, text.encode(), dict(_HEADERS))

    def _matchers(self) -> str:
        facts = self.facts
        rows = [("Event", facts.kind)]
        if facts.code is not None:
            rows.append(("Code", str(facts.code)))
        if facts.subcode is not None:
            rows.append(("Subcode", str(facts.subcode)))
        rows.append(("Resource", facts.resource))
        items = "".join(f"<dt>{html.escape(name)}</dt><dd>{self._shown(value)}</dd>" for name, value in rows)
        matcher = self._shown(self.matcher().describe())
        return (
            '<section aria-labelledby="which"><h2 id="which">Which alerts</h2>'
            f"<dl>{items}</dl>"
            f'<p class="hint">As a silence: <code>{matcher}</code>. '
            f"This link works until {html.escape(format_time(self.ends))}.</p></section>"
        )

    def _silence_form(self, form: _Form | None, problems: list[str]) -> str:
        chosen = form.duration if form is not None else "1h"
        choices = []
        for value, (label, _) in [*DURATIONS.items(), ("custom", ("Custom", timedelta(0)))]:
            checked = " checked" if value == chosen else ""
            choices.append(
                f'<div class="choice"><input type="radio" id="for-{value}" name="duration" '
                f'value="{value}"{checked}><label for="for-{value}">{label}</label></div>'
            )
        hours = html.escape(form.hours) if form is not None else ""
        comment = html.escape(form.comment) if form is not None else ""
        name = html.escape(form.name) if form is not None else ""

        def invalid(word: str) -> str:
            return ' aria-invalid="true"' if any(p.startswith(word) for p in problems) else ""

        return (
            '<section aria-labelledby="new"><h2 id="new">New silence</h2>'
            '<form method="post">'
            f'<input type="hidden" name="form" value="{self._form_token()}">'
            '<input type="hidden" name="action" value="silence">'
            f"<fieldset><legend>For how long</legend>{''.join(choices)}"
            f'<label class="field" for="hours">Custom: hours (1 to {MAX_HOURS})</label>'
            f'<input type="number" id="hours" name="hours" min="1" max="{MAX_HOURS}" step="1" '
            f'inputmode="numeric" value="{hours}" aria-describedby="hours-hint"{invalid("Custom")}>'
            '<p class="hint" id="hours-hint">Used when "Custom" is chosen; at most 7 days.</p></fieldset>'
            '<label class="field" for="comment">Comment</label>'
            f'<textarea id="comment" name="comment" required maxlength="{MAX_COMMENT}" '
            f'aria-describedby="comment-hint"{invalid("Comment")}>{comment}</textarea>'
            '<p class="hint" id="comment-hint">Why: shown with the summary when the silence ends.</p>'
            '<label class="field" for="name">Your name</label>'
            f'<input type="text" id="name" name="name" required maxlength="{MAX_NAME}" '
            f'autocomplete="name" value="{name}"{invalid("Name")}>'
            '<p><button type="submit">Silence</button></p></form></section>'
        )

    def _in_force_list(self, silences: list[SilenceRule]) -> str:
        head = '<section aria-labelledby="inforce"><h2 id="inforce">Silences in force for these alerts</h2>'
        if not silences:
            return head + "<p>None.</p></section>"
        items = []
        for s in silences:
            ident = html.escape(s.id)
            items.append(
                f"<li><p><strong>{ident}</strong>: <code>{self._shown(s.matcher.describe())}</code>, "
                f"until {html.escape(format_time(s.ends))}, by {html.escape(s.created_by)}: "
                f"{html.escape(s.comment)} ({s.count:,} silenced)</p>"
                '<form method="post">'
                f'<input type="hidden" name="form" value="{self._form_token()}">'
                '<input type="hidden" name="action" value="expire">'
                f'<input type="hidden" name="silence" value="{ident}">'
                f'<button type="submit" class="expire" aria-label="Expire silence {ident}">Expire</button>'
                "</form></li>"
            )
        return head + f'<ul class="silences">{"".join(items)}</ul></section>'


def _problems(problems: list[str]) -> str:
    items = "".join(f"<li>{html.escape(p)}</li>" for p in problems)
    said = "<p><strong>Nothing was changed.</strong></p>"
    return f'<div class="problem" role="alert">{said}<ul>{items}</ul></div>'
