"""The embedded store: everything in this process, under one lock. For replay, serve and
single-instance use; state is lost on exit (use sqlite:PATH or azure to keep it)."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta

import orjson

from ..model import Incident
from . import MAX_SAMPLES, Held, OutboxMessage, merge_held

__all__ = ["Lease", "MemoryStore"]

log = logging.getLogger("triage.store")


class _Group:
    __slots__ = ("held", "opened", "window_seconds")

    def __init__(self, opened: datetime, window_seconds: int) -> None:
        self.opened = opened
        self.window_seconds = window_seconds
        self.held: Held | None = None


class MemoryStore:
    """In-process Store. `outbox` is a deque the local deliverer drains."""

    def __init__(self) -> None:
        self._lock = threading.RLock()  # re-entrant: a unit holds it around the calls inside
        self._seen: dict[str, datetime] = {}
        self._groups: dict[str, _Group] = {}
        self._slots: dict[str, float] = {}
        self.outbox: deque[OutboxMessage] = deque()
        self.poison: list[OutboxMessage] = []
        self._dequeues: dict[str, int] = {}

    @contextmanager
    def unit(self) -> Iterator[None]:
        """The calls inside as one unit: the store's lock, held throughout. Nothing of this
        store outlives a crash, so there is nothing more to make atomic."""
        with self._lock:
            yield

    def claim(self, keys: Sequence[str], now: datetime, ttl: timedelta) -> list[bool]:
        expires = now + ttl
        out: list[bool] = []
        with self._lock:
            seen = self._seen
            for key in keys:
                until = seen.get(key)
                if until is not None and until > now:
                    out.append(False)
                else:
                    seen[key] = expires
                    out.append(True)
            if len(seen) > 100_000:  # keep memory bounded: drop what has expired
                for key in [k for k, t in seen.items() if t <= now]:
                    del seen[key]
        return out

    def release(self, keys: Sequence[str]) -> None:
        with self._lock:
            for key in keys:
                self._seen.pop(key, None)

    def hit(
        self,
        fingerprint: str,
        count: int,
        first: Sequence[Incident],
        now: datetime,
        window: timedelta,
    ) -> bool:
        with self._lock:
            group = self._groups.get(fingerprint)
            opened = group is None
            if group is None:
                group = self._groups[fingerprint] = _Group(now, int(window.total_seconds()))
                count -= 1  # the first occurrence alerts now
                first = first[1:]
            if count > 0 and first:
                held = group.held
                if held is None:
                    group.held = Held(
                        fingerprint, count, now, now, first[0], group.window_seconds,
                        [i.ids for i in first[:MAX_SAMPLES]],
                    )  # fmt: skip
                else:
                    held.count += count
                    held.last_seen = now
                    room = MAX_SAMPLES - len(held.samples)
                    if room > 0:
                        held.samples.extend(i.ids for i in first[:room])
            return opened

    def take_due(self, now: datetime) -> list[Held]:
        due: list[Held] = []
        with self._lock:
            for fingerprint, group in list(self._groups.items()):
                if now < group.opened + timedelta(seconds=group.window_seconds):
                    continue
                if group.held is None:
                    del self._groups[fingerprint]  # quiet for a whole window: next one alerts at once
                else:
                    due.append(group.held)
                    group.held = None
                    group.opened = now  # still busy: the next digest comes a window later
        return due

    def restore(self, held: Held, now: datetime) -> None:
        if held.count <= 0:
            return
        with self._lock:
            group = self._groups.get(held.fingerprint)
            if group is None:  # closed meanwhile: open it again
                group = self._groups[held.fingerprint] = _Group(now, held.window_seconds)
            # Due again by now, as before take_due: the next flush reports it at once.
            group.opened = min(group.opened, now - timedelta(seconds=group.window_seconds))
            group.held = merge_held(held, group.held, group.window_seconds)

    def enqueue(self, messages: Sequence[OutboxMessage]) -> None:
        with self._lock:
            self.outbox.extend(messages)

    def dead_letter(self, message: OutboxMessage, reason: str) -> None:
        with self._lock:
            self.poison.append(message)
        log.warning(
            "outbox message %s for destination %r moved to the poison queue: %s",
            message.id, message.destination, reason,
        )  # fmt: skip

    def poisoned(self) -> list[OutboxMessage]:
        """The messages moved to the poison list, oldest first."""
        with self._lock:
            return list(self.poison)

    def close(self) -> None:
        """Nothing to release (for symmetry with the durable stores)."""

    def reserve_send(self, destination: str, interval: float, now: float) -> float:
        with self._lock:
            slot = max(now, self._slots.get(destination, 0.0))
            self._slots[destination] = slot + interval
            return slot - now

    def poll(self, queue_name: str, max_messages: int) -> list[Lease]:
        """Take up to max_messages from the outbox, each as a Lease to settle."""
        leases: list[Lease] = []
        with self._lock:
            while self.outbox and len(leases) < max_messages:
                message = self.outbox.popleft()
                count = self._dequeues[message.id] = self._dequeues.get(message.id, 0) + 1
                leases.append(Lease(self, message, count))
        return leases

    def _settle(self, lease: Lease, ok: bool, poison: bool) -> None:
        with self._lock:
            if ok or poison:
                self._dequeues.pop(lease.message.id, None)
            if poison:
                self.poison.append(lease.message)
            elif not ok:
                self.outbox.append(lease.message)


class Lease:
    """A message taken from the outbox: `done()` removes it, `fail()` puts it back
    (or, with poison=True, moves it to the poison list)."""

    __slots__ = ("dequeue_count", "message", "store")

    def __init__(self, store: MemoryStore, message: OutboxMessage, dequeue_count: int) -> None:
        self.store = store
        self.message = message
        self.dequeue_count = dequeue_count

    @property
    def id(self) -> str:
        return self.message.id

    @property
    def body(self) -> bytes:
        return orjson.dumps(self.message.to_dict())

    def done(self) -> None:
        self.store._settle(self, ok=True, poison=False)

    def fail(self, poison: bool = False) -> None:
        self.store._settle(self, ok=False, poison=poison)
