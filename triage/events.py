"""Typed ACS events and their Incidents.

Each event type's data is described once, by a spec (`CallAutomationEvent`, `SmsDeliveryReport`,
…): its fields and their types. Data keys are read case-insensitively (the wire says `subCode`,
some docs `SubCode`): keys are folded to lower case once, then validated by the pydantic model
made from the event type's spec. Unknown event types are not errors: `to_incident` returns a
Skip that the caller counts and logs.

Most events are only counted, so `read` takes their facts (kind, codes, context, resource)
without the model: from a typed record (msgspec, made from the same spec) when the data is still
JSON text (see "the typed read"), else from the dict once `_fit` shows the model would read it as
it stands. A model is made, and used, only for data that neither way can read; the whole
Incident is built only for the few incidents that are shown.
"""

# No `from __future__ import annotations` here: the specs' annotations are then objects when the
# classes are made, and neither the records nor the models need evaluate them as strings.

import re
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache, lru_cache
from typing import Any, ClassVar, NoReturn, Protocol, get_args, get_origin, get_type_hints

import msgspec
from msgspec import Struct
from pydantic import AliasChoices, AliasGenerator, BaseModel, ConfigDict, ValidationError, create_model

from .ingest import DELETED_EVENT, RawEvent
from .mask import mask_email, mask_emails_in, mask_identifier, mask_phone, mask_text
from .model import Context, Facts, Incident, new_facts, packed

__all__ = [
    "CALL_AUTOMATION_FAILURES",
    "CALL_ENDED",
    "EMAIL_DELIVERY_REPORT",
    "MESSAGE_DELIVERY_STATUS",
    "NO_CODE",
    "SMS_DELIVERY_REPORT",
    "Reading",
    "Skip",
    "read",
    "sms_error_code",
    "to_incident",
]

ACS_PREFIX = "Microsoft.Communication."
SMS_DELIVERY_REPORT = ACS_PREFIX + "SMSDeliveryReportReceived"
CALL_ENDED = ACS_PREFIX + "CallEnded"
EMAIL_DELIVERY_REPORT = ACS_PREFIX + "EmailDeliveryReportReceived"
MESSAGE_DELIVERY_STATUS = ACS_PREFIX + "AdvancedMessageDeliveryStatusUpdated"
_DIAG = re.compile(r"DiagCode:\s*(\d+)#(\d+)")
_SMS_CODE = re.compile(r"ErrorCode:\s*(\d+)", re.IGNORECASE)
_FOUR_DIGITS = re.compile(r"(?<!\d)(\d{4})(?!\d)")
_RESOURCE = re.compile(r"/communicationservices/([^/]+)", re.IGNORECASE)
NO_CODE = "no code given: the event carried no resultInformation code or subcode"
_PSTN_SUBCODE_MIN = 500_000  # PSTN and Teams Phone subcodes are six digits from 5xxxxx


def _spelled(name: str) -> tuple[str, str, str]:
    """camelCase (the wire), PascalCase (some docs and .NET dumps) and lower case (folded keys)."""
    words = name.rstrip("_").split("_")
    camel = words[0] + "".join(w[:1].upper() + w[1:] for w in words[1:])
    return camel, camel[:1].upper() + camel[1:], camel.lower()


def _aliases(name: str) -> AliasChoices:
    return AliasChoices(*_spelled(name))


class _Model(BaseModel):
    """The base of the pydantic models the slow read validates with (see `_model`)."""

    model_config = ConfigDict(
        alias_generator=AliasGenerator(validation_alias=_aliases),
        populate_by_name=True,
        extra="ignore",
        frozen=True,
        # A model's validator is built when it first reads an event (pydantic's own option).
        defer_build=True,
    )


class _SpecType(type):
    """A spec is a description, never instantiated: events are read as its record or its model."""

    def __call__(cls, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError(f"{cls.__name__} is a spec: events are read as its record or its model")


class _Spec(metaclass=_SpecType):
    """The fields of an ACS event, or of an object inside one, and their types: every field may be
    missing (None). The typed records (`_record`) and the pydantic models of the slow read
    (`_model`) are both made from a spec, when first needed: a cold start makes the records of the
    one or two event types it reads and no pydantic model at all. Specs are never instantiated."""


@cache
def _fields(spec: type[_Spec]) -> dict[str, Any]:
    """Field name → type, the base's fields first (the order pydantic gives a model's fields)."""
    return {name: kind for name, kind in get_type_hints(spec).items() if get_origin(kind) is not ClassVar}


def _inner(annotation: Any) -> Any:
    """A field's type without its `| None`."""
    (kind,) = [a for a in get_args(annotation) if a is not type(None)] or [annotation]
    return kind


def _spec_of(kind: Any) -> tuple[type[_Spec], bool] | None:
    """(spec, is a list of them) when a field's type (without None) holds a spec, else None."""
    if isinstance(kind, type) and issubclass(kind, _Spec):
        return kind, False
    (item,) = get_args(kind) or (None,)
    if get_origin(kind) is list and isinstance(item, type) and issubclass(item, _Spec):
        return item, True
    return None


@cache
def _model(spec: type[_Spec]) -> type[_Model]:
    """The pydantic model of `spec`: the fields as optional, nested specs as their models."""
    fields: dict[str, Any] = {}
    for name, annotation in _fields(spec).items():
        nested = _spec_of(_inner(annotation))
        if nested is None:
            fields[name] = (annotation, None)
            continue
        model = _model(nested[0])
        fields[name] = ((list[model] if nested[1] else model) | None, None)  # type: ignore[valid-type]
    return create_model(spec.__name__, __base__=_Model, __module__=__name__, **fields)


class Diagnostic(_Spec):
    code: int | None
    message: str | None


class ResultInformation(_Spec):
    code: int | None
    sub_code: int | None
    message: str | None
    # Given only when the SBC or carrier provides them (newer API versions).
    sip_details: Diagnostic | None
    q850_details: Diagnostic | None


class PhoneNumber(_Spec):
    value: str | None


class Identifier(_Spec):
    raw_id: str | None
    kind: str | None
    phone_number: PhoneNumber | None


def _display(who: Any, mask: bool) -> str:
    """How a participant (an Identifier, or its typed record) is shown."""
    phone = who.phone_number
    raw = who.raw_id or (phone.value if phone else None) or "unknown"
    if not mask:
        return raw
    if phone and phone.value and not who.raw_id:
        return mask_phone(phone.value)
    return mask_identifier(raw)


def _call_ids(event: Any, fields: tuple[tuple[str, str], ...], mask: bool) -> dict[str, str]:
    """The IDs of a Call Automation model, or of its typed record (the same attributes)."""
    out: dict[str, str] = {}
    for attr, label in fields:
        value = getattr(event, attr)
        if value:
            # operationContext is chosen by the app's developers and ids can embed numbers: all masked.
            out[label] = mask_text(str(value)) if mask else str(value)
    return out


class StatusUpdate(_Spec):
    media_streaming_status: str | None
    media_streaming_status_details: str | None
    transcription_status: str | None
    transcription_status_details: str | None


class CallAutomationEvent(_Spec):
    """Fields every Call Automation callback carries (the failure events add a few)."""

    call_connection_id: str | None
    server_call_id: str | None
    correlation_id: str | None
    operation_context: str | None
    result_information: ResultInformation | None
    # Some senders put the event's time in its data only (a callback forwarded without its envelope).
    time: str | None

    ID_FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("correlation_id", "correlationId"),
        ("call_connection_id", "callConnectionId"),
        ("server_call_id", "serverCallId"),
        ("operation_context", "operationContext"),
    )

    @classmethod
    def details_of(cls, event: Any, mask: bool) -> dict[str, str]:
        """The details of an event of this model: the model itself, or its typed record (the
        same attributes; the shown incident is read from the record where the data fits one)."""
        out: dict[str, str] = {}
        result = event.result_information
        if result is None:
            return out
        for label, diag in (("SIP", result.sip_details), ("Q.850", result.q850_details)):
            if diag and (diag.code is not None or diag.message):
                out[label] = " ".join(str(p) for p in (diag.code, diag.message) if p not in (None, ""))
        return out

    @staticmethod
    def context(subcode: int | None, participant_kind: str) -> Context:
        """The product area of a failure with `subcode`, about a participant of `participant_kind`
        (the identifier's kind, '' when the action was about no participant)."""
        return "pstn" if subcode is not None and subcode >= _PSTN_SUBCODE_MIN else "call-automation"


class ParticipantEvent(CallAutomationEvent):
    """AddParticipantFailed, RemoveParticipantFailed, MoveParticipantFailed."""

    participant: Identifier | None
    from_call: str | None

    @classmethod
    def details_of(cls, event: Any, mask: bool) -> dict[str, str]:
        out = super().details_of(event, mask)
        if event.participant:
            out["Participant"] = _display(event.participant, mask)
        if event.from_call:
            out["From call"] = event.from_call
        return out

    @staticmethod
    def context(subcode: int | None, participant_kind: str) -> Context:
        """Teams users and Teams Phone extensions are Teams Phone's area, whatever the code."""
        if participant_kind.lower().startswith(("microsoftteams", "teamsextension")):
            return "teams-phone"
        return CallAutomationEvent.context(subcode, participant_kind)


class CancelAddParticipantFailed(CallAutomationEvent):
    invitation_id: str | None

    ID_FIELDS = (*CallAutomationEvent.ID_FIELDS, ("invitation_id", "invitationId"))


class MediaFailed(CallAutomationEvent):
    """PlayFailed, RecognizeFailed: which play source failed matters (a bad WAV, a bad URL)."""

    failed_play_source_index: int | None

    @classmethod
    def details_of(cls, event: Any, mask: bool) -> dict[str, str]:
        out = super().details_of(event, mask)
        if event.failed_play_source_index is not None:
            out["Failed play source"] = f"#{event.failed_play_source_index}"
        return out


class StartRecordingFailed(CallAutomationEvent):
    recording_id: str | None

    ID_FIELDS = (*CallAutomationEvent.ID_FIELDS, ("recording_id", "recordingId"))


class StreamingFailed(CallAutomationEvent):
    """MediaStreamingFailed and TranscriptionFailed carry a status update with the reason."""

    media_streaming_update: StatusUpdate | None
    transcription_update: StatusUpdate | None

    @classmethod
    def details_of(cls, event: Any, mask: bool) -> dict[str, str]:
        out = super().details_of(event, mask)
        for update in (event.media_streaming_update, event.transcription_update):
            if update:
                status = update.media_streaming_status or update.transcription_status
                why = update.media_streaming_status_details or update.transcription_status_details
                if status or why:
                    out["Status"] = " · ".join(p for p in (status, why) if p)
        return out


CALL_AUTOMATION_FAILURES: dict[str, type[CallAutomationEvent]] = {
    "CallDisconnected": CallAutomationEvent,
    "CreateCallFailed": CallAutomationEvent,
    "AnswerFailed": CallAutomationEvent,
    "ConnectFailed": CallAutomationEvent,
    "AddParticipantFailed": ParticipantEvent,
    "RemoveParticipantFailed": ParticipantEvent,
    "MoveParticipantFailed": ParticipantEvent,
    "CancelAddParticipantFailed": CancelAddParticipantFailed,
    "CallTransferFailed": CallAutomationEvent,
    "PlayFailed": MediaFailed,
    "RecognizeFailed": MediaFailed,
    "SendDtmfTonesFailed": CallAutomationEvent,
    "ContinuousDtmfRecognitionToneFailed": CallAutomationEvent,
    "HoldFailed": CallAutomationEvent,
    "MediaStreamingFailed": StreamingFailed,
    "TranscriptionFailed": StreamingFailed,
    "StartRecordingFailed": StartRecordingFailed,
}


class DeliveryAttempt(_Spec):
    segments_succeeded: int | None
    segments_failed: int | None


class SmsDeliveryReport(_Spec):
    message_id: str | None
    from_: str | None
    to: str | None
    delivery_status: str | None
    delivery_status_details: str | None
    delivery_attempts: list[DeliveryAttempt] | None
    received_timestamp: str | None
    tag: str | None


class Skip(Struct, frozen=True):
    """An event that produces no incident, and why (counted and logged by the caller)."""

    event_id: str
    event_type: str
    reason: str
    outcome: str  # "success" | "skipped" | "invalid"


def _masked(fields: dict[str, str]) -> dict[str, str]:
    """Every value with the phone numbers and raw user ids in it masked (already masked text stays)."""
    return {label: mask_text(value) for label, value in fields.items()}


def _complete(event: Any, data: dict[str, Any]) -> bool:
    """Did the aliases find what the callback holds? If not, keys may be cased oddly."""
    result = event.result_information
    if result is None:
        return not any(key.lower() == "resultinformation" for key in data)
    return event.correlation_id is not None and (result.code is not None or result.sub_code is not None)


_FOLD_DEPTH = 16  # ACS data is at most four levels deep; no model reads below this


def _fold(value: Any, depth: int = 0) -> Any:
    """Lower-case every key, recursively: the slow path for keys in an unusual case
    ("SUBCODE"); camelCase and PascalCase are handled by the models' aliases.
    Below _FOLD_DEPTH values are dropped: a hostile body must not exhaust the stack."""
    if depth > _FOLD_DEPTH:
        return None
    if isinstance(value, dict):
        return {str(k).lower(): _fold(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_fold(v, depth + 1) for v in value]
    return value


def _time(raw: str | None) -> datetime | None:
    """ISO 8601 as Event Grid writes it (up to 7 fractional digits, 'Z' or an offset); None if unreadable."""
    if not raw:
        return None
    try:
        when = datetime.fromisoformat(raw)  # Python 3.11 reads both forms
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


@lru_cache(maxsize=1024)  # a burst repeats the same few texts
def sms_error_code(details: str | None) -> int | None:
    """The SMS error code inside deliveryStatusDetails ("ErrorCode: 4007. ErrorMessage: …")."""
    if not details:
        return None
    match = _SMS_CODE.search(details) or _FOUR_DIGITS.search(details)
    return int(match.group(1)) if match else None


@lru_cache(maxsize=256)  # one per ACS resource
def _resource_of(source: str) -> str | None:
    match = _RESOURCE.search(source)
    return match.group(1) if match else None


@lru_cache(maxsize=1024)
def _diag_codes(message: str) -> tuple[int, int] | None:
    """(code, subcode) from "… DiagCode: 408#10057.@", which some messages carry."""
    diag = _DIAG.search(message)
    return (int(diag.group(1)), int(diag.group(2))) if diag else None


# -- the fast read: data that fits a model as it stands ---------------------------------------------
#
# Pydantic builds every event's model in a few µs; a burst of 5,000 events needs the models of a
# handful (the ones shown). `_fit` tells, without building one, that the model reads the data
# exactly as it stands, and from which keys: each field is read from the first of its spellings
# present (camelCase, PascalCase, lower case, the field's name: pydantic's order), no other key
# folds onto a field (so the case-folding second read, `_fold`, would change nothing), and every
# value a field reads is None or of the field's own type. Anything else (strings for numbers,
# odd types, one field spelled twice) goes to pydantic, which gives the answer it always gave.
# The verdict depends only on the keys and the types of the values, so it is worked out once per
# (model, keys, types) and then looked up; the checks come from the models themselves.


class _Layout(Struct, frozen=True):
    """How data with one sequence of keys and value types fits a spec's model."""

    keys: dict[str, str]  # field name → the key its value is read from (fields present)
    nested: tuple[tuple[str, type[_Spec], bool], ...]  # (key, spec, is a list of them) to check


_LAYOUTS: dict[tuple[str | type, ...], _Layout | None] = {}  # by _fit's signature
_MAX_LAYOUTS = 4096  # senders use a few; a hostile stream must not grow this without bound
_UNKNOWN = _Layout({}, ())
_NO_KEYS: dict[str, str] = {}


@cache
def _spellings(spec: type[_Spec]) -> dict[str, list[str]]:
    """Field name → the keys its model reads it from, in the order pydantic tries them: the
    aliases, then (populate_by_name) the field's own name."""
    return {name: list(dict.fromkeys([*_spelled(name), name])) for name in _fields(spec)}


def _learn(model: type[_Spec], data: dict[str, Any]) -> _Layout | None:
    """The layout of data with `data`'s keys, in its order, holding values of its values' types,
    or None when pydantic must read it (keys and types are all it reads: the answer holds for all
    such data)."""
    type_of = {key: type(value) for key, value in data.items()}
    read: dict[str, str] = {}
    nested: list[tuple[str, type[_Spec], bool]] = []
    types = _fields(model)
    for name, spellings in _spellings(model).items():
        key = next((k for k in spellings if k in type_of), None)
        if key is None:
            continue
        read[name] = key
        value_type = type_of[key]
        if value_type is type(None):
            continue
        kind = _inner(types[name])
        if kind in (str, int) and value_type is kind:
            continue
        inner = _spec_of(kind)
        if inner is not None and value_type is (list if inner[1] else dict):
            nested.append((key, *inner))
            continue
        return None  # a value pydantic may convert or refuse
    folded = {spelling.lower() for spellings in _spellings(model).values() for spelling in spellings}
    if any(key.lower() in folded for key in data if key not in read.values()):
        return None  # another spelling of a field: pydantic ignores it, the folded read may not
    return _Layout(read, tuple(nested))


def _fit(
    model: type[_Spec], data: dict[str, Any], nested: dict[str, _Layout] | None = None
) -> _Layout | None:
    """How `model`'s model reads `data` as it stands, or None when only pydantic can tell (see above).
    The layouts of nested objects (not lists) go into `nested`, by key, when it is given."""
    # One flat tuple is the cheapest signature to build and hash: the model, then the keys (all
    # str), then the values' types (no str equals a type, so it cannot be read two ways).
    signature: tuple[str | type, ...] = (model, *data, *map(type, data.values()))
    layout = _LAYOUTS.get(signature, _UNKNOWN)
    if layout is _UNKNOWN:
        layout = _learn(model, data)
        if len(_LAYOUTS) < _MAX_LAYOUTS:
            _LAYOUTS[signature] = layout
    if layout is None:
        return None
    for key, inner, many in layout.nested:
        value = data[key]
        if many:
            for item in value:
                if type(item) is not dict or _fit(inner, item) is None:
                    return None
        else:
            found = _fit(inner, value)
            if found is None:
                return None
            if nested is not None:
                nested[key] = found
    return layout


# -- the typed read ---------------------------------------------------------------------------------
#
# The usual body leaves each event's data as JSON text (ingest's `RawEvent.payload`). An event whose
# data is spelled as ACS spells it, all camelCase or all PascalCase, and holds nothing but its
# model's fields (and the few keys ACS adds that no model reads) with values of exactly the
# fields' types, is read by msgspec straight into a record made from the model. Those are the
# conditions under which `_fit` says the model reads the data as it stands, one spelling each:
# the facts are the same, and no dict is built. Any other data is read into Python values and
# goes the way above.

# Keys ACS sends that no model reads (spelled as camelCase; the PascalCase record capitalises them):
# the research notes' payloads, live recordings' extras and older payloads' `type`/`eventSource`.
_UNREAD_KEYS: dict[type[_Spec], tuple[str, ...]] = {
    CallAutomationEvent: ("version", "publicEventType", "type", "eventSource"),
    Identifier: ("communicationUser", "microsoftTeamsUser", "microsoftTeamsApp", "teamsExtensionUser"),
    PhoneNumber: ("isAnonymous", "assertedId"),
    StatusUpdate: ("contentType",),
    DeliveryAttempt: ("timestamp",),
}


def _record_type(annotation: Any, pascal: bool) -> Any:
    """The msgspec type of a spec's field: the same type, nested specs as records."""
    kind = _inner(annotation)
    if kind in (str, int, float, bool):
        return kind | None
    inner = _spec_of(kind)
    if inner is None:
        raise TypeError(f"{annotation} has no typed read: add it to _record_type")
    record = _record(inner[0], pascal)
    return (list[record] if inner[1] else record) | None  # type: ignore[valid-type]


@cache
def _record(model: type[_Spec], pascal: bool) -> type[Struct]:
    """A record of `model`'s fields, spelled camelCase (or PascalCase), nothing else allowed."""
    spellings = _spellings(model)  # camelCase, PascalCase, …: pydantic's order
    fields: list[tuple[str, Any, Any]] = [
        (name, _record_type(kind, pascal), msgspec.field(default=None, name=spellings[name][pascal]))
        for name, kind in _fields(model).items()
    ]
    unread = [key for kind, keys in _UNREAD_KEYS.items() if issubclass(model, kind) for key in keys]
    folded = {spelling.lower() for found in spellings.values() for spelling in found}
    assert not folded & {key.lower() for key in unread}, f"an unread key of {model} is a field's spelling"
    for n, key in enumerate(unread):
        spelled = key[:1].upper() + key[1:] if pascal else key
        fields.append((f"unread_{n}", msgspec.Raw, msgspec.field(default=None, name=spelled)))
    return msgspec.defstruct(f"{model.__name__}Record", fields, forbid_unknown_fields=True)


@cache
def _decoders(model: type[_Spec]) -> tuple[msgspec.json.Decoder[Any], ...]:
    return tuple(msgspec.json.Decoder(_record(model, pascal)) for pascal in (False, True))


def _typed(model: type[_Spec], payload: msgspec.Raw) -> Any:
    """`payload` as a record of `model` (see above), or None when it must be read as dicts."""
    for decoder in _decoders(model):
        try:
            return decoder.decode(payload)
        except (msgspec.DecodeError, RecursionError):
            continue
    return None


def _is_object(payload: msgspec.Raw) -> bool:
    """Whether JSON text holds an object (msgspec's Raw is the value's own bytes, unpadded)."""
    view = memoryview(payload)
    return len(view) > 0 and view[0] == _OPEN_BRACE


_OPEN_BRACE = ord("{")


# -- reading ---------------------------------------------------------------------------------------


class Reading(Struct):
    """A failure read from one event: its facts at once, the whole Incident (ids, details,
    time, masking) only when it is shown. Most events of a burst are only counted."""

    raw: RawEvent
    facts: Facts
    message: str  # the event's own text (or why it has no code), unmasked
    model: type[_Spec]  # what the event is read as
    event: _Model | None  # the pydantic model, where the slow read built it
    mask: bool

    def incident(self) -> Incident:
        """The Incident, masked where masking is on."""
        event, model = self._event(), self.model
        if model is SmsDeliveryReport:
            return _sms_incident(self, event)
        if issubclass(model, _StatusEvent):
            return model.incident_of(self, event)
        assert issubclass(model, CallAutomationEvent)
        return _call_incident(self, model, event)

    def ids(self) -> dict[str, str]:
        """`incident().ids` without the rest of the incident: a digest's samples show only their
        IDs."""
        event, model = self._event(), self.model
        if model is SmsDeliveryReport:
            return _sms_ids(self.raw, event.message_id, self.mask)
        if issubclass(model, _StatusEvent):
            return model.ids_of(self.raw, event, self.mask)
        assert issubclass(model, CallAutomationEvent)
        return _call_ids(event, model.ID_FIELDS, self.mask)

    def _event(self) -> Any:
        """What the shown incident is read from: the model where the slow read built it; else the
        typed record where the data fits one (the typed read's condition: the same values as the
        model's, and the same attributes); else the model, read from the data as it stands."""
        if self.event is not None:
            return self.event
        payload = self.raw.payload
        if type(payload) is not msgspec.Raw:
            if issubclass(self.model, _StatusEvent):  # read as `_status_event_reading` read it
                return _status_record(self.model, payload)
            return _model(self.model).model_validate(payload)
        record = _typed(self.model, payload)
        # Else the model reads the same Python values `read` checked (`_fit`): pydantic's own
        # JSON parser has limits of its own (nesting past 200 levels in a key no model reads).
        return record if record is not None else _model(self.model).model_validate(self.raw.data)


# What a Call Automation event's facts are made of, however it was read: (code, subcode,
# message, participant kind, participant raw id). A plain tuple: one is made per event.
_CallValues = tuple[int | None, int | None, str | None, str, str]


def to_incident(raw: RawEvent, *, resource: str = "acs", mask: bool = True) -> Incident | Skip:
    """Turn one RawEvent into an Incident, or a Skip saying why there is nothing to alert."""
    reading = read(raw, resource=resource, mask=mask)
    return reading if isinstance(reading, Skip) else reading.incident()


def read(raw: RawEvent, *, resource: str = "acs", mask: bool = True) -> Reading | Skip:
    """Read one RawEvent's failure (its facts), or a Skip saying why there is nothing to alert."""
    if not raw.type.startswith(ACS_PREFIX):
        if raw.type == DELETED_EVENT:
            return Skip(raw.id, raw.type, "Event Grid subscription deleted", "skipped")
        return Skip(raw.id, raw.type, "not an Azure Communication Services event", "skipped")
    kind = raw.type[len(ACS_PREFIX) :]
    status_event = _STATUS_EVENTS.get(kind)
    if status_event is not None:
        return _status_event_reading(raw, kind, status_event, resource, mask)
    data = raw.payload
    if type(data) is msgspec.Raw:
        typed = _typed_reading(raw, kind, data, resource, mask)
        if typed is not None:
            return typed
        try:
            data = raw.data
        except (ValueError, RecursionError) as exc:  # msgspec's DecodeError is a ValueError
            # Bytes that are not UTF-8 or a number out of range inside this event's data: the
            # envelope pass only skimmed it. This event is refused; its batch goes on.
            return Skip(raw.id, raw.type, f"event data is not readable JSON: {exc}", "invalid")
    if not isinstance(data, dict):
        return Skip(raw.id, raw.type, "event data is not a JSON object", "invalid")
    try:
        if raw.type == SMS_DELIVERY_REPORT:
            layout = _fit(SmsDeliveryReport, data)
            if layout is not None:
                at = layout.keys
                status, details = at.get("delivery_status"), at.get("delivery_status_details")
                found = _SmsValues(data.get(status), data.get(details))
                return _sms_reading(raw, kind, resource=resource, mask=mask, fields=found)
            validated = _model(SmsDeliveryReport)
            report: Any = validated.model_validate(data)  # SmsDeliveryReport's model
            if report.delivery_status is None:
                report = validated.model_validate(_fold(data))
            return _sms_reading(raw, kind, resource=resource, mask=mask, fields=report, report=report)
        model = _failure_model(raw, kind)
        if isinstance(model, Skip):
            return model
        nested: dict[str, _Layout] = {}
        layout = _fit(model, data, nested)
        if layout is not None:
            keys = layout.keys
            result, who = data.get(keys.get("result_information")), data.get(keys.get("participant"))
            at = nested[keys["result_information"]].keys if result else _NO_KEYS
            by = nested[keys["participant"]].keys if who else _NO_KEYS
            values: _CallValues = (
                result.get(at.get("code")) if result else None,
                result.get(at.get("sub_code")) if result else None,
                result.get(at.get("message")) if result else None,
                (who.get(by.get("kind")) or "") if who else "",
                (who.get(by.get("raw_id")) or "") if who else "",
            )  # fmt: skip
            return _call_reading(
                raw, kind, resource=resource, mask=mask, model=model, event=None, values=values
            )
        validated = _model(model)
        event = validated.model_validate(data)
        if not _complete(event, data):
            event = validated.model_validate(_fold(data))
        values = _call_values(event)
        return _call_reading(raw, kind, resource=resource, mask=mask, model=model, event=event, values=values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return Skip(raw.id, raw.type, f"invalid data.{where}: {first['msg']}", "invalid")


def _typed_reading(
    raw: RawEvent, kind: str, payload: msgspec.Raw, resource: str, mask: bool
) -> Reading | Skip | None:
    """`read` of data still in JSON text, straight from a typed record; None when the record
    cannot hold it (see "the typed read"), data that is not an object included."""
    if raw.type == SMS_DELIVERY_REPORT:
        report = _typed(SmsDeliveryReport, payload)
        if report is None:
            return None
        return _sms_reading(raw, kind, resource=resource, mask=mask, fields=report)
    model = _failure_model(raw, kind)
    if isinstance(model, Skip):  # unless the data is not an object: that is said first
        return model if _is_object(payload) else None
    record = _typed(model, payload)
    if record is None:
        return None
    values = _call_values(record)
    return _call_reading(raw, kind, resource=resource, mask=mask, model=model, event=None, values=values)


def _failure_model(raw: RawEvent, kind: str) -> type[CallAutomationEvent] | Skip:
    """The model of a Call Automation failure, or a Skip for an event that is not one."""
    model = CALL_AUTOMATION_FAILURES.get(kind)
    if model is not None:
        return model
    if kind.endswith("Failed"):  # a new *Failed event we have no model for still has the common fields
        return CallAutomationEvent
    return Skip(raw.id, raw.type, "event type is not a failure acs-triage reports", "skipped")


def _call_values(event: Any) -> _CallValues:
    """The facts' values of a Call Automation model, or of its typed record (the same attributes)."""
    result, who = event.result_information, getattr(event, "participant", None)
    return (
        result.code if result else None,
        result.sub_code if result else None,
        result.message if result else None,
        (who.kind or "") if who else "",
        (who.raw_id or "") if who else "",
    )


_DocumentedRow = Callable[[str, int | None, int | None, str, str], tuple[Context, str] | None]


@cache
def _documented_row() -> tuple[frozenset[tuple[int | None, int | None]], _DocumentedRow]:
    """The codes some catalog row ties to conditions, and the catalog's documented_row that
    reads them; imported on the first event (not on import: cold start)."""
    from .catalog import conditioned_codes, documented_row

    return conditioned_codes(), documented_row


def _call_reading(
    raw: RawEvent,
    kind: str,
    *,
    resource: str,
    mask: bool,
    model: type[CallAutomationEvent],
    event: _Model | None,
    values: _CallValues,
) -> Reading | Skip:
    code, subcode, message, participant_kind, participant_id = values
    message = message or ""
    if (code is None or subcode is None) and message:
        diag = _diag_codes(message)
        if diag:
            code = diag[0] if code is None else code
            subcode = diag[1] if subcode is None else subcode
    if code is None and subcode is None:
        if kind == "CallDisconnected":
            return Skip(raw.id, raw.type, "call ended without result information", "success")
        message = message or NO_CODE  # still a failure: it alerts, saying why it has no code
    # The documents' own conditions come first (Teams Phone's dual-persona 408/10057): the row they
    # tie to this kind of event answers it, in its table's context. Without one, the participant's
    # kind and the subcode decide the context, and no row with conditions answers.
    conditioned, documented_row = _documented_row()
    # Most codes have no row with conditions: no need to ask.
    documented = None
    if (code, subcode) in conditioned:
        documented = documented_row(kind, code, subcode, participant_id, message)
    context, row = documented or (model.context(subcode, participant_kind), "")
    # An Event Grid delivery names its ACS resource in the topic; a callback's source does not.
    resource = _resource_of(raw.source) or resource
    facts = new_facts((kind, context, code, subcode, resource, row, "", ""))
    return Reading(raw, facts, message, model, event, mask)


_new_incident = packed(Incident)  # the shown incidents: see model.packed


def _shown(reading: Reading, time: datetime | None, ids: dict[str, str], details: dict[str, str]) -> Incident:
    """The incident of `reading` (its facts, the event's envelope and text) with what its model
    adds: the time, the IDs and the details (masked here where masking is on)."""
    raw, facts, mask, text = reading.raw, reading.facts, reading.mask, reading.message
    return _new_incident(
        (
            facts.kind,  # kind
            raw.type,  # event_type
            raw.id,  # event_id
            raw.source,  # source
            facts.resource,  # resource
            time,  # time
            facts.context,  # context
            facts.code,  # code
            facts.subcode,  # subcode
            mask_text(text) if mask else text,  # message
            ids,  # ids
            _masked(details) if mask else details,  # details
            facts.row,  # row
            facts.status,  # status
            facts.scope,  # scope
        )
    )


def _call_incident(reading: Reading, model: type[CallAutomationEvent], event: Any) -> Incident:
    """The incident of a Call Automation failure, from its model or its typed record."""
    mask = reading.mask
    ids = _call_ids(event, model.ID_FIELDS, mask)
    time = _time(reading.raw.time) or _time(event.time)
    return _shown(reading, time, ids, model.details_of(event, mask))


class _SmsFields(Protocol):
    """What an SMS report's facts are read from: the model, its typed record, or `_SmsValues`."""

    @property
    def delivery_status(self) -> str | None: ...

    @property
    def delivery_status_details(self) -> str | None: ...


class _SmsValues(Struct, frozen=True):
    """The two values the dict read takes from an SMS report."""

    delivery_status: str | None
    delivery_status_details: str | None


def _sms_reading(
    raw: RawEvent,
    kind: str,
    *,
    resource: str,
    mask: bool,
    fields: _SmsFields,
    report: _Model | None = None,  # the model, where the slow read built it
) -> Reading | Skip:
    status, details = fields.delivery_status or "", fields.delivery_status_details
    if status.strip().lower() == "delivered":
        return Skip(raw.id, raw.type, "SMS delivered", "success")
    resource = _resource_of(raw.source) or resource
    facts = new_facts((kind, "sms", sms_error_code(details), None, resource, "", "", ""))
    return Reading(raw, facts, details or "", SmsDeliveryReport, report, mask)


def _sms_ids(raw: RawEvent, message_id: str | None, mask: bool) -> dict[str, str]:
    ids = {"messageId": message_id or raw.id}
    return _masked(ids) if mask else ids


def _sms_incident(reading: Reading, report: Any) -> Incident:
    """The incident of an SMS delivery report, from its model or its typed record."""
    raw, mask = reading.raw, reading.mask
    status = (report.delivery_status or "").strip()
    details: dict[str, str] = {"Delivery status": status or "unknown"}
    if report.to:
        details["To"] = mask_phone(report.to) if mask else report.to
    if report.from_:
        details["From"] = mask_phone(report.from_) if mask else report.from_
    if report.delivery_attempts:
        failed = sum(a.segments_failed or 0 for a in report.delivery_attempts)
        ok = sum(a.segments_succeeded or 0 for a in report.delivery_attempts)
        details["Attempts"] = f"{len(report.delivery_attempts)} ({ok} segments sent, {failed} failed)"
    if report.tag:
        details["Tag"] = report.tag
    ids = _sms_ids(raw, report.message_id, mask)
    time = _time(raw.time) or _time(report.received_timestamp)
    return _shown(reading, time, ids, details)


# -- events that report a status or a reason: CallEnded, email and WhatsApp delivery -----------------
#
# Calling events (CallEnded), email delivery reports and Advanced Messaging (WhatsApp) delivery
# statuses are read like the others: straight into a typed record where the data is spelled as ACS
# spells it (camelCase or PascalCase, values of the fields' types), else, from Python values, into
# the same record, else by the spec's pydantic model from keys folded to lower case. The last way
# takes every spelling the documents show (`communicationidentifier`, `deliveryAttemptTimeStamp`,
# `receivedTimeStamp`) and strings for numbers.


class GroupRef(_Spec):
    id: str | None


class CallParty(_Spec):
    """startedBy / endedBy of a calling event. The 2021 Learn sample flattens the identifier into
    the party (`rawId`); SDKs call `type` `kind`."""

    communication_identifier: Identifier | None
    role: str | None
    type: str | None
    kind: str | None
    name: str | None
    raw_id: str | None


class CallEndReason(_Spec):
    code: int | None
    sub_code: int | None
    phrase: str | None


class EmailStatusDetails(_Spec):
    status_message: str | None
    recipient_mail_server_host_name: str | None


class ChannelError(_Spec):
    channel_code: str | None
    channel_message: str | None


class _StatusEvent(_Spec):
    """An event type read by `_status_event_reading`: its spec says how its failure is found
    (`facts_of`) and shown (`incident_of`, `ids_of`)."""

    @classmethod
    def facts_of(cls, raw: RawEvent, kind: str, event: Any, resource: str) -> tuple[Facts, str] | Skip:
        """The failure's facts and the event's own text, or a Skip saying why it is none."""
        raise NotImplementedError

    @classmethod
    def incident_of(cls, reading: "Reading", event: Any) -> Incident:
        """The shown incident (masked where masking is on)."""
        raise NotImplementedError

    @classmethod
    def ids_of(cls, raw: RawEvent, event: Any, mask: bool) -> dict[str, str]:
        """The IDs support asks for."""
        raise NotImplementedError


def _party(party: Any, mask: bool) -> str:
    """Who started or ended a call: the identifier (masked), its type, and, unmasked, the name."""
    if party is None:
        return ""
    who = party.communication_identifier
    shown = _display(who, mask) if who is not None and (who.raw_id or who.phone_number) else ""
    if not shown and party.raw_id:
        shown = mask_identifier(party.raw_id) if mask else party.raw_id
    role = party.type or party.kind or party.role
    parts = [shown, f"({role})" if role else ""]
    if party.name and not mask:  # a display name is personal data: shown only unmasked
        parts.insert(0, party.name)
    return " ".join(p for p in parts if p)


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    whole = int(value)
    minutes, seconds = divmod(whole, 60)
    exact = f"{value:g} s"
    return f"{minutes} min {seconds} s ({exact})" if minutes else exact


class CallEnded(_StatusEvent):
    """Microsoft.Communication.CallEnded (Event Grid calling events, VoIP calls)."""

    started_by: CallParty | None
    ended_by: CallParty | None
    server_call_id: str | None
    correlation_id: str | None
    group: GroupRef | None
    room: GroupRef | None
    is_two_party: bool | None
    is_rooms_call: bool | None
    reason: CallEndReason | None
    call_duration_in_seconds: float | None
    duration_of_call: float | None  # the 2021 Learn sample's name for it

    @classmethod
    def facts_of(cls, raw: RawEvent, kind: str, event: Any, resource: str) -> tuple[Facts, str] | Skip:
        reason = event.reason
        if reason is None or (reason.code is None and reason.sub_code is None):
            return Skip(raw.id, raw.type, "call ended without a reason code", "success")
        # The Calling SDK's call-end table, looked up as `call.callEndReason` would be; the catalog
        # labels the answer as assumed (fallbacks.toml [assumed]) and Success codes do not alert.
        facts = new_facts((kind, "calling-sdk", reason.code, reason.sub_code, resource, "", "", ""))
        return facts, reason.phrase or ""

    @classmethod
    def incident_of(cls, reading: "Reading", event: Any) -> Incident:
        mask = reading.mask
        details: dict[str, str] = {}
        duration = event.call_duration_in_seconds
        duration = event.duration_of_call if duration is None else duration
        if duration is not None:
            details["Duration"] = _seconds(duration)
        for label, party in (("Ended by", event.ended_by), ("Started by", event.started_by)):
            shown = _party(party, mask)
            if shown:
                details[label] = shown
        if event.is_rooms_call and event.room and event.room.id:
            details["Call"] = f"room {event.room.id}"
        elif event.group and event.group.id:
            details["Call"] = f"group call {event.group.id}"
        elif event.is_two_party:
            details["Call"] = "two-party call"
        return _shown(reading, _time(reading.raw.time), cls.ids_of(reading.raw, event, mask), details)

    @classmethod
    def ids_of(cls, raw: RawEvent, event: Any, mask: bool) -> dict[str, str]:
        ids = {"correlationId": event.correlation_id, "serverCallId": event.server_call_id}
        shown = {label: value for label, value in ids.items() if value}
        return _masked(shown) if mask else shown


# The statuses the Event Grid schema lists for an email delivery report, folded to lower case → as
# the schema spells them. Everything but Delivered is a failure (the schema says so); `Expanded`,
# which a 2022 page lists without saying what it means, and any status not here are logged only.
_EMAIL_FAILURES = {s.lower(): s for s in ("Bounced", "Suppressed", "Failed", "FilteredSpam", "Quarantined")}
# An SMTP reply code and its enhanced status code, as a statusMessage quotes them: "550 5.1.1".
_SMTP = re.compile(r"(?<![\d.])([245]\d\d)(?:[ -]+([245]\.\d{1,3}\.\d{1,3}))?(?![\d.])")


@lru_cache(maxsize=1024)
def smtp_code(message: str | None) -> str:
    """The SMTP reply in an email status message ("550 5.1.1 …" → "550 5.1.1"), or ""."""
    if not message:
        return ""
    found = _SMTP.search(message)
    if found is None:
        return ""
    return " ".join(part for part in found.groups() if part)


def _domain(address: str | None) -> str:
    """The recipient's domain, or "" when the address has none (its local part never goes further)."""
    local, at, domain = (address or "").rpartition("@")
    return domain.strip().lower() if at and local else ""


class EmailDeliveryReport(_StatusEvent):
    """Microsoft.Communication.EmailDeliveryReportReceived."""

    sender: str | None
    recipient: str | None
    internet_message_id: str | None
    message_id: str | None
    status: str | None
    delivery_status_details: EmailStatusDetails | None
    delivery_attempt_timestamp: str | None  # also spelled deliveryAttemptTimeStamp: folded

    @classmethod
    def facts_of(cls, raw: RawEvent, kind: str, event: Any, resource: str) -> tuple[Facts, str] | Skip:
        said = (event.status or "").strip()
        folded = said.lower()
        if folded == "delivered":
            return Skip(raw.id, raw.type, "email delivered", "success")
        status = _EMAIL_FAILURES.get(folded)
        if status is None:
            why = f"email status {said!r} is not a documented failure" if said else "no email status"
            return Skip(raw.id, raw.type, f"{why}: logged, not alerted", "skipped")
        details = event.delivery_status_details
        message = (details.status_message if details else None) or ""
        # A bad mailing list is one burst per status and recipient domain, not one per address.
        facts = new_facts((kind, "email", None, None, resource, "", status, _domain(event.recipient)))
        return facts, message

    @classmethod
    def incident_of(cls, reading: "Reading", event: Any) -> Incident:
        mask = reading.mask
        details: dict[str, str] = {}
        said = event.delivery_status_details
        smtp = smtp_code(said.status_message if said else None)
        if smtp:
            details["SMTP"] = smtp
        if event.recipient:
            details["Recipient"] = mask_email(event.recipient) if mask else event.recipient
        if event.sender:
            details["Sender"] = event.sender  # the application's own address
        if said and said.recipient_mail_server_host_name:
            details["Recipient mail server"] = said.recipient_mail_server_host_name
        time = _time(reading.raw.time) or _time(event.delivery_attempt_timestamp)
        incident = _shown(reading, time, cls.ids_of(reading.raw, event, mask), details)
        if mask:  # an SMTP reply quotes the recipient's address
            incident = incident._replace(message=mask_emails_in(incident.message))
        return incident

    @classmethod
    def ids_of(cls, raw: RawEvent, event: Any, mask: bool) -> dict[str, str]:
        ids = {"messageId": event.message_id or raw.id}
        if event.internet_message_id:
            ids["internetMessageId"] = event.internet_message_id
        # internetMessageId looks like an address but names the message: masked as ids are, no more.
        return _masked(ids) if mask else ids


# WhatsApp statuses, folded to lower case: those that say the message went on its way, and the
# failure. Warning and Unknown are in the schema's enum without a documented meaning: logged only.
_MESSAGE_OK = frozenset({"sent", "delivered", "read"})


class MessageDeliveryStatus(_StatusEvent):
    """Microsoft.Communication.AdvancedMessageDeliveryStatusUpdated (WhatsApp)."""

    message_id: str | None
    status: str | None
    channel_type: str | None
    from_: str | None
    to: str | None
    received_timestamp: str | None  # also spelled receivedTimeStamp: folded
    error: ChannelError | None

    @classmethod
    def facts_of(cls, raw: RawEvent, kind: str, event: Any, resource: str) -> tuple[Facts, str] | Skip:
        said = (event.status or "").strip()
        folded = said.lower()
        if folded in _MESSAGE_OK:
            return Skip(raw.id, raw.type, f"message {folded}", "success")
        if folded != "failed":
            why = f"message status {said!r} is not a documented failure" if said else "message status missing"
            return Skip(raw.id, raw.type, f"{why}: logged, not alerted", "skipped")
        error = event.error
        channel_code = ((error.channel_code if error else None) or "").strip()
        numeric = channel_code.isascii() and channel_code.isdigit() and len(channel_code) <= 9
        code = int(channel_code) if numeric else None
        message = (error.channel_message if error else None) or ""
        if code is None and channel_code:
            message = f"channelCode {channel_code}: {message}" if message else f"channelCode {channel_code}"
        facts = new_facts((kind, "whatsapp", code, None, resource, "", "", ""))
        return facts, message or "no error code given: the event carried no error.channelCode"

    @classmethod
    def incident_of(cls, reading: "Reading", event: Any) -> Incident:
        mask = reading.mask
        details: dict[str, str] = {}
        if event.to:
            details["To"] = mask_phone(event.to) if mask else event.to
        if event.channel_type:
            details["Channel"] = event.channel_type
        if event.from_:
            details["From channel"] = event.from_
        time = _time(reading.raw.time) or _time(event.received_timestamp)
        return _shown(reading, time, cls.ids_of(reading.raw, event, mask), details)

    @classmethod
    def ids_of(cls, raw: RawEvent, event: Any, mask: bool) -> dict[str, str]:
        ids = {"messageId": event.message_id or raw.id}
        return _masked(ids) if mask else ids


class RouterError(_Spec):
    """An item of RouterJobClassificationFailed's `errors` (a CommunicationError)."""

    code: str | None
    message: str | None
    target: str | None


class RouterJobFailure(_StatusEvent):
    """Job Router's RouterJobClassificationFailed (`errors`) and RouterJobSchedulingFailed
    (`failureReason`): no code, the event's own words say what failed."""

    job_id: str | None
    channel_reference: str | None
    channel_id: str | None
    classification_policy_id: str | None
    queue_id: str | None
    errors: list[RouterError] | None
    failure_reason: str | None

    @classmethod
    def facts_of(cls, raw: RawEvent, kind: str, event: Any, resource: str) -> tuple[Facts, str] | Skip:
        said = [e.message or e.code or "" for e in event.errors or ()]
        message = "; ".join(m for m in [*said, event.failure_reason or ""] if m)
        facts = new_facts((kind, "job-router", None, None, resource, "", "", ""))
        return facts, message or "no reason given: the event carried no errors or failureReason"

    @classmethod
    def incident_of(cls, reading: "Reading", event: Any) -> Incident:
        mask = reading.mask
        details: dict[str, str] = {}
        for label, value in (
            ("Classification policy", event.classification_policy_id),
            ("Queue", event.queue_id),
            ("Channel", event.channel_id),
        ):
            if value:
                details[label] = value
        codes = [e.code for e in event.errors or () if e.code]
        if codes:
            details["Error code"] = ", ".join(codes)
        targets = [e.target for e in event.errors or () if e.target]
        if targets:
            details["Target"] = ", ".join(targets)
        return _shown(reading, _time(reading.raw.time), cls.ids_of(reading.raw, event, mask), details)

    @classmethod
    def ids_of(cls, raw: RawEvent, event: Any, mask: bool) -> dict[str, str]:
        # channelReference is the application's own reference (a call id, a phone number): masked.
        ids = {"jobId": event.job_id or raw.id}
        if event.channel_reference:
            ids["channelReference"] = event.channel_reference
        return _masked(ids) if mask else ids


_STATUS_EVENTS: dict[str, type[_StatusEvent]] = {
    "CallEnded": CallEnded,
    "EmailDeliveryReportReceived": EmailDeliveryReport,
    "AdvancedMessageDeliveryStatusUpdated": MessageDeliveryStatus,
    "RouterJobClassificationFailed": RouterJobFailure,
    "RouterJobSchedulingFailed": RouterJobFailure,
}
# The Event Grid system event types acs-triage reads (Call Automation's events come as callbacks,
# not through a subscription): what the deploy hooks may subscribe (ACS_TRIAGE_EVENT_TYPES).
SUBSCRIBABLE_EVENT_TYPES: tuple[str, ...] = (
    SMS_DELIVERY_REPORT,
    *(ACS_PREFIX + kind for kind in _STATUS_EVENTS),
)
# What Job Router sends that no alert reads: the job's labels and tags (the application's own
# data), its priority, schedule and worker selectors, and an error's inner details.
_UNREAD_KEYS[RouterJobFailure] = (
    "labels", "tags", "priority", "scheduledOn", "expiredAttachedWorkerSelectors",
    "expiredRequestedWorkerSelectors",
)  # fmt: skip
_UNREAD_KEYS[RouterError] = ("innerError", "details")


def _status_record(spec: type[_StatusEvent], data: dict[str, Any]) -> Any:
    """Python values as `spec`'s typed record where they are spelled and typed as ACS sends them,
    else as its pydantic model from keys folded to lower case (any spelling, strings for numbers)."""
    for pascal in (False, True):
        try:
            return msgspec.convert(data, _record(spec, pascal))
        except (msgspec.ValidationError, RecursionError):
            continue
    return _model(spec).model_validate(_fold(data))


def _status_event_reading(
    raw: RawEvent, kind: str, spec: type[_StatusEvent], resource: str, mask: bool
) -> Reading | Skip:
    payload = raw.payload
    event: Any = _typed(spec, payload) if type(payload) is msgspec.Raw else None
    if event is None:
        data = raw.data
        if not isinstance(data, dict):
            return Skip(raw.id, raw.type, "event data is not a JSON object", "invalid")
        try:
            event = _status_record(spec, data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            return Skip(raw.id, raw.type, f"invalid data.{where}: {first['msg']}", "invalid")
    found = spec.facts_of(raw, kind, event, _resource_of(raw.source) or resource)
    if isinstance(found, Skip):
        return found
    facts, message = found
    # The pydantic model, where the data needed it, is kept for the shown incident; a record is
    # read again from the data when shown (few are).
    model = event if isinstance(event, _Model) else None
    return Reading(raw, facts, message, spec, model, mask)
