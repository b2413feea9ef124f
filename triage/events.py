"""Typed ACS events (pydantic) and their Incidents.

Data keys are read case-insensitively (the wire says `subCode`, some docs `SubCode`): keys
are folded to lower case once, then validated by one model per event type. Unknown event
types are not errors: `to_incident` returns a Skip that the caller counts and logs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import AliasChoices, AliasGenerator, BaseModel, ConfigDict, ValidationError

from .ingest import DELETED_EVENT, RawEvent
from .mask import mask_identifier, mask_phone, mask_text
from .model import Context, Incident

__all__ = [
    "CALL_AUTOMATION_FAILURES",
    "NO_CODE",
    "SMS_DELIVERY_REPORT",
    "Skip",
    "sms_error_code",
    "to_incident",
]

ACS_PREFIX = "Microsoft.Communication."
SMS_DELIVERY_REPORT = ACS_PREFIX + "SMSDeliveryReportReceived"
_DIAG = re.compile(r"DiagCode:\s*(\d+)#(\d+)")
_SMS_CODE = re.compile(r"ErrorCode:\s*(\d+)", re.IGNORECASE)
_FOUR_DIGITS = re.compile(r"(?<!\d)(\d{4})(?!\d)")
_RESOURCE = re.compile(r"/communicationservices/([^/]+)", re.IGNORECASE)
NO_CODE = "no code given: the event carried no resultInformation code or subcode"
_PSTN_SUBCODE_MIN = 500_000  # PSTN and Teams Phone subcodes are six digits from 5xxxxx


def _aliases(name: str) -> AliasChoices:
    """camelCase (the wire), PascalCase (some docs and .NET dumps) and lower case (folded keys)."""
    words = name.rstrip("_").split("_")
    camel = words[0] + "".join(w[:1].upper() + w[1:] for w in words[1:])
    return AliasChoices(camel, camel[:1].upper() + camel[1:], camel.lower())


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=AliasGenerator(validation_alias=_aliases),
        populate_by_name=True,
        extra="ignore",
        frozen=True,
    )


class Diagnostic(_Model):
    code: int | None = None
    message: str | None = None


class ResultInformation(_Model):
    code: int | None = None
    sub_code: int | None = None
    message: str | None = None
    # Given only when the SBC or carrier provides them (newer API versions).
    sip_details: Diagnostic | None = None
    q850_details: Diagnostic | None = None


class PhoneNumber(_Model):
    value: str | None = None


class Identifier(_Model):
    raw_id: str | None = None
    kind: str | None = None
    phone_number: PhoneNumber | None = None

    def display(self, mask: bool) -> str:
        raw = self.raw_id or (self.phone_number.value if self.phone_number else None) or "unknown"
        if not mask:
            return raw
        if self.phone_number and self.phone_number.value and not self.raw_id:
            return mask_phone(self.phone_number.value)
        return mask_identifier(raw)


class StatusUpdate(_Model):
    media_streaming_status: str | None = None
    media_streaming_status_details: str | None = None
    transcription_status: str | None = None
    transcription_status_details: str | None = None


class CallAutomationEvent(_Model):
    """Fields every Call Automation callback carries (the failure events add a few)."""

    call_connection_id: str | None = None
    server_call_id: str | None = None
    correlation_id: str | None = None
    operation_context: str | None = None
    result_information: ResultInformation | None = None

    ID_FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("correlation_id", "correlationId"),
        ("call_connection_id", "callConnectionId"),
        ("server_call_id", "serverCallId"),
        ("operation_context", "operationContext"),
    )

    def ids(self, mask: bool) -> dict[str, str]:
        out: dict[str, str] = {}
        for attr, label in self.ID_FIELDS:
            value = getattr(self, attr)
            if value:
                out[label] = str(value)
        # operationContext is chosen by the app's developers and ids can embed numbers: all masked.
        return _masked(out) if mask else out

    def details(self, mask: bool) -> dict[str, str]:
        out: dict[str, str] = {}
        result = self.result_information
        if result is None:
            return out
        for label, diag in (("SIP", result.sip_details), ("Q.850", result.q850_details)):
            if diag and (diag.code is not None or diag.message):
                out[label] = " ".join(str(p) for p in (diag.code, diag.message) if p not in (None, ""))
        return out

    def participant_id(self) -> str:
        """The raw id of the participant the action was about ('' when there is none)."""
        return ""

    def context(self, code: int | None, subcode: int | None) -> Context:
        return "pstn" if subcode is not None and subcode >= _PSTN_SUBCODE_MIN else "call-automation"


class ParticipantEvent(CallAutomationEvent):
    """AddParticipantFailed, RemoveParticipantFailed, MoveParticipantFailed."""

    participant: Identifier | None = None
    from_call: str | None = None

    def details(self, mask: bool) -> dict[str, str]:
        out = super().details(mask)
        if self.participant:
            out["Participant"] = self.participant.display(mask)
        if self.from_call:
            out["From call"] = self.from_call
        return out

    def participant_id(self) -> str:
        """The raw id of the participant the action was about ('' when there is none)."""
        return (self.participant.raw_id or "") if self.participant else ""

    def context(self, code: int | None, subcode: int | None) -> Context:
        kind = (self.participant.kind or "").lower() if self.participant else ""
        if kind.startswith(("microsoftteams", "teamsextension")):
            return "teams-phone"
        return super().context(code, subcode)


class CancelAddParticipantFailed(CallAutomationEvent):
    invitation_id: str | None = None

    ID_FIELDS = (*CallAutomationEvent.ID_FIELDS, ("invitation_id", "invitationId"))


class MediaFailed(CallAutomationEvent):
    """PlayFailed, RecognizeFailed: which play source failed matters (a bad WAV, a bad URL)."""

    failed_play_source_index: int | None = None

    def details(self, mask: bool) -> dict[str, str]:
        out = super().details(mask)
        if self.failed_play_source_index is not None:
            out["Failed play source"] = f"#{self.failed_play_source_index}"
        return out


class StartRecordingFailed(CallAutomationEvent):
    recording_id: str | None = None

    ID_FIELDS = (*CallAutomationEvent.ID_FIELDS, ("recording_id", "recordingId"))


class StreamingFailed(CallAutomationEvent):
    """MediaStreamingFailed and TranscriptionFailed carry a status update with the reason."""

    media_streaming_update: StatusUpdate | None = None
    transcription_update: StatusUpdate | None = None

    def details(self, mask: bool) -> dict[str, str]:
        out = super().details(mask)
        for update in (self.media_streaming_update, self.transcription_update):
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


class DeliveryAttempt(_Model):
    segments_succeeded: int | None = None
    segments_failed: int | None = None


class SmsDeliveryReport(_Model):
    message_id: str | None = None
    from_: str | None = None
    to: str | None = None
    delivery_status: str | None = None
    delivery_status_details: str | None = None
    delivery_attempts: list[DeliveryAttempt] | None = None
    received_timestamp: str | None = None
    tag: str | None = None


@dataclass(frozen=True, slots=True)
class Skip:
    """An event that produces no incident, and why (counted and logged by the caller)."""

    event_id: str
    event_type: str
    reason: str
    outcome: str  # "success" | "skipped" | "invalid"


def _masked(fields: dict[str, str]) -> dict[str, str]:
    """Every value with the phone numbers and raw user ids in it masked (already masked text stays)."""
    return {label: mask_text(value) for label, value in fields.items()}


def _complete(event: CallAutomationEvent, data: dict[str, Any]) -> bool:
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


def sms_error_code(details: str | None) -> int | None:
    """The SMS error code inside deliveryStatusDetails ("ErrorCode: 4007. ErrorMessage: …")."""
    if not details:
        return None
    match = _SMS_CODE.search(details) or _FOUR_DIGITS.search(details)
    return int(match.group(1)) if match else None


def _resource(raw: RawEvent, default: str) -> str:
    match = _RESOURCE.search(raw.source)
    return match.group(1) if match else default


def to_incident(raw: RawEvent, *, resource: str = "acs", mask: bool = True) -> Incident | Skip:
    """Turn one RawEvent into an Incident, or a Skip saying why there is nothing to alert."""
    if not raw.type.startswith(ACS_PREFIX):
        if raw.type == DELETED_EVENT:
            return Skip(raw.id, raw.type, "Event Grid subscription deleted", "skipped")
        return Skip(raw.id, raw.type, "not an Azure Communication Services event", "skipped")
    kind = raw.type[len(ACS_PREFIX) :]
    if not isinstance(raw.data, dict):
        return Skip(raw.id, raw.type, "event data is not a JSON object", "invalid")
    try:
        if raw.type == SMS_DELIVERY_REPORT:
            report = SmsDeliveryReport.model_validate(raw.data)
            if report.delivery_status is None:
                report = SmsDeliveryReport.model_validate(_fold(raw.data))
            return _sms_incident(raw, kind, report, resource, mask)
        model = CALL_AUTOMATION_FAILURES.get(kind)
        if model is None:
            # A new *Failed event we have no model for still has the common fields.
            if not kind.endswith("Failed"):
                return Skip(raw.id, raw.type, "event type is not a failure acs-triage reports", "skipped")
            model = CallAutomationEvent
        event = model.model_validate(raw.data)
        if not _complete(event, raw.data):
            event = model.model_validate(_fold(raw.data))
        return _call_incident(raw, kind, event, resource, mask)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return Skip(raw.id, raw.type, f"invalid data.{where}: {first['msg']}", "invalid")


def _call_incident(
    raw: RawEvent, kind: str, event: CallAutomationEvent, resource: str, mask: bool
) -> Incident | Skip:
    from .catalog import documented_context  # the catalog loads on the first event, not on import

    result = event.result_information
    code = result.code if result else None
    subcode = result.sub_code if result else None
    message = (result.message if result else None) or ""
    if (code is None or subcode is None) and message:
        diag = _DIAG.search(message)  # "… DiagCode: 408#10057.@" carries both numbers
        if diag:
            code = int(diag.group(1)) if code is None else code
            subcode = int(diag.group(2)) if subcode is None else subcode
    if code is None and subcode is None:
        if kind == "CallDisconnected":
            return Skip(raw.id, raw.type, "call ended without result information", "success")
        message = message or NO_CODE  # still a failure: it alerts, saying why it has no code
    return Incident(
        kind=kind,
        event_type=raw.type,
        event_id=raw.id,
        source=raw.source,
        resource=resource,
        time=_time(raw.time),
        # The documents' own conditions come first (Teams Phone's dual-persona 408/10057).
        context=documented_context(kind, code, subcode, event.participant_id(), message)
        or event.context(code, subcode),
        code=code,
        subcode=subcode,
        message=mask_text(message) if mask else message,
        ids=event.ids(mask),
        details=_masked(event.details(mask)) if mask else event.details(mask),
    )


def _sms_incident(
    raw: RawEvent, kind: str, report: SmsDeliveryReport, resource: str, mask: bool
) -> Incident | Skip:
    status = (report.delivery_status or "").strip()
    if status.lower() == "delivered":
        return Skip(raw.id, raw.type, "SMS delivered", "success")
    code = sms_error_code(report.delivery_status_details)
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
    ids = {"messageId": report.message_id or raw.id}
    if mask:
        details, ids = _masked(details), _masked(ids)
    text = report.delivery_status_details or ""
    return Incident(
        kind=kind,
        event_type=raw.type,
        event_id=raw.id,
        source=raw.source,
        resource=_resource(raw, resource),
        time=_time(raw.time) or _time(report.received_timestamp),
        context="sms",
        code=code,
        subcode=None,
        message=mask_text(text) if mask else text,
        ids=ids,
        details=details,
    )
