"""State that must outlive a request, as small contracts by concern: `DedupKeys`, `BurstGroups`,
`Outbox` (with the `Lease` its `poll` hands out), `SendPacing`, and `Units` (run a request's
claim, counts and outbox write as one unit). A backend offers them all as a `Store`: `memory`
(the embedded default: replay, serve, one instance), `sqlite:PATH` (one machine, durable) and
`azure` (Azure Tables and a Storage queue, shared by every Function instance).
`open_store` opens one by name from `BACKENDS`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from ..errors import ConfigurationError, TriageError
from ..model import Incident

__all__ = [
    "BACKENDS",
    "BurstGroups",
    "ClaimInProgress",
    "DedupKeys",
    "Held",
    "Lease",
    "Outbox",
    "OutboxMessage",
    "SendPacing",
    "Store",
    "Units",
    "merge_held",
    "open_store",
]

MAX_SAMPLES = 5


class ClaimInProgress(TriageError):
    """Events of this batch are being processed by another instance right now (their claims
    are pending and younger than the claim lease): answer 503, so the sender retries later."""

    status = 503


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """A rendered alert waiting to be posted. It names its destination, never the URL."""

    id: str
    destination: str
    payload: dict[str, Any]
    fingerprint: str = ""
    attempts: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "destination": self.destination,
            "payload": self.payload,
            "fingerprint": self.fingerprint,
            "attempts": self.attempts,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OutboxMessage:
        return cls(
            id=str(data["id"]),
            destination=str(data["destination"]),
            payload=dict(data["payload"]),
            fingerprint=str(data.get("fingerprint", "")),
            attempts=int(data.get("attempts", 0)),
        )


@dataclass(slots=True)
class Held:
    """The occurrences of one fingerprint held back for a digest."""

    fingerprint: str
    count: int
    first_seen: datetime
    last_seen: datetime
    incident: Incident  # the first held occurrence: the digest's example
    window_seconds: int
    samples: list[dict[str, str]] = field(default_factory=list)


def merge_held(restored: Held, current: Held | None, window_seconds: int) -> Held:
    """A group's held state once `restored` (taken earlier, given back) is put back in front
    of `current` (what the group has held since, if anything): a new Held, neither argument
    changed. The restored occurrences came first, so their example and samples lead."""
    if current is None or current.count <= 0:
        return Held(
            restored.fingerprint, restored.count, restored.first_seen, restored.last_seen,
            restored.incident, window_seconds, list(restored.samples[:MAX_SAMPLES]),
        )  # fmt: skip
    return Held(
        fingerprint=restored.fingerprint,
        count=restored.count + current.count,
        first_seen=min(restored.first_seen, current.first_seen),
        last_seen=max(restored.last_seen, current.last_seen),
        incident=restored.incident,
        window_seconds=window_seconds,
        samples=[*restored.samples, *current.samples][:MAX_SAMPLES],
    )


class DedupKeys(Protocol):
    """Event keys seen recently: Event Grid delivers at least once, so only the first counts."""

    def claim(self, keys: Sequence[str], now: datetime, ttl: timedelta) -> list[bool]:
        """Record event keys; True for each key not seen within its TTL (the caller owns it)."""
        ...

    def release(self, keys: Sequence[str]) -> None:
        """Forget claimed keys (their alerts could not be stored, so a retry must get through)."""
        ...


class BurstGroups(Protocol):
    """Occurrences of one fingerprint counted per window, and the digests that report them."""

    def hit(
        self,
        fingerprint: str,
        count: int,
        first: Sequence[Incident],
        now: datetime,
        window: timedelta,
    ) -> bool:
        """Count `count` occurrences, of which `first` are the earliest few (at most
        MAX_SAMPLES + 1), in order. True when the group was closed: it opens now and first[0]
        alerts at once (the other count-1 are held); False: all `count` are held. The first
        held occurrence is the digest's example; the ids of the first few are its samples."""
        ...

    def take_due(self, now: datetime) -> list[Held]:
        """Atomically take the held counts of every group whose window has ended.
        A group with nothing held is closed; one with held counts starts a new window.
        Whatever is taken is the caller's: store its digest, or give it back with `restore`."""
        ...

    def restore(self, held: Held, now: datetime) -> None:
        """Put back counts that `take_due` handed out but whose digest could not be stored
        (the outbox write failed), so that the next flush reports them: nothing lost or doubled.

        Merged atomically into the fingerprint's group with any hits that came meanwhile:
        counts add up, first_seen is the earlier, last_seen the later; the restored
        occurrences came first, so their example and samples lead (at most MAX_SAMPLES).
        The group is due again by `now` (as it was before `take_due`), so the next flush
        takes it at once; a group closed meanwhile is opened again, already due."""
        ...


class Lease(Protocol):
    """An outbox message taken by `Outbox.poll`, hidden from other pollers until settled."""

    @property
    def id(self) -> str:
        """The queue's id of the message."""
        ...

    @property
    def body(self) -> bytes:
        """The message as stored (OutboxMessage JSON), as the queue trigger receives it."""
        ...

    @property
    def dequeue_count(self) -> int:
        """How many times the message has been taken, this time included."""
        ...

    @property
    def message(self) -> OutboxMessage:
        """The message, decoded."""
        ...

    def done(self) -> None:
        """Delivered: remove it from the outbox."""
        ...

    def fail(self, poison: bool = False) -> None:
        """Not delivered: visible again after the store's retry delay; or, with poison=True,
        moved to the poison queue. A lease that ran out (another poller took it) settles nothing."""
        ...


class Outbox(Protocol):
    """Rendered alerts waiting to be posted, and the poison queue beside them."""

    def enqueue(self, messages: Sequence[OutboxMessage]) -> None:
        """Store messages durably for delivery."""
        ...

    def poll(self, queue_name: str, max_messages: int) -> Sequence[Lease]:
        """Take up to `max_messages` messages, each as a Lease to settle (what the Functions
        host does for the queue trigger; the local host and tests call it)."""
        ...

    def dead_letter(self, message: OutboxMessage, reason: str) -> None:
        """Put a message that can never be delivered (the webhook refused it with a 4xx that
        a retry cannot fix) in the poison queue at once, instead of retrying it
        maxDequeueCount times. The caller still settles its own lease (or lets the host
        delete the queue message). `reason` is logged at WARNING with the message id and
        destination; it must not hold a URL."""
        ...

    def poisoned(self) -> list[OutboxMessage]:
        """A look at the poison queue, oldest first, without taking anything."""
        ...


class SendPacing(Protocol):
    """Send slots per destination, shared by every instance, so webhooks' rate limits hold."""

    def reserve_send(self, destination: str, interval: float, now: float) -> float:
        """Book the next send slot for a destination (at most one per `interval` seconds,
        across all instances). Returns how many seconds to wait before posting."""
        ...


class Units(Protocol):
    """A request's claims, counts and outbox writes as one unit, so that a crash between them
    (a killed process) neither loses an event nor alerts it twice."""

    def unit(self) -> AbstractContextManager[None]:
        """Run the store calls made inside (on this thread) as one unit; re-entrant.

        SQLite: one transaction, committed on a clean exit, rolled back on an error or a crash.
        Memory: the store's lock, held throughout (nothing outlives a crash there).
        Azure (Tables and a queue share no transaction): keys claimed inside are written
        `pending` and marked done on a clean exit; a key left pending by a crash is taken
        over by the next claim once older than the store's claim lease (so it is counted
        again: at least once); before that a claim waits a few seconds for it, then raises
        `ClaimInProgress` (503: the sender retries later)."""
        ...


class Store(DedupKeys, BurstGroups, Outbox, SendPacing, Units, Protocol):
    """Everything a backend offers. Every method is safe under concurrent callers."""

    def close(self) -> None:
        """Release connections and threads."""
        ...


def _memory(target: str, connection: str | None, options: dict[str, Any]) -> Store:
    from .memory import MemoryStore

    return MemoryStore()


def _sqlite(target: str, connection: str | None, options: dict[str, Any]) -> Store:
    if not target:
        raise ConfigurationError("ACS_TRIAGE_STORE=sqlite:PATH needs a file path after 'sqlite:'")
    from .sqlite import SqliteStore

    return SqliteStore(target)


def _azure(target: str, connection: str | None, options: dict[str, Any]) -> Store:
    if not connection:
        raise ConfigurationError("ACS_TRIAGE_STORE=azure needs the AzureWebJobsStorage connection string")
    from .azure import AzureStore

    return AzureStore(connection, **options)


# ACS_TRIAGE_STORE names one of these, optionally followed by ':' and its target (a path).
BACKENDS: dict[str, Callable[[str, str | None, dict[str, Any]], Store]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "azure": _azure,
}


def open_store(spec: str, connection: str | None = None, **options: Any) -> Store:
    """Open the store named by ACS_TRIAGE_STORE: 'memory', 'sqlite:PATH' or 'azure'."""
    name, colon, target = spec.partition(":")
    backend = BACKENDS.get(name)
    if backend is None or (colon and name != "sqlite"):
        raise ConfigurationError(f"ACS_TRIAGE_STORE must be memory, sqlite:PATH or azure, not {spec!r}")
    return backend(target, connection, options)
