"""The poison queue is not a dead end: `outbox_status` shows what waits, `redrive` sends it
again, oldest first. One contract over every store (memory, SQLite, Azure on Azurite).

Poisoned here as the Functions host poisons: a message that failed maxDequeueCount times moves
as it is (on Azure the host writes the original body to `<outbox>-poison`); a refused payload
is dead-lettered at once and marked refused, so that only a person re-drives it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import pytest
from azurite_server import DURABLE_STORE_KINDS, STORE_KINDS, poisoned

from tools.localhost import MAX_DEQUEUE_COUNT
from triage.store import Backlog, OutboxMessage, RedriveFilter

QUEUE = "acs-triage-outbox"
HOUR = 3600.0
AUTOMATIC = RedriveFilter(younger_than=24 * HOUR)


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, make_store: Callable[[str], Any]) -> Any:
    return make_store(request.param)


def message(n: int, destination: str = "slack") -> OutboxMessage:
    return OutboxMessage(id=f"message-{n}", destination=destination, payload={"text": f"alert {n}"})


def poison_after_retries(store: Any, *messages: OutboxMessage) -> None:
    """Each message fails maxDequeueCount times and is moved to the poison queue, as the host does."""
    for item in messages:
        store.enqueue([item])
        for attempt in range(1, MAX_DEQUEUE_COUNT + 1):
            [lease] = store.poll(QUEUE, 32)
            lease.fail(poison=attempt == MAX_DEQUEUE_COUNT)


def polled(store: Any) -> list[tuple[OutboxMessage, int]]:
    leases = store.poll(QUEUE, 32)
    for lease in leases:
        lease.done()
    return [(OutboxMessage.from_dict(orjson.loads(lease.body)), lease.dequeue_count) for lease in leases]


def test_redrive_puts_poisoned_messages_back_in_the_outbox_oldest_first_with_fresh_retries(
    store: Any,
) -> None:
    poison_after_retries(store, message(1), message(2), message(3, "teams"))
    assert store.redrive(time.time(), RedriveFilter()) == 3
    assert poisoned(store) == []
    assert polled(store) == [(message(1), 1), (message(2), 1), (message(3, "teams"), 1)]


def test_the_automatic_redrive_leaves_refused_payloads_and_messages_older_than_its_age(store: Any) -> None:
    poison_after_retries(store, message(1))
    store.dead_letter(message(2), "slack: rejected with 400 (invalid_payload)")
    now = time.time()
    assert store.redrive(now + 25 * HOUR, AUTOMATIC) == 0  # poisoned more than 24 h ago: left
    assert store.redrive(now + 1 * HOUR, AUTOMATIC) == 1
    assert polled(store) == [(message(1), 1)]
    assert poisoned(store) == [message(2)]  # refused: a person decides


def test_a_refused_payload_is_redriven_only_when_asked_for_and_comes_back_as_it_was(store: Any) -> None:
    store.dead_letter(message(2), "slack: rejected with 400 (invalid_payload)")
    assert store.redrive(time.time(), RedriveFilter()) == 0
    assert store.redrive(time.time(), RedriveFilter(refused=True)) == 1
    leases = store.poll(QUEUE, 32)
    assert [orjson.loads(lease.body) for lease in leases] == [message(2).to_dict()]  # no refusal mark


def test_redrive_takes_one_destination_or_only_what_is_older_than_asked(store: Any) -> None:
    poison_after_retries(store, message(1), message(2, "teams"))
    now = time.time()
    assert store.redrive(now, RedriveFilter(destination="teams")) == 1
    assert polled(store) == [(message(2, "teams"), 1)]
    assert store.redrive(now, RedriveFilter(older_than=HOUR)) == 0  # poisoned just now
    assert store.redrive(now + 2 * HOUR, RedriveFilter(older_than=HOUR)) == 1
    assert polled(store) == [(message(1), 1)]


def test_outbox_status_shows_queued_and_poisoned_per_destination_with_the_oldest_age(store: Any) -> None:
    poison_after_retries(store, message(1))
    store.dead_letter(message(2), "slack: rejected with 413")
    store.enqueue([message(3), message(4, "teams"), message(5, "teams")])
    rows = {row.destination: row for row in store.outbox_status(time.time() + HOUR)}
    slack = rows["slack"]
    assert (slack.poisoned, slack.refused) == (2, 1)
    assert slack.oldest_poisoned is not None and HOUR <= slack.oldest_poisoned < HOUR + 120
    if "*" in rows:  # Azure: the outbox is counted only as a whole
        assert rows["*"].queued == 3 and rows["*"].oldest_queued is not None
        assert rows["*"].oldest_queued >= HOUR
    else:
        assert (slack.queued, rows["teams"].queued) == (1, 2)
        assert rows["teams"].oldest_queued is not None and rows["teams"].oldest_queued >= HOUR
        assert rows["teams"] == Backlog("teams", 2, rows["teams"].oldest_queued, 0, 0, None)
    assert len(polled(store)) == 3  # looking changed nothing
    assert sorted(m.id for m in poisoned(store)) == ["message-1", "message-2"]


@pytest.mark.parametrize("kind", DURABLE_STORE_KINDS)
def test_two_instances_redriving_at_once_move_each_message_once(
    kind: str, make_store: Callable[[str], Any]
) -> None:
    first, second = make_store(kind), make_store(kind)
    poison_after_retries(first, *(message(n) for n in range(6)))
    now = time.time()
    with ThreadPoolExecutor(2) as pool:
        moved = list(pool.map(lambda instance: instance.redrive(now, RedriveFilter()), (first, second)))
    assert sum(moved) == 6
    assert sorted(m.id for m, _ in polled(first)) == [f"message-{n}" for n in range(6)]
