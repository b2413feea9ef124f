"""PagerDuty (Events API v2), end to end: Event Grid batches go in through LocalHost's
/api/eventgrid route, the policy routes and enqueues, function_app's queue trigger posts through
the real Deliverer, and the PagerDuty-like sink (tools/sinks.py) checks every event against their
schema and answers 202 / 400 / 429 with their bodies.

A burst is one PagerDuty alert: the first failure triggers it, a digest adds to it (same
dedup_key), the resolved notice resolves it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from azurite_server import STORE_KINDS, poisoned
from factories import make_alert, make_huge_alert, make_incident
from msgspec.structs import replace
from test_delivery_faults import WINDOW_SECONDS, App, FakeClock, fixed_guidance, sms_failures, waited_in_order

from samples import sample_bytes
from tools.sinks import PagerDutySink, SlackSink, pagerduty_errors
from triage.destinations import pagerduty
from triage.errors import ConfigurationError
from triage.events import to_incident
from triage.ingest import parse_body
from triage.model import Alert
from triage.policy import Batch, Pending, Report, run
from triage.settings import Settings

PHONE = "+14255550123"  # the `to` number in samples/eventgrid/sms-delivery-failed-4007-opt-out.json


@pytest.fixture(name="pd")
def pagerduty_fixture(clock: FakeClock) -> Iterator[PagerDutySink]:
    with PagerDutySink(clock=clock.time) as sink:
        yield sink


def with_pagerduty(make_app: Callable[..., App], store: Any, pd: PagerDutySink, **more: str) -> App:
    return make_app(store, pagerduty_url=pd.url, pagerduty_routing_key=pd.routing_key, **more)


def sms_incident(app: App, n: int = 0) -> Any:
    """The Incident the pipeline builds for sms_failures(…)[n], with the app's own settings."""
    [raw] = parse_body(orjson.dumps(sms_failures(1, start=n)), "application/json", 1 << 20).events
    settings = app.service.settings
    return to_incident(raw, resource=settings.resource, mask=settings.mask_pii)


def send(app: App, alert: Alert) -> None:
    """Route and enqueue one alert as the policy does for the notices other stages make."""
    stages = app.service.triage.digest_stages[1:]  # Route, Enqueue
    run(stages, Batch(app.clock.now(), Report(), pending=[Pending(alert)]))


# -- trigger -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", STORE_KINDS)
def test_the_first_failure_triggers_one_pagerduty_alert_keyed_by_the_burst_fingerprint(
    kind: str, make_store: Callable[[str], Any], make_app: Callable[..., App], pd: PagerDutySink
) -> None:
    app = with_pagerduty(make_app, make_store(kind), pd)
    assert app.post(sms_failures(1))["alerted"] == 1
    assert app.deliver() == (1, 0)

    [received] = pd.received
    assert received.status == 202
    assert orjson.loads(received.answer)["status"] == "success"
    event = received.json
    incident = sms_incident(app)
    assert event["routing_key"] == pd.routing_key
    assert event["event_action"] == "trigger"
    assert event["dedup_key"] == incident.fingerprint
    assert event["payload"]["severity"] == "error"  # fixed_guidance: UnexpectedClientError
    assert event["payload"]["source"] == "contoso-acs-prod"
    assert pd.incidents == {incident.fingerprint: "triggered"}


def test_the_event_carries_guidance_masked_ids_and_the_docs_link(
    make_store: Callable[[str], Any], make_app: Callable[..., App], pd: PagerDutySink
) -> None:
    app = with_pagerduty(make_app, make_store("memory"), pd)
    app.service.triage = type(app.service.triage)(app.service.settings, app.store)  # the real catalog
    app.post(sample_bytes("eventgrid/sms-delivery-failed-4007-opt-out.json"))
    app.deliver()

    [event] = pd.accepted
    details = event["payload"]["custom_details"]
    assert "opted out" in details["what"].lower() or "opt" in details["what"].lower()
    assert details["what_to_do"]  # the catalog's advice, one line each
    assert details["ids"]["messageId"].startswith("Outgoing_")
    assert PHONE not in received_text(pd)  # phone numbers masked as in chat
    assert "0123" in orjson.dumps(details).decode()  # … keeping the last four digits
    [link] = event["links"]
    assert link["href"].startswith("https://learn.microsoft.com/")
    assert len(event["payload"]["summary"]) <= pagerduty.SUMMARY_MAX


def received_text(sink: PagerDutySink) -> str:
    return "".join(r.body.decode() for r in sink.received)


def test_the_routing_key_is_added_at_send_time_and_never_stored_in_the_outbox(
    make_store: Callable[[str], Any], make_app: Callable[..., App], pd: PagerDutySink
) -> None:
    store = make_store("sqlite")
    app = with_pagerduty(make_app, store, pd)
    app.post(sms_failures(1))
    [lease] = store.poll("acs-triage-outbox", 32)
    assert pd.routing_key not in lease.body.decode()
    lease.fail()
    app.deliver()
    assert pd.accepted[0]["routing_key"] == pd.routing_key


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_a_burst_digest_adds_to_the_open_alert_and_the_resolved_notice_resolves_it(
    kind: str,
    make_store: Callable[[str], Any],
    make_app: Callable[..., App],
    pd: PagerDutySink,
    clock: FakeClock,
) -> None:
    app = with_pagerduty(make_app, make_store(kind), pd)
    app.post(sms_failures(5))
    clock.advance(WINDOW_SECONDS + 1)
    app.flush()  # the digest of the 4 repeats
    app.deliver()
    incident = sms_incident(app)
    resolved = Alert(
        incident=incident,
        guidance=fixed_guidance(incident.code, incident.subcode, incident.context),
        count=5,
        first_seen=incident.time,
        last_seen=incident.time,
        status="resolved",
    )
    send(app, resolved)
    app.deliver()

    actions = [(e["event_action"], e["dedup_key"]) for e in pd.accepted]
    key = incident.fingerprint
    assert actions == [("trigger", key), ("trigger", key), ("resolve", key)]
    assert pd.incidents == {key: "resolved"}
    pd.assert_every_trigger_resolved()
    assert pd.accepted[-1] == {"routing_key": pd.routing_key, "event_action": "resolve", "dedup_key": key}


def test_what_a_silence_held_back_goes_to_chat_but_never_pages(
    make_store: Callable[[str], Any], make_app: Callable[..., App], pd: PagerDutySink, clock: FakeClock
) -> None:
    with SlackSink(clock=clock.time) as slack:
        app = with_pagerduty(make_app, make_store("memory"), pd, slack_url=slack.url)
        incident = sms_incident(app)
        guidance = fixed_guidance(incident.code, incident.subcode, incident.context)
        send(app, Alert(incident=incident, guidance=guidance, count=12, digest=True, status="silenced"))
        app.deliver()
        assert len(slack.accepted) == 1
    assert pd.received == []


# -- retries and refusals -------------------------------------------------------------------------
@pytest.mark.parametrize("status", [429, 500, 502])
def test_a_throttled_or_failing_events_api_is_retried_and_the_event_sent_once(
    status: int,
    make_store: Callable[[str], Any],
    make_app: Callable[..., App],
    pd: PagerDutySink,
    clock: FakeClock,
) -> None:
    pd.fail_first(2, status=status, body=b'{"status": "throttle event", "message": "retry later"}')
    app = with_pagerduty(make_app, make_store("memory"), pd)
    app.post(sms_failures(1))
    assert app.deliver() == (1, 0)
    assert [r.status for r in pd.received] == [status, status, 202]
    assert waited_in_order(clock, [0.5, 2.0])
    assert len(pd.incidents) == 1


def test_the_sinks_own_rate_limit_answers_429_as_pagerduty_and_the_deliverer_gets_through(
    make_store: Callable[[str], Any], make_app: Callable[..., App], pd: PagerDutySink
) -> None:
    app = with_pagerduty(make_app, make_store("memory"), pd)
    # Different codes: 6 fingerprints, 6 triggers at once, above the sink's burst of 4.
    for code in (4001, 4002, 4003, 4004, 4005, 4006):
        app.post(sms_failures(1, code=code))
    delivered, _ = app.deliver()
    assert delivered == 6
    throttled = [r for r in pd.received if r.status == 429]
    assert throttled, "the burst should have been throttled at least once"
    assert orjson.loads(throttled[0].answer)["status"] == "throttle event"
    assert len(pd.incidents) == 6


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_a_refused_routing_key_is_posted_once_and_dead_lettered_without_showing_the_key(
    kind: str,
    make_store: Callable[[str], Any],
    make_app: Callable[..., App],
    pd: PagerDutySink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = make_store(kind)
    wrong_key = "0123456789abcdef0123456789abcdef"
    app = make_app(store, pagerduty_url=pd.url, pagerduty_routing_key=wrong_key)
    app.post(sms_failures(1))
    with caplog.at_level(logging.DEBUG):
        assert app.deliver() == (1, 0)
    assert len(pd.received) == 1
    assert orjson.loads(pd.received[0].answer)["errors"] == ["Invalid routing key"]
    [dead] = poisoned(store)
    assert dead.destination == "pagerduty"
    assert "routing_key" not in dead.payload
    assert wrong_key not in caplog.text
    assert "Invalid routing key" in caplog.text  # PagerDuty's reason is kept


# -- rendering ---------------------------------------------------------------------------------------
def test_every_rendered_event_passes_the_events_api_schema_even_for_huge_alerts() -> None:
    key = "k" * 32
    destination = Settings.from_env({"ACS_TRIAGE_PAGERDUTY_ROUTING_KEY": key}).destinations["pagerduty"]
    for alert in (make_alert(), make_huge_alert(), replace(make_alert(), status="resolved")):
        event = pagerduty.finish(pagerduty.render(alert), destination)
        assert pagerduty_errors(event) == [], alert.title
        if event["event_action"] == "trigger":
            assert len(event["payload"]["summary"]) <= 1024


def test_severity_maps_error_to_error_and_warning_to_warning() -> None:
    from factories import make_guidance

    from triage.model import Category

    warning = make_alert(guidance=make_guidance(category=Category.EXPECTED))
    assert pagerduty.render(make_alert())["payload"]["severity"] == "error"
    assert pagerduty.render(warning)["payload"]["severity"] == "warning"


def test_a_fingerprint_past_255_characters_becomes_a_stable_hashed_dedup_key() -> None:
    long = make_alert(make_incident(resource="r" * 300))
    key = pagerduty.dedup_key(long)
    assert key.startswith("sha256:") and len(key) <= 255
    assert key == pagerduty.dedup_key(make_alert(make_incident(resource="r" * 300)))


# -- settings ------------------------------------------------------------------------------------------
def test_the_routing_key_alone_configures_pagerduty_at_the_events_api() -> None:
    settings = Settings.from_env({"ACS_TRIAGE_PAGERDUTY_ROUTING_KEY": "k" * 32})
    destination = settings.destinations["pagerduty"]
    assert destination.url.get_secret_value() == "https://events.pagerduty.com/v2/enqueue"
    assert "k" * 32 not in repr(destination)


def test_a_pagerduty_url_without_a_routing_key_is_an_error_naming_the_setting() -> None:
    with pytest.raises(ConfigurationError, match="ACS_TRIAGE_PAGERDUTY_ROUTING_KEY is not set"):
        Settings.from_env({"ACS_TRIAGE_PAGERDUTY_URL": "http://127.0.0.1:9/v2/enqueue"})


def test_a_routing_key_too_short_to_be_one_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match="ACS_TRIAGE_PAGERDUTY_ROUTING_KEY is too short"):
        Settings.from_env({"ACS_TRIAGE_PAGERDUTY_ROUTING_KEY": "abc"})


def test_the_pagerduty_sink_refuses_events_outside_their_schema_with_their_body(pd: PagerDutySink) -> None:
    import requests

    bad = {"routing_key": pd.routing_key, "event_action": "trigger", "payload": {"summary": "x" * 1025}}
    answer = requests.post(pd.url, data=orjson.dumps(bad), timeout=5)
    assert answer.status_code == 400
    body = answer.json()
    assert body["status"] == "invalid event"
    assert body["message"] == "Event object is invalid"
    assert "'payload.summary' is longer than 1024 characters" in body["errors"]
    assert "'payload.source' is missing or blank" in body["errors"]
    resolve = {"routing_key": pd.routing_key, "event_action": "resolve"}
    assert "'dedup_key' is required for acknowledge and resolve events" in pagerduty_errors(resolve)
