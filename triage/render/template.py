"""Alert → the JSON text a webhook receives, from a template per alert shape where it can.

Alerts of one failure differ in a few values only: the time, the values of the IDs and details,
the event's own message. Teams and Slack show each of these values as it stands, in one place,
whenever escaping and shortening leave it as it is (inert text, short); everything else on the
card depends on the shape: the catalog's answer, the kind, code, resource and context, the names
of the IDs and details, whether the event's message is shown. The second alert of a shape renders
it once more with a marker in place of each value; that JSON, cut at the markers, is the shape's
template. Every later alert of the shape is its template with its own values put in, which costs
a tenth of building the payload and serializing it. An alert with a value a renderer would change,
a digest, a notice, or a kind without a template (`Kind.template`) is rendered in full.

`tests/test_render_template.py` holds the text made here byte for byte equal to the full
render's, over every sample and generated alerts of shared shapes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson
from msgspec.structs import replace

from ..destinations import Kind, kind
from ..model import Alert, Guidance
from .content import event_message, format_time, payload_bytes
from .escape import event_text, plain, slack_mrkdwn, teams_markdown

__all__ = ["SLOT_CHARS", "render_json"]

# The longest value put in as it stands: the least room any templated layout gives a value
# (Teams' fullest card gives a time fact 200 characters; IDs 512, details 400, Slack 300 and 500).
SLOT_CHARS = 200
_SHAPES = 1024  # templates kept per kind; emptied when full (a flood of new shapes renders in full)
_SHAPE_CHARS = 2048  # event text in a shape's key: longer shapes are rendered in full, not kept
_SLOT_ENTRIES = 4096

# A time no event has: its formatted text marks where an alert's time stands.
_MARK_TIME = datetime(1901, 2, 3, 4, 5, 6, tzinfo=UTC)
_MARK_TIME_TEXT = format_time(_MARK_TIME)


def _mark(index: int) -> str:
    return f"zqxslot{index}xqz"  # plain text: every escaper passes it through as it stands


class _Template:
    """A payload's JSON cut at its values: `parts[0]`, then each value `order[i]` followed by
    `parts[i + 1]` (the values stand where each layout puts them, not in the shape's order).
    No parts: the shape cannot be cut at its values (one is shown twice, or changed)."""

    __slots__ = ("guidance", "order", "parts", "size")

    def __init__(self, guidance: Guidance, order: list[int], parts: list[bytes]) -> None:
        self.guidance = guidance  # held: the key names it by id, which must not be reused meanwhile
        self.order = order
        self.parts = parts
        self.size = sum(map(len, parts))


# kind name → shape key → its template, or None: seen once (built on the second sighting, so a
# flood of shapes that never repeat costs nothing more). Safe to share between threads: a race
# only builds a template twice.
_TEMPLATES: dict[str, dict[tuple[Any, ...], _Template | None]] = {}
# value → its JSON string's inside, if every renderer shows it as it stands; else None.
_SLOTS: dict[str, bytes | None] = {}


def render_json(alert: Alert, fmt: str) -> bytes:
    """The JSON text `render(alert, fmt)` would serialize to, byte for byte."""
    found = kind(fmt)
    if found.template is None or alert.digest or alert.status != "firing":
        return _full(alert, found)
    shaped = _shape(alert)
    if shaped is None:
        return _full(alert, found)
    key, values, size = shaped
    templates = _TEMPLATES.setdefault(fmt, {})
    template = templates.get(key)
    if template is None and key in templates:  # seen once before: this is the second sighting
        template = templates[key] = _build(alert, found, len(values))
    elif template is None or template.guidance is not alert.guidance:  # new (or its Guidance is gone)
        if len(templates) >= _SHAPES:
            templates.clear()
        templates[key] = None
        return _full(alert, found)
    if not template.parts:
        return _full(alert, found)
    if found.max_bytes and template.size + size >= found.max_bytes:
        return _full(alert, found)  # the renderer shortens this one: its fullest layout is too big
    parts = template.parts
    out = [parts[0]]
    for index, part in zip(template.order, parts[1:], strict=True):
        out.append(values[index])
        out.append(part)
    return b"".join(out)


def _full(alert: Alert, found: Kind) -> bytes:
    rendered = found.render(alert)
    return payload_bytes(rendered if isinstance(rendered, dict) else {"text": rendered})


class _Shape(NamedTuple):
    key: tuple[Any, ...]
    values: list[bytes]  # each value's JSON string inside: time, IDs, details, the event's message
    size: int  # their bytes together


class _Last:
    """The last alert's shape: each alert is rendered for Teams and for Slack in turn. One
    attribute, replaced whole: threads that race each read a whole entry."""

    entry: tuple[Alert, _Shape | None] | None = None


def _shape(alert: Alert) -> _Shape | None:
    """The alert's shape, or None if a renderer would not show one of its values as it stands."""
    last = _Last.entry
    if last is not None and last[0] is alert:
        return last[1]
    shaped = _read_shape(alert)
    _Last.entry = (alert, shaped)
    return shaped


def _read_shape(alert: Alert) -> _Shape | None:
    inc = alert.incident
    said = event_message(alert)
    texts = [format_time(inc.time), *inc.ids.values(), *inc.details.values()]
    if said:
        texts.append(said)
    values: list[bytes] = []
    for text in texts:
        value = _SLOTS.get(text, b"")  # b"": not asked yet (a value shown as it stands is never empty)
        if value == b"":
            value = _slot(text)
        if value is None:
            return None
        values.append(value)
    ids, details = tuple(inc.ids), tuple(inc.details)
    if sum(map(len, (inc.kind, inc.resource, *ids, *details))) > _SHAPE_CHARS:
        return None
    key = (
        id(alert.guidance), inc.kind, inc.code, inc.subcode, inc.resource, inc.context,
        said != "", ids, details, alert.count, alert.window_seconds, alert.note,
    )  # fmt: skip
    return _Shape(key, values, sum(map(len, values)))


def _slot(text: str) -> bytes | None:
    """`text` as the inside of a JSON string if every renderer shows it as it stands: short, not
    empty, unchanged by every escaper, and no backtick (it would end a Slack code span)."""
    inert = 0 < len(text) <= SLOT_CHARS and (
        plain(text)
        or (
            "`" not in text
            and event_text(text) == text
            and teams_markdown(text) == text
            and slack_mrkdwn(text) == text
        )
    )
    value = orjson.dumps(text)[1:-1] if inert else None
    if len(text) <= SLOT_CHARS:
        if len(_SLOTS) >= _SLOT_ENTRIES:
            _SLOTS.clear()
        _SLOTS[text] = value
    return value


def _build(alert: Alert, found: Kind, count: int) -> _Template:
    """The template of the alert's shape: its fullest layout with a marker for each value, cut at
    the markers; without parts if a marker is not found exactly once."""
    assert found.template is not None
    inc = alert.incident
    marks = [_MARK_TIME_TEXT, *(_mark(i) for i in range(1, count))]
    named = iter(marks[1:])
    marked = inc._replace(
        time=_MARK_TIME,
        ids={name: next(named) for name in inc.ids},
        details={name: next(named) for name in inc.details},
    )
    if len(inc.ids) + len(inc.details) + 1 < count:  # the event's message is shown: a value too
        marked = marked._replace(message=next(named))
    text = payload_bytes(found.template(replace(alert, incident=marked)))
    found_at: list[tuple[int, int]] = []
    for index, mark in enumerate(marks):
        at = text.find(mark.encode())
        if at < 0 or text.count(mark.encode()) != 1:
            return _Template(alert.guidance, [], [])
        found_at.append((at, index))
    found_at.sort()
    parts, start = [], 0
    for at, index in found_at:
        parts.append(text[start:at])
        start = at + len(marks[index].encode())
    parts.append(text[start:])
    return _Template(alert.guidance, [index for _, index in found_at], parts)
