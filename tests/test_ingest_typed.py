"""The usual body (an array of events spelled exactly as the schemas spell them) is read in one
typed pass; every other body is read into dicts first. Both reads must give the same envelope."""

from __future__ import annotations

import json
from contextlib import ExitStack
from typing import Any
from unittest import mock

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from samples import SAMPLES, sample
from triage import ingest
from triage.errors import InvalidEnvelope
from triage.ingest import Envelope, parse_body

MB = 1 << 20
_ATTRIBUTES = [
    "id", "type", "source", "subject", "time", "data", "specversion", "datacontenttype", "dataschema",
    "eventType", "topic", "eventTime", "dataVersion", "metadataVersion",
]  # fmt: skip
_OTHER_KEYS = ["Id", "EventType", "DATA", "Source", "traceparent", "foo"]


def _read(body: bytes, path: str) -> Envelope:
    """parse_body, made to take one path: "typed", "dicts" (msgspec) or "orjson"."""
    with ExitStack() as stack:
        if path != "typed":
            stack.enter_context(mock.patch.object(ingest, "_sent_items", return_value=None))
        if path == "orjson":
            stack.enter_context(mock.patch.object(ingest, "_parse", orjson.loads))
        return parse_body(body, "application/json", MB)


def _same(a: Envelope, b: Envelope) -> bool:
    """The same events (their data read as Python values), rejections and validation code."""

    def seen(envelope: Envelope) -> str:
        # repr tells 1 from 1.0 and 0.0 from -0.0, which == does not.
        events = [(*event[:-1], event.data) for event in envelope.events]
        return repr((events, envelope.rejected, envelope.validation_code))

    return seen(a) == seen(b)


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**62), max_value=2**62),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["code", "subCode", "x", "Code"]), inner, max_size=3),
    ),
    max_leaves=8,
)
_event_type = st.sampled_from(
    [
        "Microsoft.Communication.PlayFailed",
        "Microsoft.Communication.SMSDeliveryReportReceived",
        "Microsoft.EventGrid.SubscriptionValidationEvent",
        "Other.Event",
        "",
    ]
)


@st.composite
def _items(draw: st.DrawFn) -> Any:
    """Mostly events with the usual attributes; now and then a value of the wrong type, an
    attribute spelled otherwise, an unknown one, or an item that is not an object."""

    def usually(good: st.SearchStrategy[Any]) -> Any:
        return draw(_values) if draw(st.integers(0, 5)) == 0 else draw(good)

    if draw(st.integers(0, 9)) == 0:
        return draw(_values)
    item: dict[str, Any] = {"id": usually(st.text(min_size=1, max_size=6))}
    if draw(st.booleans()):
        item["specversion"] = usually(st.just("1.0"))
        item["type"] = usually(_event_type)
        item["source"] = usually(st.just("/acs/x"))
    else:
        item["eventType"] = usually(_event_type)
        item["topic"] = usually(st.just("/subscriptions/x"))
    for key in draw(st.lists(st.sampled_from(_ATTRIBUTES), max_size=4)):
        item[key] = usually(st.text(max_size=5))
    if draw(st.integers(0, 5)) == 0:
        item[draw(st.sampled_from(_OTHER_KEYS))] = draw(_values)
    item["data"] = draw(st.one_of(_values, st.fixed_dictionaries({"validationCode": st.text(max_size=4)})))
    return item


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_items(), max_size=6))
def test_the_typed_read_the_dict_read_and_orjson_give_the_same_envelope(items: list[Any]) -> None:
    raw = json.dumps(items).encode()
    typed = _read(raw, "typed")
    assert _same(typed, _read(raw, "dicts"))
    assert _same(typed, _read(raw, "orjson"))


def test_every_sample_array_takes_the_typed_read() -> None:
    arrays = [p for p in sorted(SAMPLES.rglob("*.json")) if isinstance(json.loads(p.read_bytes()), list)]
    assert len(arrays) > 20
    for path in arrays:
        assert ingest._sent_items(path.read_bytes()) is not None, path.relative_to(SAMPLES)


@pytest.mark.parametrize(
    "raw",
    [
        b'[{"Id": "a", "eventType": "x", "data": {}}]',  # another spelling
        b'[{"id": "a", "eventType": "x", "traceparent": "00-ab"}]',  # an attribute the typed read lacks
        b'[{"id": "a", "eventType": "x"}, 42]',  # an item that is not an object
        b'{"id": "a", "specversion": "1.0", "type": "x", "source": "s"}',  # one object
    ],
)
def test_other_bodies_are_read_into_dicts_first_and_read_the_same(raw: bytes) -> None:
    assert ingest._sent_items(raw) is None
    assert _same(parse_body(raw, "application/json", MB), _read(raw, "orjson"))


def test_integers_beyond_64_bits_are_read_exactly_whichever_read_takes_the_body() -> None:
    item = sample("callbacks/play-failed-400-8535.json")[0]
    item["data"]["resultInformation"]["subCode"] = 2**70
    typed = json.dumps([item]).encode()
    dicts = json.dumps([{"ID" if k == "id" else k: v for k, v in item.items()}]).encode()
    assert ingest._sent_items(typed) is not None and ingest._sent_items(dicts) is None
    for raw in (typed, dicts):
        (event,) = parse_body(raw, "application/json", MB).events
        assert event.data["resultInformation"]["subCode"] == 2**70
        assert type(event.data["resultInformation"]["subCode"]) is int


def test_a_body_nested_deeper_than_msgspec_reads_but_within_orjson_is_still_read() -> None:
    item = sample("callbacks/play-failed-400-8535.json")[0]
    item["data"]["deep"] = []
    template = json.dumps([item]).encode()
    for depth, read in ((1010, True), (1100, False)):
        raw = template.replace(b'"deep": []', b'"deep": ' + b"[" * depth + b"]" * depth)
        if read:
            (event,) = parse_body(raw, "application/json", MB).events
            assert event.id == item["id"]
        else:  # past orjson's limit too: that event alone is refused, with its id and why
            envelope = parse_body(raw, "application/json", MB)
            assert envelope.events == []
            (rejected,) = envelope.rejected
            assert rejected.event_id == item["id"] and "nested deeper" in rejected.reason


def test_invalid_json_still_says_where_it_goes_wrong() -> None:
    with pytest.raises(InvalidEnvelope, match=r"line 1 column \d+"):
        parse_body(b'[{"id": "a",}]', "application/json", MB)
