"""From HTTP bytes to RawEvents: the two subscription handshakes and the envelopes.

Accepted bodies: an Event Grid schema array, a CloudEvents 1.0 object or array (Event Grid
with CloudEvents output, or Call Automation callbacks), mixed per item. The schema is
detected per item: `specversion` means CloudEvents, `eventType` means Event Grid.
A bad item is rejected with a reason; the valid items of the same batch go on.
JSON numbers are read as Python's json reads them: integers exactly, whatever their size (see `_parse`).
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from operator import itemgetter
from typing import Any, Literal, NamedTuple

import msgspec
import orjson
from msgspec import Struct, field

from .errors import BodyTooLarge, InvalidEnvelope, UnsupportedMediaType
from .model import packed

__all__ = [
    "VALIDATION_EVENT",
    "Envelope",
    "RawEvent",
    "Rejected",
    "header",
    "options_handshake",
    "parse_body",
    "stream_body",
]

VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"
DELETED_EVENT = "Microsoft.EventGrid.SubscriptionDeletedEvent"
_NON_JSON_TYPES = (
    "multipart/",
    "application/x-www-form-urlencoded",
    "text/html",
    "application/xml",
    "text/xml",
)


class RawEvent(NamedTuple):
    """One event as it arrived, envelope fields checked, `data` not yet interpreted.
    A NamedTuple: immutable, and built 3× faster than a frozen dataclass (one per event)."""

    schema: Literal["eventgrid", "cloudevents"]
    id: str
    type: str
    source: str  # CloudEvents source, or Event Grid topic ("" when a publisher left it out)
    subject: str
    time: str | None
    # The event's data: Python values, or, from the usual body, its JSON text still unread (a
    # msgspec.Raw: `triage.events` reads most of them straight into typed records).
    payload: Any

    @property
    def data(self) -> Any:
        """The event's data as Python values."""
        payload = self.payload
        return _ANY.decode(payload) if type(payload) is msgspec.Raw else payload


_new_raw_event = packed(RawEvent)  # one per event: see model.packed


class Rejected(Struct, frozen=True):
    """An item of the batch that could not be read, and why."""

    index: int
    reason: str
    event_id: str | None = None


class Envelope(Struct):
    """What a POST body held."""

    events: list[RawEvent] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    validation_code: str | None = None  # set when Event Grid asks to validate a subscription


def options_handshake(headers: Mapping[str, str]) -> tuple[int, dict[str, str], str]:
    """Answer the CloudEvents 1.0 abuse-protection OPTIONS request: (status, headers, body)."""
    origin = header(headers, "webhook-request-origin")
    if not origin:
        return (
            400,
            {"Allow": "POST, OPTIONS", "Content-Type": "application/json"},
            '{"error": "WebHook-Request-Origin header is required for the CloudEvents validation handshake"}',
        )
    answer = {
        "WebHook-Allowed-Origin": origin.strip(),
        # We take whatever rate the sender proposes: pacing happens on the chat side.
        "WebHook-Allowed-Rate": "*",
        "Allow": "POST, OPTIONS",
    }
    return 200, answer, ""


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by lower-case name, whatever the case the client used."""
    value = headers.get(name)
    if value is None:
        for key, val in headers.items():
            if key.lower() == name:
                return val
    return value


def parse_body(body: bytes, content_type: str | None, max_bytes: int) -> Envelope:
    """Parse a POST body into RawEvents, all at once. Raises for a body that is wrong as a whole
    (too large, not JSON, not an object/array); rejects single bad items with a reason."""
    envelope, events = stream_body(body, content_type, max_bytes)
    deque(events, maxlen=0)  # read every item: the events land in envelope.events
    return envelope


def stream_body(body: bytes, content_type: str | None, max_bytes: int) -> tuple[Envelope, Iterator[RawEvent]]:
    """As `parse_body`, but each item is read only as the iterator is advanced, so that the
    consumer handles an event while its item is still in the CPU's cache (reading a batch twice
    from memory costs more than either read). The body as a whole is checked now, and raises now;
    the envelope's events, rejections and validation code are complete once the iterator is."""
    if len(body) > max_bytes:
        raise BodyTooLarge(f"body is {len(body)} bytes; the limit is {max_bytes} bytes")
    if content_type:
        ctype = content_type.split(";", 1)[0].strip().lower()
        if ctype.startswith(_NON_JSON_TYPES):
            raise UnsupportedMediaType(
                f"content type {ctype!r} cannot carry events; send application/json or "
                "application/cloudevents+json"
            )
    if not body.strip():
        raise InvalidEnvelope("body is empty; expected a JSON array of events or one CloudEvent")
    envelope = Envelope()
    sent = _sent_items(body)
    if sent is not None:
        return envelope, _read_sent_items(sent, envelope)
    damaged: Mapping[int, Rejected] = _NONE_DAMAGED
    try:
        doc = _parse(body)
    except orjson.JSONDecodeError as exc:
        # Event Grid never retries a 400: one event's bytes (not UTF-8, a number out of range,
        # nesting past the parser's limit) must not cost the whole batch. Only that event is refused.
        split = _read_one_by_one(body)
        if split is None:
            raise InvalidEnvelope(f"body is not valid JSON: {exc}") from None
        doc, damaged = split
    if isinstance(doc, dict):
        items: list[Any] = [doc]
    elif isinstance(doc, list):
        items = doc
    else:
        raise InvalidEnvelope(
            f"body is a JSON {type(doc).__name__}; expected an array of events or one CloudEvent object"
        )
    return envelope, _read_items(items, damaged, envelope, _read_item)


# -- the usual body, read in one typed pass ---------------------------------------------------------
#
# Nearly every body is a JSON array of event objects whose attributes are spelled exactly as the
# two schemas spell them. msgspec reads such a body straight into `_Sent` records, leaving each
# event's `data` as its JSON text (`RawEvent.payload`): one pass in C instead of building every
# envelope and every event's data as dicts. Any other body (another spelling or an attribute we
# do not know, an item that is not an object, a single object, a document too deep for msgspec,
# JSON that is not valid) is read into dicts first (`_parse`): same events, rejections and errors.


_NO_DATA = msgspec.Raw(b"null")


class _Sent(Struct, forbid_unknown_fields=True):
    """An item of the usual body: the attributes of CloudEvents 1.0 and of the Event Grid schema,
    spelled exactly; None when absent (as `_read_item` reads an absent attribute)."""

    id: Any = None
    type: Any = None
    source: Any = None
    subject: Any = None
    time: Any = None
    data: msgspec.Raw = _NO_DATA  # absent reads as null does: None
    specversion: Any = None
    datacontenttype: Any = None
    dataschema: Any = None
    eventType: Any = None  # the schema's spelling, as the JSON has it
    topic: Any = None
    eventTime: Any = None
    dataVersion: Any = None
    metadataVersion: Any = None


_SENT = msgspec.json.Decoder(list[_Sent])
_ANY = msgspec.json.Decoder()
_NONE_DAMAGED: Mapping[int, Rejected] = {}


def _sent_items(body: bytes) -> list[_Sent] | None:
    """The items of a usual body, or None when it is read another way (see above)."""
    try:
        return _SENT.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return None


def _parse(body: bytes) -> Any:
    """Any other body as Python values, read as the usual body is (integers exactly, as Python's
    json and the lenient read do), or as orjson reads it when msgspec cannot: a document nested
    1,000 to 1,024 levels deep, which msgspec refuses and orjson takes. Invalid JSON raises
    orjson's error, which says where the JSON goes wrong."""
    try:
        return _ANY.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return orjson.loads(body)


def _read_sent(index: int, item: _Sent, envelope: Envelope) -> RawEvent | None:
    if item.specversion is not None:
        values = (item.id, item.type, item.source, item.subject, item.time, item.data)
        return _checked(index, "cloudevents", values, envelope)
    if item.eventType is not None:
        values = (item.id, item.eventType, item.topic, item.subject, item.eventTime, item.data)
        return _checked(index, "eventgrid", values, envelope)
    envelope.rejected.append(Rejected(index, _NEITHER))
    return None


def _read_sent_items(items: list[_Sent], envelope: Envelope) -> Iterator[RawEvent]:
    """`_read_items` of a usual body's records, with `_read_sent` and `_checked` written into the
    loop for the item every sender sends (string id, type and source, no validation event): three
    Python calls an event fewer, a few percent of a grouped batch. Any other item takes the
    general path, which says why it is refused."""
    events = envelope.events
    for index, item in enumerate(items):
        if item.specversion is not None:
            schema: Literal["eventgrid", "cloudevents"] = "cloudevents"
            event_type, source, when = item.type, item.source, item.time
        elif item.eventType is not None:
            schema = "eventgrid"
            event_type, source, when = item.eventType, item.topic, item.eventTime
        else:
            envelope.rejected.append(Rejected(index, _NEITHER))
            continue
        event_id, subject = item.id, item.subject
        if (
            type(event_id) is str
            and type(event_type) is str
            and type(source) is str
            and event_type
            and source
            and event_id.strip()
            and event_type != VALIDATION_EVENT
        ):
            event = _new_raw_event(
                (
                    schema,
                    event_id,
                    event_type,
                    source,
                    subject if isinstance(subject, str) else "",
                    when if isinstance(when, str) else None,
                    item.data,
                )
            )
            events.append(event)
            yield event
        else:  # the general path: a rejection with its reason, or the validation code
            yield from _read_items([item], _NONE_DAMAGED, envelope, _read_sent, index)


def _read_items(
    items: list[Any],
    damaged: Mapping[int, Rejected],
    envelope: Envelope,
    read_item: Callable[[int, Any, Envelope], RawEvent | None],
    first: int = 0,
) -> Iterator[RawEvent]:
    """The events of `items` (numbered from `first`), each added to `envelope.events` as it is
    handed on; bad items and the validation code go into the envelope instead."""
    for index, item in enumerate(items, first):
        if damaged and index in damaged:
            envelope.rejected.append(damaged[index])
            continue
        event = read_item(index, item, envelope)
        if event is None:
            continue
        if event.type == VALIDATION_EVENT:
            try:
                data = event.data
            except (ValueError, RecursionError) as exc:  # msgspec's DecodeError is a ValueError
                envelope.rejected.append(Rejected(index, f"event data is not readable: {exc}", event.id))
                continue
            code = data.get("validationCode") if isinstance(data, dict) else None
            if isinstance(code, str) and code:
                envelope.validation_code = code
            else:
                envelope.rejected.append(Rejected(index, "validation event without data.validationCode"))
            continue
        envelope.events.append(event)
        yield event


# The tokens that give a JSON text its structure: whole strings (whatever bytes they hold, so a
# bracket inside one is not one), brackets and commas. Numbers, literals and space lie between.
_STRUCTURE = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{},]', re.DOTALL)
_OPENS, _CLOSES, _COMMA = frozenset(b"[{"), frozenset(b"]}"), ord(",")


def _read_one_by_one(body: bytes) -> tuple[list[Any], dict[int, Rejected]] | None:
    """A body the whole-body parsers refused, read item by item: (the items, with None for each
    damaged one; why each damaged one was refused, by index). An item is damaged when it alone
    cannot be read for what its bytes hold: bytes that are not UTF-8, a number out of range,
    nesting deeper than the parser allows. None when the body is not a JSON array or object of
    items as a whole, or an item's JSON is wrong in another way: the body is refused then."""
    pieces = _top_level_items(body)
    if pieces is None:
        return None
    items: list[Any] = []
    damaged: dict[int, Rejected] = {}
    for index, piece in enumerate(pieces):
        try:
            items.append(_parse(piece))
            continue
        except orjson.JSONDecodeError as exc:
            reason = _damage(piece, str(exc))
        if reason is None:
            return None
        items.append(None)
        damaged[index] = Rejected(index, f"{reason}; it was not processed", _event_id(piece))
    return items, damaged


def _top_level_items(body: bytes) -> list[bytes] | None:
    """The texts of a JSON array's items (or of a single object, as one item), cut at their
    commas by structure alone, without reading them; None when the brackets do not pair up."""
    text = body.strip()
    if text[:1] == b"{":
        return [text]
    if text[:1] != b"[":
        return None
    pieces: list[bytes] = []
    depth, start = 0, 1
    for token in _STRUCTURE.finditer(text):
        first = text[token.start()]
        if first in _OPENS:
            depth += 1
        elif first in _CLOSES:
            depth -= 1
            if depth == 0:
                last = text[start : token.start()].strip()
                if last or pieces:
                    pieces.append(last)
                # The array must end the body and close with the bracket that opened it.
                return pieces if first == ord("]") and token.end() == len(text) else None
            if depth < 0:
                return None
        elif first == _COMMA and depth == 1:
            pieces.append(text[start : token.start()].strip())
            start = token.end()
    return None


def _damage(piece: bytes, error: str) -> str | None:
    """Why one item's JSON cannot be read, when that is what its bytes hold rather than JSON
    written wrong (None then)."""
    try:
        piece.decode("utf-8")
    except UnicodeDecodeError:
        # Only where the item is JSON once each such byte reads as U+FFFD: bad bytes, not bad JSON.
        repaired = piece.decode("utf-8", errors="replace").encode()
        try:
            _parse(repaired)
        except orjson.JSONDecodeError as exc:
            if _damage(repaired, str(exc)) is None:
                return None
        return "event holds bytes that are not UTF-8"
    if "depth limit" in error or "recursion" in error:
        return "event is nested deeper than the parser allows (1,024 levels)"
    if "number" in error.lower():
        return "event holds a number out of range"
    try:
        # Python's reader takes what ours refuse inside well-formed items: NaN, Infinity and
        # escapes of lone UTF-16 surrogates. What it cannot read either is JSON written wrong.
        json.loads(piece)
    except (ValueError, RecursionError):
        return None
    return "event holds values JSON does not allow (NaN, Infinity or a lone surrogate escape)"


_ID = re.compile(rb'^\{\s*"id"\s*:\s*"([^"\\\x00-\x1f]{1,200})"')


def _event_id(piece: bytes) -> str | None:
    """The id of a damaged item when it is its first attribute, as both schemas' senders write
    it (the item cannot be read, so nothing else is looked at)."""
    found = _ID.match(piece)
    if found is None:
        return None
    try:
        return found.group(1).decode("utf-8")
    except UnicodeDecodeError:
        return None


def _get(item: dict[str, Any], key: str) -> Any:
    """Envelope attribute, read case-insensitively (the exact spelling is tried first: it is the norm)."""
    if key in item:
        return item[key]
    lowered = key.lower()
    for k, v in item.items():
        if k.lower() == lowered:
            return v
    return None


_CLOUDEVENT_KEYS = ("id", "type", "source", "subject", "time", "data")
_EVENTGRID_KEYS = ("id", "eventType", "topic", "subject", "eventTime", "data")
_ATTRIBUTES = ("specversion", "eventType", *_CLOUDEVENT_KEYS, *_EVENTGRID_KEYS)


class _Layout(Struct, frozen=True):
    """Where each envelope attribute sits in items with one sequence of keys: the key that
    `_get` would read (exact spelling, else the first one equal ignoring case), or None."""

    specversion: str | None
    event_type: str | None
    cloudevent: Callable[[dict[str, Any]], tuple[Any, ...]]  # the values of _CLOUDEVENT_KEYS
    eventgrid: Callable[[dict[str, Any]], tuple[Any, ...]]  # the values of _EVENTGRID_KEYS


_LAYOUTS: dict[tuple[str, ...], _Layout] = {}
_MAX_LAYOUTS = 256  # senders use a handful; a hostile body must not grow this without bound


def _getter(keys: tuple[str | None, ...]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """Reads the values at `keys` (None where a key is None: the attribute is missing)."""
    present = tuple(k for k in keys if k is not None)
    if len(present) == len(keys) > 1:
        return itemgetter(*present)  # the usual case: one call in C
    return lambda item: tuple(None if k is None else item[k] for k in keys)


def _layout(keys: tuple[str, ...]) -> _Layout:
    """The layout of items whose keys are `keys`, in that order (one sender, one layout)."""
    layout = _LAYOUTS.get(keys)
    if layout is None:
        where = dict.fromkeys(keys, 0)  # _get reads keys only; any value will do
        found = {
            a: (a if a in where else next((k for k in keys if k.lower() == a.lower()), None))
            for a in _ATTRIBUTES
        }
        layout = _Layout(
            found["specversion"],
            found["eventType"],
            _getter(tuple(found[a] for a in _CLOUDEVENT_KEYS)),
            _getter(tuple(found[a] for a in _EVENTGRID_KEYS)),
        )
        if len(_LAYOUTS) < _MAX_LAYOUTS:
            _LAYOUTS[keys] = layout
    return layout


def _read_item(index: int, item: Any, envelope: Envelope) -> RawEvent | None:
    if not isinstance(item, dict):
        envelope.rejected.append(
            Rejected(index, f"item is a JSON {type(item).__name__}, not an event object")
        )
        return None
    # Attributes are read case-insensitively (as _get does); where each one sits is worked
    # out once per sequence of keys, because every event of a sender has the same one.
    keys = tuple(item)
    layout = _LAYOUTS.get(keys) or _layout(keys)
    if layout.specversion is not None and item[layout.specversion] is not None:
        return _checked(index, "cloudevents", layout.cloudevent(item), envelope)
    if layout.event_type is not None and item[layout.event_type] is not None:
        return _checked(index, "eventgrid", layout.eventgrid(item), envelope)
    envelope.rejected.append(Rejected(index, _NEITHER))
    return None


_NEITHER = "neither a CloudEvent (no specversion) nor an Event Grid event (no eventType)"


def _checked(
    index: int, schema: Literal["eventgrid", "cloudevents"], values: tuple[Any, ...], envelope: Envelope
) -> RawEvent | None:
    """The event of one item from its attributes (in _CLOUDEVENT_KEYS' or _EVENTGRID_KEYS' order,
    by `schema`), or None with the reason in `envelope.rejected`."""
    event_id, event_type, source, subject, when, data = values
    # No id, no dedup: we never invent one (azure-core's CloudEvent.from_dict would).
    if not isinstance(event_id, str) or not event_id.strip():
        envelope.rejected.append(Rejected(index, "event has no id"))
        return None
    if not isinstance(event_type, str) or not event_type:
        type_key = (_CLOUDEVENT_KEYS if schema == "cloudevents" else _EVENTGRID_KEYS)[1]
        envelope.rejected.append(Rejected(index, f"event has no {type_key}", event_id))
        return None
    if schema == "cloudevents" and (not isinstance(source, str) or not source):
        envelope.rejected.append(Rejected(index, "CloudEvent has no source", event_id))
        return None
    return _new_raw_event(
        (
            schema,
            event_id,
            event_type,
            source if isinstance(source, str) else "",
            subject if isinstance(subject, str) else "",
            when if isinstance(when, str) else None,
            data,
        )
    )
