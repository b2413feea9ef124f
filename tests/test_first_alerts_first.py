"""First alerts go out ahead of digests, notices and reports: a flush that queues many digests
must not make the next new failure wait behind them at the webhook's pace.

Two mechanisms, one per kind of host: the local stores hand out first alerts first, and on any
store a message that is not a first alert takes only a send slot that is free now (concurrent
workers, as `serve` and the Functions host run, with an Azure queue that is first in, first out),
so a first alert never waits behind more than one of them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from azurite_server import STORE_KINDS
from test_delivery_faults import WINDOW_SECONDS, App, FakeClock, sms_failures

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


SLACK_INTERVAL = 1.0  # Slack's pace: one message a second


class Worker:
    """A Deliverer's choice of send slot for one message at a time, on a fake clock, with what
    happens while it sleeps (another worker's turn) given by the test."""

    def __init__(self, store: Any, clock: FakeClock) -> None:
        settings, problems = Settings.read(
            {"ACS_TRIAGE_SLACK_URL": "https://hooks.slack.com/services/T0/B0/x"}
        )
        assert settings is not None and problems == []
        self.clock = clock
        self.deliverer = Deliverer(settings, store, sleep=self._sleep, clock=clock.time)
        self.slack = settings.destinations["slack"]
        assert self.slack.kind.send_interval == SLACK_INTERVAL
        self.meanwhile: list[Callable[[], None]] = []  # run (once each) when this worker sleeps

    def _sleep(self, seconds: float) -> None:
        until = self.clock.time() + seconds
        while self.meanwhile:
            self.meanwhile.pop(0)()
        self.clock.sleep(max(0.0, until - self.clock.time()))

    def send_at(self, message: OutboxMessage) -> float:
        """Wait for `message`'s send slot; the clock's time when it may post."""
        self.deliverer._wait_for_slot(self.slack, message, first_try=True)
        return self.clock.time()


class RivalBookings(MemoryStore):
    """A store on which another worker books the next send slot just before each pacing call,
    and which keeps the wait of every slot booked through it for the worker under test."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock.time)
        self.booked: list[float] = []

    def _rival(self, destination: str, now: float) -> None:
        super().reserve_send_within(destination, SLACK_INTERVAL, now, float("inf"))

    def send_wait(self, destination: str, now: float) -> float:
        self._rival(destination, now)
        return super().send_wait(destination, now)

    def reserve_send(self, destination: str, interval: float, now: float) -> float:
        self._rival(destination, now)
        wait = super().reserve_send(destination, interval, now)
        self.booked.append(wait)
        return wait

    def reserve_send_within(
        self, destination: str, interval: float, now: float, most: float
    ) -> tuple[bool, float]:
        self._rival(destination, now)
        booked, wait = super().reserve_send_within(destination, interval, now, most)
        if booked:
            self.booked.append(wait)
        return booked, wait


def test_a_digest_books_only_a_slot_free_when_it_books_it_whatever_other_workers_book_meanwhile() -> None:
    clock = FakeClock()
    store = RivalBookings(clock)
    worker = Worker(store, clock)
    digest = OutboxMessage("d1", "slack", {"text": "digest"}, urgent=False)
    with pytest.raises(SlotYielded):  # every slot it looked at was taken before it could book
        worker.send_at(digest)
    assert store.booked == []  # so it booked none: never one a first alert would wait behind


def test_a_first_alert_taken_while_a_digest_waits_for_the_next_slot_gets_that_slot() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock.time)
    start = clock.time()
    store.reserve_send("slack", SLACK_INTERVAL, start)  # a post went out just now
    digest_worker, alert_worker = Worker(store, clock), Worker(store, clock)
    alert_sent: list[float] = []
    first_alert = OutboxMessage("a1", "slack", {"text": "alert"})
    # While the digest's worker waits for the next slot, another worker takes a first alert.
    digest_worker.meanwhile.append(lambda: alert_sent.append(alert_worker.send_at(first_alert) - start))
    digest = OutboxMessage("d1", "slack", {"text": "digest"}, urgent=False)
    digest_sent = digest_worker.send_at(digest) - start
    assert alert_sent == [SLACK_INTERVAL]  # the next slot: not behind the digest
    assert digest_sent == 2 * SLACK_INTERVAL  # the one after it


def test_while_one_worker_waits_for_the_next_slot_for_a_digest_every_other_digest_yields() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock.time)
    store.reserve_send("slack", SLACK_INTERVAL, clock.time())
    worker = Worker(store, clock)  # the workers of one process share its Deliverer
    other = OutboxMessage("d2", "slack", {"text": "digest"}, urgent=False)
    yielded: list[float] = []

    def second_digest() -> None:
        with pytest.raises(SlotYielded) as err:
            worker.send_at(other)
        yielded.append(err.value.delay)

    worker.meanwhile.append(second_digest)
    worker.send_at(OutboxMessage("d1", "slack", {"text": "digest"}, urgent=False))
    assert len(yielded) == 1 and yielded[0] >= SLACK_INTERVAL  # back once the slot has passed
    assert store.send_wait("slack", clock.time()) == SLACK_INTERVAL  # one digest booked, one slot


def test_a_first_alert_behind_a_flushs_digests_in_a_fifo_queue_waits_at_most_one_interval() -> None:
    """Four instances take a flush's digests and then a first alert from a first-in, first-out
    queue at the same moment (the Azure outbox): the digests leave every slot but the free one."""
    clock = FakeClock()
    store = MemoryStore(clock=clock.time)
    start = clock.time()
    instances = [Worker(store, clock) for _ in range(4)]
    queue = [OutboxMessage(f"d{n}", "slack", {"text": "digest"}, urgent=False) for n in range(BURSTS)]
    queue.append(OutboxMessage("a1", "slack", {"text": "alert"}))
    # Each instance takes the next message while the ones before it wait for their slots.
    taken = iter(enumerate(queue))
    alert_sent: list[float] = []

    def take_next() -> None:
        for n, message in taken:
            instance = instances[n % len(instances)]
            try:
                sent = instance.send_at(message) - start
            except SlotYielded:
                continue
            if message.urgent:
                alert_sent.append(sent)

    for instance in instances:
        instance.meanwhile.append(take_next)
    take_next()
    assert alert_sent and alert_sent[0] <= SLACK_INTERVAL
