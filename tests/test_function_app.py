"""The Function App as the host indexes and calls it: through app.get_functions()."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func
import pytest
from azure.functions.timer import TimerRequest

import function_app
from samples import sample_bytes
from triage.service import Service
from triage.settings import Settings
from triage.store.memory import MemoryStore

# get_functions() may be called once per app object: index once for the module.
function_app.app.functions_bindings = {}
FUNCTIONS = {f.get_function_name(): f for f in function_app.app.get_functions()}


@pytest.fixture
def store() -> Iterator[MemoryStore]:
    store = MemoryStore()
    settings = Settings.from_env({"ACS_TRIAGE_TEAMS_URL": "https://teams.example.invalid/wf?sig=x"})
    function_app.configure(Service(settings, store))
    yield store
    function_app.configure(Service(Settings.from_env({}), MemoryStore()))


def call(
    name: str, method: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> func.HttpResponse:
    request = func.HttpRequest(
        method=method, url=f"http://localhost/api/{name}", headers=headers or {}, params={}, body=body
    )
    response: func.HttpResponse = FUNCTIONS[name].get_user_function()(request)
    return response


def as_json(response: func.HttpResponse) -> Any:
    return json.loads(response.get_body())


def test_the_host_indexes_four_http_routes_a_queue_trigger_and_two_timers() -> None:
    assert set(FUNCTIONS) == {"eventgrid", "callbacks", "health", "silence", "deliver", "flush", "report"}
    eventgrid = json.loads(FUNCTIONS["eventgrid"].get_function_json())["bindings"][0]
    assert eventgrid["route"] == "eventgrid"
    assert {m.upper() for m in eventgrid["methods"]} == {"POST", "OPTIONS"}
    assert eventgrid["authLevel"].upper() == "FUNCTION"
    callbacks = json.loads(FUNCTIONS["callbacks"].get_function_json())["bindings"][0]
    assert callbacks["route"] == "callbacks" and [m.upper() for m in callbacks["methods"]] == ["POST"]
    deliver = json.loads(FUNCTIONS["deliver"].get_function_json())["bindings"][0]
    # The queue's name comes from the app setting the store reads too: they cannot disagree.
    assert (deliver["type"], deliver["queueName"]) == ("queueTrigger", "%ACS_TRIAGE_OUTBOX_QUEUE%")
    assert deliver["connection"] == "AzureWebJobsStorage"
    health = json.loads(FUNCTIONS["health"].get_function_json())["bindings"][0]
    assert (health["route"], health["methods"]) == ("health", ["GET"])
    assert health["authLevel"].upper() == "ANONYMOUS"
    # Opened from a chat alert, without a function key: the signed token in the path is the credential.
    silence = json.loads(FUNCTIONS["silence"].get_function_json())["bindings"][0]
    assert (silence["route"], sorted(m.upper() for m in silence["methods"])) == (
        "silence/{token}",
        ["GET", "POST"],
    )
    assert silence["authLevel"].upper() == "ANONYMOUS"
    flush = json.loads(FUNCTIONS["flush"].get_function_json())["bindings"][0]
    assert flush["schedule"] == "0 * * * * *"
    # A constant, never %ACS_TRIAGE_REPORT_SCHEDULE%: a missing setting would fail the indexing.
    report = json.loads(FUNCTIONS["report"].get_function_json())["bindings"][0]
    assert report["schedule"] == "0 */5 * * * *"


def test_event_grid_subscription_validation_is_answered_with_200_and_the_code(store: MemoryStore) -> None:
    response = call(
        "eventgrid",
        "POST",
        sample_bytes("eventgrid/subscription-validation.json"),
        {"aeg-event-type": "SubscriptionValidation"},
    )
    assert response.status_code == 200
    assert as_json(response) == {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}


def test_cloudevents_options_handshake_is_answered_with_allowed_origin(store: MemoryStore) -> None:
    response = call("eventgrid", "OPTIONS", headers={"WebHook-Request-Origin": "eventgrid.azure.net"})
    assert response.status_code == 200
    assert response.headers["WebHook-Allowed-Origin"] == "eventgrid.azure.net"
    assert response.headers["Allow"] == "POST, OPTIONS"


def test_a_callback_is_stored_in_the_outbox_and_answered_fast_with_counts(store: MemoryStore) -> None:
    response = call("callbacks", "POST", sample_bytes("callbacks/play-failed-400-8535.json"))
    assert response.status_code == 200
    assert as_json(response)["alerted"] == 1
    assert [m.destination for m in store.outbox] == ["teams"]


def test_a_mixed_batch_answers_200_processes_the_valid_events_and_lists_the_rejects(
    store: MemoryStore,
) -> None:
    good = json.loads(sample_bytes("eventgrid/sms-delivery-failed-4007-opt-out.json"))
    body = json.dumps(
        [
            *good,
            {
                "id": "x",
                "eventType": "Microsoft.Communication.SMSDeliveryReportReceived",
                "data": "not an object",
            },
            17,
        ]
    ).encode()
    answer = as_json(call("eventgrid", "POST", body))
    assert answer["alerted"] == 1
    assert answer["invalid"] == 2
    assert {r.get("reason") for r in answer["rejected"]} == {
        "item is a JSON int, not an event object",
        "event data is not a JSON object",
    }


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"{broken", {}, 400),
        (b'"text"', {}, 400),
        (b"", {}, 400),
        (b"[]" + b" " * (1 << 20), {}, 413),
        (b"a=1", {"Content-Type": "application/x-www-form-urlencoded"}, 415),
    ],
)
def test_bad_bodies_get_a_4xx_with_a_reason_never_a_500(
    store: MemoryStore, body: bytes, headers: dict[str, str], status: int
) -> None:
    response = call("eventgrid", "POST", body, headers)
    assert response.status_code == status
    assert as_json(response)["error"]


def test_the_timer_posts_one_digest_per_burst_when_its_window_ends() -> None:
    now = [datetime(2026, 11, 20, 9, 0, tzinfo=UTC)]
    store = MemoryStore()
    settings = Settings.from_env({"ACS_TRIAGE_TEAMS_URL": "https://teams.example.invalid/wf?sig=x"})
    function_app.configure(Service(settings, store, clock=lambda: now[0]))
    event = json.loads(sample_bytes("callbacks/recognize-failed-400-8510.json"))[0]
    batch = [dict(event, id=f"r-{i}") for i in range(5)]
    assert as_json(call("callbacks", "POST", json.dumps(batch).encode()))["grouped"] == 4
    store.take_outbox()

    timer = FUNCTIONS["flush"].get_user_function()
    timer(TimerRequest(past_due=False))
    assert not store.outbox  # the 5-minute window is still open
    now[0] += timedelta(minutes=5)
    timer(TimerRequest(past_due=False))
    assert len(store.outbox) == 1
    assert "4" in json.dumps(store.outbox[0].payload)


def test_a_validation_event_inside_a_batch_is_answered_without_dropping_the_other_events(
    store: MemoryStore,
) -> None:
    validation = json.loads(sample_bytes("eventgrid/subscription-validation.json"))
    failure = json.loads(sample_bytes("eventgrid/sms-delivery-failed-4007-opt-out.json"))
    answer = as_json(call("eventgrid", "POST", json.dumps(validation + failure).encode()))
    assert answer["validationResponse"] == "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"
    assert answer["alerted"] == 1 and len(store.outbox) == 1


def test_a_wrong_method_gets_405_with_a_json_reason(store: MemoryStore) -> None:
    response = function_app.service().handle_http("eventgrid", "GET", {}, {}, b"")
    assert response.status == 405 and response.headers["Allow"] == "POST, OPTIONS"
    assert "not allowed" in json.loads(response.body)["error"]
