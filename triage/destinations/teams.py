"""Alert → Microsoft Teams Workflows request body (an Adaptive Card 1.4 in the message envelope).

Teams rules this module keeps (see the research notes, section 1):
- the body is `{"type": "message", "attachments": [...]}`: the stock Workflows template loops over
  `attachments` and fails on anything else;
- card version 1.4 (Workflows shows "card couldn't be displayed" for 1.5+), no 1.5 elements
  (Table), only Action.OpenUrl / ShowCard / ToggleVisibility (no bot behind a webhook);
- `wrap: true` on every TextBlock, or Teams mobile cuts the text;
- the serialized request stays under `TEAMS_MAX_BYTES`: long text is shortened with a note, the
  IDs support asks for are kept.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from msgspec import Struct

from .. import report
from ..model import Alert, Guidance, Severity
from ..render import content
from ..render.cache import per_guidance, per_texts
from ..render.escape import event_text, memo, plain, teams_markdown
from . import Kind, check_https

# Slack's incoming webhook hosts: a URL from these in a Teams setting posts cards Slack refuses.
_SLACK_HOSTS = frozenset({"hooks.slack.com", "hooks.slack-gov.com"})

__all__ = ["ALLOWED_ACTIONS", "CARD_VERSION", "KIND", "TEAMS_MAX_BYTES", "lint", "render"]

# Teams documents 28 KB; posts of 27.7 KB failed in practice and 26 KB is the bound practitioners
# trust. Measured on the whole request: compact JSON, UTF-8, envelope included.
TEAMS_MAX_BYTES = 26 * 1024
CARD_VERSION = "1.4"
ALLOWED_ACTIONS = frozenset({"Action.OpenUrl", "Action.ShowCard", "Action.ToggleVisibility"})
_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
_CARD_TYPE = "application/vnd.microsoft.card.adaptive"

_COLOR = {Severity.ERROR: "Attention", Severity.WARNING: "Warning", Severity.NONE: "Good"}
_STYLE = {Severity.ERROR: "attention", Severity.WARNING: "warning", Severity.NONE: "good"}


class _Budget(Struct, frozen=True):
    """How much of each long text a card may carry; later budgets are smaller."""

    message: int
    event_message: int
    advice: int
    detail_value: int
    details: int
    samples: int
    id_value: int
    name: int  # kind, resource, fact titles
    also: int  # how many other documented meanings
    also_value: int  # and how long each may be


# fmt: off
_BUDGETS = (
    #       message  event_message  advice  detail_value  details  samples  id_value  name  also  also_value
    _Budget(1000,    600,           4000,   400,          25,      5,       512,      200,  5,    300),
    _Budget(600,     300,           1500,   200,          12,      3,       512,      120,  3,    200),
    _Budget(300,     150,           400,    80,           5,       2,       256,      80,   2,    120),
    _Budget(160,     0,             0,      0,            0,       0,       128,      60,   0,    0),
    _Budget(100,     0,             0,      0,            0,       0,       64,       40,   0,    0),
)
# fmt: on


def render(alert: Alert) -> dict[str, Any]:
    """The whole Teams Workflows request body for `alert`, guaranteed under TEAMS_MAX_BYTES."""
    if alert.status != "firing":
        return _notice(alert)
    for level in range(len(_BUDGETS)):
        payload = _envelope(_Card(alert, level).build())
        if len(content.payload_bytes(payload)) < TEAMS_MAX_BYTES:
            return payload
    # Only hundreds of IDs get here: keep as many as fit (found by bisection) rather than post nothing.
    last = len(_BUDGETS) - 1
    best, low, high = _envelope(_Card(alert, last).build(max_ids=0)), 1, len(alert.incident.ids) - 1
    while low <= high:
        keep = (low + high) // 2
        payload = _envelope(_Card(alert, last).build(max_ids=keep))
        if len(content.payload_bytes(payload)) < TEAMS_MAX_BYTES:
            best, low = payload, keep + 1
        else:
            high = keep - 1
    return best


def _fullest(alert: Alert) -> dict[str, Any]:
    """The firing alert's card at the first, fullest budget, whatever its size."""
    return _envelope(_Card(alert, 0).build())


def _envelope(card: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "message",
        "attachments": [{"contentType": _CARD_TYPE, "contentUrl": None, "content": card}],
    }


def _text(text: str, **props: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **props}


_NOTICE_TEXT_MAX = 2000  # a notice is two lines; an operator's long comment is shortened


def _notice(alert: Alert) -> dict[str, Any]:
    """A resolved or silenced notice: a small card of two lines, far under TEAMS_MAX_BYTES."""
    headline, details = (_fit_event(line, _NOTICE_TEXT_MAX)[0] for line in content.notice(alert))
    color = "Good" if alert.status == "resolved" else "Default"
    card = {
        "$schema": _SCHEMA,
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "msteams": {"width": "Full"},
        "body": [
            _text(headline, weight="Bolder", color=color),
            _text(details, size="Small", isSubtle=True, spacing="Small"),
        ],
    }
    return _envelope(card)


@memo
def _fit_event(text: str, limit: int) -> tuple[str, bool]:
    """Event text, one clean line, escaped and shortened to `limit`; and whether it was shortened."""
    return content.fit(event_text(text), limit, teams_markdown)


def _value_text(text: str) -> str:
    """A value (time, ID, detail, the event's message) as every fact of the card shows it when
    it fits its room: `_Card.fit` unshortened."""
    return teams_markdown(event_text(text))


@per_texts
def _fit_identity(values: tuple[str, ...], limit: int) -> tuple[tuple[str, ...], bool]:
    """The identity facts' values (the same for a whole burst), fitted to `limit` each; any cut?"""
    fitted = [_fit_event(value, limit) for value in values]
    return tuple(value for value, _ in fitted), any(cut for _, cut in fitted)


class _Guided(Struct, frozen=True):
    """What a card says from its Guidance alone under one budget: escaped, shortened, and the
    shortening notes, split by where they stand among the alert's own (the lists never share a note)."""

    message: str
    notes_before_facts: tuple[str, ...]
    advice: str | None  # None: no advice, or the budget leaves it out
    also: str | None  # the other documented meanings, one Markdown list item each
    footer: str
    docs_url: str
    notes_after_samples: tuple[str, ...]


@per_guidance
def _guided(guide: Guidance, level: int) -> _Guided:
    budget = _BUDGETS[level]
    message, cut = content.fit(guide.message, budget.message, teams_markdown)
    notes: list[str] = []
    advice = None
    if guide.advice.strip() and budget.advice:
        advice = _advice(guide.advice, budget.advice, notes)
    elif guide.advice.strip():
        notes.append("advice left out")
    also = _also(guide, budget, notes)
    # A shortened footer is not named in the "Shortened to fit" note: cards never have (the note
    # stands above the footer), and the cached card keeps every byte of the uncached one.
    footer, _ = content.fit(
        " · ".join(["Catalog: " + content.catalog_note(guide), *guide.flags]), 600, teams_markdown
    )
    return _Guided(
        message, ("message",) if cut else (), advice, also, footer, content.docs_url(guide), tuple(notes)
    )


def _advice(advice: str, limit: int, notes: list[str]) -> str:
    # Catalog text is trusted, but escaped all the same; only our own bullets are Markdown.
    text, cut = content.fit(advice, limit, lambda s: s)
    if cut:
        notes.append("advice")
    out: list[str] = []
    previous_bullet = False
    for line in content.advice_lines(text):
        escaped = teams_markdown(line.text)
        if line.bullet:
            out.append(("\n" if out and not previous_bullet else "") + "- " + escaped)
        else:
            out.append(("\n" if out else "") + escaped)
        previous_bullet = line.bullet
    return "\n".join(out)


def _also(guide: Guidance, budget: _Budget, notes: list[str]) -> str | None:
    """The other documented meanings, one short line each, under the advice."""
    lines = content.also_documented(guide)
    shown = lines[: budget.also]
    if len(shown) < len(lines):
        notes.append("other documented meanings")
    items = []
    for line in shown:
        text, cut = content.fit(line, budget.also_value, teams_markdown)
        if cut and "other documented meanings" not in notes:
            notes.append("other documented meanings")
        items.append("- " + text)
    return "\n".join(items) if items else None


class _Card:
    """Builds one card under one budget, remembering what it had to shorten for the note."""

    def __init__(self, alert: Alert, level: int) -> None:
        self.alert = alert
        self.level = level
        self.budget = _BUDGETS[level]
        self.shortened: list[str] = []

    def fit(self, text: str, limit: int, what: str) -> str:
        if len(text) <= limit and plain(text):  # most IDs, times and names: nothing to escape or cut
            return text
        value, cut = _fit_event(text, limit)
        if cut and what not in self.shortened:
            self.shortened.append(what)
        return value

    def build(self, max_ids: int | None = None) -> dict[str, Any]:
        guided = _guided(self.alert.guidance, self.level)
        body: list[dict[str, Any]] = [self.banner()]
        self.shortened += guided.notes_before_facts
        body.append(_text(guided.message, size="Medium", spacing="Medium"))
        body.append({"type": "FactSet", "facts": self.facts(max_ids), "spacing": "Medium"})
        if self.alert.digest and self.alert.samples and self.budget.samples:
            body += self.samples()
        if guided.advice is not None:
            body.append(_text("**What to do**", spacing="Medium"))
            body.append(_text(guided.advice))
        if guided.also is not None:
            body.append(_text(f"**{content.ALSO_TITLE}**", spacing="Medium"))
            body.append(_text(guided.also, size="Small"))
        self.shortened += guided.notes_after_samples
        if self.shortened:
            body.append(
                _text(
                    f"Shortened to fit the Teams message size limit: {', '.join(self.shortened)}.",
                    size="Small",
                    isSubtle=True,
                    spacing="Medium",
                    color="Warning",
                )
            )
        body.append(_text(guided.footer, size="Small", isSubtle=True, spacing="Medium"))
        card: dict[str, Any] = {
            "$schema": _SCHEMA,
            "type": "AdaptiveCard",
            "version": CARD_VERSION,
            "msteams": {"width": "Full"},
            "body": body,
        }
        actions = []
        if guided.docs_url:
            actions.append(
                {"type": "Action.OpenUrl", "title": "Troubleshooting docs", "url": guided.docs_url}
            )
        if self.alert.silence_url:
            actions.append(
                {"type": "Action.OpenUrl", "title": content.SILENCE_TITLE, "url": self.alert.silence_url}
            )
        if actions:
            card["actions"] = actions
        return card

    def banner(self) -> dict[str, Any]:
        alert = self.alert
        severity = alert.severity
        label = f"{content.SEVERITY_LABEL[severity].upper()} · ACS {alert.incident.context}"
        items = [
            _text(teams_markdown(label), size="Small", weight="Bolder", color=_COLOR[severity]),
            _text(
                self.fit(content.headline(alert), self.budget.name * 2, "title"),
                size="Large",
                weight="Bolder",
                spacing="Small",
            ),
        ]
        digest = content.digest_line(alert)
        if digest:
            # A burst is the news: the count and the window are the first thing read.
            items.append(_text(f"**{digest}**", size="Medium", color=_COLOR[severity], spacing="Small"))
        return {"type": "Container", "style": _STYLE[severity], "bleed": True, "items": items}

    def facts(self, max_ids: int | None) -> list[dict[str, str]]:
        inc, budget = self.alert.incident, self.budget
        values, cut = _fit_identity(content.identity(self.alert), budget.name)
        if cut and "names" not in self.shortened:
            self.shortened.append("names")
        facts = [
            {"title": title, "value": value}
            for title, value in zip(content.IDENTITY_TITLES, values, strict=True)
        ]
        facts += [
            {"title": title, "value": self.fit(value, budget.name, "names")}
            for title, value in content.time_facts(self.alert)
        ]
        said = content.event_message(self.alert)
        if said and budget.event_message:
            value = self.fit(said, budget.event_message, "event message")
            facts.append({"title": "Event says", "value": value})
        elif said:
            self.shortened.append("event message left out")
        ids = list(inc.ids.items())
        if max_ids is not None and max_ids < len(ids):
            self.shortened.append(f"{len(ids) - max_ids} IDs not shown")
            ids = ids[:max_ids]
        # IDs are never dropped by the budgets: support cannot help without them.
        facts += [
            {"title": self.fit(key, budget.name, "names"), "value": self.fit(value, budget.id_value, "IDs")}
            for key, value in ids
        ]
        details = list(inc.details.items())
        shown = details[: budget.details] if budget.detail_value else []
        facts += [
            {
                "title": self.fit(key, budget.name, "names"),
                "value": self.fit(value, budget.detail_value, "details"),
            }
            for key, value in shown
        ]
        if len(shown) < len(details):
            hidden = len(details) - len(shown)
            self.shortened.append(f"{hidden} more details")
        return facts

    def samples(self) -> list[dict[str, Any]]:
        budget = self.budget
        shown = content.sample_ids(self.alert, budget.samples)
        lines = [
            "- "
            + " · ".join(
                f"{self.fit(k, budget.name, 'names')} {self.fit(v, budget.id_value, 'IDs')}"
                for k, v in sample
            )
            for sample in shown
        ]
        title = f"**Sample occurrences** ({len(shown)} of {content.format_count(self.alert.count)})"
        return [_text(title, spacing="Medium"), _text("\n".join(lines), size="Small")]


def lint(payload: dict[str, Any]) -> list[str]:
    """Our Teams rules, which Microsoft's lenient renderer does not check; [] when the body is fine.

    Checks: the message envelope, card version 1.4, allowed action types only, no Table (1.5),
    `wrap: true` on every TextBlock, and the request under TEAMS_MAX_BYTES.
    """
    problems: list[str] = []
    size = len(content.payload_bytes(payload))
    if size >= TEAMS_MAX_BYTES:
        problems.append(f"request is {size} bytes, limit {TEAMS_MAX_BYTES}")
    if payload.get("type") != "message":
        problems.append('envelope "type" must be "message"')
    attachments = payload.get("attachments")
    if not isinstance(attachments, list) or not attachments:
        return [*problems, "envelope needs a non-empty attachments list"]
    for i, attachment in enumerate(attachments):
        where = f"attachments[{i}]"
        if attachment.get("contentType") != _CARD_TYPE:
            problems.append(f"{where}.contentType must be {_CARD_TYPE}")
        card = attachment.get("content")
        if not isinstance(card, dict) or card.get("type") != "AdaptiveCard":
            problems.append(f'{where}.content must be a card with "type": "AdaptiveCard"')
            continue
        if card.get("version") != CARD_VERSION:
            problems.append(f'{where}: card version must be "{CARD_VERSION}", not {card.get("version")!r}')
        _lint_node(card, f"{where}.content", problems)
    return problems


def _lint_node(node: object, path: str, problems: list[str]) -> None:
    if isinstance(node, list):
        for i, item in enumerate(node):
            _lint_node(item, f"{path}[{i}]", problems)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    if kind == "Table":
        problems.append(f"{path}: Table is Adaptive Cards 1.5; Teams Workflows needs 1.4")
    elif isinstance(kind, str) and kind.startswith("Action.") and kind not in ALLOWED_ACTIONS:
        problems.append(f"{path}: {kind} is not allowed through a webhook")
    elif kind == "TextBlock" and node.get("wrap") is not True:
        problems.append(f"{path}: TextBlock without wrap: true is cut on mobile")
    for key, value in node.items():
        if key != "type":
            _lint_node(value, f"{path}.{key}", problems)


def check_url(url: str) -> str | None:
    """A Workflows webhook URL over https, not a retired Office 365 connector nor a Slack URL."""
    problem = check_https(url)
    if problem:
        return problem
    if urlsplit(url).hostname in _SLACK_HOSTS:
        return "is a Slack incoming webhook URL; put it in ACS_TRIAGE_SLACK_URL (or give it format slack)"
    if "webhook.office.com" in url or "outlook.office.com/webhook" in url:
        return (
            "is a retired Office 365 connector URL; create a Teams Workflows webhook "
            "('Send webhook alerts to a channel') and use its URL"
        )
    return None


# Teams Workflows throttle above about 4 requests a second.
KIND = Kind(
    name="teams",
    render=render,
    send_interval=0.25,
    url_setting="ACS_TRIAGE_TEAMS_URL",
    check_url=check_url,
    report=report.teams_card,
    template=_fullest,
    max_bytes=TEAMS_MAX_BYTES,
    value_text=_value_text,
)
