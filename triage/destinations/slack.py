"""Alert → Slack incoming-webhook body (Block Kit, with a severity colour bar).

Layout: the header block is top level; everything else sits in `attachments[0].blocks` with
`attachments[0].color`. Slack draws a colour bar only beside an attachment, and severity should be
visible at a glance next to the whole alert body, not only next to a footnote. The header stays on
top, outside the bar, so the channel view reads like a title and its card. With blocks at top level
Slack does not show `text` in the channel; it uses it for the mobile notification, so `text` starts
with the key fact: severity, kind, code, resource, count.

Block Kit limits are enforced here by shortening, never by failing: Slack rejects the whole post
(`invalid_blocks`) if one is broken.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from msgspec import Struct

from .. import report
from ..model import Alert, Guidance, Severity
from ..render import content
from ..render.cache import per_guidance, per_texts
from ..render.escape import event_text, memo, plain, slack_mrkdwn, slack_plain
from . import Kind, check_https

# Where Teams webhooks live (Workflows on Logic Apps or Power Platform; retired Office 365
# connectors): a URL on these in a Slack setting would get Block Kit that Teams cannot show.
_TEAMS_HOST_SUFFIXES = (
    ".logic.azure.com",
    ".api.powerplatform.com",
    ".webhook.office.com",
    "webhook.office.com",
    "outlook.office.com",
)

__all__ = [
    "BUTTON_TEXT_MAX",
    "CONTEXT_ELEMENTS_MAX",
    "FIELDS_MAX",
    "FIELD_TEXT_MAX",
    "HEADER_TEXT_MAX",
    "KIND",
    "MAX_BLOCKS",
    "SECTION_TEXT_MAX",
    "lint",
    "render",
]

MAX_BLOCKS = 50  # per message; counted here over the top level and the attachment together
SECTION_TEXT_MAX = 3000
FIELDS_MAX = 10
FIELD_TEXT_MAX = 2000
HEADER_TEXT_MAX = 150
CONTEXT_ELEMENTS_MAX = 10
CONTEXT_TEXT_MAX = 2000
BUTTON_TEXT_MAX = 75
TEXT_MAX = 400  # the notification line; Slack truncates at 40,000, phones show far less

_MAX_ID_FIELDS = 30  # three sections of IDs; real events carry fewer than ten
_MAX_DETAIL_FIELDS = 20
_MAX_SAMPLES = 5
_VALUE_MAX = 500
_ALSO_MAX = 300  # each other meaning is a reminder, not the whole row

# Slack's own palette, so the bar matches the emoji in the header.
_COLOR = {Severity.ERROR: "#E01E5A", Severity.WARNING: "#ECB22E", Severity.NONE: "#2EB67D"}
_EMOJI = {
    Severity.ERROR: ":red_circle:",
    Severity.WARNING: ":large_yellow_circle:",
    Severity.NONE: ":large_green_circle:",
}


_NOTICE_EMOJI = {"resolved": ":white_check_mark:", "silenced": ":no_bell:"}


def render(alert: Alert) -> dict[str, Any]:
    """The whole Slack incoming-webhook body for `alert`, within every Block Kit limit."""
    if alert.status != "firing":
        return _notice(alert)
    severity = alert.severity
    guided = _guided(alert.guidance, 0)
    label = content.SEVERITY_LABEL[severity]
    headline = event_text(content.headline(alert))
    header_text, _ = content.fit(f"{_EMOJI[severity]} {label}: {headline}", HEADER_TEXT_MAX, slack_plain)
    header = {"type": "header", "text": {"type": "plain_text", "text": header_text, "emoji": True}}

    # At most 13 blocks by construction (ID and detail fields are capped), far below MAX_BLOCKS.
    notes = list(guided.notes_before_fields)
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": guided.message}}]
    digest = content.digest_line(alert)
    if digest:
        blocks.append(_section_mrkdwn(f"*{slack_mrkdwn(digest)}*"))
    blocks += _field_sections(_summary_fields(alert, notes))
    ids = _shown(alert.incident.ids, _MAX_ID_FIELDS, "IDs", notes)
    blocks += _field_sections([_field(key, _code(value, notes)) for key, value in ids])
    details = _shown(alert.incident.details, _MAX_DETAIL_FIELDS, "details", notes)
    blocks += _field_sections([_field(key, _plain(value, notes)) for key, value in details])
    if alert.digest and alert.samples:
        blocks.append(_samples(alert, notes))
    if guided.advice is not None:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": guided.advice}})
    if guided.also is not None:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": guided.also}})
    buttons = []
    if guided.docs_url:
        buttons.append(
            {
                "type": "button",
                "text": {"type": "plain_text", "text": "Troubleshooting docs"},
                "url": guided.docs_url,
            }
        )
    if alert.silence_url:
        buttons.append(
            {
                "type": "button",
                "text": {"type": "plain_text", "text": content.SILENCE_TITLE},
                "url": alert.silence_url,
            }
        )
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    notes += guided.notes_after_samples
    elements = [{"type": "mrkdwn", "text": text} for text in guided.context]
    if notes:
        shortened = "Shortened to fit Slack's limits: " + ", ".join(dict.fromkeys(notes))
        elements.append({"type": "mrkdwn", "text": _context_text(shortened)})
    blocks.append({"type": "context", "elements": elements})

    label_line = f"{label}: {headline}"
    if alert.reminder:  # the notification preview says it is still failing, and how much
        label_line += f". {digest}"
    elif alert.digest and alert.window_seconds:
        label_line += f" in {content.format_window(alert.window_seconds)}"
    fallback = content.fit(f"{label_line}. {guided.fallback_message}", TEXT_MAX, slack_mrkdwn)[0]
    return {
        "text": fallback,
        "blocks": [header],
        "attachments": [{"color": _COLOR[severity], "fallback": fallback, "blocks": blocks}],
        # A link that slipped into event text must not unfold into a preview either.
        "unfurl_links": False,
        "unfurl_media": False,
    }


def _notice(alert: Alert) -> dict[str, Any]:
    """A resolved or silenced notice: one short section, no card (it closes a story, not opens one)."""
    headline, details = (event_text(line) for line in content.notice(alert))
    text = f"{_NOTICE_EMOJI[alert.status]} *{slack_mrkdwn(headline)}*\n{slack_mrkdwn(details)}"
    section, _ = content.fit(text, SECTION_TEXT_MAX, lambda raw: raw)
    fallback, _ = content.fit(f"{headline}. {details}", TEXT_MAX, slack_plain)
    return {
        "text": fallback,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": section}}],
        "unfurl_links": False,
        "unfurl_media": False,
    }


class _Guided(Struct, frozen=True):
    """What a message says from its Guidance alone: escaped, shortened, and the shortening notes,
    split by where they stand among the alert's own."""

    message: str
    notes_before_fields: tuple[str, ...]
    advice: str | None  # the "What to do" section's text
    also: str | None  # the "Also documented as" section's text
    docs_url: str
    context: tuple[str, ...]  # the catalog note and the catalog flags that fit
    notes_after_samples: tuple[str, ...]
    fallback_message: str  # the catalog message as one clean line, for the notification text


@per_guidance
def _guided(guide: Guidance, layout: int) -> _Guided:  # one layout: `layout` is always 0
    message, cut = content.fit(guide.message, SECTION_TEXT_MAX, slack_mrkdwn)
    notes: list[str] = []
    advice = _advice(guide.advice, notes)
    also = content.also_documented(guide)
    also_text = None
    if also:
        lines = [f"*{content.ALSO_TITLE}*", *("• " + _plain(line, notes, _ALSO_MAX) for line in also)]
        also_text = _section_text("\n".join(lines))
    # The catalog note and the shortening note always show; catalog flags take what room is left.
    flags = list(guide.flags[: CONTEXT_ELEMENTS_MAX - 2])
    if len(flags) < len(guide.flags):
        notes.append(f"{len(guide.flags) - len(flags)} more catalog flags")
    context = tuple(_context_text(text) for text in ["Catalog: " + content.catalog_note(guide), *flags])
    return _Guided(
        message=message or "–",
        notes_before_fields=("message shortened",) if cut else (),
        advice=advice,
        also=also_text,
        docs_url=content.docs_url(guide),
        context=context,
        notes_after_samples=tuple(notes),
        fallback_message=event_text(guide.message),
    )


def _context_text(text: str) -> str:
    return content.fit(text, CONTEXT_TEXT_MAX, slack_mrkdwn)[0] or "–"


@memo
def _fit_value(value: str, limit: int) -> tuple[str, bool]:
    return content.fit(event_text(value), limit, slack_mrkdwn)


def _plain(value: str, notes: list[str], limit: int = _VALUE_MAX) -> str:
    if len(value) <= limit and plain(value):  # most IDs, times and names: nothing to escape or cut
        return value
    text, cut = _fit_value(value, limit)
    if cut:
        notes.append("long values")
    return text or "–"


def _value_text(text: str) -> str:
    """A value (time, ID, detail, the event's message) as every field shows it when it fits its
    room: `_plain` unshortened (an ID's code span adds its backticks around it)."""
    return slack_mrkdwn(event_text(text))


def _code(value: str, notes: list[str]) -> str:
    # A backtick would end the code span early; the look-alike keeps the ID readable.
    return f"`{_plain(value, notes).replace('`', 'ˋ')}`"


@memo
def _field_title(title: str) -> str:
    return content.fit(event_text(title), 200, slack_mrkdwn)[0]


def _field(title: str, value: str) -> str:
    # Titles come from event keys too, so they are escaped; the value is escaped by the caller.
    field = f"*{title if len(title) <= 200 and plain(title) else _field_title(title)}*\n{value}"
    # Title and value are short already (200 and 500 characters): only a change of those limits
    # would make this fit shorten anything.
    return field if len(field) <= FIELD_TEXT_MAX else content.fit(field, FIELD_TEXT_MAX, str)[0]


@per_texts
def _identity_fields(values: tuple[str, ...], limit: int) -> tuple[tuple[str, ...], bool]:
    """The identity facts as fields (the same for a whole burst); was a value shortened?"""
    notes: list[str] = []
    fields = tuple(
        _field(title, _plain(value, notes, limit))
        for title, value in zip(content.IDENTITY_TITLES, values, strict=True)
    )
    return fields, bool(notes)


def _summary_fields(alert: Alert, notes: list[str]) -> list[str]:
    fields, cut = _identity_fields(content.identity(alert), 300)
    if cut:
        notes.append("long values")
    out = [*fields, *(_field(title, _plain(value, notes, 300)) for title, value in content.time_facts(alert))]
    said = content.event_message(alert)
    if said:
        out.append(_field("Event says", _plain(said, notes)))
    return out


def _shown(items: dict[str, str], limit: int, what: str, notes: list[str]) -> list[tuple[str, str]]:
    if len(items) > limit:
        notes.append(f"{len(items) - limit} more {what} not shown")
    return list(items.items())[:limit]


def _field_sections(fields: list[str]) -> list[dict[str, Any]]:
    return [
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields[i : i + FIELDS_MAX]]}
        for i in range(0, len(fields), FIELDS_MAX)
    ]


def _section_text(text: str) -> str:
    return text if len(text) <= SECTION_TEXT_MAX else content.fit(text, SECTION_TEXT_MAX, str)[0]


def _section_mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _section_text(text)}}


def _samples(alert: Alert, notes: list[str]) -> dict[str, Any]:
    shown = content.sample_ids(alert, _MAX_SAMPLES)
    lines = [
        "• " + " · ".join(f"{_plain(k, notes, 100)} {_code(v, notes)}" for k, v in sample) for sample in shown
    ]
    title = f"*Sample occurrences* ({len(shown)} of {content.format_count(alert.count)})"
    body, cut = content.fit("\n".join([title, *lines]), SECTION_TEXT_MAX, str)
    if cut:
        notes.append("samples shortened")
    return {"type": "section", "text": {"type": "mrkdwn", "text": body}}


def _advice(advice: str, notes: list[str]) -> str | None:
    lines = content.advice_lines(advice)
    if not lines:
        return None
    title = "*What to do*"
    out = [title]
    budget = SECTION_TEXT_MAX - len(title) - 1
    for line in lines:
        # Slack mrkdwn has no list syntax; "•" is how Slack's own apps draw one.
        text = ("• " if line.bullet else "") + slack_mrkdwn(line.text)
        if len(text) + 1 > budget:
            cut, _ = content.fit(line.text, max(budget - 3, 0), slack_mrkdwn)
            if cut:
                out.append(("• " if line.bullet else "") + cut)
            notes.append("advice shortened")
            break
        out.append(text)
        budget -= len(text) + 1
    return _section_text("\n".join(out))


def lint(payload: dict[str, Any]) -> list[str]:
    """The Block Kit limits, including those slack_sdk does not check; [] when the body is fine."""
    problems: list[str] = []
    if not str(payload.get("text", "")).strip():
        problems.append("no top-level text: mobile notifications would be empty")
    blocks = list(payload.get("blocks", []))
    for attachment in payload.get("attachments", []):
        blocks += attachment.get("blocks", [])
    if len(blocks) > MAX_BLOCKS:
        problems.append(f"{len(blocks)} blocks, Slack allows {MAX_BLOCKS}")
    for i, block in enumerate(blocks):
        kind = block.get("type")
        if kind == "header" and len(block["text"]["text"]) > HEADER_TEXT_MAX:
            problems.append(f"block {i}: header over {HEADER_TEXT_MAX} characters")
        if kind == "section":
            if "text" in block and len(block["text"]["text"]) > SECTION_TEXT_MAX:
                problems.append(f"block {i}: section text over {SECTION_TEXT_MAX} characters")
            fields = block.get("fields", [])
            if len(fields) > FIELDS_MAX:
                problems.append(f"block {i}: {len(fields)} fields, Slack allows {FIELDS_MAX}")
            problems += [
                f"block {i}: field {j} over {FIELD_TEXT_MAX} characters"
                for j, field in enumerate(fields)
                if len(field["text"]) > FIELD_TEXT_MAX
            ]
        if kind == "context" and len(block.get("elements", [])) > CONTEXT_ELEMENTS_MAX:
            problems.append(f"block {i}: context has more than {CONTEXT_ELEMENTS_MAX} elements")
        if kind == "actions":
            problems += [
                f"block {i}: button text over {BUTTON_TEXT_MAX} characters"
                for element in block.get("elements", [])
                if len(element.get("text", {}).get("text", "")) > BUTTON_TEXT_MAX
            ]
    return problems


def text_only(payload: dict[str, Any], reason: str) -> dict[str, Any] | None:
    """Slack refused the blocks (`invalid_blocks`): the notification text alone still informs."""
    text = payload.get("text")
    if "invalid_blocks" not in reason or not isinstance(text, str) or not text or set(payload) == {"text"}:
        return None
    return {"text": text}


def check_url(url: str) -> str | None:
    """A Slack incoming webhook URL over https, not a Teams one."""
    problem = check_https(url)
    if problem:
        return problem
    host = urlsplit(url).hostname or ""
    if host.endswith(_TEAMS_HOST_SUFFIXES):
        return "is a Teams webhook URL; put it in ACS_TRIAGE_TEAMS_URL (or give it format teams)"
    return None


# Slack allows about one message a second per incoming webhook.
KIND = Kind(
    name="slack",
    render=render,
    send_interval=1.0,
    url_setting="ACS_TRIAGE_SLACK_URL",
    check_url=check_url,
    fallback=text_only,
    report=report.slack_message,
    template=render,
    value_text=_value_text,
)
