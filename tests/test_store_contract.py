"""The Store contract, one set of tests for every store: memory, SQLite and Azure (on Azurite).

Whatever the pipeline and the deliverer rely on is here: dedup with a TTL, burst groups, their
digests and resolved bursts, silences, the outbox with leases and poison, and send pacing.
"""

from __future__ import annotations

import base64
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import orjson
import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.queue import QueueClient
from azurite_server import DURABLE_STORE_KINDS, STORE_KINDS, Azurite, poisoned
from factories import T0, make_incident

from tools.localhost import MAX_DEQUEUE_COUNT
from triage.matchers import Matcher
from triage.model import Incident
from triage.store import MAX_SAMPLES, SENT_TTL, Burst, Claim, Held, OutboxMessage, SilenceRule, hour_of
from triage.store.azure import OutboxMessageTooLarge, _partition, row_key

TTL = timedelta(hours=48)
NEW, DUPLICATE, BUSY, RECOVERED = Claim.NEW, Claim.DUPLICATE, Claim.BUSY, Claim.RECOVERED
WINDOW = timedelta(minutes=5)
FINGERPRINT = "SMSDeliveryReportReceived|None|4007|contoso-acs"


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, make_store: Callable[[str], Any]) -> Any:
    return make_store(request.param)


def occurrences(count: int, start: int = 0) -> list[Incident]:
    """`count` SMS failures of one fingerprint, each with its own event id and message id."""
    return [
        make_incident(
            "SMSDeliveryReportReceived",
            context="sms",
            code=None,
            subcode=4007,
            event_id=f"event-{n}",
            ids={"messageId": f"Outgoing_{n:08d}"},
        )
        for n in range(start, start + count)
    ]


def message(n: int, destination: str = "slack") -> OutboxMessage:
    return OutboxMessage(
        id=f"message-{n}", destination=destination, payload={"text": f"alert {n}"}, fingerprint=FINGERPRINT
    )


# -- dedup -------------------------------------------------------------------------------------
def test_the_first_claim_of_a_key_wins_and_a_repeat_is_a_duplicate(store: Any) -> None:
    assert store.claim(["eg|1", "eg|2"], T0, TTL) == [NEW, NEW]
    assert store.claim(["eg|2", "eg|3", "eg|1"], T0 + timedelta(minutes=1), TTL) == [
        DUPLICATE,
        NEW,
        DUPLICATE,
    ]


def test_a_key_repeated_within_one_batch_is_claimed_once(store: Any) -> None:
    assert store.claim(["eg|1", "eg|1", "eg|2", "eg|1"], T0, TTL) == [NEW, DUPLICATE, NEW, DUPLICATE]


def test_a_key_is_fresh_again_once_its_ttl_has_passed(store: Any) -> None:
    assert store.claim(["eg|1"], T0, TTL) == [NEW]
    assert store.claim(["eg|1"], T0 + TTL - timedelta(seconds=1), TTL) == [DUPLICATE]
    assert store.claim(["eg|1"], T0 + TTL, TTL) == [NEW]
    assert store.claim(["eg|1"], T0 + TTL + timedelta(hours=1), TTL) == [DUPLICATE]  # taken over: a new TTL


def test_a_released_key_can_be_claimed_again(store: Any) -> None:
    assert store.claim(["eg|1", "eg|2"], T0, TTL) == [NEW, NEW]
    store.release(["eg|1"])
    assert store.claim(["eg|1", "eg|2"], T0, TTL) == [NEW, DUPLICATE]


def test_keys_with_characters_table_keys_forbid_stay_distinct(store: Any) -> None:
    long = "/subscriptions/x/" + "a" * 2000
    keys = [
        "topic/a|id", "topic\\a|id", "topic#a|id", "topic?a|id", "topic%2Fa|id", "topic~a|id",
        "tab\there", "ünïcødé|☎", "", long + "1", long + "2",
    ]  # fmt: skip
    assert store.claim(keys, T0, TTL) == [NEW] * len(keys)
    assert store.claim(keys, T0, TTL) == [DUPLICATE] * len(keys)


def test_a_large_batch_of_new_and_seen_keys_is_answered_key_by_key(store: Any) -> None:
    keys = [f"/subscriptions/s/communicationServices/acs|Outgoing_{n:05d}" for n in range(600)]
    seen = keys[::3]
    assert set(store.claim(seen, T0, TTL)) == {NEW}
    assert store.claim(keys, T0 + timedelta(minutes=1), TTL) == [
        DUPLICATE if n % 3 == 0 else NEW for n in range(600)
    ]


def test_a_batch_of_thousands_with_repeats_and_expired_keys_is_answered_key_by_key(store: Any) -> None:
    old = [f"eg|old-{n}" for n in range(300)]
    live = [f"eg|live-{n}" for n in range(300)]
    assert set(store.claim(old, T0, timedelta(hours=24))) == {NEW}
    assert set(store.claim(live, T0, TTL)) == {NEW}
    new = [f"eg|new-{n}" for n in range(1200)]
    # Expired keys are taken over, live ones are duplicates, a key repeated far apart counts once.
    keys = [*new, *old, *live, *new[:50]]
    expected = [NEW] * 1200 + [NEW] * 300 + [DUPLICATE] * 300 + [DUPLICATE] * 50
    assert store.claim(keys, T0 + timedelta(hours=25), TTL) == expected


# -- groups ------------------------------------------------------------------------------------
def test_the_first_occurrence_opens_a_group_and_alerts_at_once(store: Any) -> None:
    assert store.hit(FINGERPRINT, 1, occurrences(1), T0, WINDOW) is True
    assert store.take_due(T0 + WINDOW) == []  # nothing was held


def test_repeats_within_the_window_are_held_until_it_ends(store: Any) -> None:
    first, repeats = occurrences(1), occurrences(3, start=1)
    assert store.hit(FINGERPRINT, 1, first, T0, WINDOW) is True
    assert store.hit(FINGERPRINT, 3, repeats, T0 + timedelta(minutes=1), WINDOW) is False
    assert store.take_due(T0 + WINDOW - timedelta(seconds=1)) == []

    [held] = store.take_due(T0 + WINDOW)
    assert held.fingerprint == FINGERPRINT
    assert held.count == 3
    assert held.incident == repeats[0]  # the first held occurrence is the digest's example
    assert held.samples == [i.ids for i in repeats]
    assert held.first_seen == held.last_seen == T0 + timedelta(minutes=1)
    assert held.window_seconds == WINDOW.total_seconds()


def test_a_batch_that_opens_a_group_alerts_its_first_and_holds_the_rest(store: Any) -> None:
    batch = occurrences(40)
    assert store.hit(FINGERPRINT, 40, batch[: MAX_SAMPLES + 1], T0, WINDOW) is True
    assert (
        store.hit(FINGERPRINT, 10, occurrences(MAX_SAMPLES + 1, start=40), T0 + timedelta(minutes=2), WINDOW)
        is False
    )

    [held] = store.take_due(T0 + WINDOW)
    assert held.count == 39 + 10
    assert held.incident == batch[1]
    assert held.samples == [i.ids for i in batch[1 : MAX_SAMPLES + 1]]  # at most MAX_SAMPLES
    assert (held.first_seen, held.last_seen) == (T0, T0 + timedelta(minutes=2))


def test_a_busy_group_starts_a_new_window_at_each_digest(store: Any) -> None:
    store.hit(FINGERPRINT, 2, occurrences(2), T0, WINDOW)
    assert [h.count for h in store.take_due(T0 + WINDOW)] == [1]
    later = T0 + WINDOW + timedelta(minutes=1)
    assert store.hit(FINGERPRINT, 4, occurrences(4, start=2), later, WINDOW) is False  # still open
    assert store.take_due(T0 + 2 * WINDOW - timedelta(seconds=1)) == []
    [held] = store.take_due(T0 + 2 * WINDOW)
    assert held.count == 4
    assert held.samples == [i.ids for i in occurrences(4, start=2)]


def test_a_window_without_repeats_closes_the_group_so_the_next_occurrence_alerts(store: Any) -> None:
    store.hit(FINGERPRINT, 2, occurrences(2), T0, WINDOW)
    assert len(store.take_due(T0 + WINDOW)) == 1
    assert store.take_due(T0 + 2 * WINDOW) == []  # a quiet window: the group closes
    assert store.hit(FINGERPRINT, 1, occurrences(1, start=9), T0 + 2 * WINDOW, WINDOW) is True


def test_groups_are_kept_apart_by_fingerprint(store: Any) -> None:
    other = "PlayFailed|400|8535|contoso-acs"
    assert store.hit(FINGERPRINT, 3, occurrences(3), T0, WINDOW) is True
    assert store.hit(other, 2, occurrences(2, start=10), T0, WINDOW) is True
    due = {h.fingerprint: h.count for h in store.take_due(T0 + WINDOW)}
    assert due == {FINGERPRINT: 2, other: 1}


# -- giving back what a flush could not store ----------------------------------------------------
def test_counts_given_back_are_reported_once_by_the_next_digest(store: Any) -> None:
    repeats = occurrences(3, start=1)
    store.hit(FINGERPRINT, 1, occurrences(1), T0, WINDOW)
    store.hit(FINGERPRINT, 3, repeats, T0 + timedelta(minutes=1), WINDOW)
    [taken] = store.take_due(T0 + WINDOW)
    store.restore(taken, T0 + WINDOW)  # the outbox write failed

    [held] = store.take_due(T0 + WINDOW + timedelta(minutes=1))  # the next flush: due at once
    assert held.count == 3
    assert held.incident == repeats[0]
    assert held.samples == [i.ids for i in repeats]
    assert held.first_seen == held.last_seen == T0 + timedelta(minutes=1)
    assert held.window_seconds == WINDOW.total_seconds()
    assert store.take_due(T0 + 2 * WINDOW + timedelta(minutes=1)) == []  # reported once: it closes
    assert store.hit(FINGERPRINT, 1, occurrences(1, start=9), T0 + 3 * WINDOW, WINDOW) is True


def test_counts_given_back_add_to_the_hits_that_came_meanwhile(store: Any) -> None:
    burst, meanwhile, later = occurrences(4), occurrences(2, start=10), occurrences(1, start=20)
    store.hit(FINGERPRINT, 4, burst, T0, WINDOW)  # the first alerts, three are held
    [taken] = store.take_due(T0 + WINDOW)
    store.hit(FINGERPRINT, 2, meanwhile, T0 + WINDOW + timedelta(minutes=1), WINDOW)
    store.restore(taken, T0 + WINDOW + timedelta(minutes=2))
    store.hit(FINGERPRINT, 1, later, T0 + WINDOW + timedelta(minutes=3), WINDOW)

    [held] = store.take_due(T0 + WINDOW + timedelta(minutes=3))  # the next flush
    assert held.count == 3 + 2 + 1
    assert held.incident == burst[1]  # the restored occurrences came first
    assert held.samples == [i.ids for i in [*burst[1:], *meanwhile]]  # MAX_SAMPLES, restored first
    assert (held.first_seen, held.last_seen) == (T0, T0 + WINDOW + timedelta(minutes=3))
    assert store.take_due(T0 + 2 * WINDOW + timedelta(minutes=3)) == []


def test_counts_given_back_to_a_closed_group_open_it_for_the_next_flush_at_once(store: Any) -> None:
    repeats = occurrences(2, start=1)
    store.hit(FINGERPRINT, 3, [*occurrences(1), *repeats], T0, WINDOW)
    [taken] = store.take_due(T0 + WINDOW)
    assert store.take_due(T0 + 2 * WINDOW) == []  # a quiet window closed the group meanwhile
    now = T0 + 2 * WINDOW + timedelta(minutes=1)
    store.restore(taken, now)

    [held] = store.take_due(now)
    assert held.count == 2
    assert held.incident == repeats[0]
    assert held.samples == [i.ids for i in repeats]
    assert (held.first_seen, held.last_seen) == (T0, T0)
    assert held.window_seconds == WINDOW.total_seconds()
    assert store.take_due(now + WINDOW) == []


def test_restoring_nothing_changes_nothing(store: Any) -> None:
    store.hit(FINGERPRINT, 2, occurrences(2), T0, WINDOW)
    [taken] = store.take_due(T0 + WINDOW)
    taken.count = 0
    store.restore(taken, T0 + WINDOW)
    assert store.take_due(T0 + 2 * WINDOW) == []


@pytest.mark.parametrize("kind", DURABLE_STORE_KINDS)
def test_concurrent_restores_and_hits_add_up_exactly(kind: str, make_store: Callable[[str], Any]) -> None:
    setup = make_store(kind)
    setup.hit(FINGERPRINT, 11, occurrences(MAX_SAMPLES + 1), T0, WINDOW)
    [first] = setup.take_due(T0 + WINDOW)  # 10 held
    setup.hit(FINGERPRINT, 7, occurrences(MAX_SAMPLES + 1, start=100), T0 + WINDOW, WINDOW)
    [second] = setup.take_due(T0 + 2 * WINDOW)  # 7 held
    hitters, hits, per_hit = 4, 10, 3
    now = T0 + 2 * WINDOW + timedelta(minutes=1)
    stores = [make_store(kind) for _ in range(2 + hitters)]  # one instance per worker
    start = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            start.wait()
            if n < 2:
                stores[n].restore((first, second)[n], now)
            else:
                for h in range(hits):
                    batch = occurrences(per_hit, start=1000 * n + 10 * h)
                    stores[n].hit(FINGERPRINT, per_hit, batch, now, WINDOW)
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []

    [held] = setup.take_due(now)
    assert held.count == first.count + second.count + hitters * hits * per_hit == 10 + 7 + 120
    assert (held.first_seen, held.last_seen) == (T0, now)
    assert len(held.samples) == MAX_SAMPLES
    assert setup.take_due(now + 2 * WINDOW) == []


# -- outbox ------------------------------------------------------------------------------------
def test_enqueued_messages_come_back_from_poll_and_done_removes_them(store: Any) -> None:
    store.enqueue([message(1), message(2, "teams")])
    leases = store.poll("acs-triage-outbox", 32)
    got = sorted((OutboxMessage.from_dict(orjson.loads(lease.body)) for lease in leases), key=lambda m: m.id)
    assert got == [message(1), message(2, "teams")]
    assert {lease.id for lease in leases} and all(lease.dequeue_count == 1 for lease in leases)
    for lease in leases:
        lease.done()
    assert store.poll("acs-triage-outbox", 32) == []


def test_a_failed_message_comes_back_until_it_is_poisoned_after_max_dequeue_count(store: Any) -> None:
    store.enqueue([message(1)])
    for attempt in range(1, MAX_DEQUEUE_COUNT + 1):
        [lease] = store.poll("acs-triage-outbox", 32)
        assert lease.dequeue_count == attempt
        lease.fail(poison=attempt >= MAX_DEQUEUE_COUNT)
    assert store.poll("acs-triage-outbox", 32) == []
    assert poisoned(store) == [message(1)]


def test_a_dead_lettered_message_is_in_the_poison_queue_at_once_and_not_delivered_again(
    store: Any, caplog: pytest.LogCaptureFixture
) -> None:
    store.enqueue([message(1), message(2, "teams")])
    for lease in store.poll("acs-triage-outbox", 32):
        assert lease.dequeue_count == 1
        if lease.message == message(1):  # the webhook refused it: a retry cannot help
            with caplog.at_level(logging.WARNING, logger="triage.store"):
                store.dead_letter(lease.message, "slack: rejected with 400 (invalid_payload)")
        lease.done()  # the function returned: the host deletes the queue message
    assert store.poisoned() == [message(1)]
    assert store.poll("acs-triage-outbox", 32) == []
    [record] = [r for r in caplog.records if r.name == "triage.store"]
    assert record.levelno == logging.WARNING
    assert all(part in record.getMessage() for part in ("message-1", "'slack'", "rejected with 400"))


def test_a_message_dead_lettered_outside_a_lease_is_never_polled(store: Any) -> None:
    store.dead_letter(message(7, "teams"), "teams: rejected with 413")
    store.dead_letter(message(8), "slack: rejected with 404")
    assert store.poisoned() == [message(7, "teams"), message(8)]
    assert store.poll("acs-triage-outbox", 32) == []


def test_poll_takes_at_most_the_number_asked_for(store: Any) -> None:
    store.enqueue([message(n) for n in range(5)])
    first = store.poll("acs-triage-outbox", 2)
    assert len(first) == 2
    rest = store.poll("acs-triage-outbox", 32)
    assert len(rest) == 3  # leased messages are not handed out twice
    assert {lease.id for lease in first}.isdisjoint(lease.id for lease in rest)


# -- pacing ------------------------------------------------------------------------------------
def test_reserve_send_spaces_posts_to_one_destination_by_the_interval(store: Any) -> None:
    assert [store.reserve_send("slack", 1.0, 1000.0) for _ in range(3)] == [0.0, 1.0, 2.0]
    assert store.reserve_send("teams", 0.25, 1000.0) == 0.0  # destinations are paced apart
    assert store.reserve_send("slack", 1.0, 1002.5) == 0.5  # the slot booked for 1003.0
    assert store.reserve_send("slack", 1.0, 1010.0) == 0.0  # idle: the next post goes at once


def test_a_hold_starts_the_next_slot_where_it_ends_and_is_never_shortened(store: Any) -> None:
    assert store.send_wait("webhook", 1000.0) == 0.0  # never held
    store.hold_send("webhook", 1120.0)  # Retry-After: 120
    store.hold_send("webhook", 1010.0)  # an earlier, shorter one does not shorten it
    assert store.send_wait("webhook", 1000.0) == 120.0
    assert store.send_wait("webhook", 1000.0) == 120.0  # asking books nothing
    assert store.reserve_send("webhook", 0.0, 1100.0) == 20.0  # interval 0: the hold alone
    assert store.reserve_send("slack", 1.0, 1000.0) == 0.0  # destinations are held apart
    store.hold_send("slack", 1005.0)
    assert [store.reserve_send("slack", 1.0, 1000.0) for _ in range(2)] == [5.0, 6.0]
    assert store.send_wait("webhook", 1200.0) == 0.0  # passed


def test_reserve_send_within_books_a_slot_only_as_close_as_asked_and_otherwise_books_nothing(
    store: Any,
) -> None:
    assert store.reserve_send_within("slack", 1.0, 1000.0, 0.0) == (True, 0.0)  # free now
    assert store.reserve_send_within("slack", 1.0, 1000.0, 0.0) == (False, 1.0)  # 1 s off: refused
    assert store.send_wait("slack", 1000.0) == 1.0  # and the refusal booked nothing
    assert store.reserve_send_within("slack", 1.0, 1000.0, 1.0) == (True, 1.0)  # within 1 s: booked
    assert store.reserve_send_within("slack", 1.0, 1000.5, 1.0) == (False, 1.5)
    assert store.reserve_send("slack", 1.0, 1000.0) == 2.0  # the next slot is where it was
    assert store.reserve_send_within("slack", 1.0, 1003.0, 0.0) == (True, 0.0)  # passed: free again


def test_reserve_send_within_with_interval_zero_says_whether_a_hold_is_within_and_books_nothing(
    store: Any,
) -> None:
    assert store.reserve_send_within("webhook", 0.0, 1000.0, 0.0) == (True, 0.0)
    store.hold_send("webhook", 1030.0)  # Retry-After: 30
    assert store.reserve_send_within("webhook", 0.0, 1000.0, 10.0) == (False, 30.0)
    assert store.reserve_send_within("webhook", 0.0, 1000.0, 60.0) == (True, 30.0)
    assert store.send_wait("webhook", 1000.0) == 30.0  # the hold alone, nothing added


def test_workers_asking_at_once_for_a_free_slot_get_it_once(store: Any) -> None:
    """Reading the wait and booking are one step: of many workers asking for the slot free now
    at the same moment, exactly one gets it; every other is told the wait and books nothing."""
    workers = 6
    start = threading.Barrier(workers)

    def ask(_: int) -> tuple[bool, float]:
        start.wait()
        return store.reserve_send_within("slack", 1.0, 1000.0, 0.0)  # type: ignore[no-any-return]

    with ThreadPoolExecutor(workers) as pool:
        answers = sorted(pool.map(ask, range(workers)))
    assert answers == [(False, 1.0)] * (workers - 1) + [(True, 0.0)]
    assert store.send_wait("slack", 1000.0) == 1.0  # one slot booked, not six


def test_a_deferred_message_is_polled_only_once_its_delay_has_passed(store: Any) -> None:
    store.enqueue([message(1)])
    [lease] = store.poll("acs-triage-outbox", 32)
    store.defer(lease.message, 2.0)
    lease.done()  # the queue function returned: the host deletes the message it was given
    assert store.poll("acs-triage-outbox", 32) == []
    assert sum(row.queued or 0 for row in store.outbox_status(time.time())) == 1  # waiting, not lost
    time.sleep(2.2)  # the stores' own clocks (Azurite's visibility timeout is real time)
    [again] = store.poll("acs-triage-outbox", 32)
    assert again.message == message(1) and again.dequeue_count == 1


def test_a_posted_message_id_is_remembered_until_its_time_to_live_passes(store: Any) -> None:
    now = time.time()
    assert not store.was_sent("message-1", now)
    store.mark_sent("message-1", now)
    store.mark_sent("message-1", now)  # a second record is no error
    assert store.was_sent("message-1", now + 60)
    assert not store.was_sent("message-2", now)
    assert not store.was_sent("message-1", now + SENT_TTL + 1)


# -- memory store --------------------------------------------------------------------------------
def test_the_memory_store_forgets_expired_keys_without_scanning_the_live_ones() -> None:
    from triage.store.memory import MemoryStore

    def claim_cost(live_keys: int) -> float:
        store = MemoryStore()
        for start in range(0, live_keys, 5000):
            store.claim([f"eg|{n}" for n in range(start, start + 5000)], T0, TTL)
        batch = [f"eg|batch-{n}" for n in range(100)]
        times = []
        for round_ in range(15):
            started = time.perf_counter()
            store.claim([f"{key}-{round_}" for key in batch], T0 + timedelta(seconds=round_), TTL)
            times.append(time.perf_counter() - started)
        return sorted(times)[len(times) // 2]

    # 200,000 live keys: a scan of them on each claim made a 100-key batch hundreds of times dearer.
    assert claim_cost(200_000) < 10 * claim_cost(1_000)


def test_a_key_claimed_again_after_its_release_outlives_its_first_expiry(store: Any) -> None:
    assert store.claim(["eg|1"], T0, timedelta(hours=24)) == [NEW]
    store.release(["eg|1"])
    assert store.claim(["eg|1"], T0 + timedelta(hours=1), TTL) == [NEW]
    assert store.claim(["eg|2"], T0 + timedelta(hours=25), TTL) == [NEW]  # the first expiry passes
    assert store.claim(["eg|1"], T0 + timedelta(hours=26), TTL) == [DUPLICATE]


# -- hourly counters -----------------------------------------------------------------------------
OTHER = "PlayFailed|400|8535|contoso-acs"


def test_hourly_counters_add_up_per_fingerprint_and_hour(store: Any) -> None:
    hour = hour_of(T0)
    store.add_hourly(T0, {FINGERPRINT: 3, OTHER: 1})  # any time within the hour counts for it
    store.add_hourly(hour + timedelta(minutes=59), {FINGERPRINT: 2})
    store.add_hourly(hour + timedelta(hours=1), {FINGERPRINT: 7})
    counted = sorted(store.hourly(hour, hour + timedelta(hours=2)))
    assert counted == sorted(
        [(hour, FINGERPRINT, 5), (hour, OTHER, 1), (hour + timedelta(hours=1), FINGERPRINT, 7)]
    )


def test_hourly_reads_only_the_hours_from_start_up_to_end(store: Any) -> None:
    hour = hour_of(T0)
    for n in range(5):
        store.add_hourly(hour + timedelta(hours=n), {FINGERPRINT: n + 1})
    got = store.hourly(hour + timedelta(hours=1), hour + timedelta(hours=3))
    assert sorted((h - hour, n) for h, _, n in got) == [(timedelta(hours=1), 2), (timedelta(hours=2), 3)]
    assert all(h.tzinfo is not None and h.utcoffset() == timedelta(0) for h, _, _ in got)
    assert store.hourly(hour + timedelta(days=1), hour + timedelta(days=2)) == []


@pytest.mark.parametrize("kind", DURABLE_STORE_KINDS)
def test_hourly_counts_from_concurrent_instances_all_add_up(
    kind: str, make_store: Callable[[str], Any]
) -> None:
    writers, adds = 4, 10
    stores = [make_store(kind) for _ in range(writers)]
    start = threading.Barrier(writers)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            start.wait()
            for _ in range(adds):
                stores[n].add_hourly(T0, {FINGERPRINT: 2, OTHER: 1})
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    hour = hour_of(T0)
    totals = {f: n for _, f, n in stores[0].hourly(hour, hour + timedelta(hours=1))}
    assert totals == {FINGERPRINT: writers * adds * 2, OTHER: writers * adds}


# -- housekeeping (durable stores) ---------------------------------------------------------------
@pytest.mark.parametrize("kind", DURABLE_STORE_KINDS)
def test_purging_expired_keys_keeps_the_live_ones(kind: str, make_store: Callable[[str], Any]) -> None:
    store = make_store(kind)
    store.claim([f"old|{n}" for n in range(150)], T0, timedelta(hours=24))
    store.claim(["new|1"], T0 + timedelta(hours=20), TTL)
    assert store.purge_expired(T0 + timedelta(hours=25)) == 150
    other = make_store(kind)  # another instance: no memory of its own claims
    assert other.claim(["old|1", "new|1"], T0 + timedelta(hours=26), TTL) == [NEW, DUPLICATE]


# -- Azure specifics -----------------------------------------------------------------------------
@pytest.mark.azurite
def test_an_outbox_message_too_large_for_a_storage_queue_is_refused_with_a_clear_error(
    make_store: Callable[[str], Any],
) -> None:
    store = make_store("azure")
    fits = OutboxMessage("fits", "teams", {"text": "x" * 40_000})  # under 48 KB of JSON
    too_large = OutboxMessage("big", "teams", {"text": "x" * 50_000})  # over 64 KB as base64
    with pytest.raises(OutboxMessageTooLarge, match=r"destination 'teams' is .* bytes once base64-encoded"):
        store.enqueue([fits, too_large])
    assert store.poll("acs-triage-outbox", 32) == []  # nothing of the batch was sent
    store.enqueue([fits])
    [lease] = store.poll("acs-triage-outbox", 32)
    assert orjson.loads(lease.body)["payload"] == fits.payload


@pytest.mark.azurite
def test_a_claim_that_fails_midway_releases_what_it_won_so_the_senders_retry_gets_through(
    make_store: Callable[[str], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_store("azure")
    table = store._dedup()  # the storage service fails one transaction of the batch
    real, calls = table.submit_transaction, itertools.count()

    def busy_once(operations: Any, **options: Any) -> Any:
        if next(calls) == 3:
            raise HttpResponseError(message="ServerBusy: the server is busy")
        return real(operations, **options)

    monkeypatch.setattr(table, "submit_transaction", busy_once)
    keys = [f"eg|{n}" for n in range(1000)]  # about 16 transactions
    with pytest.raises(HttpResponseError):
        store.claim(keys, T0, TTL)
    monkeypatch.undo()
    assert make_store("azure").claim(keys, T0, TTL) == [NEW] * len(keys)


@pytest.mark.azurite
def test_outbox_messages_are_base64_json_as_the_functions_host_reads_them(
    make_store: Callable[[str], Any], azurite: Azurite
) -> None:
    store = make_store("azure")
    store.enqueue([message(1)])
    raw = QueueClient.from_connection_string(azurite.connection, store.queue_name)  # no decoding
    [peeked] = raw.peek_messages()
    assert orjson.loads(base64.b64decode(peeked.content)) == message(1).to_dict()
    raw.close()


@pytest.mark.azurite
def test_dead_lettered_messages_are_base64_json_as_the_hosts_poison_queue_holds_them(
    make_store: Callable[[str], Any], azurite: Azurite
) -> None:
    store = make_store("azure")
    store.dead_letter(message(1), "slack: rejected with 400")
    raw = QueueClient.from_connection_string(azurite.connection, store.poison_queue_name)  # no decoding
    [peeked] = raw.peek_messages()
    # The host's own poison record is the bare message; a refused payload says why it was refused.
    assert orjson.loads(base64.b64decode(peeked.content)) == {
        **message(1).to_dict(),
        "refused": "slack: rejected with 400",
    }
    raw.close()


# -- resolved bursts: what take_due hands back when it closes a quiet group -------------------------
def test_a_burst_quiet_for_a_whole_window_is_handed_back_resolved_with_its_totals(store: Any) -> None:
    first, repeats = occurrences(1), occurrences(3, start=1)
    store.hit(FINGERPRINT, 1, first, T0, WINDOW)
    store.hit(FINGERPRINT, 3, repeats, T0 + timedelta(minutes=1), WINDOW)
    resolved: list[Burst] = []
    assert [h.count for h in store.take_due(T0 + WINDOW, resolved)] == [3]
    assert resolved == []  # it was busy: a digest, and a new window
    assert store.take_due(T0 + 2 * WINDOW, resolved) == []

    [burst] = resolved
    assert burst.fingerprint == FINGERPRINT
    assert burst.count == 4  # the first alert and the three of the digest
    assert (burst.first_seen, burst.last_seen) == (T0, T0 + timedelta(minutes=1))
    assert burst.incident == first[0]  # the occurrence that alerted
    assert burst.window_seconds == WINDOW.total_seconds()
    assert store.take_due(T0 + 3 * WINDOW, resolved) == [] and len(resolved) == 1  # once


def test_a_lone_first_occurrence_resolves_after_one_quiet_window(store: Any) -> None:
    [only] = occurrences(1)
    store.hit(FINGERPRINT, 1, [only], T0, WINDOW)
    resolved: list[Burst] = []
    assert store.take_due(T0 + WINDOW, resolved) == []
    assert resolved == [Burst(FINGERPRINT, 1, T0, T0, only, int(WINDOW.total_seconds()))]
    assert store.hit(FINGERPRINT, 1, occurrences(1, start=5), T0 + WINDOW, WINDOW) is True  # a new burst


def test_a_burst_total_counts_a_whole_batch_that_opened_it(store: Any) -> None:
    store.hit(FINGERPRINT, 40, occurrences(MAX_SAMPLES + 1), T0, WINDOW)
    store.take_due(T0 + WINDOW)
    resolved: list[Burst] = []
    store.take_due(T0 + 2 * WINDOW, resolved)
    assert [b.count for b in resolved] == [40]


def test_alerts_that_fired_alone_are_one_burst_resolved_once_quiet_since_the_last(store: Any) -> None:
    quiet = timedelta(minutes=2)
    first, later = occurrences(1)[0], occurrences(1, start=1)[0]
    store.alerted(FINGERPRINT, 3, first, T0, quiet)
    store.alerted(FINGERPRINT, 1, later, T0 + timedelta(minutes=1), quiet)
    resolved: list[Burst] = []
    assert store.take_due(T0 + quiet, resolved) == [] and resolved == []  # 1 min since the last
    assert store.take_due(T0 + timedelta(minutes=3), resolved) == []  # nothing held: no digest

    assert resolved == [
        Burst(FINGERPRINT, 4, T0, T0 + timedelta(minutes=1), first, int(quiet.total_seconds()))
    ]
    assert store.take_due(T0 + timedelta(hours=1), resolved) == [] and len(resolved) == 1  # once


@pytest.mark.parametrize("kind", DURABLE_STORE_KINDS)
def test_concurrent_flushers_hand_each_resolved_burst_to_exactly_one(
    kind: str, make_store: Callable[[str], Any]
) -> None:
    fingerprints = [f"PlayFailed|400|{8500 + n}|contoso-acs" for n in range(6)]
    setup = make_store(kind)
    for n, fingerprint in enumerate(fingerprints):
        setup.hit(fingerprint, 1, occurrences(1, start=n), T0, WINDOW)
    flushers = [make_store(kind) for _ in range(4)]
    start = threading.Barrier(len(flushers))

    def flush(flusher: Any) -> list[str]:
        resolved: list[Burst] = []
        start.wait()
        flusher.take_due(T0 + WINDOW, resolved)
        return [b.fingerprint for b in resolved]

    with ThreadPoolExecutor(len(flushers)) as pool:
        got = [f for result in pool.map(flush, flushers) for f in result]
    assert sorted(got) == sorted(fingerprints)


# -- silences ----------------------------------------------------------------------------------
def silence(silence_id: str = "s1", hours: int = 4, **conditions: Any) -> SilenceRule:
    return SilenceRule(
        id=silence_id,
        matcher=Matcher.model_validate(conditions or {"kinds": ["SMSDeliveryReportReceived"]}),
        starts=T0,
        ends=T0 + timedelta(hours=hours),
        comment="carrier outage, tracked in INC-42",
        created_by="alice",
    )


def test_a_silence_is_listed_while_in_force_and_with_include_ended_afterwards(store: Any) -> None:
    store.add_silence(silence("s1", hours=4, subcodes=[4007], not_resources=["test-acs"]))
    store.add_silence(silence("s2", hours=1))
    [s1, s2] = store.list_silences(T0 + timedelta(minutes=1))
    assert s1 == silence("s1", hours=4, subcodes=[4007], not_resources=["test-acs"])
    assert s2.id == "s2" and s2.matcher.kinds == ["SMSDeliveryReportReceived"]
    assert [s.id for s in store.list_silences(T0 + timedelta(hours=2))] == ["s1"]
    assert [s.id for s in store.list_silences(T0 + timedelta(hours=2), include_ended=True)] == ["s1", "s2"]


def test_events_are_counted_only_while_a_silence_is_in_force(store: Any) -> None:
    store.add_silence(silence())
    first = occurrences(1)[0]
    assert store.count_silenced("s1", 3, first, T0 - timedelta(seconds=1)) is False  # not started
    assert store.count_silenced("s1", 3, first, T0 + timedelta(minutes=1)) is True
    assert store.count_silenced("s1", 2, occurrences(1, start=9)[0], T0 + timedelta(minutes=2)) is True
    assert store.count_silenced("s1", 1, first, T0 + timedelta(hours=4)) is False  # ended
    assert store.count_silenced("nope", 1, first, T0) is False
    [counted] = store.list_silences(T0)
    assert counted.count == 5
    assert (counted.first_seen, counted.last_seen) == (T0 + timedelta(minutes=1), T0 + timedelta(minutes=2))
    assert counted.incident == first  # the first silenced occurrence: the summary's example


def test_an_expired_silence_stops_counting_at_once_and_its_summary_is_claimed_once(store: Any) -> None:
    store.add_silence(silence())
    store.count_silenced("s1", 312, occurrences(1)[0], T0 + timedelta(minutes=5))
    ended = store.expire_silence("s1", T0 + timedelta(minutes=30))
    assert ended is not None and ended.ends == T0 + timedelta(minutes=30) and ended.count == 312
    assert store.count_silenced("s1", 1, occurrences(1)[0], T0 + timedelta(minutes=31)) is False
    assert store.list_silences(T0 + timedelta(minutes=31)) == []

    [summary] = store.take_ended_silences(T0 + timedelta(minutes=31))
    assert (summary.id, summary.count, summary.summarized) == ("s1", 312, True)
    assert store.take_ended_silences(T0 + timedelta(hours=5)) == []  # told once
    assert store.expire_silence("nope", T0) is None


def test_a_silence_that_silenced_nothing_has_no_summary(store: Any) -> None:
    store.add_silence(silence(hours=1))
    assert store.take_ended_silences(T0 + timedelta(minutes=59)) == []  # still in force
    assert store.take_ended_silences(T0 + timedelta(hours=1)) == []
    assert store.count_silenced("s1", 1, occurrences(1)[0], T0 + timedelta(hours=1)) is False


@pytest.mark.parametrize("kind", DURABLE_STORE_KINDS)
def test_concurrent_counts_add_up_and_one_flusher_of_many_gets_the_summary(
    kind: str, make_store: Callable[[str], Any]
) -> None:
    make_store(kind).add_silence(silence())
    workers = [make_store(kind) for _ in range(4)]
    start = threading.Barrier(len(workers))

    def count(worker: Any) -> None:
        start.wait()
        for n in range(10):
            assert worker.count_silenced("s1", 3, occurrences(1, start=n)[0], T0 + timedelta(minutes=n))

    with ThreadPoolExecutor(len(workers)) as pool:
        list(pool.map(count, workers))

    def summarize(worker: Any) -> list[SilenceRule]:
        start.wait()
        taken: list[SilenceRule] = worker.take_ended_silences(T0 + timedelta(hours=4))
        return taken

    with ThreadPoolExecutor(len(workers)) as pool:
        summaries = [s for taken in pool.map(summarize, workers) for s in taken]
    assert [s.count for s in summaries] == [4 * 10 * 3]


# -- SQLite specifics ----------------------------------------------------------------------------
def test_a_version_1_sqlite_file_is_upgraded_and_its_open_groups_close_without_a_notice(
    tmp_path: Any,
) -> None:
    import sqlite3

    from triage.store.sqlite import SqliteStore

    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as db:  # the groups table as version 1 made it, with one open group
        db.execute(
            "CREATE TABLE groups (fingerprint TEXT PRIMARY KEY, opened INTEGER NOT NULL, "
            "window_seconds INTEGER NOT NULL, held INTEGER NOT NULL DEFAULT 0, first_seen INTEGER, "
            "last_seen INTEGER, incident TEXT, samples TEXT NOT NULL DEFAULT '[]') WITHOUT ROWID"
        )
        db.execute("INSERT INTO groups (fingerprint, opened, window_seconds) VALUES ('old', 0, 300)")
        db.execute("PRAGMA user_version = 1")
    store = SqliteStore(path)
    try:
        resolved: list[Burst] = []
        assert store.take_due(T0, resolved) == [] and resolved == []  # no totals were kept for it
        store.hit(FINGERPRINT, 2, occurrences(2), T0, WINDOW)
        store.take_due(T0 + WINDOW)
        store.take_due(T0 + 2 * WINDOW, resolved)
        assert [b.count for b in resolved] == [2]
        store.add_silence(silence())
        assert [s.id for s in store.list_silences(T0)] == ["s1"]
    finally:
        store.close()


# -- units -------------------------------------------------------------------------------------
def test_a_unit_that_fails_leaves_its_keys_claimable_by_the_retry(store: Any) -> None:
    with pytest.raises(RuntimeError), store.unit():
        assert store.claim(["eg|1", "eg|2"], T0, TTL) == [NEW, NEW]
        store.release(["eg|1", "eg|2"])  # what the stages give back when a later write fails
        raise RuntimeError("the outbox write failed")
    assert store.claim(["eg|1", "eg|2"], T0, TTL) == [NEW, NEW]


def test_a_finished_unit_keeps_its_claims_counts_and_messages(store: Any) -> None:
    with store.unit():
        assert store.claim(["eg|1"], T0, TTL) == [NEW]
        assert store.hit(FINGERPRINT, 1, occurrences(1), T0, WINDOW) is True
        store.enqueue([message(1)])
    assert store.claim(["eg|1"], T0 + timedelta(minutes=1), TTL) == [DUPLICATE]
    assert [lease.message.id for lease in store.poll("acs-triage-outbox", 32)] == ["message-1"]


def test_units_nest_into_one(store: Any) -> None:
    with store.unit(), store.unit():
        assert store.claim(["eg|1"], T0, TTL) == [NEW]
    assert store.claim(["eg|1"], T0, TTL) == [DUPLICATE]


def test_an_error_inside_a_sqlite_unit_rolls_back_claims_counts_and_messages(
    make_store: Callable[[str], Any],
) -> None:
    store = make_store("sqlite")
    with pytest.raises(RuntimeError), store.unit():
        store.claim(["eg|1"], T0, TTL)
        store.hit(FINGERPRINT, 3, occurrences(3), T0, WINDOW)
        store.enqueue([message(1)])
        raise RuntimeError("killed here")
    assert store.claim(["eg|1"], T0, TTL) == [NEW]
    assert store.hit(FINGERPRINT, 1, occurrences(1), T0, WINDOW) is True  # the group never opened
    assert store.poll("acs-triage-outbox", 32) == []


# -- Azure units: replay-safe claims -------------------------------------------------------------
# Tables and the queue share no transaction: a unit's claims name it and carry a lease, and a
# finished unit writes one completion marker. What another delivery's claim then finds:
LEASE = timedelta(seconds=30)


class Died(Exception):
    """The process was killed here: no completion marker, and nothing given back."""


@pytest.mark.azurite
def test_an_event_claimed_by_a_unit_still_running_is_busy_for_every_other_delivery(
    azure_store: Callable[..., Any],
) -> None:
    first, other = azure_store(claim_lease=LEASE), azure_store(claim_lease=LEASE)
    with first.unit():
        assert first.claim(["eg|1", "eg|2"], T0, TTL) == [NEW, NEW]
        assert other.claim(["eg|1", "eg|3"], T0 + LEASE - timedelta(seconds=1), TTL) == [BUSY, NEW]
        # The same instance on another thread (another request) is not told DUPLICATE either:
        # the unit has not finished, so the event is not known to be counted yet.
        with ThreadPoolExecutor(1) as pool:
            assert pool.submit(first.claim, ["eg|2"], T0, TTL).result() == [BUSY]
    assert other.claim(["eg|1", "eg|2"], T0, TTL) == [DUPLICATE, DUPLICATE]


@pytest.mark.azurite
def test_a_finished_unit_makes_its_events_duplicates_for_good(azure_store: Callable[..., Any]) -> None:
    first = azure_store(claim_lease=LEASE)
    with first.unit():
        assert first.claim(["eg|1"], T0, TTL) == [NEW]
    fresh = azure_store(claim_lease=LEASE)  # another instance: it learns of the unit from its marker
    assert fresh.claim(["eg|1"], T0 + LEASE + timedelta(hours=1), TTL) == [DUPLICATE]
    assert fresh.claim(["eg|1"], T0 + TTL, TTL) == [NEW]  # the TTL still ends it


@pytest.mark.azurite
def test_the_events_of_a_unit_that_died_are_recovered_once_its_lease_has_passed(
    azure_store: Callable[..., Any],
) -> None:
    dying, other = azure_store(claim_lease=LEASE), azure_store(claim_lease=LEASE)
    with pytest.raises(Died), dying.unit():
        assert dying.claim(["eg|1", "eg|2"], T0, TTL) == [NEW, NEW]
        raise Died
    assert other.claim(["eg|1"], T0 + LEASE - timedelta(seconds=1), TTL) == [BUSY]
    with other.unit():
        assert other.claim(["eg|1", "eg|2", "eg|3"], T0 + LEASE, TTL) == [RECOVERED, RECOVERED, NEW]
        # Taken over: the rows are this unit's now, with a lease of their own.
        assert dying.claim(["eg|1"], T0 + LEASE, TTL) == [BUSY]
    assert dying.claim(["eg|1", "eg|2"], T0 + 3 * LEASE, TTL) == [DUPLICATE, DUPLICATE]


@pytest.mark.azurite
def test_keys_claimed_outside_a_unit_or_before_units_existed_stay_duplicates(
    azure_store: Callable[..., Any],
) -> None:
    store = azure_store(claim_lease=LEASE)
    assert store.claim(["report|08:00"], T0, TTL) == [NEW]  # the daily report's claim: no unit
    store._dedup().create_entity(
        {"PartitionKey": _partition("eg|old"), "RowKey": row_key("eg|old"), "expires": T0 + TTL}
    )  # a row as the store wrote it before units: no unit id, no lease
    other = azure_store(claim_lease=LEASE)
    with other.unit():
        assert other.claim(["report|08:00", "eg|old"], T0 + 10 * LEASE, TTL) == [DUPLICATE, DUPLICATE]


@pytest.mark.azurite
def test_completion_markers_are_purged_with_the_keys_of_their_unit(azure_store: Callable[..., Any]) -> None:
    store = azure_store(claim_lease=LEASE)
    with store.unit():
        store.claim(["eg|1"], T0, timedelta(hours=24))
    with store.unit():
        store.claim(["eg|2"], T0, TTL)
    store.purge_expired(T0 + timedelta(hours=25))
    markers = list(store._state().query_entities("PartitionKey eq 'unit'"))
    assert len(markers) == 1
    assert store.claim(["eg|1", "eg|2"], T0 + timedelta(hours=25), TTL) == [NEW, DUPLICATE]


# -- a flush that dies: what it took is handed out again (durable stores) ------------------------
# A flush runs in a unit; a process killed inside it never exits the unit. Raising out of the
# unit without giving anything back is that death as the store sees it: SQLite rolls the unit
# back, Azure leaves the records of what was taken until the claim lease (300 s) has passed.
AFTER_LEASE = timedelta(minutes=6)


def dying_flush(store: Any, take: Callable[[], Any]) -> None:
    with pytest.raises(Died), store.unit():
        take()
        raise Died


@pytest.mark.parametrize("kind", DURABLE_STORE_KINDS)
def test_a_digest_taken_by_a_flush_that_died_is_taken_again_with_its_counts(
    kind: str, make_store: Callable[[str], Any]
) -> None:
    store, other = make_store(kind), make_store(kind)
    store.hit(FINGERPRINT, 1 + 7, occurrences(MAX_SAMPLES + 1), T0, WINDOW)
    dying_flush(store, lambda: store.take_due(T0 + WINDOW))

    with other.unit():
        [held] = other.take_due(T0 + WINDOW + AFTER_LEASE)
    assert held.count == 7
    assert held.samples == [i.ids for i in occurrences(MAX_SAMPLES + 1)[1:]]
    # Its unit exited cleanly: reported, so never handed out again.
    assert [h.count for h in other.take_due(T0 + 3 * WINDOW + AFTER_LEASE)] == []


@pytest.mark.parametrize("kind", DURABLE_STORE_KINDS)
def test_a_resolved_burst_taken_by_a_flush_that_died_is_resolved_again_once(
    kind: str, make_store: Callable[[str], Any]
) -> None:
    store, other = make_store(kind), make_store(kind)
    [only] = occurrences(1)
    store.hit(FINGERPRINT, 1, [only], T0, WINDOW)
    dying_flush(store, lambda: store.take_due(T0 + WINDOW, []))

    resolved: list[Burst] = []
    with other.unit():
        assert other.take_due(T0 + WINDOW + AFTER_LEASE, resolved) == []
    assert resolved == [Burst(FINGERPRINT, 1, T0, T0, only, int(WINDOW.total_seconds()))]
    assert other.take_due(T0 + 2 * WINDOW + AFTER_LEASE, resolved) == [] and len(resolved) == 1


@pytest.mark.parametrize("kind", DURABLE_STORE_KINDS)
def test_a_silence_summary_taken_by_a_flush_that_died_is_taken_again_once(
    kind: str, make_store: Callable[[str], Any]
) -> None:
    store, other = make_store(kind), make_store(kind)
    store.add_silence(silence())
    assert store.count_silenced("s1", 12, occurrences(1)[0], T0 + timedelta(minutes=1))
    ended = T0 + timedelta(hours=4)
    dying_flush(store, lambda: store.take_ended_silences(ended))

    with other.unit():
        [summary] = other.take_ended_silences(ended + AFTER_LEASE)
    assert (summary.id, summary.count) == ("s1", 12)
    assert other.take_ended_silences(ended + 2 * AFTER_LEASE) == []


@pytest.mark.parametrize("kind", DURABLE_STORE_KINDS)
def test_a_digest_given_back_inside_its_flush_is_reported_once(
    kind: str, make_store: Callable[[str], Any]
) -> None:
    store = make_store(kind)
    store.hit(FINGERPRINT, 5, occurrences(5), T0, WINDOW)
    with store.unit():  # its outbox write failed: the stages give the counts back
        [taken] = store.take_due(T0 + WINDOW)
        store.restore(taken, T0 + WINDOW)
    [held] = store.take_due(T0 + WINDOW + AFTER_LEASE)
    assert held.count == 4
    assert store.take_due(T0 + 2 * WINDOW + AFTER_LEASE) == []


# -- a batch's counts at once ------------------------------------------------------------------
@pytest.mark.parametrize("kind", STORE_KINDS)
def test_a_batch_of_hundreds_of_groups_is_counted_at_once_even_on_what_another_instance_changed(
    kind: str, make_store: Callable[[str], Any]
) -> None:
    one, other = make_store(kind), make_store(kind)
    fingerprints = [f"PlayFailed|400|{n}|contoso-acs" for n in range(250)]

    def batch(count: int, start: int) -> list[tuple[str, int, list[Incident]]]:
        return [(f, count, occurrences(min(count, MAX_SAMPLES + 1), start)) for f in fingerprints]

    assert one.hit_many(batch(3, 0), T0, WINDOW) == [True] * 250  # each opens; 2 held each
    # Another instance counts some of them: what `one` knew of those is stale now.
    assert other.hit_many(batch(4, 10)[:100], T0 + timedelta(seconds=1), WINDOW) == [False] * 100
    assert one.hit_many(batch(5, 20), T0 + timedelta(seconds=2), WINDOW) == [False] * 250

    held = {h.fingerprint: h.count for h in other.take_due(T0 + WINDOW + timedelta(seconds=2))}
    assert held == {f: 2 + 5 + (4 if n < 100 else 0) for n, f in enumerate(fingerprints)}


def test_occurrences_restored_as_not_yet_counted_join_the_burst_total(store: Any) -> None:
    [first] = occurrences(1)
    store.hit(FINGERPRINT, 1, [first], T0, WINDOW)
    late = occurrences(3, start=1)
    recovered = Held(FINGERPRINT, 3, T0 + timedelta(minutes=1), T0 + timedelta(minutes=1), late[0],
                     int(WINDOW.total_seconds()), [i.ids for i in late])  # fmt: skip
    store.restore(recovered, T0 + timedelta(minutes=1), counted=False)

    [held] = store.take_due(T0 + timedelta(minutes=1))  # due at once
    assert held.count == 3
    resolved: list[Burst] = []
    store.take_due(T0 + timedelta(minutes=1) + 2 * WINDOW, resolved)
    assert [b.count for b in resolved] == [4]


def test_recovered_occurrences_named_by_their_keys_are_counted_when_no_dead_unit_had_counted_them(
    store: Any,
) -> None:
    # Every store takes the keys of what it restores as not yet counted; a store whose units
    # never die mid-way (memory, SQLite), or keys that were claimed afresh, count them all.
    [first] = occurrences(1)
    store.hit(FINGERPRINT, 1, [first], T0, WINDOW)
    late = occurrences(3, start=1)
    keys = [f"eg|late-{n}" for n in range(3)]
    with store.unit():
        assert store.claim(keys, T0 + timedelta(minutes=1), TTL) == [NEW] * 3
        store.restore(
            held_of(late, T0 + timedelta(minutes=1)), T0 + timedelta(minutes=1), counted=False, keys=keys
        )

    [held] = store.take_due(T0 + timedelta(minutes=1))
    assert held.count == 3
    resolved: list[Burst] = []
    store.take_due(T0 + timedelta(minutes=1) + 2 * WINDOW, resolved)
    assert [b.count for b in resolved] == [4]


def held_of(incidents: list[Incident], at: Any, fingerprint: str = FINGERPRINT) -> Held:
    """`incidents` as Recover hands them to `restore`: held occurrences of one burst, due at once."""
    return Held(fingerprint, len(incidents), at, at, incidents[0], int(WINDOW.total_seconds()),
                [i.ids for i in incidents[:MAX_SAMPLES]])  # fmt: skip


# -- Azure: a recovered unit's events are counted once ---------------------------------------------
# A group row names the units that counted into it, in the same write as their counts; the
# delivery that recovers a dead unit's events leaves out those that unit had counted already.
def die_after_counting(store: Any, keys: list[str], incidents: list[Incident], at: Any) -> None:
    with pytest.raises(Died), store.unit():
        assert store.claim(keys, at, TTL) == [NEW] * len(keys)
        store.hit_many([(FINGERPRINT, len(incidents), incidents)], at, WINDOW)
        raise Died  # killed before its alerts were written and its unit finished


def recover(store: Any, keys: list[str], incidents: list[Incident], at: Any) -> None:
    """What the pipeline's Recover stage does with a redelivery of `keys`."""
    with store.unit():
        assert store.claim(keys, at, TTL) == [RECOVERED] * len(keys)
        store.restore(held_of(incidents, at), at, counted=False, keys=keys)


@pytest.mark.azurite
def test_events_a_dead_unit_had_counted_into_a_burst_are_not_counted_again_when_recovered(
    azure_store: Callable[..., Any],
) -> None:
    dying, other = azure_store(claim_lease=LEASE), azure_store(claim_lease=LEASE)
    dying.hit(FINGERPRINT, 2, occurrences(2), T0, WINDOW)  # open: one alerted, one held
    keys = [f"eg|{n}" for n in range(5)]
    die_after_counting(dying, keys, occurrences(5, start=2), T0 + timedelta(seconds=1))

    recover(other, keys, occurrences(5, start=2), T0 + LEASE + timedelta(seconds=1))

    [held] = other.take_due(T0 + WINDOW)
    assert held.count == 1 + 5  # the dead unit's count, once
    resolved: list[Burst] = []
    other.take_due(T0 + 2 * WINDOW, resolved)
    assert [b.count for b in resolved] == [2 + 5]


@pytest.mark.azurite
def test_a_burst_a_dead_unit_opened_reports_its_first_event_once_more_in_the_digest(
    azure_store: Callable[..., Any],
) -> None:
    # The dead unit's first alert may or may not have been written: the digest reports that
    # event (the one event that may be counted twice); the burst's total counts it once.
    dying, other = azure_store(claim_lease=LEASE), azure_store(claim_lease=LEASE)
    keys = [f"eg|{n}" for n in range(4)]
    die_after_counting(dying, keys[:2], occurrences(2), T0)
    die_after_counting(azure_store(claim_lease=LEASE), keys[2:], occurrences(2, start=2), T0)

    later = T0 + LEASE + timedelta(seconds=1)
    recover(other, keys[:1], occurrences(1), later)  # Event Grid split the batch: in two
    recover(other, keys[1:], occurrences(3, start=1), later)

    [held] = other.take_due(T0 + WINDOW)
    assert held.count == 1 + 2 + 1  # the opener's held one, the second unit's two, the opener
    resolved: list[Burst] = []
    other.take_due(T0 + 2 * WINDOW, resolved)
    assert [b.count for b in resolved] == [4]


@pytest.mark.azurite
def test_events_of_a_unit_that_died_before_counting_them_are_counted_when_recovered(
    azure_store: Callable[..., Any],
) -> None:
    dying, other = azure_store(claim_lease=LEASE), azure_store(claim_lease=LEASE)
    dying.hit(FINGERPRINT, 1, occurrences(1), T0, WINDOW)
    keys = [f"eg|{n}" for n in range(3)]
    with pytest.raises(Died), dying.unit():
        dying.claim(keys, T0, TTL)
        raise Died  # before its counts

    recover(other, keys, occurrences(3, start=1), T0 + LEASE)

    [held] = other.take_due(T0 + WINDOW)
    assert held.count == 3
    resolved: list[Burst] = []
    other.take_due(T0 + 2 * WINDOW, resolved)
    assert [b.count for b in resolved] == [4]


@pytest.mark.azurite
def test_a_recovering_unit_that_dies_too_is_recovered_without_counting_twice(
    azure_store: Callable[..., Any],
) -> None:
    first, second, third = (azure_store(claim_lease=LEASE) for _ in range(3))
    first.hit(FINGERPRINT, 1, occurrences(1), T0, WINDOW)
    keys = [f"eg|{n}" for n in range(3)]
    with pytest.raises(Died), first.unit():
        first.claim(keys, T0, TTL)
        raise Died  # before its counts: the next delivery counts them
    with pytest.raises(Died), second.unit():
        assert second.claim([*keys, "eg|new"], T0 + LEASE, TTL) == [RECOVERED] * 3 + [NEW]
        second.restore(held_of(occurrences(3, start=1), T0 + LEASE), T0 + LEASE, counted=False, keys=keys)
        raise Died  # after its restore, before the hit of its new event

    later = T0 + 2 * LEASE + timedelta(seconds=1)
    with third.unit():
        assert third.claim([*keys, "eg|new"], later, TTL) == [RECOVERED] * 4
        third.restore(held_of(occurrences(4, start=1), later), later, counted=False, keys=[*keys, "eg|new"])

    [held] = third.take_due(T0 + WINDOW)
    assert held.count == 3 + 1  # the second unit's restore, and its new event (never counted)
    resolved: list[Burst] = []
    third.take_due(T0 + 2 * WINDOW, resolved)
    assert [b.count for b in resolved] == [1 + 3 + 1]


@pytest.mark.azurite
def test_a_dead_units_counts_that_a_flush_reported_and_closed_are_not_counted_again(
    azure_store: Callable[..., Any],
) -> None:
    dying, other = azure_store(claim_lease=LEASE), azure_store(claim_lease=LEASE)
    dying.hit(FINGERPRINT, 1, occurrences(1), T0, WINDOW)
    keys = [f"eg|{n}" for n in range(3)]
    die_after_counting(dying, keys, occurrences(3, start=1), T0 + timedelta(seconds=1))
    [held] = other.take_due(T0 + WINDOW)  # the digest reports the dead unit's three
    assert held.count == 3
    resolved: list[Burst] = []
    assert other.take_due(T0 + 2 * WINDOW, resolved) == []  # quiet: closed, resolved with all four
    assert [b.count for b in resolved] == [4]

    recover(other, keys, occurrences(3, start=1), T0 + 2 * WINDOW + timedelta(seconds=1))

    assert other.take_due(T0 + 4 * WINDOW, resolved) == [] and len(resolved) == 1
    # The closed burst kept only for that is no group to anyone: the next occurrence alerts.
    assert other.hit(FINGERPRINT, 1, occurrences(1, start=9), T0 + 4 * WINDOW, WINDOW) is True
    other.take_due(T0 + 6 * WINDOW, resolved)
    assert [b.count for b in resolved] == [4, 1]


@pytest.mark.azurite
def test_a_closed_groups_record_of_the_units_that_counted_into_it_is_purged_once_it_ages_out(
    azure_store: Callable[..., Any],
) -> None:
    dying, other = azure_store(claim_lease=LEASE), azure_store(claim_lease=LEASE)
    die_after_counting(dying, ["eg|1"], occurrences(1), T0)
    other.take_due(T0 + WINDOW, [])  # closed, kept for the dead unit's sake

    def rows() -> list[Any]:
        return list(other._state().query_entities("PartitionKey eq 'group'"))

    assert [bool(r.get("closed")) for r in rows()] == [True]
    other.purge_expired(T0 + LEASE + timedelta(minutes=59))
    assert len(rows()) == 1
    other.purge_expired(T0 + LEASE + timedelta(hours=1, seconds=1))
    assert rows() == []


@pytest.mark.azurite
def test_events_a_dead_unit_alerted_one_by_one_are_held_for_a_digest_but_not_totalled_again(
    azure_store: Callable[..., Any],
) -> None:
    dying, other = azure_store(claim_lease=LEASE), azure_store(claim_lease=LEASE)
    keys = ["eg|1", "eg|2"]
    with pytest.raises(Died), dying.unit():
        dying.claim(keys, T0, TTL)
        dying.alerted(FINGERPRINT, 2, occurrences(1)[0], T0, WINDOW)  # grouping off
        raise Died  # its alerts may or may not have been written

    recover(other, keys, occurrences(2), T0 + LEASE)

    [held] = other.take_due(T0 + LEASE)
    assert held.count == 2
    resolved: list[Burst] = []
    other.take_due(T0 + 3 * WINDOW, resolved)
    assert [b.count for b in resolved] == [2]


@pytest.mark.azurite
def test_a_group_names_only_units_not_known_to_have_finished(azure_store: Callable[..., Any]) -> None:
    store = azure_store(claim_lease=LEASE)
    for n in range(3):
        with store.unit():
            store.claim([f"eg|{n}"], T0, TTL)
            store.hit(FINGERPRINT, 1, occurrences(1, start=n), T0 + timedelta(seconds=n), WINDOW)
    [group] = store._state().query_entities("PartitionKey eq 'group'")
    # Each write drops the units that finished here: the last unit's own entry stays.
    assert len(orjson.loads(group["applied"])) == 1


def test_hourly_counts_of_recovered_events_named_by_their_keys_all_count_when_no_dead_unit_had(
    store: Any,
) -> None:
    hour = hour_of(T0)
    with store.unit():
        assert store.claim(["eg|1", "eg|2"], T0, TTL) == [NEW, NEW]
        store.add_hourly(T0, {FINGERPRINT: 3}, {FINGERPRINT: ["eg|1", "eg|2"]})
    assert store.hourly(hour, hour + timedelta(hours=1)) == [(hour, FINGERPRINT, 3)]


@pytest.mark.azurite
def test_hourly_counts_a_dead_unit_had_written_are_not_counted_again_when_recovered_in_that_hour(
    azure_store: Callable[..., Any],
) -> None:
    dying, other = azure_store(claim_lease=LEASE), azure_store(claim_lease=LEASE)
    hour = hour_of(T0)
    with pytest.raises(Died), dying.unit():
        dying.claim(["eg|1", "eg|2"], T0, TTL)
        dying.add_hourly(T0, {FINGERPRINT: 2})
        raise Died
    with pytest.raises(Died), other.unit():  # one recovers them and dies before counting
        assert other.claim(["eg|1", "eg|2"], T0 + LEASE, TTL) == [RECOVERED, RECOVERED]
        raise Died
    with other.unit():
        later = T0 + 2 * LEASE + timedelta(seconds=1)
        assert other.claim(["eg|1", "eg|2", "eg|3"], later, TTL) == [RECOVERED, RECOVERED, NEW]
        other.add_hourly(later, {FINGERPRINT: 3}, {FINGERPRINT: ["eg|1", "eg|2"]})
    assert other.hourly(hour, hour + timedelta(hours=1)) == [(hour, FINGERPRINT, 3)]


def test_silenced_recovered_events_named_by_their_keys_all_count_when_no_dead_unit_had(store: Any) -> None:
    store.add_silence(silence())
    with store.unit():
        assert store.claim(["eg|1", "eg|2"], T0, TTL) == [NEW, NEW]
        assert store.count_silenced("s1", 2, occurrences(1)[0], T0, ["eg|1", "eg|2"])
    [summary] = store.take_ended_silences(T0 + timedelta(hours=4))
    assert summary.count == 2


@pytest.mark.azurite
def test_silenced_events_a_dead_unit_had_counted_are_not_counted_again_when_recovered(
    azure_store: Callable[..., Any],
) -> None:
    dying, other = azure_store(claim_lease=LEASE), azure_store(claim_lease=LEASE)
    dying.add_silence(silence())
    with pytest.raises(Died), dying.unit():
        dying.claim(["eg|1", "eg|2"], T0, TTL)
        assert dying.count_silenced("s1", 2, occurrences(1)[0], T0)
        raise Died
    with other.unit():
        assert other.claim(["eg|1", "eg|2", "eg|3"], T0 + LEASE, TTL) == [RECOVERED, RECOVERED, NEW]
        assert other.count_silenced("s1", 3, occurrences(1)[0], T0 + LEASE, ["eg|1", "eg|2"])
    [summary] = other.take_ended_silences(T0 + timedelta(hours=4))
    assert summary.count == 3
