"""Envelopes and handshakes: what the HTTP body may be, and what we answer."""

from __future__ import annotations

import json

import pytest

from samples import sample, sample_bytes
from triage.errors import BodyTooLarge, InvalidEnvelope, UnsupportedMediaType
from triage.ingest import options_handshake, parse_body, stream_body

MB = 1 << 20


def body(doc: object) -> bytes:
    return json.dumps(doc).encode()


def test_event_grid_validation_event_yields_the_validation_code_and_no_events() -> None:
    envelope = parse_body(sample_bytes("eventgrid/subscription-validation.json"), "application/json", MB)
    assert envelope.validation_code == "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"
    assert envelope.events == []


def test_options_handshake_allows_the_requested_origin_and_post() -> None:
    status, headers, _ = options_handshake({"WebHook-Request-Origin": "eventgrid.azure.net"})
    assert status == 200
    assert headers["WebHook-Allowed-Origin"] == "eventgrid.azure.net"
    assert headers["WebHook-Allowed-Rate"] == "*"
    assert "POST" in headers["Allow"]


def test_options_handshake_reads_the_origin_header_case_insensitively() -> None:
    status, headers, _ = options_handshake({"webhook-request-origin": "eventgrid.azure.net"})
    assert status == 200 and headers["WebHook-Allowed-Origin"] == "eventgrid.azure.net"


def test_options_without_origin_is_a_400_with_a_reason() -> None:
    status, headers, text = options_handshake({})
    assert status == 400
    assert "WebHook-Request-Origin" in text
    assert "WebHook-Allowed-Origin" not in headers


def test_cloudevents_single_object_is_one_event() -> None:
    envelope = parse_body(
        sample_bytes("cloudevents/sms-delivery-failed-4004.json"), "application/cloudevents+json", MB
    )
    assert [e.schema for e in envelope.events] == ["cloudevents"]
    assert envelope.events[0].type == "Microsoft.Communication.SMSDeliveryReportReceived"


def test_cloudevents_batch_and_event_grid_array_are_read_per_item() -> None:
    ce = parse_body(sample_bytes("cloudevents/sms-batch.json"), "application/cloudevents-batch+json", MB)
    eg = parse_body(sample_bytes("eventgrid/sms-batch-mixed.json"), "application/json", MB)
    assert len(ce.events) == 2 and {e.schema for e in ce.events} == {"cloudevents"}
    assert len(eg.events) == 4 and {e.schema for e in eg.events} == {"eventgrid"}
    assert eg.events[0].source.endswith("/communicationServices/contoso-acs-prod")


def test_a_mixed_batch_keeps_its_valid_events_and_says_why_the_others_were_rejected() -> None:
    good = sample("callbacks/play-failed-400-8535.json")[0]
    no_id = {k: v for k, v in good.items() if k != "id"}
    no_source = {k: v for k, v in good.items() if k != "source"} | {"id": "x-1"}
    items = [good, 42, no_id, {"hello": "world"}, no_source, {"id": "y", "specversion": "1.0", "source": "s"}]
    envelope = parse_body(body(items), "application/json", MB)
    assert [e.id for e in envelope.events] == [good["id"]]
    reasons = {r.index: r.reason for r in envelope.rejected}
    assert reasons[1] == "item is a JSON int, not an event object"
    assert reasons[2] == "event has no id"
    assert "neither a CloudEvent" in reasons[3]
    assert reasons[4] == "CloudEvent has no source"
    assert reasons[5] == "event has no type"


def test_a_missing_id_is_never_invented() -> None:
    event = sample("callbacks/play-failed-400-8535.json")[0]
    event["id"] = "   "
    envelope = parse_body(body([event]), "application/json", MB)
    assert envelope.events == [] and envelope.rejected[0].reason == "event has no id"


def test_envelope_keys_are_read_case_insensitively() -> None:
    event = sample("callbacks/play-failed-400-8535.json")[0]
    shouting = {k.upper(): v for k, v in event.items()}
    envelope = parse_body(body([shouting]), "application/json", MB)
    assert envelope.events[0].id == event["id"]


def test_empty_array_is_a_valid_empty_batch() -> None:
    envelope = parse_body(b"[]", "application/json", MB)
    assert envelope.events == [] and envelope.rejected == []


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "body is empty"),
        (b"{not json", "not valid JSON"),
        (b'"a string"', "JSON str"),
        (b"42", "JSON int"),
        (b"null", "JSON NoneType"),
    ],
)
def test_bodies_that_are_not_event_envelopes_are_invalid_with_a_reason(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidEnvelope, match=message):
        parse_body(raw, "application/json", MB)


def test_body_over_the_limit_is_too_large() -> None:
    with pytest.raises(BodyTooLarge, match="limit is 1048576"):
        parse_body(b" " * (MB + 1), "application/json", MB)


@pytest.mark.parametrize(
    "ctype", ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/html"]
)
def test_non_json_content_types_are_refused(ctype: str) -> None:
    with pytest.raises(UnsupportedMediaType):
        parse_body(b"[]", ctype, MB)


@pytest.mark.parametrize(
    "ctype", [None, "application/json; charset=utf-8", "text/plain", "application/cloudevents+json"]
)
def test_json_and_unspecified_content_types_are_accepted(ctype: str | None) -> None:
    assert parse_body(b"[]", ctype, MB).events == []


def test_validation_event_without_a_code_is_rejected_not_answered() -> None:
    event = sample("eventgrid/subscription-validation.json")[0]
    event["data"] = {}
    envelope = parse_body(body([event]), "application/json", MB)
    assert envelope.validation_code is None
    assert "validationCode" in envelope.rejected[0].reason


def test_bytes_that_are_not_utf8_in_one_event_refuse_only_that_event() -> None:
    items = sample("eventgrid/sms-batch-mixed.json")
    good = [json.dumps(item).encode() for item in items]
    broken = (
        json.dumps(items[1])
        .encode()
        .replace(b"Microsoft.Communication", b"Microsoft.\xff\xfeCommunication", 1)
    )
    assert b"\xff" in broken
    envelope = parse_body(b"[" + b",\n".join([good[0], broken, *good[2:]]) + b"]", "application/json", MB)
    assert [e.id for e in envelope.events] == [items[0]["id"], *(i["id"] for i in items[2:])]
    [rejected] = envelope.rejected
    assert (rejected.index, rejected.event_id) == (1, items[1]["id"])
    assert "not UTF-8" in rejected.reason


def test_a_single_event_with_bytes_that_are_not_utf8_is_refused_not_the_request() -> None:
    doc = sample("cloudevents/sms-delivery-failed-4004.json")
    first = doc[0] if isinstance(doc, list) else doc
    raw = json.dumps(first).encode().replace(b"Failed", b"Fail\xc3(ed", 1)
    envelope = parse_body(raw, "application/cloudevents+json", MB)
    assert envelope.events == [] and [r.index for r in envelope.rejected] == [0]


@pytest.mark.parametrize(
    "raw",
    [b'[{"id": "a\xff"} {"id": "b"}]', b'[{"id": "a\xff"}] trailing', b"\xff\xfe", b'[{"id": "a"}, \xff]'],
)
def test_a_body_that_is_not_json_even_with_bad_bytes_replaced_is_still_a_400(raw: bytes) -> None:
    with pytest.raises(InvalidEnvelope, match="not valid JSON"):
        parse_body(raw, None, MB)


def test_a_batch_with_one_damaged_event_answers_200_and_alerts_the_others() -> None:
    from triage.service import Service
    from triage.settings import Settings
    from triage.store.memory import MemoryStore

    items = sample("eventgrid/sms-batch-mixed.json")
    parts = [json.dumps(item).encode() for item in items]
    parts[1] = parts[1].replace(b"Microsoft.Communication", b"Microsoft.\xc0Communication", 1)
    service = Service(Settings.from_env({}), MemoryStore())
    answer = service.handle_http("eventgrid", "POST", {}, {}, b"[" + b",".join(parts) + b"]")
    assert answer.status == 200
    report = json.loads(answer.body)
    assert report["received"] == len(items) and report["invalid"] == 1
    assert [r["index"] for r in report["rejected"]] == [1]


def test_a_streamed_body_reads_each_item_as_it_is_taken_and_ends_as_parse_body_does() -> None:
    good = sample("callbacks/play-failed-400-8535.json")[0]
    validation = sample("eventgrid/subscription-validation.json")[0]
    items = [good, 42, validation, good | {"id": "second"}]
    raw = body(items)

    envelope, events = stream_body(raw, "application/json", MB)
    assert envelope.events == [] and envelope.rejected == [] and envelope.validation_code is None
    first = next(events)
    assert first.id == good["id"] and envelope.events == [first] and envelope.rejected == []
    rest = list(events)

    assert [e.id for e in rest] == ["second"]
    assert envelope == parse_body(raw, "application/json", MB)
    assert [r.index for r in envelope.rejected] == [1]
    assert envelope.validation_code == validation["data"]["validationCode"]


@pytest.mark.parametrize(
    ("raw", "error"),
    [(b"{not json", InvalidEnvelope), (b"42", InvalidEnvelope), (b" " * (MB + 1), BodyTooLarge)],
)
def test_a_streamed_body_that_is_wrong_as_a_whole_raises_before_any_event_is_taken(
    raw: bytes, error: type[Exception]
) -> None:
    with pytest.raises(error):
        stream_body(raw, "application/json", MB)
