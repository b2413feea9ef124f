"""The embedded store, durable: one SQLite file (ACS_TRIAGE_STORE=sqlite:PATH).

For a single machine: several threads and processes may share the file. Every method is one
`BEGIN IMMEDIATE` transaction, so writers take turns (WAL lets readers go on); dedup is a
UNIQUE key, so two claimants of one key cannot both win. Inside `unit()` the methods join one
transaction instead, so a request's claims, counts and outbox rows commit together or not at all.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from msgspec.structs import replace

from ..codec import incident_from_dict, incident_to_dict
from ..matchers import Matcher
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

__all__ = ["SqliteLease", "SqliteStore"]

log = logging.getLogger("triage.store")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_SCHEMA_VERSION = 2
_CLAIM_ROWS = 400  # keys per INSERT: 801 parameters, under SQLite's oldest limit (999)
# Columns a version-1 file lacks, added where their table exists; _SCHEMA creates missing tables.
_UPGRADE_FROM_1 = (
    ("groups", "total", "INTEGER NOT NULL DEFAULT 0"),
    ("groups", "started", "INTEGER"),
    ("groups", "latest", "INTEGER"),
    ("groups", "example", "TEXT"),
    ("outbox", "enqueued_at", "REAL NOT NULL DEFAULT 0"),
    ("poison", "refused", "TEXT NOT NULL DEFAULT ''"),
)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS dedup (
    key TEXT PRIMARY KEY,
    expires INTEGER NOT NULL              -- microseconds since the epoch, UTC
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedup_expires ON dedup (expires);
CREATE TABLE IF NOT EXISTS groups (
    fingerprint TEXT PRIMARY KEY,
    opened INTEGER NOT NULL,
    window_seconds INTEGER NOT NULL,
    held INTEGER NOT NULL DEFAULT 0,
    first_seen INTEGER,
    last_seen INTEGER,
    incident TEXT,                        -- JSON (triage.codec), the first held occurrence
    samples TEXT NOT NULL DEFAULT '[]',   -- JSON list of id dicts
    total INTEGER NOT NULL DEFAULT 0,     -- the whole burst, for its resolved notice
    started INTEGER,
    latest INTEGER,
    example TEXT                          -- JSON, the burst's first occurrence
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    body TEXT NOT NULL,                   -- OutboxMessage.to_dict() as JSON
    dequeue_count INTEGER NOT NULL DEFAULT 0,
    visible_at REAL NOT NULL,             -- seconds (the store's clock)
    receipt TEXT,
    enqueued_at REAL NOT NULL DEFAULT 0   -- seconds (the store's clock)
);
CREATE INDEX IF NOT EXISTS outbox_visible ON outbox (visible_at);
CREATE TABLE IF NOT EXISTS poison (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    body TEXT NOT NULL,
    dequeue_count INTEGER NOT NULL,
    poisoned_at REAL NOT NULL,
    refused TEXT NOT NULL DEFAULT ''      -- why the webhook refused it, '' when retries ran out
);
CREATE TABLE IF NOT EXISTS silences (
    id TEXT PRIMARY KEY,
    matcher TEXT NOT NULL,                -- JSON, Matcher.conditions()
    starts INTEGER NOT NULL,
    ends INTEGER NOT NULL,
    comment TEXT NOT NULL,
    created_by TEXT NOT NULL,
    count INTEGER NOT NULL DEFAULT 0,
    first_seen INTEGER,
    last_seen INTEGER,
    incident TEXT,                        -- JSON, the first silenced occurrence
    summarized INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS slots (
    destination TEXT PRIMARY KEY,
    next REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hourly (
    hour INTEGER NOT NULL,                -- microseconds since the epoch, UTC, on the hour
    fingerprint TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (hour, fingerprint)
) WITHOUT ROWID;
"""

# Posted messages (Outbox.mark_sent). Created on every open: files made before it lack it.
_SENT_TABLE = (
    "CREATE TABLE IF NOT EXISTS sent (id TEXT PRIMARY KEY, expires REAL NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS sent_expires ON sent (expires)"
)


def _use_wal(db: sqlite3.Connection, patience: float = 30.0) -> None:
    """Put the file in WAL mode (a property of the file: done once). Switching needs an exclusive
    lock, which a busy database refuses at once ("database is locked") whatever the timeout: when
    several processes open a new file together, all but one are refused, so they try again."""
    deadline = time.monotonic() + patience
    while str(db.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
        try:
            db.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _us(moment: datetime) -> int:
    """A datetime as exact integer microseconds since the epoch (naive means UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _US


def _dt(micros: int) -> datetime:
    return _EPOCH + micros * _US


class _ThreadConnection:
    """One thread's connection, held by that thread's local storage only (and weakly by the
    store, to close it): it is closed when the thread ends and this is collected."""

    __slots__ = ("__weakref__", "db", "pid")

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.pid = os.getpid()

    def __del__(self) -> None:
        self.db.close()


class SqliteStore:
    """Store and outbox in one SQLite file, safe for the threads and processes of one machine."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        visibility_timeout: float = 30.0,
        retry_delay: float = 0.0,
        clock: Callable[[], float] = time.time,
        purge_interval: timedelta = timedelta(hours=1),
    ) -> None:
        self.path = Path(path)
        self.visibility_timeout = visibility_timeout
        self.retry_delay = retry_delay
        self._clock = clock
        self._purge_interval_us = purge_interval // _US
        self._next_purge = 0
        self._local = threading.local()
        self._lock = threading.Lock()
        # The open connections, without keeping them open: each belongs to its thread.
        self._connections: weakref.WeakSet[_ThreadConnection] = weakref.WeakSet()
        self._inherited: list[_ThreadConnection] = []
        if self.path.parent != Path():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._transaction() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version < _SCHEMA_VERSION:
                if version == 1:
                    for table, column, definition in _UPGRADE_FROM_1:
                        columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
                        if columns and column not in columns:
                            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
            for statement in _SENT_TABLE.split(";"):
                db.execute(statement)

    # -- plumbing ------------------------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        local = self._local
        held: _ThreadConnection | None = getattr(local, "held", None)
        # A connection must not cross a fork: a child process opens its own.
        if held is None or held.pid != os.getpid():
            if held is not None:
                self._inherited.append(held)  # the parent's: never closed here, nor used
            # check_same_thread=False only so that close() may run on any thread; each
            # connection is otherwise used by the thread that opened it.
            db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            _use_wal(db)
            db.execute("PRAGMA synchronous = NORMAL")
            # Only the thread's own local holds it: when the thread ends, the connection is
            # closed with it (a server that starts a thread per request opens no more files).
            held = local.held = _ThreadConnection(db)
            with self._lock:
                self._connections.add(held)
        return held.db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._connection()
        local = self._local
        if getattr(local, "depth", 0):
            # Inside a unit: join its transaction, which commits (or rolls back) as a whole.
            if not db.in_transaction:
                raise sqlite3.OperationalError("the unit's transaction was rolled back by SQLite")
            yield db
            return
        db.execute("BEGIN IMMEDIATE")  # take the write lock now: no upgrade deadlocks later
        local.depth = 1
        try:
            yield db
        except BaseException:
            if db.in_transaction:  # SQLite may have rolled back already (a full disk, for one)
                db.execute("ROLLBACK")
            raise
        finally:
            local.depth = 0
        db.execute("COMMIT")

    @contextmanager
    def unit(self) -> Iterator[None]:
        """The calls inside (on this thread) as one `BEGIN IMMEDIATE` transaction: a crash or
        an error anywhere inside leaves nothing of it, so the sender's retry is counted."""
        if getattr(self._local, "depth", 0):
            yield
            return
        with self._transaction():
            yield

    def close(self) -> None:
        """Close every connection this object opened whose thread is still running."""
        with self._lock:
            for held in list(self._connections):
                held.db.close()
            self._connections.clear()
        self._local = threading.local()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- dedup ---------------------------------------------------------------------------------
    def claim(self, keys: Sequence[str], now: datetime, ttl: timedelta) -> list[Claim]:
        now_us, expires = _us(now), _us(now + ttl)
        first: dict[str, int] = {}
        for index, key in enumerate(keys):
            first.setdefault(key, index)  # a key repeated within the batch is a duplicate
        unique = list(first)
        won: set[str] = set()
        with self._transaction() as db:
            for start in range(0, len(unique), _CLAIM_ROWS):
                chunk = unique[start : start + _CLAIM_ROWS]
                # One statement per chunk: insert, or take over a row whose TTL has passed;
                # RETURNING names the keys that went in either way.
                placeholders = ", ".join(["(?, ?)"] * len(chunk))  # only '?': the values are bound
                rows = db.execute(
                    f"INSERT INTO dedup (key, expires) VALUES {placeholders} "  # noqa: S608
                    "ON CONFLICT (key) DO UPDATE SET expires = excluded.expires "
                    "WHERE dedup.expires <= ? RETURNING key",
                    [*(value for key in chunk for value in (key, expires)), now_us],
                ).fetchall()
                won.update(key for (key,) in rows)
            if now_us >= self._next_purge:
                self._next_purge = now_us + self._purge_interval_us
                db.execute("DELETE FROM dedup WHERE expires <= ?", (now_us,))
        return [
            Claim.NEW if key in won and first[key] == index else Claim.DUPLICATE
            for index, key in enumerate(keys)
        ]

    def release(self, keys: Sequence[str]) -> None:
        with self._transaction() as db:
            db.executemany("DELETE FROM dedup WHERE key = ?", [(key,) for key in keys])

    def purge_expired(self, now: datetime) -> int:
        """Delete the dedup keys whose TTL has passed (claim does this once an hour)."""
        with self._transaction() as db:
            return db.execute("DELETE FROM dedup WHERE expires <= ?", (_us(now),)).rowcount

    # -- groups --------------------------------------------------------------------------------
    def hit(
        self,
        fingerprint: str,
        count: int,
        first: Sequence[Incident],
        now: datetime,
        window: timedelta,
    ) -> bool:
        now_us = _us(now)
        with self._transaction() as db:
            row = db.execute(
                "SELECT held, samples FROM groups WHERE fingerprint = ?", (fingerprint,)
            ).fetchone()
            opened = row is None
            if opened:
                db.execute(
                    "INSERT INTO groups (fingerprint, opened, window_seconds, total, started, latest, "
                    "example) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        fingerprint, now_us, int(window.total_seconds()), count, now_us, now_us,
                        orjson.dumps(incident_to_dict(first[0])).decode(),
                    ),
                )  # fmt: skip
                held, samples = 0, "[]"
                count -= 1  # the first occurrence alerts now
                first = first[1:]
            else:
                held, samples = row
                if count > 0:
                    db.execute(
                        "UPDATE groups SET total = total + ?, latest = ? WHERE fingerprint = ?",
                        (count, now_us, fingerprint),
                    )
            if count > 0 and first:
                if held == 0:
                    db.execute(
                        "UPDATE groups SET first_seen = ?, incident = ? WHERE fingerprint = ?",
                        (now_us, orjson.dumps(incident_to_dict(first[0])).decode(), fingerprint),
                    )
                sample_list: list[dict[str, str]] = orjson.loads(samples)
                room = MAX_SAMPLES - len(sample_list)
                if room > 0:
                    sample_list.extend(sample_ids(first, room))
                db.execute(
                    "UPDATE groups SET held = held + ?, last_seen = ?, samples = ? WHERE fingerprint = ?",
                    (count, now_us, orjson.dumps(sample_list).decode(), fingerprint),
                )
        return opened

    def hit_many(
        self, hits: Sequence[tuple[str, int, Sequence[Incident]]], now: datetime, window: timedelta
    ) -> list[bool]:
        """One `hit` after another, in one transaction."""
        with self._transaction():
            return hit_each(self, hits, now, window)

    def alerted(self, fingerprint: str, count: int, first: Incident, now: datetime, quiet: timedelta) -> None:
        now_us, seconds = _us(now), int(quiet.total_seconds())
        with self._transaction() as db:
            # The quiet period starts again with every alert: due `quiet` after the last one.
            db.execute(
                "INSERT INTO groups (fingerprint, opened, window_seconds, total, started, latest, example) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (fingerprint) DO UPDATE SET "
                "total = total + excluded.total, latest = excluded.latest, "
                "opened = MAX(opened, excluded.opened), window_seconds = excluded.window_seconds",
                (
                    fingerprint,
                    now_us,
                    seconds,
                    count,
                    now_us,
                    now_us,
                    orjson.dumps(incident_to_dict(first)).decode(),
                ),
            )

    def take_due(self, now: datetime, resolved: list[Burst] | None = None) -> list[Held]:
        now_us = _us(now)
        taken: list[Held] = []
        with self._transaction() as db:
            rows = db.execute(
                "SELECT fingerprint, window_seconds, held, first_seen, last_seen, incident, samples, "
                "opened, total, started, latest, example FROM groups "
                "WHERE opened + window_seconds * 1000000 <= ?",
                (now_us,),
            ).fetchall()
            for (
                fingerprint,
                window_seconds,
                held,
                first_seen,
                last_seen,
                incident,
                samples,
                opened,
                *burst,
            ) in rows:
                if held == 0:
                    # Quiet for a whole window: close it, so the next occurrence alerts at once.
                    db.execute("DELETE FROM groups WHERE fingerprint = ?", (fingerprint,))
                    total, started, latest, example = burst
                    if resolved is not None and total > 0 and example:  # a version-1 group has no totals
                        resolved.append(
                            Burst(
                                fingerprint,
                                total,
                                _dt(started),
                                _dt(latest),
                                incident_from_dict(orjson.loads(example)),
                                window_seconds,
                            )
                        )
                    continue
                taken.append(
                    Held(
                        fingerprint=fingerprint,
                        count=held,
                        first_seen=_dt(first_seen),
                        last_seen=_dt(last_seen),
                        incident=incident_from_dict(orjson.loads(incident)),
                        window_seconds=window_seconds,
                        samples=orjson.loads(samples),
                        burst_count=burst[0] or 0,
                        burst_started=_dt(burst[1]) if burst[1] is not None else None,
                        window_start=_dt(opened),
                        window_end=_dt(now_us),
                    )
                )
                db.execute(
                    "UPDATE groups SET opened = ?, held = 0, first_seen = NULL, last_seen = NULL, "
                    "incident = NULL, samples = '[]' WHERE fingerprint = ?",
                    (now_us, fingerprint),
                )
        return taken

    def restore(self, held: Held, now: datetime, counted: bool = True, keys: Sequence[str] = ()) -> None:
        # `keys` name recovered events; this store never recovers any (its units are transactions).
        if held.count <= 0:
            return
        fingerprint = held.fingerprint
        # Times as they come back from the table (aware UTC), so that they compare.
        restored = replace(held, first_seen=_dt(_us(held.first_seen)), last_seen=_dt(_us(held.last_seen)))
        with self._transaction() as db:
            row = db.execute(
                "SELECT window_seconds, held, first_seen, last_seen, incident, samples "
                "FROM groups WHERE fingerprint = ?",
                (fingerprint,),
            ).fetchone()
            current: Held | None = None
            if row is None:  # closed meanwhile: open it again
                window_seconds = held.window_seconds
                db.execute(
                    "INSERT INTO groups (fingerprint, opened, window_seconds, total, started, latest, "
                    "example) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        fingerprint, _us(now), window_seconds, held.count, _us(held.first_seen),
                        _us(held.last_seen), orjson.dumps(incident_to_dict(held.incident)).decode(),
                    ),
                )  # fmt: skip
            else:
                window_seconds, count, first_seen, last_seen, incident, samples = row
                if not counted:
                    db.execute(
                        "UPDATE groups SET total = total + ?, latest = MAX(latest, ?) WHERE fingerprint = ?",
                        (held.count, _us(held.last_seen), fingerprint),
                    )
                if count > 0:
                    current = Held(
                        fingerprint, count, _dt(first_seen), _dt(last_seen),
                        incident_from_dict(orjson.loads(incident)), window_seconds, orjson.loads(samples),
                    )  # fmt: skip
            merged = merge_held(restored, current, window_seconds)
            # Due again by now, as before take_due: the next flush reports it at once, for the
            # window the restored digest reported.
            opened = _us(now) - window_seconds * 1_000_000
            if held.window_start is not None:
                opened = min(opened, _us(held.window_start))
            db.execute(
                "UPDATE groups SET opened = MIN(opened, ?), held = ?, first_seen = ?, last_seen = ?, "
                "incident = ?, samples = ? WHERE fingerprint = ?",
                (
                    opened,
                    merged.count,
                    _us(merged.first_seen),
                    _us(merged.last_seen),
                    orjson.dumps(incident_to_dict(merged.incident)).decode(),
                    orjson.dumps(merged.samples).decode(),
                    fingerprint,
                ),
            )

    # -- silences ------------------------------------------------------------------------------
    _SILENCE_COLUMNS = (
        "id, matcher, starts, ends, comment, created_by, count, first_seen, last_seen, incident, summarized"
    )

    def add_silence(self, silence: SilenceRule) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO silences (id, matcher, starts, ends, comment, created_by) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    silence.id, orjson.dumps(silence.matcher.conditions()).decode(), _us(silence.starts),
                    _us(silence.ends), silence.comment, silence.created_by,
                ),
            )  # fmt: skip

    def list_silences(self, now: datetime, include_ended: bool = False) -> list[SilenceRule]:
        with self._transaction() as db:
            rows = db.execute(
                f"SELECT {self._SILENCE_COLUMNS} FROM silences WHERE ? OR ends > ? ORDER BY starts, id",  # noqa: S608 - constant columns
                (include_ended, _us(now)),
            ).fetchall()
        return [_silence(row) for row in rows]

    def expire_silence(self, silence_id: str, now: datetime) -> SilenceRule | None:
        with self._transaction() as db:
            db.execute(
                "UPDATE silences SET ends = ? WHERE id = ? AND ends > ?", (_us(now), silence_id, _us(now))
            )
            row = db.execute(
                f"SELECT {self._SILENCE_COLUMNS} FROM silences WHERE id = ?",  # noqa: S608 - constant columns
                (silence_id,),
            ).fetchone()
        return None if row is None else _silence(row)

    def count_silenced(
        self, silence_id: str, count: int, first: Incident, now: datetime, recovered: Sequence[str] = ()
    ) -> bool:
        # `recovered` names recovered events; this store never recovers any.
        now_us = _us(now)
        with self._transaction() as db:
            counted = db.execute(
                "UPDATE silences SET count = count + ?, first_seen = COALESCE(first_seen, ?), last_seen = ?, "
                "incident = COALESCE(incident, ?) "
                "WHERE id = ? AND summarized = 0 AND starts <= ? AND ends > ?",
                (
                    count,
                    now_us,
                    now_us,
                    orjson.dumps(incident_to_dict(first)).decode(),
                    silence_id,
                    now_us,
                    now_us,
                ),
            ).rowcount
        return counted == 1

    def take_ended_silences(self, now: datetime) -> list[SilenceRule]:
        with self._transaction() as db:
            rows = db.execute(
                f"UPDATE silences SET summarized = 1 WHERE summarized = 0 AND ends <= ? "  # noqa: S608
                f"RETURNING {self._SILENCE_COLUMNS}",
                (_us(now),),
            ).fetchall()
        return sorted((_silence(row) for row in rows if row[6] > 0), key=lambda s: (s.starts, s.id))

    # -- pacing --------------------------------------------------------------------------------
    def reserve_send(self, destination: str, interval: float, now: float) -> float:
        return self.reserve_send_within(destination, interval, now, math.inf)[1]

    def reserve_send_within(
        self, destination: str, interval: float, now: float, most: float
    ) -> tuple[bool, float]:
        if not interval:
            wait = self.send_wait(destination, now)  # nothing to book: no write
            return wait <= most, wait
        with self._transaction() as db:  # BEGIN IMMEDIATE: no other writer between read and write
            row = db.execute("SELECT next FROM slots WHERE destination = ?", (destination,)).fetchone()
            slot = max(now, row[0]) if row else now
            if slot - now > most:
                return False, slot - now
            db.execute(
                "INSERT INTO slots (destination, next) VALUES (?, ?) "
                "ON CONFLICT (destination) DO UPDATE SET next = excluded.next",
                (destination, slot + interval),
            )
        return True, slot - now

    def send_wait(self, destination: str, now: float) -> float:
        row = (
            self._connection()
            .execute("SELECT next FROM slots WHERE destination = ?", (destination,))
            .fetchone()
        )
        return max(0.0, row[0] - now) if row else 0.0

    def hold_send(self, destination: str, until: float) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO slots (destination, next) VALUES (?, ?) "
                "ON CONFLICT (destination) DO UPDATE SET next = MAX(next, excluded.next)",
                (destination, until),
            )

    # -- hourly counters -----------------------------------------------------------------------
    def add_hourly(
        self, hour: datetime, counts: Mapping[str, int], recovered: Mapping[str, Sequence[str]] | None = None
    ) -> None:
        # `recovered` names recovered events; this store never recovers any.
        at = _us(hour_of(hour))
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO hourly (hour, fingerprint, count) VALUES (?, ?, ?) "
                "ON CONFLICT (hour, fingerprint) DO UPDATE SET count = count + excluded.count",
                [(at, fingerprint, count) for fingerprint, count in counts.items()],
            )

    def hourly(self, start: datetime, end: datetime) -> list[tuple[datetime, str, int]]:
        db = self._connection()
        rows = db.execute(
            "SELECT hour, fingerprint, count FROM hourly WHERE hour >= ? AND hour < ?", (_us(start), _us(end))
        ).fetchall()
        return [(_dt(hour), fingerprint, count) for hour, fingerprint, count in rows]

    # -- outbox --------------------------------------------------------------------------------
    def enqueue(self, messages: Sequence[OutboxMessage]) -> None:
        visible = self._clock()
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO outbox (id, body, visible_at, enqueued_at) VALUES (?, ?, ?, ?)",
                [(m.id, m.encode().decode(), visible, visible) for m in messages],
            )

    def dead_letter(self, message: OutboxMessage, reason: str) -> None:
        body = message.encode().decode()
        with self._transaction() as db:
            # The dequeue count of its outbox row, if the caller still holds it leased.
            db.execute(
                "INSERT INTO poison (id, body, dequeue_count, poisoned_at, refused) VALUES (:id, :body, "
                "COALESCE((SELECT MAX(dequeue_count) FROM outbox WHERE id = :id), :attempts), :now, :why)",
                {
                    "id": message.id,
                    "body": body,
                    "attempts": message.attempts,
                    "now": self._clock(),
                    "why": reason or "refused",
                },
            )
        log.warning(
            "outbox message %s for destination %r moved to the poison queue: %s",
            message.id, message.destination, reason,
        )  # fmt: skip

    def poll(self, queue_name: str, max_messages: int) -> list[SqliteLease]:
        """Lease up to max_messages outbox messages for `visibility_timeout` seconds.
        `queue_name` is the name the trigger binds; the store has one outbox (as MemoryStore)."""
        now = self._clock()
        with self._transaction() as db:
            rows = db.execute(
                # First alerts first: a message that is not urgent says so in its body.
                "SELECT seq, id, body, dequeue_count FROM outbox WHERE visible_at <= ? "
                "ORDER BY json_extract(body, '$.urgent') IS 0, seq LIMIT ?",
                (now, max_messages),
            ).fetchall()
            leases: list[SqliteLease] = []
            for seq, message_id, body, dequeues in rows:
                receipt = secrets.token_hex(8)
                db.execute(
                    "UPDATE outbox SET dequeue_count = ?, visible_at = ?, receipt = ? WHERE seq = ?",
                    (dequeues + 1, now + self.visibility_timeout, receipt, seq),
                )
                leases.append(
                    SqliteLease(
                        self,
                        seq,
                        receipt=receipt,
                        message_id=message_id,
                        body=body.encode(),
                        dequeue_count=dequeues + 1,
                    )
                )
        return leases

    def poisoned(self) -> list[OutboxMessage]:
        """The messages moved to the poison table, oldest first."""
        with self._transaction() as db:
            rows = db.execute("SELECT body FROM poison ORDER BY seq").fetchall()
        return [OutboxMessage.from_dict(orjson.loads(body)) for (body,) in rows]

    def outbox_status(self, now: float) -> list[Backlog]:
        with self._transaction() as db:
            queued = db.execute(
                "SELECT json_extract(body, '$.destination'), enqueued_at FROM outbox"
            ).fetchall()
            rows = db.execute("SELECT body, poisoned_at, refused FROM poison").fetchall()
        return backlog(queued, (_poisoned(*row) for row in rows), now)

    def redrive(self, now: float, which: RedriveFilter) -> int:
        at = self._clock()
        with self._transaction() as db:
            rows = db.execute("SELECT seq, body, poisoned_at, refused FROM poison ORDER BY poisoned_at, seq")
            taken = [
                (seq, body)
                for seq, body, *rest in rows.fetchall()
                if which.takes(_poisoned(body, *rest), now)
            ][: which.limit]
            db.executemany(
                "INSERT INTO outbox (id, body, visible_at, enqueued_at) VALUES (?, ?, ?, ?)",
                [(orjson.loads(body)["id"], body, at, at) for _, body in taken],
            )
            db.executemany("DELETE FROM poison WHERE seq = ?", [(seq,) for seq, _ in taken])
        return len(taken)

    def oldest_poisoned(self, now: float) -> float | None:
        (oldest,) = self._connection().execute("SELECT MIN(poisoned_at) FROM poison").fetchone()
        return None if oldest is None else max(0.0, now - oldest)

    def defer(self, message: OutboxMessage, delay: float) -> None:
        now = self._clock()
        with self._transaction() as db:
            db.execute(
                "INSERT INTO outbox (id, body, visible_at, enqueued_at) VALUES (?, ?, ?, ?)",
                (message.id, message.encode().decode(), now + delay, now),
            )

    def mark_sent(self, message_id: str, now: float) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO sent (id, expires) VALUES (?, ?) "
                "ON CONFLICT (id) DO UPDATE SET expires = excluded.expires",
                (message_id, now + SENT_TTL),
            )
            db.execute("DELETE FROM sent WHERE expires <= ?", (now,))  # indexed: only what expired

    def was_sent(self, message_id: str, now: float) -> bool:
        row = self._connection().execute("SELECT expires FROM sent WHERE id = ?", (message_id,)).fetchone()
        return row is not None and row[0] > now

    def _settle(self, lease: SqliteLease, ok: bool, poison: bool) -> None:
        with self._transaction() as db:
            current = (lease.seq, lease.receipt)
            if ok:
                db.execute("DELETE FROM outbox WHERE seq = ? AND receipt = ?", current)
            elif poison:
                moved = db.execute(
                    "INSERT INTO poison (id, body, dequeue_count, poisoned_at) "
                    "SELECT id, body, dequeue_count, ? FROM outbox WHERE seq = ? AND receipt = ?",
                    (self._clock(), *current),
                ).rowcount
                if moved:
                    db.execute("DELETE FROM outbox WHERE seq = ?", (lease.seq,))
            else:
                db.execute(
                    "UPDATE outbox SET visible_at = ?, receipt = NULL WHERE seq = ? AND receipt = ?",
                    (self._clock() + self.retry_delay, *current),
                )


def _poisoned(body: str, poisoned_at: float, refused: str) -> Poisoned:
    return Poisoned(OutboxMessage.from_dict(orjson.loads(body)), poisoned_at, refused)


def _silence(row: tuple[Any, ...]) -> SilenceRule:
    """A silences row (in _SILENCE_COLUMNS order) as a SilenceRule."""
    sid, matcher, starts, ends, comment, by, count, first_seen, last_seen, incident, summarized = row
    return SilenceRule(
        id=sid,
        matcher=Matcher.model_validate(orjson.loads(matcher)),
        starts=_dt(starts),
        ends=_dt(ends),
        comment=comment,
        created_by=by,
        count=count,
        first_seen=None if first_seen is None else _dt(first_seen),
        last_seen=None if last_seen is None else _dt(last_seen),
        incident=None if incident is None else incident_from_dict(orjson.loads(incident)),
        summarized=bool(summarized),
    )


class SqliteLease:
    """An outbox message leased from a SqliteStore: `done()` deletes it; `fail()` makes it
    visible again after the store's retry_delay; `fail(poison=True)` moves it to the poison
    table. A lease that timed out (another worker took the message) settles nothing."""

    __slots__ = ("body", "dequeue_count", "id", "receipt", "seq", "store")

    def __init__(
        self, store: SqliteStore, seq: int, *, receipt: str, message_id: str, body: bytes, dequeue_count: int
    ) -> None:
        self.store = store
        self.seq = seq
        self.receipt = receipt
        self.id = message_id
        self.body = body
        self.dequeue_count = dequeue_count

    @property
    def message(self) -> OutboxMessage:
        return OutboxMessage.decode(self.body)

    def done(self) -> None:
        self.store._settle(self, ok=True, poison=False)

    def fail(self, poison: bool = False) -> None:
        self.store._settle(self, ok=False, poison=poison)
