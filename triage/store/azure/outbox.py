"""The outbox on a Storage queue and what delivery keeps in the tables: enqueue (its messages
side by side), poll (`QueueLease`), the poison queue (dead letters, status, re-drive), deferred
messages, posts marked sent, and each destination's send slot and hold (Retry-After).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from datetime import UTC, datetime

import orjson
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode
from azure.storage.queue import QueueMessage

from ...errors import TriageError
from .. import (
    SENT_TTL,
    Backlog,
    EnqueueFailed,
    OutboxMessage,
    Poisoned,
    RedriveFilter,
    backlog,
)
from ._core import (
    _ATTEMPTS,
    _SENT,
    _SLOTS,
    AzureCore,
    StoreContention,
    _backoff,
    _utc,
    log,
    row_key,
)

MAX_QUEUE_MESSAGE_BYTES = 64 * 1024  # what a Storage queue message may hold, as sent (base64 text)
_VISIBILITY_MAX = 7 * 24 * 3600  # seconds a queue message may be hidden
_POISON_READ_MAX = 5000  # poison messages one status or re-drive reads (the rest: the next run)


class OutboxMessageTooLarge(TriageError):
    """A rendered payload does not fit in a Storage queue message (64 KB once base64-encoded)."""


class AzureOutbox(AzureCore):
    """The outbox queue, its poison queue, sent marks and send slots."""

    # -- pacing --------------------------------------------------------------------------------
    def reserve_send(self, destination: str, interval: float, now: float) -> float:
        return self.reserve_send_within(destination, interval, now, math.inf)[1]

    def reserve_send_within(
        self, destination: str, interval: float, now: float, most: float
    ) -> tuple[bool, float]:
        """One read, and a write (ETag-conditional, retried) only when the slot is taken."""
        if not interval:
            wait = self.send_wait(destination, now)  # nothing to book: one read, no write
            return wait <= most, wait
        table = self._state()
        rk = row_key(destination)
        for attempt in range(_ATTEMPTS):
            entity = self._get(table, _SLOTS, rk)
            if entity is None:
                try:
                    table.create_entity({"PartitionKey": _SLOTS, "RowKey": rk, "next": float(now + interval)})
                    return True, 0.0
                except ResourceExistsError:
                    continue
            slot = max(now, float(entity["next"]))
            if slot - now > most:
                return False, slot - now
            entity["next"] = float(slot + interval)
            try:
                table.update_entity(entity, mode=UpdateMode.REPLACE, **self._if_match(entity))
                return True, slot - now
            except (ResourceModifiedError, ResourceNotFoundError):
                _backoff(attempt)
        raise StoreContention(f"send slot of {destination!r} kept changing; try again")

    def send_wait(self, destination: str, now: float) -> float:
        entity = self._get(self._state(), _SLOTS, row_key(destination))
        return 0.0 if entity is None else max(0.0, float(entity["next"]) - now)

    def hold_send(self, destination: str, until: float) -> None:
        """The slot entity's `next` raised to `until` (ETag-conditional, retried)."""
        table = self._state()
        rk = row_key(destination)
        for attempt in range(_ATTEMPTS):
            entity = self._get(table, _SLOTS, rk)
            try:
                if entity is None:
                    table.create_entity({"PartitionKey": _SLOTS, "RowKey": rk, "next": float(until)})
                elif float(entity["next"]) < until:
                    entity["next"] = float(until)
                    table.update_entity(entity, mode=UpdateMode.REPLACE, **self._if_match(entity))
                return
            except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
                _backoff(attempt)
        raise StoreContention(f"send slot of {destination!r} kept changing; try again")

    # -- outbox --------------------------------------------------------------------------------
    def enqueue(self, messages: Sequence[OutboxMessage]) -> None:
        """One queue message per OutboxMessage: its JSON, base64-encoded (host.json messageEncoding),
        sent side by side; EnqueueFailed names those written when some were not."""
        bodies = [_queue_body(m) for m in messages]  # every one checked before any is sent
        if not bodies:
            return
        queue = self._queue(self.queue_name)

        def send(body: str) -> Exception | None:
            try:
                queue.send_message(body)
                return None
            except Exception as err:
                return err

        # One request per message (a queue takes no batches): side by side on the pool.
        errors = self._map(send, bodies)
        failed = [err for err in errors if err is not None]
        if failed:
            written = {m.id for m, err in zip(messages, errors, strict=True) if err is None}
            raise EnqueueFailed(written, len(messages)) from failed[0]

    def dead_letter(self, message: OutboxMessage, reason: str) -> None:
        """Send the message to `<queue_name>-poison`, encoded as the outbox (and the host's
        poison queue) holds it, plus a `refused` field with the reason: what the host moves
        there after maxDequeueCount is the bare outbox message, so the field alone tells a
        refused payload apart. The queue message itself is the caller's to settle."""
        self._queue(self.poison_queue_name).send_message(_queue_body(message, refused=reason or "refused"))
        log.warning(
            "outbox message %s for destination %r moved to the poison queue: %s",
            message.id, message.destination, reason,
        )  # fmt: skip

    def poll(self, queue_name: str, max_messages: int) -> list[QueueLease]:
        """Receive up to max_messages outbox messages, each hidden for `visibility_timeout`
        seconds until settled. `queue_name` is the name the trigger binds; the store reads the
        outbox it writes to (as MemoryStore does), whatever ACS_TRIAGE_OUTBOX_QUEUE names it."""
        queue = self._queue(self.queue_name)
        count = max(1, min(max_messages, 32))
        received = queue.receive_messages(
            messages_per_page=count, max_messages=count, visibility_timeout=self.visibility_timeout
        )
        return [QueueLease(self, message) for message in received]

    def poisoned(self, max_messages: int = 32) -> list[OutboxMessage]:
        """A look at what is in the poison queue (up to 32), without taking it."""
        peeked = self._queue(self.poison_queue_name).peek_messages(max_messages=min(max_messages, 32))
        return [OutboxMessage.from_dict(orjson.loads(str(m.content))) for m in peeked]

    def outbox_status(self, now: float) -> list[Backlog]:
        """Poison depth per destination (read through, then made visible again); the outbox
        only as a whole (destination "*"): counting it per destination would mean taking its
        messages from under the queue trigger."""
        outbox = self._queue(self.queue_name)
        depth = int(outbox.get_queue_properties().approximate_message_count or 0)
        first = list(outbox.peek_messages(max_messages=1))
        oldest = now - first[0].inserted_on.timestamp() if first and first[0].inserted_on else None
        held = self._take_poison(visibility_timeout=10)
        try:
            rows = backlog((), (record for _, record in held), now)
        finally:
            self._release_poison([message for message, _ in held])
        return [Backlog("*", depth, oldest, 0, 0, None), *rows]

    def redrive(self, now: float, which: RedriveFilter) -> int:
        """Read the whole poison queue (each message hidden meanwhile, so two instances never
        both take one), send what `which` takes to the outbox oldest first, and make the rest
        visible again."""
        held = self._take_poison(visibility_timeout=max(60, self.visibility_timeout))
        taken = sorted(((m, r) for m, r in held if which.takes(r, now)), key=lambda item: item[1].poisoned_at)
        taken = taken[: which.limit]
        outbox, poison = self._queue(self.queue_name), self._queue(self.poison_queue_name)
        moved = 0
        try:
            for message, record in taken:
                outbox.send_message(_queue_body(record.message))
                poison.delete_message(message.id, message.pop_receipt)
                moved += 1
        finally:
            chosen = {id(message) for message, _ in taken}
            self._release_poison([m for m, _ in held if id(m) not in chosen])
        return moved

    def oldest_poisoned(self, now: float) -> float | None:
        """The age of the poison queue's front message (a queue hands out roughly in order)."""
        first = list(self._queue(self.poison_queue_name).peek_messages(max_messages=1))
        if not first:
            return None
        inserted = first[0].inserted_on
        return max(0.0, now - inserted.timestamp()) if inserted else 0.0

    def defer(self, message: OutboxMessage, delay: float) -> None:
        """A new queue message, invisible for `delay` seconds (whole seconds, up to the 7 days
        a queue message may be hidden)."""
        hidden = min(_VISIBILITY_MAX, max(0, math.ceil(delay)))
        self._queue(self.queue_name).send_message(_queue_body(message), visibility_timeout=hidden)

    def mark_sent(self, message_id: str, now: float) -> None:
        """One row in the dedup table's `sent` partition, with an expiry as the event keys have
        (so the same purge removes it). No event key's partition is named so."""
        row = {
            "PartitionKey": _SENT,
            "RowKey": row_key(message_id),
            "expires": datetime.fromtimestamp(now + SENT_TTL, UTC),
        }
        self._dedup().upsert_entity(row, mode=UpdateMode.REPLACE)

    def was_sent(self, message_id: str, now: float) -> bool:
        entity = self._get(self._dedup(), _SENT, row_key(message_id))
        return entity is not None and _utc(entity["expires"]).timestamp() > now

    def _take_poison(self, visibility_timeout: int) -> list[tuple[QueueMessage, Poisoned]]:
        """Every message of the poison queue, hidden for `visibility_timeout` seconds, with its
        record. The host writes the outbox message as it was; dead_letter adds `refused`."""
        poison = self._queue(self.poison_queue_name)
        held: dict[str, tuple[QueueMessage, Poisoned]] = {}  # by id: a message seen twice is kept once
        unreadable: list[QueueMessage] = []
        while len(held) < _POISON_READ_MAX:
            page = list(poison.receive_messages(max_messages=32, visibility_timeout=visibility_timeout))
            if not page:
                break
            for message in page:
                try:
                    doc = orjson.loads(str(message.content))
                    record = Poisoned(
                        OutboxMessage.from_dict(doc),
                        message.inserted_on.timestamp() if message.inserted_on else 0.0,
                        str(doc.get("refused") or ""),
                    )
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
                    unreadable.append(message)  # not ours to judge: left where it is
                    continue
                held[str(message.id)] = (message, record)
        self._release_poison(unreadable)
        return list(held.values())

    def _release_poison(self, messages: Sequence[QueueMessage]) -> None:
        poison = self._queue(self.poison_queue_name)
        for message in messages:
            with contextlib.suppress(ResourceNotFoundError):
                poison.update_message(message.id, message.pop_receipt, visibility_timeout=0)

    def _settle(self, message: QueueMessage, ok: bool, poison: bool) -> None:
        queue = self._queue(self.queue_name)
        try:
            if ok:
                queue.delete_message(message.id, message.pop_receipt)
            elif poison:
                self._queue(self.poison_queue_name).send_message(message.content)
                queue.delete_message(message.id, message.pop_receipt)
            else:
                queue.update_message(message.id, message.pop_receipt, visibility_timeout=self.retry_delay)
        except ResourceNotFoundError:
            # The lease ran out and another worker holds the message now: it settles it.
            log.warning("outbox message %s was no longer leased to this worker", message.id)


class QueueLease:
    """An outbox message received from the queue: `done()` deletes it; `fail()` makes it
    visible again after the store's retry_delay; `fail(poison=True)` moves it to the
    poison queue, as the host does after maxDequeueCount."""

    __slots__ = ("_message", "_store")

    def __init__(self, store: AzureOutbox, message: QueueMessage) -> None:
        self._store = store
        self._message = message

    @property
    def id(self) -> str:
        return str(self._message.id)

    @property
    def body(self) -> bytes:
        return str(self._message.content).encode()

    @property
    def dequeue_count(self) -> int:
        return int(self._message.dequeue_count or 1)

    @property
    def message(self) -> OutboxMessage:
        return OutboxMessage.decode(self.body)

    def done(self) -> None:
        self._store._settle(self._message, ok=True, poison=False)

    def fail(self, poison: bool = False) -> None:
        self._store._settle(self._message, ok=False, poison=poison)


def _base64_size(text: str) -> int:
    return 4 * -(-len(text.encode()) // 3)


def _queue_body(message: OutboxMessage, refused: str = "") -> str:
    """The message as queue text (JSON; the client base64-encodes it), if it fits in one;
    with `refused`, as a refused payload's poison record."""
    doc = message.to_dict()
    if refused:
        doc["refused"] = refused[:500]
    body = orjson.dumps(doc).decode()
    size = _base64_size(body)
    if size > MAX_QUEUE_MESSAGE_BYTES:
        raise OutboxMessageTooLarge(
            f"the alert for destination {message.destination!r} is {size:,} bytes once "
            f"base64-encoded; a Storage queue message holds at most {MAX_QUEUE_MESSAGE_BYTES:,}. "
            "The renderer must keep payloads smaller (Teams accepts 28 KB)."
        )
    return body
