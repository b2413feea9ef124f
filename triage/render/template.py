"""Alert → the JSON text a webhook receives, from a template per alert shape where it can.

Alerts of one failure differ in a few values only: the time, the values of the IDs and details, the
event's own message. Teams and Slack show each of these values as it stands, in one place, whenever
escaping and shortening leave it as it is (inert text, short); everything else on the card depends
on the shape: the catalog's answer, the kind, code (or status word and scope, which the headline
shows), resource and context, the names of the IDs and details, whether the event's message is
shown, whether the alert has a "Silence…" link (its URL, which differs per alert, is a value too).
The second alert of a shape renders it once more with a marker in place of each value; that JSON,
cut at the markers, is the shape's template. Every later alert of the shape is its template with
its own values put in, which costs about a sixth of building the payload and serializing it. A
value the escapers change (an e-mail's `<id@host>` message id, `AT&T`) is put in as each kind shows
it (`Kind.value_text`), as long as that leaves it short and not empty. An alert with a value a
renderer would shorten or empty, or with a backtick (Slack's ID code spans change it), a card its
size limit would shorten, a digest, a notice, or a kind without a template (`Kind.template`) is
rendered in full.

`tests/test_render_template.py` holds the text made here byte for byte equal to the full
render's: pinned alerts, generated alerts of a template's shape, each field of a shape changed in
turn, values a renderer changes, cards near Teams' size limit, many threads.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

import orjson
from msgspec import Struct
from msgspec.structs import replace

from ..destinations import Kind, kind
from ..model import Alert, Guidance
from .content import event_message, format_time, payload_bytes
from .escape import event_text, plain, slack_mrkdwn, teams_markdown

__all__ = ["SLOT_CHARS", "render_json"]

# The longest value put in as it stands: the least room any templated layout gives a value
# (Teams' fullest card gives a time fact 200 characters; IDs 512, details 400, Slack 300 and 500).
SLOT_CHARS = 200
_SHAPES = 1024  # shapes kept; emptied when full (a flood of new shapes renders in full)
_SHAPE_CHARS = 2048  # event text in a shape's key: longer shapes are rendered in full, not kept
_SLOT_ENTRIES = 4096
# A "Silence…" link is put in as it stands when it is this short and made of these characters
# (triage.silence_link makes base64url tokens); each link is new, so none is remembered.
_LINK_CHARS = 1000
_URL_SAFE = re.compile(r"[A-Za-z0-9:/._~-]+")

# A time no event has: its formatted text marks where an alert's time stands.
_MARK_TIME = datetime(1901, 2, 3, 4, 5, 6, tzinfo=UTC)
_MARK_TIME_TEXT = format_time(_MARK_TIME)


def _mark(index: int) -> str:
    return f"zqxslot{index}xqz"  # plain text: every escaper passes it through as it stands


class _Template:
    """A payload's JSON with a `%b` hole where each value stands (a literal % doubled), and which
    value goes in each hole: the layout's order, not the shape's."""

    __slots__ = ("pick", "size", "text")

    def __init__(self, text: bytes, order: list[int], size: int) -> None:
        self.text = text
        self.pick = itemgetter(*order)  # one index gives the value itself: `%` takes that too
        self.size = size  # the payload's bytes without its values

    def fill(self, values: list[bytes]) -> bytes:
        filled: bytes = self.text % self.pick(values)
        return filled


class _Known:
    """A shape seen before: the Guidance its key names by id (held: while it is, no other object
    has that id), and its templates by kind, built on the shape's second alert. A flood of shapes
    that never repeat costs a key each, no template."""

    __slots__ = ("guidance", "templates")

    def __init__(self, guidance: Guidance) -> None:
        self.guidance = guidance
        # None: the shape cannot be cut at its values (a marker shown twice, or changed)
        self.templates: dict[str, _Template | None] = {}


class _Shape(Struct, frozen=True):
    values: list[bytes]  # each value's JSON string inside: time, IDs, details, the event's message
    size: int  # their bytes together
    known: _Known | None  # None: the shape's first sighting
    # (index, text) of each value the escapers change: each kind puts in its own escaping there.
    escaped: tuple[tuple[int, str], ...] = ()


# Shared between threads: a race only builds a template twice.
_KNOWN: dict[tuple[Any, ...], _Known] = {}
# value → its JSON string's inside, if every renderer shows it as it stands; else None, and the
# value is in _ESCAPED if the escapers change it (each kind's own escaping is put in).
_SLOTS: dict[str, bytes | None] = {}
_ESCAPED: set[str] = set()
# (kind, value) → the JSON string's inside of the value as that kind shows it, or None when it
# would be shortened or emptied there.
_ESCAPED_SLOTS: dict[tuple[str, str], bytes | None] = {}


def render_json(alert: Alert, fmt: str) -> bytes:
    """The JSON text `render(alert, fmt)` would serialize to, byte for byte."""
    found = kind(fmt)
    if found.template is None or alert.digest or alert.status != "firing":
        return _full(alert, found)
    shape = _shape(alert)
    if shape is None or shape.known is None:
        return _full(alert, found)
    values, size = shape.values, shape.size
    if shape.escaped:
        escaped = _escaped_values(shape, found)
        if escaped is None:
            return _full(alert, found)
        values, size = escaped, sum(map(len, escaped))
    templates = shape.known.templates
    if fmt in templates:
        template = templates[fmt]
    else:
        template = templates[fmt] = _build(alert, found, len(values))
    if template is None or (found.max_bytes and template.size + size >= found.max_bytes):
        return _full(alert, found)  # not cut; or too big for its fullest layout: it is shortened
    return template.fill(values)


def _full(alert: Alert, found: Kind) -> bytes:
    rendered = found.render(alert)
    return payload_bytes(rendered if isinstance(rendered, dict) else {"text": rendered})


class _Last:
    """The last alert's shape: each alert is rendered for Teams and for Slack in turn. One
    attribute, replaced whole: threads that race each read a whole entry."""

    entry: tuple[Alert, _Shape | None] | None = None


def _shape(alert: Alert) -> _Shape | None:
    """The alert's shape, or None if a renderer would not show one of its values as it stands."""
    last = _Last.entry
    if last is not None and last[0] is alert:
        return last[1]
    shape = _read_shape(alert)
    _Last.entry = (alert, shape)
    return shape


def _read_shape(alert: Alert) -> _Shape | None:
    inc = alert.incident
    said = event_message(alert)
    texts = [format_time(inc.time), *inc.ids.values(), *inc.details.values()]
    if said:
        texts.append(said)
    values: list[bytes] = []
    escaped: tuple[tuple[int, str], ...] = ()
    for text in texts:
        value = _SLOTS.get(text, b"")  # b"": not asked yet (a value shown as it stands is never empty)
        if value == b"":
            value = _slot(text)
        if value is None:
            if text not in _ESCAPED:
                return None
            escaped += ((len(values), text),)
            value = b""  # each kind puts in its own
        values.append(value)
    link = alert.silence_url
    if link:
        if len(link) > _LINK_CHARS or not _URL_SAFE.fullmatch(link):
            return None
        values.append(link.encode())  # URL-safe ASCII: its JSON is itself; renderers show it as it is
    ids, details = tuple(inc.ids), tuple(inc.details)
    key = (
        id(alert.guidance), inc.kind, inc.code, inc.subcode, inc.status, inc.scope, inc.resource,
        inc.context, said != "", ids, details, alert.count, alert.window_seconds, alert.note, link != "",
    )  # fmt: skip
    known = _KNOWN.get(key)
    if known is None:
        if sum(map(len, (inc.kind, inc.resource, *ids, *details))) > _SHAPE_CHARS:
            return None  # event text that long is not kept
        if len(_KNOWN) >= _SHAPES:
            _KNOWN.clear()
        _KNOWN[key] = _Known(alert.guidance)
    return _Shape(values, sum(map(len, values)), known, escaped)


def _slot(text: str) -> bytes | None:
    """`text` as the inside of a JSON string if every renderer shows it as it stands: short, not
    empty, unchanged by every escaper; else None. A short text the escapers change is put in
    `_ESCAPED` unless it has a backtick (a Slack ID's code span changes that, its details not)."""
    value: bytes | None = None
    escaped = False
    if 0 < len(text) <= SLOT_CHARS:
        if plain(text):  # ASCII without quotes, backslashes or controls: its JSON is itself
            value = text.encode()
        elif event_text(text) == text and teams_markdown(text) == text and slack_mrkdwn(text) == text:
            if "`" not in text:
                value = orjson.dumps(text)[1:-1]
        else:
            escaped = "`" not in text
    if len(text) <= SLOT_CHARS:
        if len(_SLOTS) >= _SLOT_ENTRIES:
            _SLOTS.clear()
            _ESCAPED.clear()
        _SLOTS[text] = value
        if escaped:
            _ESCAPED.add(text)
    return value


def _escaped_values(shape: _Shape, found: Kind) -> list[bytes] | None:
    """The shape's values with each escaped one as `found` shows it; None when a kind without
    `value_text` would be given one, or one is emptied or longer than a slot once escaped."""
    if found.value_text is None:
        return None
    values = list(shape.values)
    for index, text in shape.escaped:
        key = (found.name, text)
        value = _ESCAPED_SLOTS.get(key, b"")  # b"": not asked yet (an escaped value is never empty)
        if value == b"":
            shown = found.value_text(text)
            value = orjson.dumps(shown)[1:-1] if 0 < len(shown) <= SLOT_CHARS else None
            if len(_ESCAPED_SLOTS) >= _SLOT_ENTRIES:
                _ESCAPED_SLOTS.clear()
            _ESCAPED_SLOTS[key] = value
        if value is None:
            return None
        values[index] = value
    return values


def _build(alert: Alert, found: Kind, count: int) -> _Template | None:
    """The template of the alert's shape: its fullest layout with a marker for each value, cut at
    the markers; None if a marker is not found exactly once."""
    assert found.template is not None
    inc = alert.incident
    marks = [_MARK_TIME_TEXT, *(_mark(i) for i in range(1, count))]
    named = iter(marks[1:])
    marked = inc._replace(
        time=_MARK_TIME,
        ids={name: next(named) for name in inc.ids},
        details={name: next(named) for name in inc.details},
    )
    link = alert.silence_url != ""  # the last value, after the event's message
    if len(inc.ids) + len(inc.details) + 1 + link < count:  # the event's message is shown: a value too
        marked = marked._replace(message=next(named))
    shown = replace(alert, incident=marked)
    if link:
        shown = replace(shown, silence_url=next(named))
    text = payload_bytes(found.template(shown))
    cuts = [mark.encode() for mark in marks]  # plain text: its JSON is itself
    found_at: list[tuple[int, int]] = []
    for index, cut in enumerate(cuts):
        if text.count(cut) != 1:
            return None
        found_at.append((text.find(cut), index))
    found_at.sort()
    parts, start = [], 0
    for at, index in found_at:
        parts.append(text[start:at].replace(b"%", b"%%"))
        start = at + len(cuts[index])
    parts.append(text[start:].replace(b"%", b"%%"))
    size = len(text) - sum(map(len, cuts))
    return _Template(b"%b".join(parts), [index for _, index in found_at], size)
