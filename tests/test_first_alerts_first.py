"""First alerts go out ahead of digests, notices and reports: a flush that queues many digests
must not make the next new failure wait behind them at the webhook's pace.

Two mechanisms, one per kind of host: the local stores hand out first alerts first (a single
worker, as `serve` runs), and on any store a message that is not a first alert takes only a send
slot no first alert would then wait behind (concurrent workers, as the Functions host runs)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from azurite_server import (  # noqa: F401 - pytest fixtures
    STORE_KINDS,
    azure_store_fixture,
    azurite_fixture,
    make_store_fixture,
)
from test_delivery_faults import (  # noqa: F401 - pytest fixtures and the shared harness
    WINDOW_SECONDS,
    App,
    FakeClock,
    clock_fixture,
    make_app_fixture,
    sms_failures,
)

from tools.sinks import SlackSink
from triage.deliver import Deliverer
from triage.errors import SlotYielded
from triage.settings import Settings
from triage.store import OutboxMessage
from triage.store.memory import MemoryStore

BURSTS = 12  # each gets a digest at the next flush: 12 s of Slack's pace


def digest_flush_then_a_new_failure(app: App, clock: FakeClock) -> None:
    """BURSTS bursts alerted and repeated; their window ends and the flush queues a digest for
    each; then a failure never seen before arrives, its first alert queued behind the digests."""
    for n in range(BURSTS):
        app.post(sms_failures(3, code=4100 + n, start=10 * n))
    app.deliver()
    clock.advance(WINDOW_SECONDS + 1)
    app.flush()
    app.post(sms_failures(1, code=4007, start=999))


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_the_local_host_posts_a_new_first_alert_before_the_digests_queued_ahead_of_it(
    kind: str, make_store: Callable[[str], Any], make_app: Callable[..., App], clock: FakeClock
) -> None:
    with SlackSink(clock=clock.time) as slack:  # Slack's own pace: 429 past one message a second
        app = make_app(make_store(kind), slack_url=slack.url)
        digest_flush_then_a_new_failure(app, clock)
        before = len(slack.received)
        app.deliver()
        after_flush = slack.received[before:]
        assert len(after_flush) == BURSTS + 1
        assert b"4007" in after_flush[0].body and b"4007" not in b"".join(r.body for r in after_flush[1:])
        assert all(r.status == 200 for r in after_flush)  # the pace held: no 429


def test_a_digest_yields_booked_send_slots_and_a_first_alert_takes_the_next_one() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock.time)
    settings, problems = Settings.read({"ACS_TRIAGE_SLACK_URL": "https://hooks.slack.com/services/T0/B0/x"})
    assert settings is not None and problems == []
    deliverer = Deliverer(settings, store, sleep=clock.sleep, clock=clock.time)
    slack = settings.destinations["slack"]
    for _ in range(5):  # five posts booked by other workers: slots for the next 5 s
        store.reserve_send("slack", slack.kind.send_interval, clock.time())
    digest = OutboxMessage("d1", "slack", {"text": "digest"}, urgent=False)

    with pytest.raises(SlotYielded) as yielded:
        deliverer._wait_for_slot(slack, digest, first_try=True)
    assert yielded.value.delay >= 5  # it comes back once the booked slots have passed
    assert store.send_wait("slack", clock.time()) == 5  # and booked nothing meanwhile

    first_alert = OutboxMessage("a1", "slack", {"text": "alert"})
    deliverer._wait_for_slot(slack, first_alert, first_try=True)
    assert clock.sleeps == [5]  # the slot right after the booked ones, not behind any digest

    # A retry keeps its turn (so a failing digest still reaches the poison queue), and a digest
    # that has yielded often enough books like any message: a stream of first alerts cannot
    # starve it.
    deliverer._wait_for_slot(slack, digest, first_try=False)
    worn = OutboxMessage("d2", "slack", {"text": "digest"}, attempts=20, urgent=False)
    deliverer._wait_for_slot(slack, worn, first_try=True)
    assert len(clock.sleeps) == 3


def test_a_message_says_it_is_not_urgent_and_one_stored_before_the_field_reads_as_urgent() -> None:
    digest = OutboxMessage("d1", "slack", {"text": "digest"}, urgent=False)
    assert OutboxMessage.decode(digest.encode()).urgent is False
    alert = OutboxMessage("a1", "slack", {"text": "alert"})
    assert b"urgent" not in alert.encode()  # a first alert's message is as it always was
    assert OutboxMessage.decode(b'{"id": "x", "destination": "slack", "payload": {}}').urgent is True


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_a_flush_queues_its_digests_as_not_urgent_and_first_alerts_as_urgent(
    kind: str, make_store: Callable[[str], Any], make_app: Callable[..., App], clock: FakeClock
) -> None:
    with SlackSink(clock=clock.time, rate_limit=False) as slack:
        store = make_store(kind)
        app = make_app(store, slack_url=slack.url)
        digest_flush_then_a_new_failure(app, clock)
        queued = [OutboxMessage.decode(lease.body) for lease in store.poll("any", 32)]
        assert sorted(m.urgent for m in queued) == [False] * BURSTS + [True]
