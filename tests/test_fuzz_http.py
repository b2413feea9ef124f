"""Property tests of the HTTP handlers: whatever arrives, the answer is a 2xx or a 4xx with a
reason (never a 5xx, never an exception), and bad items never cost the good ones of the batch."""

from __future__ import annotations

import json
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import function_app
from samples import SAMPLES
from tools.localhost import LocalHost
from triage.service import Answer, Service
from triage.settings import Settings
from triage.store.memory import MemoryStore

ALLOWED = {200, 400, 401, 405, 413, 415}
ROUTES = ("eventgrid", "callbacks")
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ENV = {
    "ACS_TRIAGE_TEAMS_URL": "https://teams.example.invalid/workflows/x?sig=y",
    "ACS_TRIAGE_SLACK_URL": "https://slack.example.invalid/services/T/B/z",
    "ACS_TRIAGE_MAX_BODY_BYTES": "65536",
}
ACS = "Microsoft.Communication."
ACS_TYPES = [
    ACS + kind
    for kind in (
        "PlayFailed", "RecognizeFailed", "CallDisconnected", "AddParticipantFailed",
        "RemoveParticipantFailed", "CancelAddParticipantFailed", "MediaStreamingFailed",
        "TranscriptionFailed", "StartRecordingFailed", "SMSDeliveryReportReceived",
        "SomethingNewFailed", "CallConnected",
    )
]  # fmt: skip
CONTENT_TYPES = [
    None, "application/json", "application/cloudevents+json; charset=utf-8",
    "application/cloudevents-batch+json", "text/plain", "multipart/form-data; boundary=x",
    "application/x-www-form-urlencoded", "text/xml", "", ";;;", "application/json; charset=latin-1",
]  # fmt: skip


def new_service() -> Service:
    return Service(Settings.from_env(ENV), MemoryStore())


SERVICE = new_service()


def post(
    body: bytes, route: str = "eventgrid", content_type: str | None = None, service: Service = SERVICE
) -> Answer:
    headers = {} if content_type is None else {"Content-Type": content_type}
    return service.handle_http(route, "POST", headers, {}, body)


def check(answer: Answer) -> dict[str, Any]:
    """The properties every answer to a POST has; returns its JSON body."""
    assert answer.status in ALLOWED, (answer.status, answer.body[:300])
    doc = json.loads(answer.body)
    assert isinstance(doc, dict)
    if answer.status >= 400:
        assert isinstance(doc.get("error"), str) and doc["error"], doc
    return doc


# -- strategies ------------------------------------------------------------------------------
# Finite floats only: json.dumps writes inf as "Infinity", which is not JSON (the bytes test covers that).
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
scalars |= st.text(max_size=30)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=16,
)
# What a careless or hostile sender puts where a number belongs.
int_like = st.integers() | st.text(max_size=8) | st.sampled_from(["400", " 4", "4e2", "0x1f"]) | json_values
identifier = st.fixed_dictionaries(
    {},
    optional={
        "rawId": st.text(max_size=40) | json_values,
        "kind": st.sampled_from(["phoneNumber", "communicationUser", "microsoftTeamsUser", ""]) | json_values,
        "phoneNumber": json_values | st.fixed_dictionaries({"value": st.text(max_size=20)}),
    },
)
event_data = json_values | st.fixed_dictionaries(
    {},
    optional={
        "resultInformation": json_values
        | st.fixed_dictionaries(
            {},
            optional={
                "code": int_like,
                "subCode": int_like,
                "message": st.text() | json_values,
                "sipDetails": json_values | st.fixed_dictionaries({"code": int_like}),
            },
        ),
        "participant": identifier | json_values,
        "correlationId": st.text(max_size=40) | json_values,
        "callConnectionId": st.text(max_size=40) | json_values,
        "operationContext": st.text() | json_values,
        "failedPlaySourceIndex": int_like,
        "mediaStreamingUpdate": json_values,
        "to": st.text(max_size=20) | json_values,
        "from": st.text(max_size=20) | json_values,
        "deliveryStatus": st.sampled_from(["Failed", "Delivered", "", "failed"]) | json_values,
        "deliveryStatusDetails": st.text() | json_values,
        "deliveryAttempts": json_values
        | st.lists(st.dictionaries(st.text(max_size=20), int_like, max_size=3)),
        "validationCode": st.text(max_size=40) | json_values,
    },
)
event_like = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(max_size=40) | json_values,
        "specversion": st.sampled_from(["1.0", "0.3", ""]) | json_values,
        "type": st.sampled_from(ACS_TYPES) | st.text(max_size=40) | json_values,
        "eventType": st.sampled_from(ACS_TYPES) | st.text(max_size=40) | json_values,
        "source": st.text(max_size=60) | json_values,
        "topic": st.text(max_size=60) | json_values,
        "subject": st.text(max_size=30) | json_values,
        "time": st.text(max_size=40) | json_values,
        "eventTime": st.text(max_size=40) | json_values,
        "data": event_data,
    },
)
bodies = st.one_of(
    json_values,
    event_like,
    st.lists(event_like | json_values, max_size=6),
    st.lists(st.lists(event_like, max_size=2), max_size=3),  # nested lists of events
)


@FUZZ
@given(
    body=st.binary(max_size=2048), route=st.sampled_from(ROUTES), content_type=st.sampled_from(CONTENT_TYPES)
)
def test_arbitrary_bytes_get_a_4xx_with_a_reason_or_a_200(
    body: bytes, route: str, content_type: str | None
) -> None:
    check(post(body, route, content_type))


@FUZZ
@given(doc=bodies, route=st.sampled_from(ROUTES))
def test_json_of_any_shape_gets_a_4xx_with_a_reason_or_a_200(doc: Any, route: str) -> None:
    check(post(json.dumps(doc).encode(), route, "application/json"))


@FUZZ
@given(doc=st.lists(event_like, min_size=1, max_size=4), unicode=st.text(min_size=1, max_size=50))
def test_unicode_anywhere_in_an_event_is_handled(doc: list[dict[str, Any]], unicode: str) -> None:
    for item in doc:
        item.setdefault("data", {})
        if isinstance(item["data"], dict):
            item["data"]["operationContext"] = unicode
    check(post(json.dumps(doc, ensure_ascii=False).encode(), "callbacks"))


@settings(max_examples=50, deadline=None)
@given(
    method=st.text(min_size=1, max_size=10) | st.sampled_from(["GET", "PUT", "DELETE", "PATCH", "HEAD"]),
    route=st.sampled_from(ROUTES),
)
def test_other_methods_are_405_with_the_allowed_ones(method: str, route: str) -> None:
    if method in ("POST", "OPTIONS"):
        return
    answer = SERVICE.handle_http(route, method, {}, {}, b"{}")
    assert answer.status == 405 and "POST" in answer.headers["Allow"]


@settings(max_examples=50, deadline=None)
@given(headers=st.dictionaries(st.text(max_size=30), st.text(max_size=60), max_size=5))
def test_the_options_handshake_answers_any_headers_with_200_or_400(headers: dict[str, str]) -> None:
    answer = SERVICE.handle_http("eventgrid", "OPTIONS", headers, {}, b"")
    assert answer.status in (200, 400)


# -- size and depth --------------------------------------------------------------------------
def test_a_huge_string_within_the_limit_is_processed_and_one_over_it_is_413() -> None:
    event = sample_events()[0]
    event["data"]["resultInformation"]["message"] = "é" * 30_000
    assert check(post(json.dumps([event], ensure_ascii=False).encode(), "callbacks"))["received"] == 1
    answer = post(b"[" + b" " * 70_000 + b"]")
    assert answer.status == 413 and "limit" in check(answer)["error"]


@pytest.mark.parametrize("depth", [10_000, 2_000, 1_025])
def test_an_item_nested_deeper_than_any_parser_allows_is_refused_alone_with_a_reason(depth: int) -> None:
    for body in ("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth):
        doc = check(post(body.encode()))
        assert doc["received"] == doc["invalid"] == 1, depth
        reason = doc["rejected"][0]["reason"]
        # The array's one item, 1,024 deep, is within orjson's reach: it is read, and is no event.
        assert "nested deeper" in reason or (depth == 1_025 and "not an event object" in reason), reason


def nested(depth: int) -> dict[str, Any]:
    inner: dict[str, Any] = {}
    for _ in range(depth):
        inner = {"Level": inner}
    return inner


@pytest.mark.parametrize("depth", [50, 300])
def test_deep_nesting_inside_event_data_is_answered(depth: int) -> None:
    event = sample_events()[0]
    event["data"]["Extra"] = nested(depth)
    check(post(json.dumps([event]).encode(), "callbacks"))


def test_data_nested_600_deep_without_a_correlation_id_is_not_a_5xx() -> None:
    event = sample_events()[0]
    del event["data"]["correlationId"]  # takes events._fold's slow path
    event["data"]["Extra"] = nested(600)
    check(post(json.dumps([event]).encode(), "callbacks"))


# -- mixed batches ---------------------------------------------------------------------------
def sample_events() -> list[dict[str, Any]]:
    """Every event of samples/ except the validation handshake, as fresh dicts."""
    out: list[dict[str, Any]] = []
    for path in sorted(Path(SAMPLES).rglob("*.json")):
        if path.name == "subscription-validation.json":
            continue
        doc = json.loads(path.read_text(encoding="utf-8"))
        out += doc if isinstance(doc, list) else [doc]
    return out


VALID = sample_events()
ENVELOPE_KEYS = {"id", "type", "eventtype", "specversion", "source", "topic", "data"}
letters = st.text(alphabet=string.ascii_letters, min_size=1, max_size=8)
not_an_id = st.none() | st.integers() | st.sampled_from(["", "   "]) | st.lists(st.text(max_size=3))
non_object = st.one_of(scalars, st.lists(json_values, max_size=3))
# Items that are unreadable by construction: each must end up rejected, invalid or skipped.
junk = st.one_of(
    non_object,
    st.dictionaries(
        st.text(max_size=12).filter(lambda k: k.lower() not in ENVELOPE_KEYS), json_values, max_size=4
    ),
    st.builds(
        lambda i, t: {"specversion": "1.0", "id": i, "type": t, "source": "calling/x", "data": {}},
        not_an_id,
        st.sampled_from(ACS_TYPES),
    ),
    st.builds(
        lambda d, t: {"specversion": "1.0", "id": "<ID>", "type": t, "source": "calling/x", "data": d},
        non_object,
        st.sampled_from(ACS_TYPES),
    ),
    st.builds(
        lambda code: {
            "specversion": "1.0",
            "id": "<ID>",
            "type": ACS + "PlayFailed",
            "source": "calling/x",
            "data": {"correlationId": "c", "resultInformation": {"code": code}},
        },
        letters | st.lists(st.integers(), min_size=1, max_size=2),
    ),
    st.builds(
        lambda t: {"eventType": t, "id": "<ID>", "topic": "/x", "data": {}},
        st.text(max_size=20).filter(lambda t: not t.startswith("Microsoft.")),
    ),
)


def counted(doc: dict[str, Any]) -> int:
    return sum(doc[k] for k in ("alerted", "grouped", "duplicates", "successes", "skipped", "invalid"))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    picks=st.lists(st.sampled_from(range(len(VALID))), min_size=1, max_size=8),
    junk_items=st.lists(junk, min_size=1, max_size=8),
    order=st.randoms(use_true_random=False),
)
def test_valid_events_of_a_mixed_batch_are_all_counted_whatever_junk_comes_with_them(
    picks: list[int], junk_items: list[Any], order: Any
) -> None:
    valid = []
    for n, pick in enumerate(picks):
        event = json.loads(json.dumps(VALID[pick]))
        event["id"] = f"valid-{n}"
        valid.append(event)
    for n, item in enumerate(junk_items):
        if isinstance(item, dict) and item.get("id") == "<ID>":
            item["id"] = f"junk-{n}"
    batch = valid + junk_items
    order.shuffle(batch)

    alone = check(post(json.dumps(valid).encode(), service=new_service()))
    mixed = check(post(json.dumps(batch).encode(), service=new_service()))
    for key in ("alerted", "grouped", "successes", "duplicates"):
        assert mixed[key] == alone[key], (key, alone, mixed)
    assert mixed["received"] == len(batch)
    assert counted(mixed) == mixed["received"]  # every item lands in exactly one count
    # and every unreadable one has a reason (at most 20 listed, the rest counted)
    assert len(mixed["rejected"]) + mixed["rejected_unlisted"] == mixed["invalid"]


# -- through the host ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def host() -> Iterator[LocalHost]:
    function_app.configure(new_service())
    yield LocalHost(function_app.app)
    function_app.configure(Service(Settings.from_env({}), MemoryStore()))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.binary(max_size=512) | bodies.map(lambda d: json.dumps(d).encode()),
    path=st.sampled_from(["/api/eventgrid", "/api/callbacks"]),
)
def test_through_the_functions_host_no_input_makes_a_function_raise(
    host: LocalHost, body: bytes, path: str
) -> None:
    status, _, answer = host.http("POST", path, {"Content-Type": "application/json"}, body)
    assert status in ALLOWED, answer
    if status >= 400:
        assert json.loads(answer)["error"]
