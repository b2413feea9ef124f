"""Retry-After, for every destination kind alike: no post to a destination before its Retry-After
has passed, from any message or instance, after the last attempt too; a hold longer than
ACS_TRIAGE_MAX_RETRY_AFTER_SECONDS is never slept in a worker: the message goes back to the queue
with that delay. Each kind is posted to through the real queue function (LocalHost) at its local
stand-in (tools/sinks.py), on every store.

Memory and SQLite run on the test's FakeClock (their queue visibility included); Azurite's queue
keeps real time, so there the hold is short and the test waits it out for real."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from azurite_server import STORE_KINDS
from factories import make_alert
from test_delivery_faults import App, FakeClock, sms_failures

from tools.sinks import PagerDutySink, SlackSink, TeamsSink, WebhookSink
from triage.deliver import Deliverer
from triage.errors import DeliveryDeferred, DeliveryError
from triage.policy import outbox_message
from triage.settings import Settings
from triage.store import OutboxMessage
from triage.store.memory import MemoryStore
from triage.store.sqlite import SqliteStore

KINDS = ["teams", "slack", "pagerduty", "webhook"]
HOLD = 3  # seconds of Retry-After a destination answers with
LONGEST_WAIT = 1.0  # ACS_TRIAGE_MAX_RETRY_AFTER_SECONDS in these tests: HOLD is longer


@pytest.fixture(name="sink")
def sink_fixture(request: pytest.FixtureRequest, clock: FakeClock) -> Iterator[Any]:
    """The destination kind's stand-in, on the test's clock, without a rate limit of its own."""
    made = {"teams": TeamsSink, "slack": SlackSink, "pagerduty": PagerDutySink, "webhook": WebhookSink}
    with made[request.param](clock=clock.time, rate_limit=False) as sink:
        yield sink


@pytest.fixture(name="store_of")
def store_of_fixture(request: pytest.FixtureRequest, tmp_path: Any, clock: FakeClock) -> Callable[[str], Any]:
    """store_of(kind) → another instance over one shared state (memory: the one instance)."""
    memory = MemoryStore(clock=clock.time)
    opened: list[SqliteStore] = []

    def make(kind: str) -> Any:
        if kind == "memory":
            return memory
        if kind == "sqlite":
            opened.append(SqliteStore(tmp_path / "state.sqlite3", clock=clock.time))
            return opened[-1]
        return request.getfixturevalue("azure_store")()

    request.addfinalizer(lambda: [store.close() for store in opened])
    return make


def settings_for(destination: str, sink: Any, **more: str) -> dict[str, str]:
    """The settings that point `destination` at `sink` (PagerDuty: with the sink's routing key)."""
    settings = {f"{destination}_url": sink.url, **more}
    if destination == "pagerduty":
        settings["pagerduty_routing_key"] = sink.routing_key
    return settings


def wait_out(kind: str, clock: FakeClock, seconds: float) -> None:
    """Let `seconds` pass for the deliverer (the FakeClock) and for the store's queue."""
    clock.advance(seconds)
    if kind == "azure":
        time.sleep(seconds + 0.5)  # Azurite's visibility timeout runs on real time


@pytest.mark.parametrize("sink", KINDS, indirect=True)
@pytest.mark.parametrize("kind", STORE_KINDS)
def test_a_hold_longer_than_a_worker_waits_sends_every_message_back_to_the_queue_until_it_passes(
    kind: str,
    sink: Any,
    store_of: Callable[[str], Any],
    make_app: Callable[..., App],
    clock: FakeClock,
) -> None:
    destination = sink.kind
    sink.fail_first(1, status=429, body=b"slow down", headers={"Retry-After": str(HOLD)})
    store = store_of(kind)
    app = make_app(store, **settings_for(destination, sink, max_retry_after_seconds=str(LONGEST_WAIT)))
    # Two alerts (two codes, two bursts): the second must not go out during the first's hold.
    app.post(sms_failures(1, code=4007) + sms_failures(1, code=4008))
    started = clock.time()

    assert app.deliver() == (2, 0)  # both handled: the 429'd one and the held one, each put back
    assert [r.status for r in sink.received] == [429]
    assert clock.sleeps == []  # nothing slept in the worker: the hold is longer than it may wait
    assert app.deliver() == (0, 0)  # still held: invisible in the queue, nothing posted

    wait_out(kind, clock, HOLD)
    assert app.deliver() == (2, 0)
    assert [r.status for r in sink.received][1:] == [sink.received[-1].status] * 2
    assert all(200 <= r.status < 300 for r in sink.received[1:])
    assert all(r.at - started >= HOLD for r in sink.received[1:])
    # The alert refused with the 429 is the one posted once the hold passed: nothing lost.
    assert sorted(r.body for r in sink.received[1:]).count(sink.received[0].body) == 1
    assert app.deliver() == (0, 0)  # and each posted once


@pytest.mark.parametrize("sink", KINDS, indirect=True)
@pytest.mark.parametrize("kind", STORE_KINDS)
def test_a_hold_after_the_last_attempt_holds_the_next_message_on_another_instance(
    kind: str, sink: Any, store_of: Callable[[str], Any], clock: FakeClock
) -> None:
    destination = sink.kind
    # Every in-process attempt is refused with a hold a worker can wait out (within the default
    # 30 s): the worker waits each one, gives up after its last, and the hold it was given then
    # still binds the next post, made by another instance with another message.
    sink.fail_first(3, status=429, body=b"slow down", headers={"Retry-After": str(HOLD)})
    env = {f"ACS_TRIAGE_{key.upper()}": value for key, value in settings_for(destination, sink).items()}
    config = Settings.from_env(env)
    first, second = (Deliverer(config, store_of(kind), sleep=clock.sleep, clock=clock.time) for _ in range(2))
    payload = rendered_payload(destination, config)

    with pytest.raises(DeliveryError, match="rate limited"):
        first.deliver(OutboxMessage("m1", destination, payload))
    assert [r.status for r in sink.received] == [429] * 3
    assert all(wait <= 30.0 for wait in clock.sleeps)
    last_429 = sink.received[-1].at

    second.deliver(OutboxMessage("m2", destination, payload))
    assert 200 <= sink.received[-1].status < 300
    assert sink.received[-1].at - last_429 >= HOLD


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_a_hold_too_long_to_wait_is_raised_as_a_deferral_by_every_instance_and_nothing_is_posted(
    kind: str, store_of: Callable[[str], Any], clock: FakeClock
) -> None:
    with SlackSink(clock=clock.time) as sink:
        sink.fail_first(1, status=429, body=b"rate_limited", headers={"Retry-After": "120"})
        config = Settings.from_env({"ACS_TRIAGE_SLACK_URL": sink.url})  # waits up to 30 s
        first, second = (
            Deliverer(config, store_of(kind), sleep=clock.sleep, clock=clock.time) for _ in range(2)
        )

        with pytest.raises(DeliveryDeferred) as deferred:
            first.deliver(OutboxMessage("m1", "slack", {"text": "alert 1"}))
        assert 119 <= deferred.value.delay <= 120
        with pytest.raises(DeliveryDeferred):
            second.deliver(OutboxMessage("m2", "slack", {"text": "alert 2"}))
        assert [r.status for r in sink.received] == [429]
        assert all(wait <= 30.0 for wait in clock.sleeps)  # never a sleep near functionTimeout

        clock.advance(120)
        second.deliver(OutboxMessage("m2", "slack", {"text": "alert 2"}))
        assert sink.received[-1].status == 200


def rendered_payload(destination: str, config: Settings) -> dict[str, Any]:
    """A real alert rendered for `destination` (the stand-ins check what they receive)."""
    alert = make_alert()
    target = config.destinations[destination]
    message = outbox_message("basis", target, target.kind.render(alert), alert.fingerprint)
    return message.payload_dict()
