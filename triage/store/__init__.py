"""State that must outlive a request, as small contracts by concern: `DedupKeys`, `BurstGroups`,
`Silences`, `Outbox` (with the `Lease` its `poll` hands out), `SendPacing`, `HourlyCounts` (the
daily report's counters) and `Units` (run a request's claim, counts and outbox write as one unit).
A backend offers them all as a `Store`: `memory` (the embedded default: replay, serve, one
instance), `sqlite:PATH` (one machine, durable) and `azure` (Azure Tables and a Storage queue,
shared by every Function instance).
`open_store` opens one by name from `BACKENDS`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

import orjson
from msgspec import Struct, field

from ..errors import ConfigurationError
from ..matchers import Matcher
from ..model import Incident

if TYPE_CHECKING:
    from ..settings import Settings, StorageConnection

__all__ = [
    "BACKENDS",
    "SENT_TTL",
    "Backlog",
    "Burst",
    "BurstGroups",
    "Claim",
    "DedupKeys",
    "EnqueueFailed",
    "Held",
    "HitsFailed",
    "HourlyCounts",
    "Lease",
    "Outbox",
    "OutboxMessage",
    "Poisoned",
    "RedriveFilter",
    "SendPacing",
    "SilenceRule",
    "Silences",
    "Store",
    "Units",
    "backlog",
    "configured_spec",
    "hit_each",
    "hour_of",
    "merge_held",
    "open_configured",
    "open_store",
    "sample_ids",
]

MAX_SAMPLES = 5
# How long a posted message's id is remembered (Outbox.mark_sent): a Storage queue message lives
# at most 7 days, so no delivery of it can come later.
SENT_TTL = 7 * 24 * 3600.0
# AzureWebJobsStorage: a connection string, or the identity-based settings.
Connection: TypeAlias = "str | StorageConnection | None"


class OutboxMessage(Struct, frozen=True):
    """A rendered alert waiting to be posted. It names its destination, never the URL."""

    id: str
    destination: str
    # As the destination receives it. Fresh from the renderer it may be its JSON text already
    # (written into the stored message as it is); read back from a store it is always a dict.
    payload: dict[str, Any] | orjson.Fragment
    fingerprint: str = ""
    attempts: int = 0
    # A first alert: posted before digests, notices and reports, which take only send slots no
    # first alert is waiting for (deliver.Deliverer). Stored only when False, so a message
    # stored before the field existed reads as urgent, as it was then.
    urgent: bool = True

    def to_dict(self) -> dict[str, Any]:
        doc = {
            "id": self.id,
            "destination": self.destination,
            "payload": self.payload,
            "fingerprint": self.fingerprint,
            "attempts": self.attempts,
        }
        if not self.urgent:
            doc["urgent"] = False
        return doc

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OutboxMessage:
        return cls(
            id=str(data["id"]),
            destination=str(data["destination"]),
            payload=dict(data["payload"]),
            fingerprint=str(data.get("fingerprint", "")),
            attempts=int(data.get("attempts", 0)),
            urgent=data.get("urgent", True) is not False,
        )

    def encode(self) -> bytes:
        """The message as every store keeps it and the queue function reads it: JSON text."""
        return orjson.dumps(self.to_dict())

    def payload_dict(self) -> dict[str, Any]:
        """The payload as a dict (one carried as JSON text is read)."""
        if isinstance(self.payload, dict):
            return self.payload
        return dict(orjson.loads(self.encode())["payload"])

    @classmethod
    def decode(cls, body: bytes | str) -> OutboxMessage:
        return cls.from_dict(orjson.loads(body))


class Poisoned(Struct, frozen=True):
    """A message in the poison queue: since when (seconds since the epoch) and, for a payload
    the webhook refused (a 4xx, dead-lettered at once), the refusal. A message that ran out
    of retries has no refusal: it is worth sending again once the webhook is back."""

    message: OutboxMessage
    poisoned_at: float
    refused: str = ""


class RedriveFilter(Struct, frozen=True):
    """Which poisoned messages a re-drive takes. Ages are seconds in the poison queue."""

    destination: str | None = None
    younger_than: float | None = None  # the automatic re-drive: ACS_TRIAGE_REDRIVE_MAX_AGE_HOURS
    older_than: float | None = None
    refused: bool = False  # refused payloads too (only ever asked for by hand)
    limit: int | None = None  # at most this many, the oldest (the timer's probe takes one)

    def takes(self, poisoned: Poisoned, now: float) -> bool:
        """Whether this re-drive moves `poisoned` back to the outbox."""
        age = now - poisoned.poisoned_at
        return (
            (self.destination is None or poisoned.message.destination == self.destination)
            and (self.younger_than is None or age < self.younger_than)
            and (self.older_than is None or age >= self.older_than)
            and (self.refused or not poisoned.refused)
        )


class Backlog(Struct, frozen=True):
    """What waits for one destination: in the outbox, and in the poison queue. Ages in seconds.
    `queued` is None where the store can count its outbox only as a whole (Azure: see the
    row for destination "*")."""

    destination: str
    queued: int | None
    oldest_queued: float | None
    poisoned: int
    refused: int
    oldest_poisoned: float | None


def backlog(queued: Iterable[tuple[str, float]], poisoned: Iterable[Poisoned], now: float) -> list[Backlog]:
    """Backlog rows, by destination name, from (destination, enqueued at) pairs and poison records."""
    rows: dict[str, list[Any]] = {}
    for destination, enqueued_at in queued:
        row = rows.setdefault(destination, [0, None, 0, 0, None])
        row[0] += 1
        row[1] = max(row[1] or 0.0, now - enqueued_at)
    for record in poisoned:
        row = rows.setdefault(record.message.destination, [0, None, 0, 0, None])
        row[2] += 1
        row[3] += bool(record.refused)
        row[4] = max(row[4] or 0.0, now - record.poisoned_at)
    return [Backlog(name, *row) for name, row in sorted(rows.items())]


class Held(Struct):
    """The occurrences of one fingerprint held back for a digest."""

    fingerprint: str
    count: int
    first_seen: datetime
    last_seen: datetime
    incident: Incident  # the first held occurrence: the digest's example
    window_seconds: int
    samples: list[dict[str, str]] = field(default_factory=list)
    # Azure: the taken digest's record in the store (see BurstGroups.take_due), which `restore`
    # settles together with the counts it gives back. Empty where take and outbox write share
    # a transaction (memory, SQLite) or once the record was settled.
    token: str = ""
    # What a reminder needs (policy.Digests, repeat_interval), set by `take_due`: the burst's
    # occurrences so far (this digest's included), when its first arrived, and the window this
    # digest reports, from the previous digest (or the first alert) to the flush that took it.
    burst_count: int = 0
    burst_started: datetime | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None


class Burst(Struct, frozen=True):
    """A burst that ended: its group was quiet for a whole window and is closed."""

    fingerprint: str
    count: int  # every occurrence the burst counted: its first alert and all its digests
    first_seen: datetime
    last_seen: datetime
    incident: Incident  # the burst's first occurrence (the one that alerted)
    window_seconds: int


class SilenceRule(Struct, frozen=True):
    """An operator's silence: incidents it matches between `starts` and `ends` are counted,
    not alerted; once it ends, one summary reports what it held back."""

    id: str
    matcher: Matcher
    starts: datetime
    ends: datetime
    comment: str = ""
    created_by: str = ""
    count: int = 0  # events it silenced
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    incident: Incident | None = None  # the first silenced occurrence: the summary's example
    summarized: bool = False  # its summary was claimed (by one flush, on one instance)

    def active(self, now: datetime) -> bool:
        """True while it silences: from `starts` until `ends`."""
        return self.starts <= now < self.ends


def sample_ids(first: Sequence[Incident], limit: int) -> list[dict[str, str]]:
    """The IDs of the first `limit` occurrences: a digest's samples. The pipeline's occurrences
    (policy.Shown) read only those, without building the whole incidents."""
    read = getattr(first, "sample_ids", None)
    if read is not None:
        ids: list[dict[str, str]] = read(limit)
        return ids
    return [incident.ids for incident in first[:limit]]


def hit_each(
    groups: BurstGroups, hits: Sequence[tuple[str, int, Sequence[Incident]]], now: datetime, window: timedelta
) -> list[bool]:
    """`hit_many` as one `hit` after another (a store whose hits cost no round trip)."""
    opened: list[bool] = []
    for fingerprint, count, first in hits:
        try:
            opened.append(groups.hit(fingerprint, count, first, now, window))
        except Exception as err:
            raise HitsFailed(set(range(len(opened))), opened + [False] * (len(hits) - len(opened))) from err
    return opened


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


class Claim(Enum):
    """What claiming one event key found."""

    NEW = "new"  # not seen within its TTL: the caller owns it and counts it
    DUPLICATE = "duplicate"  # counted already (or repeated within the batch): drop it
    # Azure only (memory and SQLite run a unit under one lock or transaction, so they never
    # see another unit half done):
    # another delivery claimed it in a unit that has not finished and whose lease still runs:
    # neither count nor drop it; the sender must deliver it again later.
    BUSY = "busy"
    # the delivery that claimed it died before its unit finished (its lease has passed): the
    # caller owns it now, but that delivery may have got as far as alerting it, so it must be
    # counted without an alert of its own.
    RECOVERED = "recovered"


class DedupKeys(Protocol):
    """Event keys seen recently: Event Grid delivers at least once, so only the first counts."""

    def claim(self, keys: Sequence[str], now: datetime, ttl: timedelta) -> list[Claim]:
        """Record event keys; for each, what was found (see `Claim`): NEW or RECOVERED, the
        caller owns the key until its TTL passes; DUPLICATE; BUSY."""
        ...

    def release(self, keys: Sequence[str]) -> None:
        """Forget claimed keys (their alerts could not be stored, so a retry must get through)."""
        ...


class HitsFailed(Exception):
    """`BurstGroups.hit_many` failed part way: the hits at `counted` (indexes) were counted,
    the others not. Raised from the store's error (its `__cause__`)."""

    def __init__(self, counted: set[int], opened: Sequence[bool]) -> None:
        super().__init__(f"{len(counted)} of {len(opened)} burst counts written before an error")
        self.counted = counted
        self.opened = list(opened)


class EnqueueFailed(Exception):
    """`Outbox.enqueue` failed part way: the messages whose ids are in `written` are in the
    outbox, the others not. Raised from the store's error (its `__cause__`)."""

    def __init__(self, written: set[str], total: int) -> None:
        super().__init__(f"{len(written)} of {total} outbox messages written before an error")
        self.written = written


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
        held occurrence is the digest's example; the ids of the first few are its samples
        (`sample_ids`: read without building the whole incidents)."""
        ...

    def hit_many(
        self, hits: Sequence[tuple[str, int, Sequence[Incident]]], now: datetime, window: timedelta
    ) -> list[bool]:
        """`hit` for each (fingerprint, count, first) of a batch (distinct fingerprints), as
        few storage round trips as the backend allows; each answer as `hit`'s. On an error,
        HitsFailed says which were counted."""
        ...

    def alerted(self, fingerprint: str, count: int, first: Incident, now: datetime, quiet: timedelta) -> None:
        """Record `count` occurrences that each alerted on their own (grouping off), `first` the
        earliest: the fingerprint's burst opens (with `first` as its example) or grows, nothing is
        held, and it is due `quiet` after `now`. Once it has been quiet that long, `take_due`
        closes it and reports it resolved, so every alert that fired is resolved."""
        ...

    def take_due(self, now: datetime, resolved: list[Burst] | None = None) -> list[Held]:
        """Atomically take the held counts of every group whose window has ended.
        A group with nothing held is closed; one with held counts starts a new window.
        Whatever is taken is the caller's: store its digest, or give it back with `restore`.
        Each group closed by this call is appended to `resolved` (when a list is given) with
        its burst's totals: closing is atomic, so exactly one caller learns of each. Each Held
        says its burst's totals so far and the window it reports (`Held.window_start`, `end`).

        Inside a unit (`Units.unit`), what is taken and the messages that report it are never
        separated by a crash: memory and SQLite run the unit as one transaction; Azure writes
        each taken digest or resolved burst as a record in the same entity-group transaction
        that resets or closes its group, settles the records when the unit exits cleanly, and
        hands a record whose unit died (its claim lease passed) out again on a later call."""
        ...

    def restore(self, held: Held, now: datetime, counted: bool = True, keys: Sequence[str] = ()) -> None:
        """Put back counts that `take_due` handed out but whose digest could not be stored
        (the outbox write failed), so that the next flush reports them: nothing lost or doubled.
        With counted=False they are occurrences the burst may not have counted yet (Azure's
        events recovered from a delivery that died, `keys` their dedup keys as claimed in this
        unit): they are added to its total as well, except those that the unit which died had
        counted into the group already (its record of that is written with its counts). Of
        those, a burst the dead unit opened holds its first event once more, and a burst
        whose events alerted one by one holds them, for the digest: those alerts may have
        been cut off by the crash. A store that never recovers an event counts them all.

        Merged atomically into the fingerprint's group with any hits that came meanwhile:
        counts add up, first_seen is the earlier, last_seen the later; the restored
        occurrences came first, so their example and samples lead (at most MAX_SAMPLES).
        The group is due again by `now` (as it was before `take_due`), so the next flush
        takes it at once; a group closed meanwhile is opened again, already due. Its window
        starts again no later than `held.window_start`, so the next digest reports the window
        the restored one did (a reminder that could not be written is a reminder again)."""
        ...


class Silences(Protocol):
    """Operators' silences, shared by every instance so that all of them honour each one."""

    def add_silence(self, silence: SilenceRule) -> None:
        """Store a new silence (its id is new)."""
        ...

    def list_silences(self, now: datetime, include_ended: bool = False) -> list[SilenceRule]:
        """Silences that have not ended by `now` (with include_ended, all), by start time."""
        ...

    def expire_silence(self, silence_id: str, now: datetime) -> SilenceRule | None:
        """End a silence at `now` (if it has not ended yet); the silence as it is now, or None
        if there is no such silence."""
        ...

    def count_silenced(
        self, silence_id: str, count: int, first: Incident, now: datetime, recovered: Sequence[str] = ()
    ) -> bool:
        """Atomically add `count` silenced events (`first`: the earliest of them) to a silence.
        False when it is no longer active at `now` (ended or expired meanwhile): the caller
        alerts those events instead, so none is lost between a silence and its summary.
        `recovered`: the dedup keys of those events that this unit recovered (Azure); those
        that the unit which died had counted in this silence already are left out. A store
        that never recovers an event counts them all."""
        ...

    def take_ended_silences(self, now: datetime) -> list[SilenceRule]:
        """Atomically claim the summary of every silence that has ended by `now`, has counted
        events and was not summarized yet: each is handed to exactly one caller, once."""
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
        """Store messages durably for delivery: all of them, or (raised) none; or, where the
        writes are separate (a Storage queue), EnqueueFailed naming those written."""
        ...

    def poll(self, queue_name: str, max_messages: int) -> Sequence[Lease]:
        """Take up to `max_messages` messages, each as a Lease to settle (what the Functions
        host does for the queue trigger; the local host and tests call it)."""
        ...

    def dead_letter(self, message: OutboxMessage, reason: str) -> None:
        """Put a message that can never be delivered (the webhook refused it with a 4xx that
        a retry cannot fix) in the poison queue at once, instead of retrying it
        maxDequeueCount times. It is marked refused (with `reason`): the automatic re-drive
        leaves it alone. The caller still settles its own lease (or lets the host
        delete the queue message). `reason` is logged at WARNING with the message id and
        destination; it must not hold a URL."""
        ...

    def poisoned(self) -> list[OutboxMessage]:
        """A look at the poison queue, oldest first, without taking anything."""
        ...

    def outbox_status(self, now: float) -> list[Backlog]:
        """Outbox and poison depth per destination, with the oldest age of each."""
        ...

    def redrive(self, now: float, which: RedriveFilter) -> int:
        """Move the poisoned messages `which` takes back to the outbox, oldest first (they are
        posted at the destination's pace, as any message). Returns how many were moved."""
        ...

    def oldest_poisoned(self, now: float) -> float | None:
        """Seconds the oldest message of the poison queue has waited there (None: it is empty).
        Cheap enough for every health check (Azure: the queue's front message, peeked)."""
        ...

    def defer(self, message: OutboxMessage, delay: float) -> None:
        """Put `message` in the outbox again, visible only `delay` seconds from now: a
        destination holds it off (Retry-After) for longer than a worker may wait. The caller
        then settles its own lease as done."""
        ...

    def mark_sent(self, message_id: str, now: float) -> None:
        """Record that the message `message_id` was posted (its destination answered 2xx), for
        SENT_TTL seconds: a later delivery of the same message is then not posted again."""
        ...

    def was_sent(self, message_id: str, now: float) -> bool:
        """Whether `mark_sent` recorded `message_id` within the last SENT_TTL seconds."""
        ...


class SendPacing(Protocol):
    """Send slots per destination, shared by every instance, so webhooks' rate limits hold."""

    def reserve_send(self, destination: str, interval: float, now: float) -> float:
        """Book the next send slot for a destination (at most one per `interval` seconds,
        across all instances). Returns how many seconds to wait before posting. With interval
        0 nothing is booked: the wait is what a hold (`hold_send`) leaves."""
        ...

    def reserve_send_within(
        self, destination: str, interval: float, now: float, most: float
    ) -> tuple[bool, float]:
        """Book the destination's next send slot only if it is at most `most` seconds from `now`,
        in one atomic step across all instances: (True, seconds to wait) when booked; (False,
        seconds until the next free slot) when it is further off, and then nothing is booked. A
        read of the wait and a booking as two calls would let other workers book slots in
        between, so a message could end up booked far behind them. Interval 0 books nothing."""
        ...

    def send_wait(self, destination: str, now: float) -> float:
        """Seconds from `now` until the destination's next free slot (booked slots and holds),
        booking nothing: whether a worker can wait for it or must hand its message back."""
        ...

    def hold_send(self, destination: str, until: float) -> None:
        """No post to the destination before `until` (its Retry-After), from any instance:
        slots booked from now on start there. An earlier hold never shortens a later one."""
        ...


def hour_of(moment: datetime) -> datetime:
    """The UTC hour `moment` falls in (a naive time is taken as UTC): the key of its counters."""
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.replace(minute=0, second=0, microsecond=0)


class HourlyCounts(Protocol):
    """Failures per fingerprint per hour, shared by every instance: what the daily report reads.
    The pipeline writes once per batch (one counter per fingerprint), not once per event."""

    def add_hourly(
        self, hour: datetime, counts: Mapping[str, int], recovered: Mapping[str, Sequence[str]] | None = None
    ) -> None:
        """Add `counts[fingerprint]` to each fingerprint's counter of `hour` (see `hour_of`).
        `recovered[fingerprint]`: the dedup keys of those events that this unit recovered
        (Azure) and are in the count; those that the unit which died had counted in this
        hour's counter already are left out. A store that never recovers an event adds all."""
        ...

    def hourly(self, start: datetime, end: datetime) -> list[tuple[datetime, str, int]]:
        """Every counter of the hours in [start, end) as (hour, fingerprint, count), any order."""
        ...


class Units(Protocol):
    """A request's claims, counts and outbox writes as one unit, so that a crash between them
    (a killed process) neither loses an event nor alerts it twice."""

    def unit(self) -> AbstractContextManager[None]:
        """Run the store calls made inside (on this thread) as one unit; re-entrant.

        SQLite: one transaction, committed on a clean exit, rolled back on an error or a crash.
        Memory: the store's lock, held throughout (nothing outlives a crash there).
        Azure (Tables and a queue share no transaction): the unit's claims carry its id and a
        lease; a clean exit writes one completion marker. Until then, another delivery of the
        same event is told BUSY; once the lease has passed without a marker (the process
        died), it is RECOVERED by the next delivery. What a flush unit takes (digests, resolved
        bursts, silence summaries) stays recorded until it exits cleanly, and is handed out
        again once the lease has passed (see `BurstGroups.take_due`). On an error the stages
        give back."""
        ...


class Store(DedupKeys, BurstGroups, Silences, Outbox, SendPacing, HourlyCounts, Units, Protocol):
    """Everything a backend offers. Every method is safe under concurrent callers."""

    def close(self) -> None:
        """Release connections and threads."""
        ...


def _memory(target: str, connection: Connection, options: dict[str, Any]) -> Store:
    from .memory import MemoryStore

    return MemoryStore()


def _sqlite(target: str, connection: Connection, options: dict[str, Any]) -> Store:
    if not target:
        raise ConfigurationError("ACS_TRIAGE_STORE=sqlite:PATH needs a file path after 'sqlite:'")
    from .sqlite import SqliteStore

    return SqliteStore(target)


def _azure(target: str, connection: Connection, options: dict[str, Any]) -> Store:
    if not connection:
        raise ConfigurationError(
            "ACS_TRIAGE_STORE=azure needs storage: set AzureWebJobsStorage__accountName (managed "
            "identity) or AzureWebJobsStorage (a connection string)"
        )
    from .azure import AzureStore

    return AzureStore(connection, **options)


# ACS_TRIAGE_STORE names one of these, optionally followed by ':' and its target (a path).
BACKENDS: dict[str, Callable[[str, Connection, dict[str, Any]], Store]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "azure": _azure,
}


def open_store(spec: str, connection: Connection = None, **options: Any) -> Store:
    """Open the store named by ACS_TRIAGE_STORE: 'memory', 'sqlite:PATH' or 'azure' (on a
    connection string or an identity-based StorageConnection)."""
    name, colon, target = spec.partition(":")
    backend = BACKENDS.get(name)
    if backend is None or (colon and name != "sqlite"):
        raise ConfigurationError(f"ACS_TRIAGE_STORE must be memory, sqlite:PATH or azure, not {spec!r}")
    return backend(target, connection, options)


def configured_spec(settings: Settings) -> str:
    """ACS_TRIAGE_STORE with `auto` decided: azure when storage is configured (either form), else memory."""
    if settings.store == "auto":
        return "azure" if settings.storage else "memory"
    return settings.store


def open_configured(settings: Settings) -> Store:
    """Open the store the settings name, with the per-app queue and table names."""
    return open_store(
        configured_spec(settings),
        settings.storage,
        queue_name=settings.outbox_queue,
        table_prefix=settings.table_prefix,
        claim_lease=timedelta(seconds=settings.claim_lease_seconds),
    )
