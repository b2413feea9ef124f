"""The embedded store: everything in this process, under one lock. For replay, serve and
single-instance use; state is lost on exit (use sqlite:PATH or azure to keep it)."""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta

import orjson
from msgspec import Struct
from msgspec.structs import replace

from ..model import Incident
from . import (
    MAX_SAMPLES,
    SENT_TTL,
    Backlog,
    Burst,
    Claim,
    Held,
    OutboxMessage,
    Poisoned,
    RedriveFilter,
    SilenceRule,
    backlog,
    hit_each,
    hour_of,
    merge_held,
    sample_ids,
)

__all__ = ["Lease", "MemoryStore"]

log = logging.getLogger("triage.store")
_SENT_KEPT = 100_000  # posted ids kept before expired ones are dropped


class _Group:
    __slots__ = ("example", "held", "latest", "opened", "started", "total", "window_seconds")

    def __init__(self, opened: datetime, window_seconds: int, example: Incident, total: int) -> None:
        self.opened = opened
        self.window_seconds = window_seconds
        self.held: Held | None = None
        # The burst as a whole, for its resolved notice: every occurrence, first and last seen.
        self.example = example
        self.total = total
        self.started = self.latest = opened

    def burst(self, fingerprint: str) -> Burst:
        return Burst(fingerprint, self.total, self.started, self.latest, self.example, self.window_seconds)


class _Queued(Struct, frozen=True):
    """An outbox message as the queue holds it: its payload as JSON text (as the durable stores
    keep it). Rendered payloads come as JSON text already and are kept as they are; a payload
    given as a tree of dicts is written out once, so that no backlog is a tree of small objects
    for the garbage collector to walk."""

    message: OutboxMessage  # its payload an orjson.Fragment
    at: float  # when it was queued (seconds since the epoch); a retry keeps it

    @classmethod
    def of(cls, message: OutboxMessage, at: float) -> _Queued:
        if isinstance(message.payload, dict):
            message = replace(message, payload=orjson.Fragment(orjson.dumps(message.payload)))
        return cls(message, at)

    @property
    def body(self) -> bytes:
        """The message as the queue function reads it."""
        return self.message.encode()

    def read(self) -> OutboxMessage:
        """The message as a store reads it back: its payload a dict."""
        return OutboxMessage.decode(self.body)


class MemoryStore:
    """In-process Store. Its outbox is a queue of JSON texts the local deliverer drains."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.RLock()  # re-entrant: a unit holds it around the calls inside
        self._clock = clock  # when messages were queued and poisoned (seconds since the epoch)
        self._seen: dict[str, datetime] = {}
        # (expiry, claim number, keys): one entry per claim (its keys expire together), in time
        # order: expired keys are dropped from the front, never by a scan. A key claimed again
        # or released since is skipped.
        self._expiries: list[tuple[datetime, int, list[str]]] = []
        self._claims = 0
        self._groups: dict[str, _Group] = {}
        self._silences: dict[str, SilenceRule] = {}
        self._slots: dict[str, float] = {}
        self._queue: deque[_Queued] = deque()  # first alerts (OutboxMessage.urgent)
        self._later: deque[_Queued] = deque()  # digests, notices, reports: handed out after them
        self._poison: list[Poisoned] = []
        self._dequeues: dict[str, int] = {}
        self._hourly: dict[tuple[datetime, str], int] = {}
        # Messages put back with a delay (Outbox.defer): (visible at, order, message), a heap.
        self._deferred: list[tuple[float, int, _Queued]] = []
        self._deferrals = itertools.count()
        self._sent: dict[str, float] = {}  # posted message ids → when that record expires

    @property
    def outbox(self) -> list[OutboxMessage]:
        """The messages waiting in the outbox, in the order poll hands them out (first alerts
        first, each kind oldest first), then the deferred ones (read back from their text)."""
        with self._lock:
            queued = [*self._waiting(), *(q for _, _, q in sorted(self._deferred))]
        return [q.read() for q in queued]

    def queued(self) -> int:
        """How many messages wait in the outbox."""
        return len(self._queue) + len(self._later) + len(self._deferred)

    def take_outbox(self) -> list[OutboxMessage]:
        """Every message waiting in the outbox, removed from it: for a caller that shows the
        alerts instead of posting them (a replay without destinations)."""
        with self._lock:
            queued = [*self._waiting(), *(q for _, _, q in sorted(self._deferred))]
            self._queue.clear()
            self._later.clear()
            self._deferred.clear()
            self._dequeues.clear()
        return [q.read() for q in queued]

    @property
    def poison(self) -> list[OutboxMessage]:
        """The messages in the poison list, oldest first."""
        with self._lock:
            return [p.message for p in self._poison]

    @contextmanager
    def unit(self) -> Iterator[None]:
        """The calls inside as one unit: the store's lock, held throughout. Nothing of this
        store outlives a crash, so there is nothing more to make atomic."""
        with self._lock:
            yield

    def claim(self, keys: Sequence[str], now: datetime, ttl: timedelta) -> list[Claim]:
        expires = now + ttl
        out: list[Claim] = []
        with self._lock:
            seen, expiries = self._seen, self._expiries
            while expiries and expiries[0][0] <= now:  # keep memory bounded: drop what has expired
                expired, _, claimed = heapq.heappop(expiries)
                for key in claimed:
                    if seen.get(key) == expired:
                        del seen[key]
            new: list[str] = []
            for key in keys:
                until = seen.get(key)
                if until is not None and until > now:
                    out.append(Claim.DUPLICATE)
                else:
                    seen[key] = expires
                    new.append(key)
                    out.append(Claim.NEW)
            if new:  # one entry per claim: its keys expire together
                self._claims += 1
                heapq.heappush(expiries, (expires, self._claims, new))
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
                group = self._groups[fingerprint] = _Group(now, int(window.total_seconds()), first[0], count)
                count -= 1  # the first occurrence alerts now
                first = first[1:]
            elif count > 0:
                group.total += count
                group.latest = now
            if count > 0 and first:
                held = group.held
                if held is None:
                    group.held = Held(
                        fingerprint, count, now, now, first[0], group.window_seconds,
                        sample_ids(first, MAX_SAMPLES),
                    )  # fmt: skip
                else:
                    held.count += count
                    held.last_seen = now
                    room = MAX_SAMPLES - len(held.samples)
                    if room > 0:
                        held.samples.extend(sample_ids(first, room))
            return opened

    def hit_many(
        self, hits: Sequence[tuple[str, int, Sequence[Incident]]], now: datetime, window: timedelta
    ) -> list[bool]:
        """One `hit` after another."""
        return hit_each(self, hits, now, window)

    def alerted(self, fingerprint: str, count: int, first: Incident, now: datetime, quiet: timedelta) -> None:
        with self._lock:
            group = self._groups.get(fingerprint)
            if group is None:
                self._groups[fingerprint] = _Group(now, int(quiet.total_seconds()), first, count)
                return
            group.total += count
            group.latest = now
            # The quiet period starts again with every alert: due `quiet` after the last one.
            group.opened = max(group.opened, now)
            group.window_seconds = int(quiet.total_seconds())

    def take_due(self, now: datetime, resolved: list[Burst] | None = None) -> list[Held]:
        due: list[Held] = []
        with self._lock:
            for fingerprint, group in list(self._groups.items()):
                if now < group.opened + timedelta(seconds=group.window_seconds):
                    continue
                if group.held is None:
                    del self._groups[fingerprint]  # quiet for a whole window: next one alerts at once
                    if resolved is not None:
                        resolved.append(group.burst(fingerprint))
                else:
                    held = group.held
                    held.burst_count, held.burst_started = group.total, group.started
                    held.window_start, held.window_end = group.opened, now
                    due.append(held)
                    group.held = None
                    group.opened = now  # still busy: the next digest comes a window later
        return due

    def restore(self, held: Held, now: datetime, counted: bool = True, keys: Sequence[str] = ()) -> None:
        # `keys` name recovered events; this store never recovers any (its units are transactions).
        if held.count <= 0:
            return
        with self._lock:
            group = self._groups.get(held.fingerprint)
            if group is None:  # closed meanwhile: open it again
                group = self._groups[held.fingerprint] = _Group(
                    now, held.window_seconds, held.incident, held.count
                )
                group.started, group.latest = held.first_seen, held.last_seen
            elif not counted:
                group.total += held.count
                group.latest = max(group.latest, held.last_seen)
            # Due again by now, as before take_due: the next flush reports it at once, for the
            # window the restored digest reported.
            group.opened = min(group.opened, now - timedelta(seconds=group.window_seconds))
            if held.window_start is not None:
                group.opened = min(group.opened, held.window_start)
            group.held = merge_held(held, group.held, group.window_seconds)

    def add_silence(self, silence: SilenceRule) -> None:
        with self._lock:
            # As a durable store's unique key: a second start of the same silence (another
            # thread's mute or inhibition) must not reset what the first has counted.
            if silence.id in self._silences:
                raise ValueError(f"silence {silence.id} exists already")
            self._silences[silence.id] = silence

    def list_silences(self, now: datetime, include_ended: bool = False) -> list[SilenceRule]:
        with self._lock:
            found = [s for s in self._silences.values() if include_ended or s.ends > now]
        return sorted(found, key=lambda s: (s.starts, s.id))

    def expire_silence(self, silence_id: str, now: datetime) -> SilenceRule | None:
        with self._lock:
            silence = self._silences.get(silence_id)
            if silence is not None and silence.ends > now:
                silence = self._silences[silence_id] = replace(silence, ends=now)
            return silence

    def count_silenced(
        self, silence_id: str, count: int, first: Incident, now: datetime, recovered: Sequence[str] = ()
    ) -> bool:
        # `recovered` names recovered events; this store never recovers any.
        with self._lock:
            silence = self._silences.get(silence_id)
            if silence is None or silence.summarized or not silence.active(now):
                return False
            self._silences[silence_id] = replace(
                silence,
                count=silence.count + count,
                first_seen=silence.first_seen or now,
                last_seen=now,
                incident=silence.incident or first,
            )
            return True

    def take_ended_silences(self, now: datetime) -> list[SilenceRule]:
        taken: list[SilenceRule] = []
        with self._lock:
            for silence in list(self._silences.values()):
                if silence.ends <= now and not silence.summarized:
                    claimed = self._silences[silence.id] = replace(silence, summarized=True)
                    if claimed.count > 0:
                        taken.append(claimed)
        return taken

    def enqueue(self, messages: Sequence[OutboxMessage]) -> None:
        now = self._clock()
        queued = [_Queued.of(message, now) for message in messages]
        with self._lock:
            for item in queued:
                (self._queue if item.message.urgent else self._later).append(item)  # as `_put` does

    def dead_letter(self, message: OutboxMessage, reason: str) -> None:
        with self._lock:
            self._poison.append(Poisoned(message, self._clock(), reason or "refused"))
        log.warning(
            "outbox message %s for destination %r moved to the poison queue: %s",
            message.id, message.destination, reason,
        )  # fmt: skip

    def poisoned(self) -> list[OutboxMessage]:
        """The messages moved to the poison list, oldest first."""
        return self.poison

    def outbox_status(self, now: float) -> list[Backlog]:
        with self._lock:
            waiting = [*self._waiting(), *(q for _, _, q in self._deferred)]
            queued = [(q.message.destination, q.at) for q in waiting]
            return backlog(queued, list(self._poison), now)

    def redrive(self, now: float, which: RedriveFilter) -> int:
        with self._lock:
            taken = sorted((p for p in self._poison if which.takes(p, now)), key=lambda p: p.poisoned_at)
            taken = taken[: which.limit]
            if not taken:
                return 0
            ids = {id(p) for p in taken}
            self._poison = [p for p in self._poison if id(p) not in ids]
            at = self._clock()
            for record in taken:
                self._put(_Queued.of(record.message, at))
        return len(taken)

    def close(self) -> None:
        """Nothing to release (for symmetry with the durable stores)."""

    def reserve_send(self, destination: str, interval: float, now: float) -> float:
        return self.reserve_send_within(destination, interval, now, math.inf)[1]

    def reserve_send_within(
        self, destination: str, interval: float, now: float, most: float
    ) -> tuple[bool, float]:
        with self._lock:
            slot = max(now, self._slots.get(destination, 0.0))
            if slot - now > most:
                return False, slot - now
            if interval:
                self._slots[destination] = slot + interval
            return True, slot - now

    def send_wait(self, destination: str, now: float) -> float:
        with self._lock:
            return max(0.0, self._slots.get(destination, 0.0) - now)

    def hold_send(self, destination: str, until: float) -> None:
        with self._lock:
            self._slots[destination] = max(until, self._slots.get(destination, 0.0))

    def oldest_poisoned(self, now: float) -> float | None:
        with self._lock:
            return max(0.0, now - min(p.poisoned_at for p in self._poison)) if self._poison else None

    def defer(self, message: OutboxMessage, delay: float) -> None:
        queued = _Queued.of(message, self._clock())
        with self._lock:
            heapq.heappush(self._deferred, (self._clock() + delay, next(self._deferrals), queued))

    def mark_sent(self, message_id: str, now: float) -> None:
        with self._lock:
            sent = self._sent
            sent[message_id] = now + SENT_TTL
            if len(sent) > _SENT_KEPT:  # oldest first: drop what has expired
                for key in [k for k, expires in sent.items() if expires <= now]:
                    del sent[key]

    def was_sent(self, message_id: str, now: float) -> bool:
        with self._lock:
            return self._sent.get(message_id, 0.0) > now

    def _wake_deferred(self) -> None:
        """Move deferred messages whose delay has passed into the outbox (under the lock)."""
        now = self._clock()
        while self._deferred and self._deferred[0][0] <= now:
            self._put(heapq.heappop(self._deferred)[2])

    def _put(self, queued: _Queued) -> None:
        """Queue a message behind those of its kind (under the lock)."""
        (self._queue if queued.message.urgent else self._later).append(queued)

    def _waiting(self) -> list[_Queued]:
        """What waits to be handed out, in the order poll hands it out (under the lock)."""
        return [*self._queue, *self._later]

    def add_hourly(
        self, hour: datetime, counts: Mapping[str, int], recovered: Mapping[str, Sequence[str]] | None = None
    ) -> None:
        # `recovered` names recovered events; this store never recovers any.
        hour = hour_of(hour)
        with self._lock:
            for fingerprint, count in counts.items():
                key = (hour, fingerprint)
                self._hourly[key] = self._hourly.get(key, 0) + count

    def hourly(self, start: datetime, end: datetime) -> list[tuple[datetime, str, int]]:
        with self._lock:
            return [(h, f, n) for (h, f), n in self._hourly.items() if start <= h < end]

    def poll(self, queue_name: str, max_messages: int) -> list[Lease]:
        """Take up to max_messages from the outbox, each as a Lease to settle."""
        leases: list[Lease] = []
        with self._lock:
            self._wake_deferred()
            # First alerts first (OutboxMessage.urgent), each kind in the order it was queued.
            while len(leases) < max_messages and (self._queue or self._later):
                queued = (self._queue or self._later).popleft()
                key = queued.message.id
                count = self._dequeues[key] = self._dequeues.get(key, 0) + 1
                leases.append(Lease(self, queued, count))
        return leases

    def _settle(self, lease: Lease, ok: bool, poison: bool) -> None:
        with self._lock:
            if ok or poison:
                self._dequeues.pop(lease.id, None)
            if poison:
                self._poison.append(Poisoned(lease.message, self._clock()))
            elif not ok:
                self._put(lease.queued)


class Lease:
    """A message taken from the outbox: `done()` removes it, `fail()` puts it back
    (or, with poison=True, moves it to the poison list)."""

    __slots__ = ("dequeue_count", "queued", "store")

    def __init__(self, store: MemoryStore, queued: _Queued, dequeue_count: int) -> None:
        self.store = store
        self.queued = queued
        self.dequeue_count = dequeue_count

    @property
    def id(self) -> str:
        return self.queued.message.id

    @property
    def body(self) -> bytes:
        return self.queued.body

    @property
    def message(self) -> OutboxMessage:
        return self.queued.read()

    def done(self) -> None:
        self.store._settle(self, ok=True, poison=False)

    def fail(self, poison: bool = False) -> None:
        self.store._settle(self, ok=False, poison=poison)
