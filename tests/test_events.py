"""Typed ACS events: which events become incidents, with which codes, ids and context."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from samples import sample, sample_bytes
from triage.events import CALL_AUTOMATION_FAILURES, Reading, Skip, read, sms_error_code, to_incident
from triage.ingest import RawEvent, parse_body
from triage.model import Incident


def raw_events(name: str) -> list[RawEvent]:
    return parse_body(sample_bytes(name), "application/json", 1 << 20).events


def incident(name: str, **kw: Any) -> Incident:
    result = to_incident(raw_events(name)[0], **kw)
    assert isinstance(result, Incident), result
    return result


def with_data(name: str, drop: tuple[str, ...] = (), **changes: Any) -> RawEvent:
    doc = sample(name)
    item = doc[0] if isinstance(doc, list) else doc
    for key in drop:
        del item["data"][key]
    item["data"].update(changes)
    return parse_body(json.dumps([item]).encode(), None, 1 << 20).events[0]


def test_call_disconnected_410_3112_becomes_an_incident_with_the_ids_support_asks_for() -> None:
    inc = incident("callbacks/call-disconnected-410-3112.json", resource="contoso-acs")
    assert (inc.kind, inc.code, inc.subcode, inc.context) == (
        "CallDisconnected",
        410,
        3112,
        "call-automation",
    )
    assert list(inc.ids) == ["correlationId", "callConnectionId", "serverCallId"]
    assert inc.resource == "contoso-acs"
    assert inc.fingerprint == "CallDisconnected|410|3112|contoso-acs"
    assert inc.time is not None and inc.time.tzinfo is not None


def test_play_failed_keeps_the_failed_play_source_and_operation_context() -> None:
    inc = incident("callbacks/play-failed-400-8535.json")
    assert (inc.code, inc.subcode) == (400, 8535)
    assert inc.ids["operationContext"] == "ivr-welcome-prompt"
    assert inc.details["Failed play source"] == "#0"


def test_every_sample_callback_is_a_supported_failure_type() -> None:
    kinds = {e.type.rsplit(".", 1)[1] for p in ("callbacks",) for e in _all(p)}
    assert kinds <= set(CALL_AUTOMATION_FAILURES)
    assert set(CALL_AUTOMATION_FAILURES) <= kinds  # a sample for every supported type


def _all(folder: str) -> list[RawEvent]:
    from samples import SAMPLES

    out: list[RawEvent] = []
    for path in sorted((SAMPLES / folder).glob("*.json")):
        out.extend(parse_body(path.read_bytes(), None, 1 << 20).events)
    return out


@pytest.mark.parametrize(
    ("outer", "inner"),
    [
        ("ResultInformation", {"Code": 400, "SubCode": 8536}),  # PascalCase, as .NET dumps show it
        ("resultinformation", {"code": 400, "subcode": 8536}),  # all lower case
        ("RESULTINFORMATION", {"CODE": 400, "SUBCODE": 8536}),  # anything else: the slow path folds keys
    ],
)
def test_result_information_keys_are_read_in_any_case(outer: str, inner: dict[str, int]) -> None:
    raw = with_data("callbacks/play-failed-400-8535.json", drop=("resultInformation",), **{outer: inner})
    inc = to_incident(raw)
    assert isinstance(inc, Incident) and (inc.code, inc.subcode) == (400, 8536)


def test_diag_code_in_the_message_fills_missing_numbers() -> None:
    raw = with_data(
        "callbacks/add-participant-failed-408-10057.json",
        resultInformation={"message": "addParticipants failed … DiagCode: 408#10057.@"},
    )
    inc = to_incident(raw)
    assert isinstance(inc, Incident) and (inc.code, inc.subcode) == (408, 10057)


def test_call_disconnected_without_result_information_is_a_normal_end_not_an_alert() -> None:
    raw = with_data("callbacks/call-disconnected-410-3112.json", resultInformation=None)
    result = to_incident(raw)
    assert isinstance(result, Skip) and result.outcome == "success"


def test_a_pstn_subcode_puts_the_incident_in_the_pstn_context() -> None:
    inc = incident("callbacks/call-disconnected-pstn-403-560403.json")
    assert inc.context == "pstn"
    assert inc.details == {"SIP": "403 Forbidden", "Q.850": "21 Call rejected"}


def test_a_teams_participant_puts_add_participant_failed_in_the_teams_phone_context() -> None:
    raw = with_data(
        "callbacks/add-participant-failed-408-10057.json",
        participant={
            "rawId": "8:orgid:1234",
            "kind": "microsoftTeamsUser",
            "microsoftTeamsUser": {"userId": "1234"},
        },
    )
    inc = to_incident(raw)
    assert isinstance(inc, Incident) and inc.context == "teams-phone"


def test_participant_phone_numbers_are_masked_by_default_and_shown_when_asked() -> None:
    masked = incident("callbacks/add-participant-failed-pstn-480-560480.json")
    clear = incident("callbacks/add-participant-failed-pstn-480-560480.json", mask=False)
    assert masked.details["Participant"] == "4:+1 ••••••0123"
    assert "+14255550123" not in masked.message
    assert clear.details["Participant"] == "4:+14255550123"


def test_an_unknown_failed_event_of_acs_still_becomes_an_incident() -> None:
    raw = with_data("callbacks/hold-failed-400-8585.json")
    raw = RawEvent(
        raw.schema,
        raw.id,
        "Microsoft.Communication.UnholdFailed",
        raw.source,
        raw.subject,
        raw.time,
        raw.data,
    )
    inc = to_incident(raw)
    assert isinstance(inc, Incident) and inc.kind == "UnholdFailed" and inc.code == 400


@pytest.mark.parametrize(
    ("event_type", "reason"),
    [
        ("Microsoft.Communication.PlayCompleted", "event type is not a failure acs-triage reports"),
        ("Microsoft.Storage.BlobCreated", "not an Azure Communication Services event"),
        ("Microsoft.EventGrid.SubscriptionDeletedEvent", "Event Grid subscription deleted"),
    ],
)
def test_other_event_types_are_skipped_with_a_reason_not_an_error(event_type: str, reason: str) -> None:
    raw = raw_events("callbacks/play-failed-400-8535.json")[0]
    raw = RawEvent(raw.schema, raw.id, event_type, raw.source, raw.subject, raw.time, raw.data)
    result = to_incident(raw)
    assert isinstance(result, Skip) and result.outcome == "skipped" and result.reason == reason


def test_wrong_types_in_data_are_an_invalid_event_with_the_field_named() -> None:
    raw = with_data("callbacks/play-failed-400-8535.json", resultInformation={"code": "four hundred"})
    result = to_incident(raw)
    assert isinstance(result, Skip) and result.outcome == "invalid"
    assert "resultInformation.code" in result.reason


def test_data_that_is_not_an_object_is_invalid() -> None:
    raw = raw_events("callbacks/play-failed-400-8535.json")[0]
    raw = RawEvent(raw.schema, raw.id, raw.type, raw.source, raw.subject, raw.time, ["not", "an", "object"])
    result = to_incident(raw)
    assert isinstance(result, Skip) and result.outcome == "invalid"


def test_sms_4007_report_has_code_resource_message_id_and_masked_numbers() -> None:
    inc = incident("eventgrid/sms-delivery-failed-4007-opt-out.json")
    assert (inc.kind, inc.code, inc.subcode, inc.context) == ("SMSDeliveryReportReceived", 4007, None, "sms")
    assert inc.resource == "contoso-acs-prod"
    assert inc.ids["messageId"].startswith("Outgoing_")
    assert inc.details["To"] == "+1 ••••••0123"
    assert inc.details["Tag"] == "appointment-reminder"


def test_sms_report_in_pascal_case_cloudevents_form_reads_the_same() -> None:
    inc = incident("cloudevents/sms-delivery-failed-4004.json")
    assert (inc.code, inc.details["Delivery status"]) == (4004, "Failed")
    assert inc.details["To"] == "+61 •••••5678"


def test_delivered_sms_is_not_an_alert() -> None:
    result = to_incident(raw_events("eventgrid/sms-delivered.json")[0])
    assert isinstance(result, Skip) and result.outcome == "success"


@pytest.mark.parametrize(
    ("details", "code"),
    [
        ("ErrorCode: 4007. ErrorMessage: The Destination/To number has opted out", 4007),
        ("errorcode:5002 ErrorMessage: Message Delivery Timeout", 5002),
        ("Failed with 4006 at carrier", 4006),
        ("No error.", None),
        ("", None),
        (None, None),
    ],
)
def test_sms_error_code_is_read_from_delivery_status_details(details: str | None, code: int | None) -> None:
    assert sms_error_code(details) == code


def test_events_of_two_resources_read_in_turn_each_name_their_own_resource() -> None:
    # The resource of the last topic is remembered (a batch comes from one resource or a few):
    # an event from another resource in between must still name its own.
    def from_topic(raw: RawEvent, topic: str, event_id: str) -> RawEvent:
        return raw._replace(source=topic, id=event_id)

    raw = parse_body(sample_bytes("callbacks/call-disconnected-410-3112.json"), None, 1 << 20).events[0]
    assert type(raw.payload) is msgspec.Raw  # as the usual body hands it on
    base = "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Communication/communicationServices/"
    topics = [base + "contoso-east", base + "contoso-west", "", base + "contoso-east"]
    expected = ["contoso-east", "contoso-west", "acs-default", "contoso-east"]
    for round_ in range(2):
        for n, (topic, name) in enumerate(zip(topics, expected, strict=True)):
            reading = read(from_topic(raw, topic, f"e{round_}{n}"), resource="acs-default")
            assert isinstance(reading, Reading)
            assert reading.facts.resource == name
