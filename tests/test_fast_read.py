"""The fast read (facts straight from the event's data, the pydantic model only for incidents
that are shown) answers exactly as the model always did: for every sample, for every spelling
and type pydantic accepts or refuses, and for random data. The reference is the same read with
the fast path turned off."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from samples import all_samples, sample
from triage import events
from triage.events import Reading, Skip, read, to_incident
from triage.ingest import RawEvent, parse_body

ACS = "Microsoft.Communication."


def sample_events() -> list[RawEvent]:
    """Every event of every sample file, as the ingest step hands it on."""
    found: list[RawEvent] = []
    for path in all_samples():
        found += parse_body(path.read_bytes(), "application/json", 1 << 22).events
    return found


def slow(raw: RawEvent, mask: bool = True) -> Any:
    """The read as pydantic alone gives it: the data as Python values (no typed record) and the
    fast path switched off for this call."""
    fit = events._fit
    events._fit = lambda model, data, nested=None: None  # type: ignore[assignment]
    try:
        return to_incident(raw._replace(payload=raw.data), resource="acs", mask=mask)
    finally:
        events._fit = fit


def as_sent(raw: RawEvent) -> RawEvent:
    """The event as the usual body hands it on: its data still JSON text."""
    text = msgspec.json.encode(raw.data)
    assert repr(msgspec.json.decode(text)) == repr(raw.data), "data JSON cannot carry (an infinity)"
    return raw._replace(payload=msgspec.Raw(text))


def fast(raw: RawEvent, mask: bool = True) -> Any:
    return to_incident(raw, resource="acs", mask=mask)


def same_ids(raw: RawEvent, expected: Any, mask: bool = True) -> bool:
    """A reading's IDs read alone (a digest's samples) are the whole incident's."""
    reading = read(raw, resource="acs", mask=mask)
    if not isinstance(reading, Reading):
        return isinstance(expected, Skip)
    return reading.ids() == expected.ids


@pytest.mark.parametrize("mask", [True, False])
def test_every_sample_reads_the_same_with_and_without_the_fast_path(mask: bool) -> None:
    raws = sample_events()
    assert len(raws) > 30

    for raw in raws:
        expected = slow(raw, mask)
        assert fast(raw, mask) == expected, raw.type
        assert same_ids(raw, expected, mask) and same_ids(as_sent(raw), expected, mask), raw.type


def test_the_fast_path_reads_every_failure_sample_without_building_a_model() -> None:
    readings = [read(raw) for raw in sample_events()]
    built = [r.raw.type for r in readings if isinstance(r, Reading) and r.event is not None]

    assert len([r for r in readings if isinstance(r, Reading)]) > 20
    assert built == []  # each one fits its model as it stands: no model is built to count it


def test_a_shown_incident_is_read_from_the_typed_record_without_building_a_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    raws = sample_events()
    expected = {raw.id: slow(raw) for raw in raws}

    def refuse(cls: type, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"{cls.__name__} was built")

    monkeypatch.setattr(events._Model, "model_validate", classmethod(refuse))
    monkeypatch.setattr(events._Model, "model_validate_json", classmethod(refuse))
    events._model.cache_clear()  # the models other tests made
    shown = 0
    for raw in raws:
        reading = read(as_sent(raw), resource="acs")  # its data as JSON text, as the usual body has it
        if isinstance(reading, Reading):
            assert reading.incident() == expected[raw.id] and reading.ids() == expected[raw.id].ids
            shown += 1
    assert shown > 20
    assert events._model.cache_info().currsize == 0  # not a pydantic model class was even made


def test_a_spec_describes_data_and_is_never_instantiated() -> None:
    with pytest.raises(TypeError, match="CallAutomationEvent is a spec"):
        events.CallAutomationEvent()


def test_the_typed_read_takes_the_failure_samples_spelled_as_acs_spells_them() -> None:
    typed = untyped = 0
    for raw in sample_events():
        reading = read(raw)
        if not isinstance(reading, Reading) or type(raw.payload) is not msgspec.Raw:
            continue  # a single-object body is read as dicts
        if events._typed(reading.model, raw.payload) is not None:
            typed += 1
        else:
            untyped += 1

    assert typed >= 25 and untyped == 0


def respelled(data: dict[str, Any], spell: str) -> dict[str, Any]:
    """`data` with every key spelled another way, recursively."""

    def go(value: Any) -> Any:
        if isinstance(value, dict):
            return {
                getattr(str, spell)(k) if spell != "pascal" else k[:1].upper() + k[1:]: go(v)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [go(v) for v in value]
        return value

    return go(data)  # type: ignore[no-any-return]


def variants(raw: RawEvent) -> Iterator[tuple[str, RawEvent]]:
    """The same event with keys and values as senders or hostile clients might send them."""
    data = raw.data
    assert isinstance(data, dict)
    for spell in ("pascal", "lower", "upper"):
        yield spell, raw._replace(payload=respelled(data, spell))
    result = data.get("resultInformation")
    if isinstance(result, dict):
        for key, value in (
            ("code", "400"), ("code", "abc"), ("code", True), ("code", 1.0), ("code", 1.5),
            ("subCode", None), ("code", None), ("subCode", [1]), ("message", 7), ("message", None),
            ("sub_code", 9), ("SubCode", 9),
        ):  # fmt: skip
            changed = copy.deepcopy(data)
            changed["resultInformation"][key] = value
            yield f"resultInformation.{key}={value!r}", raw._replace(payload=changed)
        for key, value in (
            ("resultInformation", None), ("resultInformation", "x"), ("correlationId", 5),
            ("correlationId", None), ("operationContext", {"a": 1}), ("callConnectionId", 12),
            ("participant", {"rawId": 4}),
            ("participant", {"kind": "microsoftTeamsUser", "rawId": "8:orgid:x"}),
            ("participant", "x"), ("CorrelationId", "other"), ("call_connection_id", "y"),
            ("failedPlaySourceIndex", "2"), ("failedPlaySourceIndex", 2),
        ):  # fmt: skip
            changed = copy.deepcopy(data)
            changed[key] = value
            yield f"{key}={value!r}", raw._replace(payload=changed)
    for where in ("", "resultInformation", "participant"):
        inner = data.get(where) if where else data
        for key in inner if isinstance(inner, dict) else ():
            snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in key)
            for other in {key[:1].upper() + key[1:], key.lower(), snake, f"{key}_"} - {key}:
                changed = copy.deepcopy(data)
                target = changed[where] if where else changed
                target[other] = target.pop(key)  # only the other spelling
                yield f"{where}.{key} spelled {other}", raw._replace(payload=changed)
    if "deliveryStatus" in data:
        for key, value in (
            ("deliveryStatus", None), ("deliveryStatus", 3), ("deliveryStatus", "Delivered"),
            ("deliveryStatusDetails", None), ("deliveryStatusDetails", 4007), ("to", 15551234567),
            ("deliveryAttempts", [{"segmentsSucceeded": "1"}]), ("deliveryAttempts", [1]),
            ("deliveryAttempts", {"a": 1}), ("DeliveryStatus", "Failed"), ("from_", "+1"),
        ):  # fmt: skip
            changed = copy.deepcopy(data)
            changed[key] = value
            yield f"{key}={value!r}", raw._replace(payload=changed)


def test_other_spellings_and_types_read_the_same_with_and_without_the_fast_path() -> None:
    checked = 0
    for raw in sample_events():
        if not raw.type.startswith(ACS) or not isinstance(raw.data, dict):
            continue
        for label, variant in variants(raw):
            expected = slow(variant)
            assert fast(variant) == expected, (raw.type, label)
            assert fast(as_sent(variant)) == expected, (raw.type, label, "typed")
            assert same_ids(variant, expected) and same_ids(as_sent(variant), expected), (raw.type, label)
            checked += 1

    assert checked > 1000


VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 700_000), st.floats(allow_nan=False),
    st.sampled_from(
        ["", "400", "Failed", "Delivered", "ErrorCode: 4007", "DiagCode: 408#10057.@", "+15551234567"]
    ),
    st.lists(st.integers(), max_size=2),
)  # fmt: skip
KEYS = st.sampled_from([
    "code", "subCode", "SubCode", "subcode", "message", "Message", "correlationId", "CorrelationId",
    "resultInformation", "ResultInformation", "participant", "rawId", "kind", "deliveryStatus",
    "deliveryStatusDetails", "deliveryAttempts", "segmentsFailed", "to", "from", "from_", "x", "messageId",
])  # fmt: skip
DATA = st.recursive(VALUES, lambda inner: st.dictionaries(KEYS, inner, max_size=6), max_leaves=12)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(
        ["CallDisconnected", "AddParticipantFailed", "PlayFailed", "SMSDeliveryReportReceived"]
    ),
    data=st.dictionaries(KEYS, DATA, max_size=8),
)
def test_random_data_reads_the_same_with_and_without_the_fast_path(kind: str, data: dict[str, Any]) -> None:
    raw = RawEvent(
        "eventgrid", "evt-1", ACS + kind, "/subscriptions/s/communicationServices/acs1", "", None, data
    )

    outcome = fast(raw)

    assert outcome == slow(raw)
    assert same_ids(raw, outcome) and same_ids(raw, slow(raw, False), mask=False)
    if "inf" not in repr(data):  # JSON has no infinity: such data never arrives as JSON text
        assert fast(as_sent(raw)) == outcome
        assert same_ids(as_sent(raw), outcome)
    assert isinstance(outcome, (Skip, tuple))


def test_ids_read_alone_take_the_message_id_of_the_data_not_the_event_id() -> None:
    doc = sample("eventgrid/sms-delivery-failed-4007-opt-out.json")
    first = doc[0] if isinstance(doc, list) else doc
    body = orjson.dumps([{**first, "id": "event-1", "data": {**first["data"], "messageId": "Outgoing_42"}}])
    raw = parse_body(body, None, 1 << 20).events[0]

    reading = read(raw, mask=False)

    assert isinstance(reading, Reading)
    assert reading.ids() == reading.incident().ids == {"messageId": "Outgoing_42"}


def test_an_incident_built_from_the_fast_read_is_masked() -> None:
    body = orjson.dumps(sample("eventgrid/sms-delivery-failed-4007-opt-out.json"))
    raw = parse_body(body, None, 1 << 20).events[0]
    number = raw.data["to"]

    reading = read(raw, mask=True)

    assert isinstance(reading, Reading) and reading.event is None
    assert number not in str(reading.incident())
    assert number[-4:] in reading.incident().details["To"]


@pytest.mark.parametrize("kind", ["PlayFailed", "SMSDeliveryReportReceived", "CallConnected", "NewFailed"])
@pytest.mark.parametrize("data", [[1], "x", None, 5, {}])
def test_data_of_any_shape_reads_the_same_as_json_text_and_as_values(kind: str, data: Any) -> None:
    raw = RawEvent("eventgrid", "evt-1", ACS + kind, "/communicationServices/acs1", "", None, data)

    assert fast(as_sent(raw)) == fast(raw) == slow(raw)


def test_events_spelled_in_turn_camel_and_pascal_case_each_read_as_the_model_reads_them() -> None:
    # The typed read tries first the spelling that read a model's last event: a sender that
    # changes spelling mid-batch, or two senders in turn, must not get another event's answer.
    pairs = []
    for raw in sample_events():
        if type(raw.payload) is msgspec.Raw and isinstance(raw.data, dict) and raw.type.startswith(ACS):
            pascal = as_sent(raw._replace(payload=respelled(raw.data, "pascal")))
            pairs.append((raw, slow(raw)))
            pairs.append((pascal, slow(pascal)))
    assert len(pairs) > 40
    for _ in range(2):  # the second time round, each model's first spelling is the other one
        for raw, expected in pairs:
            assert fast(raw) == expected, raw.type
            assert same_ids(raw, expected), raw.type
    typed = [raw for raw, _ in pairs if isinstance(read(raw), Reading)]
    models = {read(raw).model for raw in typed}  # type: ignore[union-attr]
    assert any(events._typed(m, r.payload) is not None for m in models for r in typed)
    assert events._FIRST, "a PascalCase event that read left its spelling first"
