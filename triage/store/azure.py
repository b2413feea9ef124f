"""The Store on Azure Storage, shared by every Function instance: Tables hold dedup keys,
burst groups and send slots; a Storage queue holds the outbox.

Concurrency comes from the service, not from a lock: a dedup key is an insert that fails on
conflict; every read-modify-write (group counters, send slots, an expired key taken over) is
conditional on the entity's ETag and is retried when another instance got there first. So two
instances never both own a key, and no held count is lost or taken twice.

Round trips are the cost here, so a batch is written in as few as its partitions allow: claims
in entity-group transactions per dedup partition, the batch's burst counts in transactions on
the groups partition and its hourly counters on the hour's partition, each conditional on the
row as this instance last read or wrote it (read once, all at once, when unknown), and its
outbox messages side by side. A flush resets each due group in the same transaction that
records the digest (or resolved burst) it gives, so that a crash between the two loses nothing.

The Azure SDK is imported here only: `open_store` imports this module when it is needed.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import math
import random
import re
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
import requests
from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.core.pipeline.transport import RequestsTransport
from azure.data.tables import (
    EdmType,
    EntityProperty,
    TableClient,
    TableEntity,
    TableServiceClient,
    TableTransactionError,
    UpdateMode,
)
from azure.storage.queue import (
    QueueClient,
    QueueMessage,
    TextBase64DecodePolicy,
    TextBase64EncodePolicy,
)
from msgspec.structs import replace
from pydantic import SecretStr
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from ..codec import incident_from_dict, incident_to_dict
from ..errors import ConfigurationError, TriageError
from ..matchers import Matcher
from ..model import Incident
from ..settings import StorageConnection
from . import (
    MAX_SAMPLES,
    SENT_TTL,
    Backlog,
    Burst,
    Claim,
    EnqueueFailed,
    Held,
    HitsFailed,
    OutboxMessage,
    Poisoned,
    RedriveFilter,
    SilenceRule,
    backlog,
    hour_of,
    merge_held,
    sample_ids,
)

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

__all__ = [
    "AzureStore",
    "OutboxMessageTooLarge",
    "QueueLease",
    "StoreContention",
    "row_key",
    "storage_credential",
]

log = logging.getLogger("triage.store")
# The SDK logs every request and response at INFO: in a Function App, a log line per storage
# call. Its warnings and errors still come through.
logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)

MAX_QUEUE_MESSAGE_BYTES = 64 * 1024  # what a Storage queue message may hold, as sent (base64 text)
_TRANSACTION_MAX = 100  # operations in one entity group transaction (one partition)
_PARTITION_DIGITS = 1  # hex digits of a key's SHA-256 that name its partition: 16 partitions
_GROUPS = "group"
_UNITS = "unit"  # completion markers of finished units (see `AzureStore.unit`)
_SLOTS = "slot"
_SENT = "sent"  # dedup table: ids of posted outbox messages (event keys' partitions are hex digits)
_VISIBILITY_MAX = 7 * 24 * 3600  # seconds a queue message may be hidden
_SILENCES = "silence"
_BURST = ("total", "started", "latest", "example")  # a group's whole-burst properties
# A taken digest or resolved burst waits as a record beside its group (same partition, so one
# transaction resets the group and writes it) until the unit that took it has written its
# alerts. Its RowKey starts with "%~", which `row_key` never writes.
_NOTICE = "%~"
# `opened`: the start of the window a digest reports (a reminder's, see Held.window_start).
_NOTICE_PROPERTIES = ("fingerprint", "held", "first_seen", "last_seen", "incident", "window_seconds",
                      "samples", "opened", *_BURST)  # fmt: skip
# An entity-group transaction carries at most 4 MiB: cut long before that by the size of the
# JSON properties (incidents are capped at _PROPERTY_MAX characters each).
_TRANSACTION_BYTES = 2_000_000
_HOURLY = "hourly-"  # + YYYYMMDDHH: one partition per hour, so a period is one range query
# A chunk's conflicting keys set aside one per round trip before the rest is read instead
# (when duplicates also outnumber the new keys seen so far).
_SET_ASIDE = 4
_POISON_READ_MAX = 5000  # poison messages one status or re-drive reads (the rest: the next run)
_POOL_CONNECTIONS = 64  # kept-alive connections to storage, shared by every client of a store
_PURGE_STEP = 5_000  # expired rows one purge round reads and deletes
_POINT_READS = 8  # unknown rows read one by one (in parallel); more: the partition in one query
_ATTEMPTS = 100  # optimistic-concurrency retries before giving up on a contended entity
_REMEMBERED_KEYS = 20_000  # live claims of this instance kept in memory (a few batches)
_REMEMBERED_UNITS = 20_000  # ids of finished units kept in memory (final: never un-finished)
# A group remembers the units that counted into it (`applied`, see `AzureStore._mark`): the
# newest _APPLIED_MAX, each for the claim lease + _APPLIED_KEEP (the retry that recovers a
# dead unit's events comes after its lease), except those known here to have finished.
_APPLIED_MAX = 50
_APPLIED_KEEP = timedelta(hours=1)
_CHAIN_MAX = 8  # units a recovered key's row names (the first claimant, then each that died)
_ROW_KEY_MAX = 400  # characters; the service allows 1 KiB, UTF-16
_TABLE_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,53}$")
_QUEUE_NAME = re.compile(r"^(?=.{3,56}$)[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9]))*$")
# Characters a RowKey may not hold (/ \ # ? and controls), plus % and ~ that our encoding uses.
_ROW_KEY_UNSAFE = re.compile(r"[%~/\\#?\x00-\x1f\x7f-\x9f]")
_CONFLICTS = {"EntityAlreadyExists", "UpdateConditionNotSatisfied", "ResourceNotFound", "EntityNotFound"}

T = TypeVar("T")
R = TypeVar("R")
_Key = tuple[int, str]  # a key's index in the batch, and its RowKey


_OWNED = (Claim.NEW, Claim.RECOVERED)  # the claims that make the caller the key's owner


class _Unit:
    """A unit open on one thread: its id, the keys it has claimed (→ their expiry), and the
    records of what its flush took (digests and resolved bursts; silences whose summary it
    claimed), settled once it exits cleanly."""

    __slots__ = ("claimed", "id", "notices", "recovered", "summaries")

    def __init__(self) -> None:
        self.id = uuid.uuid4().hex
        self.claimed: dict[str, datetime] = {}
        # Keys taken over as RECOVERED → the units that had them, the one that claimed them
        # first, then each that recovered them and died too (see `_origin`): what `restore`
        # looks up in a group's `applied` list.
        self.recovered: dict[str, tuple[str, ...]] = {}
        self.notices: dict[str, None] = {}  # RowKeys of taken records (groups partition)
        self.summaries: dict[str, None] = {}  # RowKeys of silences whose summary it took


class _Rows:
    """Table rows this instance last read or wrote, with their ETags, by (partition, RowKey):
    a batch writes what it knows ETag-conditionally without reading it first (a stale row
    costs one refused transaction and a read). Forgotten wholesale past `limit` rows."""

    def __init__(self, limit: int = 10_000) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._rows: dict[tuple[str, str], TableEntity] = {}

    def get(self, key: tuple[str, str]) -> TableEntity | None:
        with self._lock:
            return self._rows.get(key)

    def put(self, key: tuple[str, str], entity: Mapping[str, Any], etag: str) -> None:
        row = TableEntity(entity)
        row._metadata = {"etag": etag, "timestamp": None}  # where the SDK's entity keeps its ETag
        with self._lock:
            if len(self._rows) >= self._limit:
                self._rows.clear()
            self._rows[key] = row

    def drop(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._rows.pop(key, None)


class OutboxMessageTooLarge(TriageError):
    """A rendered payload does not fit in a Storage queue message (64 KB once base64-encoded)."""


class StoreContention(TriageError):
    """An entity kept changing under us for every retry; the caller should try again later."""


def row_key(key: str) -> str:
    """`key` as a valid, unique RowKey: forbidden characters %-escaped; a long key becomes
    '~' and its SHA-256 ('~' is always escaped otherwise, so the two forms cannot meet)."""
    encoded = _ROW_KEY_UNSAFE.sub(lambda m: f"%{ord(m.group()):02X}", key)
    if len(encoded) > _ROW_KEY_MAX:
        return "~" + hashlib.sha256(key.encode()).hexdigest()
    return encoded


def _partition(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:_PARTITION_DIGITS]


def _utc(moment: datetime) -> datetime:
    """A plain aware datetime in UTC (the SDK returns a datetime subclass; naive means UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return datetime(
        moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second,
        moment.microsecond, tzinfo=UTC,
    )  # fmt: skip


def _int(value: Any) -> int:
    """An integer property, whether the SDK returned an int or an Int64 EntityProperty."""
    return int(value.value if isinstance(value, EntityProperty) else value)


def _int64(value: int) -> EntityProperty:
    return EntityProperty(value, EdmType.INT64)


def _is_conflict(err: TableTransactionError) -> bool:
    code = str(getattr(err, "error_code", "") or "")
    return code in _CONFLICTS or err.status_code in (404, 409, 412)


def _transactions(by_partition: dict[str, list[T]]) -> list[tuple[str, Sequence[T]]]:
    """Items cut into transaction-sized chunks, each within one partition."""
    return [
        (partition, items[start : start + _TRANSACTION_MAX])
        for partition, items in by_partition.items()
        for start in range(0, len(items), _TRANSACTION_MAX)
    ]


def _backoff(attempt: int) -> None:
    # Many instances on one hot entity: spread their retries so that one of them wins each round.
    if attempt >= 2:
        time.sleep(random.uniform(0, min(0.005 * attempt, 0.2)))  # noqa: S311 - jitter, not crypto


def storage_credential(storage: StorageConnection) -> TokenCredential:
    """The token credential the Functions host would use for an identity-based connection:
    the managed identity (`__clientId` picks a user-assigned one) when `__credential` is
    managedidentity, else DefaultAzureCredential (a developer's Azure CLI login locally, the
    managed identity in Azure). azure-identity is imported only for identity-based storage."""
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    if storage.credential == "managedidentity":
        if storage.client_id:
            return ManagedIdentityCredential(client_id=storage.client_id)
        return ManagedIdentityCredential()
    return DefaultAzureCredential(managed_identity_client_id=storage.client_id)


class AzureStore:
    """Store and outbox on Azure Tables and a Storage queue (AzureWebJobsStorage).

    Tables `<prefix>dedup` (event keys, partitioned by hash) and `<prefix>state` (groups and
    send slots); queue `queue_name` (JSON, base64, as the Functions host reads it) and
    `<queue_name>-poison`. Tables and queue are created on first use.
    """

    def __init__(
        self,
        connection: str | StorageConnection,
        *,
        credential: TokenCredential | None = None,
        client_options: Mapping[str, Any] | None = None,
        queue_name: str = "acs-triage-outbox",
        table_prefix: str = "acstriage",
        api_version: str | None = None,
        visibility_timeout: int = 30,
        retry_delay: int = 0,
        workers: int = 8,
        purge_interval: timedelta = timedelta(minutes=1),
        purge_budget: timedelta = timedelta(seconds=45),
        claim_lease: timedelta = timedelta(seconds=300),
    ) -> None:
        if not _TABLE_PREFIX.match(table_prefix):
            raise ConfigurationError(
                "ACS_TRIAGE_TABLE_PREFIX must be 1-54 letters or digits, starting with a letter"
            )
        if not _QUEUE_NAME.match(queue_name):
            raise ConfigurationError(
                "ACS_TRIAGE_OUTBOX_QUEUE must be 3-56 lower-case letters, digits or single hyphens"
            )
        self.queue_name = queue_name
        self.poison_queue_name = f"{queue_name}-poison"
        self.visibility_timeout = visibility_timeout
        self.retry_delay = retry_delay
        if isinstance(connection, str):
            connection = StorageConnection(connection_string=SecretStr(connection))
        self._storage = connection
        if connection.connection_string is None and credential is None:
            credential = storage_credential(connection)
        self._credential = credential
        # Passed to every SDK client (for example connection_verify: a CA bundle in tests).
        self._client_options = dict(client_options or {})
        self._session: requests.Session | None = None
        if "transport" not in self._client_options:
            # One connection pool for all four clients, as large as the threads that use them
            # at once (the store's pool and the host's request threads): the SDK's default
            # pool per client keeps 10 and drops the rest ("Connection pool is full").
            self._session = requests.Session()
            adapter = HTTPAdapter(
                pool_connections=4,
                pool_maxsize=max(_POOL_CONNECTIONS, 4 * workers),
                max_retries=Retry(total=False, redirect=False, raise_on_status=False),  # the SDK retries
            )
            for scheme in ("http://", "https://"):
                self._session.mount(scheme, adapter)
            # The transport reads the connection options (connection_verify, timeouts) itself.
            self._client_options["transport"] = RequestsTransport(
                session=self._session, session_owner=False, **self._client_options
            )
        self._api_version = api_version
        self._dedup_name = f"{table_prefix}dedup"
        self._state_name = f"{table_prefix}state"
        self._workers = workers
        self._purge_interval = purge_interval
        self._purge_budget = purge_budget
        self._purging = False
        self._purger: threading.Thread | None = None
        self._lock = threading.Lock()
        self._tables: tuple[TableClient, TableClient] | None = None
        self._queues: dict[str, QueueClient] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._next_purge: datetime | None = None
        self._mine: dict[str, datetime] = {}  # keys this instance claimed, until they expire
        self._claim_lease = claim_lease
        self._local = threading.local()  # .unit: the unit open on this thread, if any
        self._finished: dict[str, None] = {}  # ids of units known to have finished, oldest first
        self._rows = _Rows()  # groups and hourly counters as last read or written here

    # -- plumbing ------------------------------------------------------------------------------
    def _dedup(self) -> TableClient:
        return self._open_tables()[0]

    def _state(self) -> TableClient:
        return self._open_tables()[1]

    def _open_tables(self) -> tuple[TableClient, TableClient]:
        tables = self._tables
        if tables is None:
            with self._lock:
                if self._tables is None:
                    service = self._table_service()
                    self._tables = (
                        service.create_table_if_not_exists(self._dedup_name),
                        service.create_table_if_not_exists(self._state_name),
                    )
                tables = self._tables
        return tables

    def _queue(self, name: str) -> QueueClient:
        queue = self._queues.get(name)
        if queue is None:
            with self._lock:
                queue = self._queues.get(name)
                if queue is None:
                    queue = self._queue_client(name)
                    with contextlib.suppress(ResourceExistsError):
                        queue.create_queue()
                    self._queues[name] = queue
        return queue

    def _queue_client(self, name: str) -> QueueClient:
        """A client of the queue `name`, which may not exist (nothing is created here)."""
        options: dict[str, Any] = {"api_version": self._api_version} if self._api_version else {}
        options.update(
            self._client_options,
            message_encode_policy=TextBase64EncodePolicy(),
            message_decode_policy=TextBase64DecodePolicy(),
        )
        secret = self._storage.connection_string
        if secret is not None:
            return QueueClient.from_connection_string(secret.get_secret_value(), name, **options)
        return QueueClient(str(self._storage.queue_service_uri), name, credential=self._credential, **options)

    def _table_service(self) -> TableServiceClient:
        secret = self._storage.connection_string
        if secret is not None:
            return TableServiceClient.from_connection_string(
                secret.get_secret_value(), **self._client_options
            )
        return TableServiceClient(
            str(self._storage.table_service_uri), credential=self._credential, **self._client_options
        )

    def _map(self, function: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """`function` over `items`, on the store's small thread pool when there is more than one.
        Every call finishes before an error is raised, so the caller knows what was done."""
        if len(items) <= 1:
            return [function(item) for item in items]
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="acs-triage-store")
        futures = [self._pool.submit(function, item) for item in items]
        wait(futures)
        return [future.result() for future in futures]

    def close(self) -> None:
        """Release the HTTP connections and the thread pool (once a purge under way is done)."""
        if self._purger is not None:
            self._purger.join()
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
            for client in [*(self._tables or ()), *self._queues.values()]:
                client.close()
            self._tables = None
            self._queues = {}
            if self._session is not None:
                self._session.close()  # its pools: a later call opens connections again

    def __enter__(self) -> AzureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def unit(self) -> Iterator[None]:
        """Tables and a queue share no transaction, so a unit is made replay-safe instead: the
        dedup rows it claims name it and carry a lease (now + claim_lease), and once its body
        has finished it writes one completion marker (state table, partition "unit"). Another
        delivery of one of its events is told BUSY until then, DUPLICATE after; if the marker
        never comes (the process died) it is RECOVERED once the lease has passed. On an error
        no marker is written: the policy stages give back what they took (claims released,
        counts restored). Nothing here waits for another delivery. Re-entrant, per thread."""
        if getattr(self._local, "unit", None) is not None:
            yield
            return
        unit = _Unit()
        self._local.unit = unit
        try:
            yield
        finally:
            self._local.unit = None
        # Only on a clean exit: after an error, what the unit took stays recorded (its records
        # are handed out again once the lease has passed) unless the stages gave it back.
        if unit.notices or unit.summaries:
            self._settle_taken(list(unit.notices), list(unit.summaries))
        if unit.claimed:
            self._finish(unit)

    def _finish(self, unit: _Unit) -> None:
        """Write a finished unit's completion marker (it expires with the unit's last claim)."""
        expires = max(unit.claimed.values())
        try:
            self._state().upsert_entity({"PartitionKey": _UNITS, "RowKey": unit.id, "expires": expires})
        except Exception as err:
            # Counted and written already: failing the request now would only make Event
            # Grid's retry recover every event of it. Without the marker, just a later
            # duplicate delivery of these events is recovered: never alerted again, and not
            # counted again where its counts still name this unit (see `_mark`).
            log.error(
                "the completion marker of a unit of %d event keys could not be written (%s); "
                "a duplicate delivery of them after the claim lease will be taken as recovered",
                len(unit.claimed), type(err).__name__,
            )  # fmt: skip
            return
        self._finished_unit(unit.id)
        # Remembered only now: a key in _mine is answered DUPLICATE without a round trip.
        # (Remembering it at claim time would be sound too, as a crash of this process also
        # ends the delivery that claimed it, which Event Grid then retries; but a key is only
        # known to be counted once its unit has finished, so that is when it is remembered.)
        self._remember(list(unit.claimed.items()))

    def _finished_unit(self, unit_id: str) -> None:
        with self._lock:
            finished = self._finished
            finished[unit_id] = None
            if len(finished) > _REMEMBERED_UNITS:
                del finished[next(iter(finished))]

    def _unit_finished(self, unit_id: str) -> bool:
        """Whether a unit wrote its completion marker (a finished unit stays finished: cached)."""
        with self._lock:
            if unit_id in self._finished:
                return True
        if self._get(self._state(), _UNITS, unit_id) is None:
            return False
        self._finished_unit(unit_id)
        return True

    def _verdict(self, entity: TableEntity, now: datetime, finished: Callable[[str], bool]) -> Claim:
        """What an existing dedup row means for a claim at `now`. NEW (expired) and RECOVERED
        (its unit died) rows are taken over by the caller, ETag-conditionally."""
        if _utc(entity["expires"]) <= now:
            return Claim.NEW
        unit = entity.get("unit")
        if not unit or finished(unit):  # a row claimed outside a unit (or before units) is final
            return Claim.DUPLICATE
        if _utc(entity["lease"]) > now:
            return Claim.BUSY
        return Claim.RECOVERED

    # -- dedup ---------------------------------------------------------------------------------
    def claim(self, keys: Sequence[str], now: datetime, ttl: timedelta) -> list[Claim]:
        """Insert each key's row; on a conflict the row found decides (see `_verdict`): an
        expired row or one of a unit that died is taken over, otherwise DUPLICATE or BUSY.

        Keys go in transactions of up to 100 inserts per partition, on a few threads, so a
        batch of 5,000 new keys costs about 64 round trips, not 5,000. A transaction that
        conflicts names the first key that exists: it is set aside and the rest resubmitted;
        when duplicates dominate, the rest is read instead. Keys found missing
        or expired go in one more transaction (a takeover is ETag-conditional); only a key
        another instance races us for is settled on its own. Inside a unit, each row names
        the unit and its lease; the units behind conflicting rows are looked up once each."""
        now = _utc(now)
        expires = now + ttl
        unit: _Unit | None = getattr(self._local, "unit", None)
        stamp = {"unit": unit.id, "lease": now + self._claim_lease} if unit is not None else {}
        results = [Claim.DUPLICATE] * len(keys)
        origins: dict[int, tuple[str, ...]] = {}  # index → the dead unit a RECOVERED key had
        unique: dict[str, int] = {}
        for index, key in enumerate(keys):
            unique.setdefault(key, index)  # a key repeated within the batch is a duplicate
        try:
            self._claim(unique, now, expires, stamp, results, origins=origins)
        except Exception:
            # The caller sees an error and the sender will retry: keys claimed so far must not
            # make that retry look like a duplicate. A recovered key keeps this unit's row
            # instead: the retry recovers it again once the lease has passed (released, it
            # would come back NEW and could alert a second time).
            won = [key for key, index in unique.items() if results[index] is Claim.NEW]
            try:
                self.release(won)
            except Exception:
                log.error(
                    "%d event keys stay claimed after a failed claim; retries of those events "
                    "are recovered once the claim lease has passed (outside a unit: dropped as "
                    "duplicates until the keys expire)",
                    len(won),
                )
            raise
        owned = [(key, expires) for key, index in unique.items() if results[index] in _OWNED]
        if unit is None:
            self._remember(owned)
        else:
            unit.claimed.update(owned)
            for key, index in unique.items():
                if results[index] is Claim.RECOVERED and index in origins:
                    unit.recovered[key] = origins[index]
        return results

    def _claim(
        self,
        unique: dict[str, int],
        now: datetime,
        expires: datetime,
        stamp: Mapping[str, Any],
        results: list[Claim],
        *,
        origins: dict[int, tuple[str, ...]],
    ) -> None:
        """Claim each key of `unique` (key → index); sets results[index] as each one is settled,
        and origins[index] for a key recovered from a unit that died (see `_origin`)."""
        by_partition: dict[str, list[_Key]] = defaultdict(list)
        for key, index in unique.items():
            if not self._claimed_here(key, now):
                by_partition[_partition(key)].append((index, row_key(key)))
        table = self._dedup()

        def row(partition: str, rk: str, dead: TableEntity | None = None) -> dict[str, Any]:
            # `dead`: the row of a unit that died, taken over (RECOVERED). Should this unit
            # die too, whoever recovers the key next asks each unit that had it whether it
            # counted it: the row keeps their ids.
            taken = {"chain": orjson.dumps(_origin(dead)[-_CHAIN_MAX:]).decode()} if dead and stamp else {}
            return {"PartitionKey": partition, "RowKey": rk, "expires": expires, **stamp, **taken}

        def insert(job: tuple[str, Sequence[_Key]]) -> tuple[list[_Key], list[_Key]]:
            """Insert a chunk: (keys known to be missing, keys to read); marks what went in."""
            partition, chunk = job
            pending = list(chunk)
            # In random order, where the first conflict falls tells how common duplicates are
            # (a redelivered batch often repeats a run of keys that would all come first).
            random.shuffle(pending)
            suspects: list[_Key] = []
            while pending:
                failed = self._transact(table, [("create", row(partition, rk)) for _, rk in pending])
                if failed is None:
                    for index, _ in pending:
                        results[index] = Claim.NEW
                    return [], suspects
                if failed == len(pending):  # no key named: read them all
                    return [], suspects + pending
                # Every key before the one named was accepted (then rolled back): missing.
                suspects.append(pending.pop(failed))
                if len(suspects) >= _SET_ASIDE and len(suspects) > failed:
                    return pending[:failed], suspects + pending[failed:]  # mostly duplicates
            return [], suspects

        chunks = _transactions(by_partition)
        missing: dict[str, list[tuple[int, str, TableEntity | None, Claim]]] = defaultdict(list)
        to_read: list[tuple[str, int, str]] = []
        for (partition, _), (absent, unknown) in zip(chunks, self._map(insert, chunks), strict=True):
            missing[partition] += [(index, rk, None, Claim.NEW) for index, rk in absent]
            to_read += [(partition, index, rk) for index, rk in unknown]
        found = self._map(lambda item: self._get(table, item[0], item[2]), to_read)
        # A redelivered batch finds rows of one or two units: ask about each unit once.
        units = list({str(e["unit"]) for e in found if e is not None and e.get("unit")})
        finished = dict(zip(units, self._map(self._unit_finished, units), strict=True))
        for (partition, index, rk), entity in zip(to_read, found, strict=True):
            verdict = Claim.NEW if entity is None else self._verdict(entity, now, finished.__getitem__)
            if verdict in _OWNED:
                missing[partition].append((index, rk, entity, verdict))
            else:
                results[index] = verdict

        def insert_or_take_over(
            job: tuple[str, Sequence[tuple[int, str, TableEntity | None, Claim]]],
        ) -> bool:
            partition, chunk = job
            replace = {"mode": UpdateMode.REPLACE}
            operations = [
                ("create", row(partition, rk))
                if entity is None
                else (
                    "update",
                    row(partition, rk, entity if verdict is Claim.RECOVERED else None),
                    {**replace, **self._if_match(entity)},
                )
                for _, rk, entity, verdict in chunk
            ]
            if self._transact(table, operations) is not None:
                return False
            for index, _, entity, verdict in chunk:
                results[index] = verdict
                if verdict is Claim.RECOVERED and entity is not None:
                    origins[index] = _origin(entity)
            return True

        second = _transactions(missing)
        contested = [
            (partition, index, rk)
            for (partition, chunk), done in zip(second, self._map(insert_or_take_over, second), strict=True)
            if not done
            for index, rk, _, _ in chunk
        ]

        def settle(item: tuple[str, int, str]) -> None:
            partition, index, rk = item
            results[index], origin = self._claim_one(table, partition, rk, row, now)
            if origin is not None:
                origins[index] = origin

        # Another instance raced us for these very keys: settle them one at a time.
        self._map(settle, contested)

    def _claimed_here(self, key: str, now: datetime) -> bool:
        """True when this instance holds a live claim on `key`: a duplicate, known without a
        round trip. Sound, because only the claimant releases a key and nobody may take
        over a key before it expires."""
        with self._lock:
            until = self._mine.get(key)
        return until is not None and until > now

    def _remember(self, claimed: Sequence[tuple[str, datetime]]) -> None:
        with self._lock:
            mine = self._mine
            mine.update(claimed)
            overflow = len(mine) - _REMEMBERED_KEYS
            if overflow > 0:  # forget the oldest (dicts keep insertion order)
                for key in list(itertools.islice(mine, overflow)):
                    del mine[key]

    def _claim_one(
        self,
        table: TableClient,
        partition: str,
        rk: str,
        row: Callable[[str, str, TableEntity | None], Mapping[str, Any]],
        now: datetime,
    ) -> tuple[Claim, tuple[str, ...] | None]:
        """One key settled on its own: its claim, and for a RECOVERED one the unit it had."""
        for attempt in range(_ATTEMPTS):
            try:
                table.create_entity(row(partition, rk, None))
                return Claim.NEW, None
            except ResourceExistsError:
                pass
            entity = self._get(table, partition, rk)
            if entity is None:
                continue  # released meanwhile: insert again
            verdict = self._verdict(entity, now, self._unit_finished)
            if verdict not in _OWNED:
                return verdict, None
            recovered = verdict is Claim.RECOVERED
            try:
                table.update_entity(
                    row(partition, rk, entity if recovered else None),
                    mode=UpdateMode.REPLACE,
                    **self._if_match(entity),
                )
                return verdict, _origin(entity) if recovered else None
            except (ResourceModifiedError, ResourceNotFoundError):
                _backoff(attempt)  # someone else took it over or released it: look again
        raise StoreContention(f"dedup key row {rk!r} kept changing; try again")

    def release(self, keys: Sequence[str]) -> None:
        """Delete the keys' rows, so that a retried delivery is not taken for a duplicate."""
        table = self._dedup()
        unit: _Unit | None = getattr(self._local, "unit", None)
        with self._lock:
            for key in keys:
                self._mine.pop(key, None)
                if unit is not None:
                    unit.claimed.pop(key, None)

        def delete(key: str) -> None:
            with contextlib.suppress(ResourceNotFoundError):
                table.delete_entity(_partition(key), row_key(key))

        self._map(delete, list(dict.fromkeys(keys)))

    def purge_expired(self, now: datetime, limit: int = 20_000) -> int:
        """Delete up to `limit` dedup rows whose TTL has passed; returns how many went.
        A row taken over meanwhile (new ETag) is kept. take_due starts this beside itself
        every `purge_interval` (a minute), in rounds, for up to `purge_budget`.
        Units' completion markers go with them: each expires with its unit's last claim; so do
        closed groups kept for the units that counted into them (see `_mark`)."""
        purged = self._purge(self._dedup(), "expires le @now", _utc(now), limit)
        self._purge(self._state(), f"PartitionKey eq '{_UNITS}' and expires le @now", _utc(now), limit)
        # Closed groups kept for their `applied` list (only they have `expires` there).
        self._purge(self._state(), f"PartitionKey eq '{_GROUPS}' and expires le @now", _utc(now), limit)
        return purged

    def _purge(self, table: TableClient, query: str, now: datetime, limit: int) -> int:
        """Delete up to `limit` rows of `table` that `query` (with @now) selects, ETag-conditionally."""
        rows = table.query_entities(
            query, parameters={"now": now}, select=["PartitionKey", "RowKey"], results_per_page=1000
        )
        by_partition: dict[str, list[TableEntity]] = defaultdict(list)
        for count, entity in enumerate(rows):
            if count >= limit:
                break
            by_partition[entity["PartitionKey"]].append(entity)
        chunks = [chunk for _, chunk in _transactions(by_partition)]

        def delete_chunk(chunk: Sequence[TableEntity]) -> int:
            operations = [("delete", e, self._if_match(e)) for e in chunk]
            if self._transact(table, operations) is None:
                return len(chunk)
            deleted = 0
            for entity in chunk:
                try:
                    table.delete_entity(entity, **self._if_match(entity))
                    deleted += 1
                except (ResourceModifiedError, ResourceNotFoundError):
                    pass
            return deleted

        return sum(self._map(delete_chunk, chunks))

    # -- groups --------------------------------------------------------------------------------
    def hit(
        self,
        fingerprint: str,
        count: int,
        first: Sequence[Incident],
        now: datetime,
        window: timedelta,
    ) -> bool:
        """See `BurstGroups.hit`: `hit_many` with one hit."""
        try:
            return self.hit_many([(fingerprint, count, first)], now, window)[0]
        except HitsFailed as err:
            raise err.__cause__ or err from None

    def hit_many(
        self, hits: Sequence[tuple[str, int, Sequence[Incident]]], now: datetime, window: timedelta
    ) -> list[bool]:
        """Every group of the batch written in entity-group transactions (one partition: up to
        100 groups each), ETag-conditionally on the group as this instance last read or wrote
        it; groups it does not know (or that are due, so a flusher may have changed them) are
        read first, all at once. A group changed meanwhile costs its transaction one retry."""
        now = _utc(now)
        opened = [False] * len(hits)

        def change(index: int, current: TableEntity | None) -> TableEntity | None:
            fingerprint, count, first = hits[index]
            if current is None or _closed(current):
                group = _new_group(row_key(fingerprint), fingerprint, now, window)
                group.update(total=_int64(count), started=now, latest=now, example=_incident_json(first[0]))
                _add_held(group, count - 1, first[1:], now)  # the first occurrence alerts now
                self._mark(group, _entries(current), "ho", now)
                opened[index] = True
                return group
            opened[index] = False
            if count <= 0 or not first:
                return None  # nothing to hold: the group stays as it is
            group = TableEntity(current)
            _add_held(group, count, first, now)
            group["total"] = _int64(_int(group.get("total", 0)) + count)
            group["latest"] = now
            self._mark(group, _entries(current), "h", now)
            return group

        def trusted(entity: TableEntity) -> bool:
            # A due group may be being flushed: read it again. A closed one changes only by
            # another write (its ETag) or the purge (gone: the write fails and reads again).
            return _closed(entity) or _utc(entity["due"]) > now

        rks = [row_key(fingerprint) for fingerprint, _, _ in hits]
        done: set[int] = set()
        try:
            self._write_rows(self._state(), _GROUPS, rks, change, trusted=trusted, done=done)
        except Exception as err:
            raise HitsFailed(done, opened) from err
        return opened

    def _write_rows(
        self,
        table: TableClient,
        partition: str,
        rks: Sequence[str],
        change: Callable[[int, TableEntity | None], TableEntity | None],
        *,
        trusted: Callable[[TableEntity], bool],
        done: set[int],
    ) -> None:
        """Write `change(i, current)` as row rks[i] of `partition` (distinct RowKeys) in as few
        transactions as the partition allows: a create where the row is missing, otherwise a
        replace conditional on the ETag known. A conflict re-reads the chunk's rows and
        retries it (`change` is called again with what was read). Adds each index written to
        `done` as its transaction goes through; None from `change`: nothing to write."""
        known = self._rows
        current: dict[int, TableEntity | None] = {}
        unknown: list[int] = []
        for index, rk in enumerate(rks):
            cached = known.get((partition, rk))
            if cached is not None and trusted(cached):
                current[index] = cached
            else:
                unknown.append(index)
        todo = list(range(len(rks)))
        conflicts = 0
        while conflicts < _ATTEMPTS:
            if unknown:
                for index, entity in zip(
                    unknown, self._read_rows(table, partition, [rks[i] for i in unknown]), strict=True
                ):
                    current[index] = entity
                unknown = []
            if not todo:
                return
            chunk: list[int] = []
            size = 0
            ops: list[tuple[Any, ...]] = []
            written: list[tuple[int, TableEntity]] = []
            while todo and len(ops) < _TRANSACTION_MAX and size < _TRANSACTION_BYTES:
                index = todo.pop(0)
                chunk.append(index)
                entity = current[index]
                new = change(index, entity)
                if new is None:
                    done.add(index)
                    continue
                new["PartitionKey"], new["RowKey"] = partition, rks[index]
                if entity is None:
                    ops.append(("create", new))
                else:
                    ops.append(("update", new, {"mode": UpdateMode.REPLACE, **self._if_match(entity)}))
                written.append((index, new))
                size += _entity_size(new)
            if not ops:
                continue
            failed, replies = self._transact_replies(table, ops)
            if failed is None:
                for (index, new), reply in zip(written, replies, strict=True):
                    known.put((partition, rks[index]), new, str(reply["etag"]))
                    done.add(index)
                continue
            # Nothing of the chunk was written: what it assumed is stale, at least in part.
            for index in chunk:
                known.drop((partition, rks[index]))
                done.discard(index)
            unknown = list(chunk)
            todo = chunk + todo
            conflicts += 1
            _backoff(conflicts)
        raise StoreContention(f"rows of partition {partition!r} kept changing; try again")

    def _read_rows(self, table: TableClient, partition: str, rks: Sequence[str]) -> list[TableEntity | None]:
        """The rows `rks` of `partition` (None: missing), remembered: a few by point reads in
        parallel, more by reading the partition once (a batch's groups are most of the open ones)."""
        if len(rks) <= _POINT_READS:
            found = self._map(lambda rk: self._get(table, partition, rk), rks)
        else:
            rows = {
                str(e["RowKey"]): e
                for e in table.query_entities("PartitionKey eq @pk", parameters={"pk": partition})
                if not str(e["RowKey"]).startswith(_NOTICE)
            }
            found = [rows.get(rk) for rk in rks]
        for rk, row in zip(rks, found, strict=True):
            if row is not None:
                self._rows.put((partition, rk), row, str(row.metadata["etag"]))
        return found

    def alerted(self, fingerprint: str, count: int, first: Incident, now: datetime, quiet: timedelta) -> None:
        """Open or grow the fingerprint's burst, due `quiet` after `now` (ETag-conditional,
        retried like `hit`)."""
        now = _utc(now)
        table = self._state()
        rk = row_key(fingerprint)
        for attempt in range(_ATTEMPTS):
            entity = self._get(table, _GROUPS, rk)
            if entity is None or _closed(entity):
                group = _new_group(rk, fingerprint, now, quiet)
                group.update(total=_int64(count), started=now, latest=now, example=_incident_json(first))
                self._mark(group, _entries(entity), "a", now)
                try:
                    if entity is None:
                        table.create_entity(group)
                    else:
                        table.update_entity(group, mode=UpdateMode.REPLACE, **self._if_match(entity))
                    return
                except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
                    _backoff(attempt)
                    continue
            self._mark(entity, _entries(entity), "a", now)
            entity["total"] = _int64(_int(entity.get("total", 0)) + count)
            entity["latest"] = now
            # The quiet period starts again with every alert: due `quiet` after the last one.
            if _utc(entity["opened"]) < now:
                entity["opened"] = now
            entity["window_seconds"] = int(quiet.total_seconds())
            entity["due"] = _utc(entity["opened"]) + quiet
            try:
                table.update_entity(entity, mode=UpdateMode.REPLACE, **self._if_match(entity))
                return
            except (ResourceModifiedError, ResourceNotFoundError):
                _backoff(attempt)
        raise StoreContention(f"group {fingerprint!r} kept changing; try again")

    def take_due(self, now: datetime, resolved: list[Burst] | None = None) -> list[Held]:
        """See `BurstGroups.take_due`. Each due group is reset (or closed) in one entity-group
        transaction with the record of what it gave, up to 50 groups a transaction; records a
        dead unit left (their lease passed) are handed out again first. Inside a unit the
        records are settled when it exits cleanly; outside one, before this returns."""
        now = _utc(now)
        table = self._state()
        unit: _Unit | None = getattr(self._local, "unit", None)
        lease = now + self._claim_lease
        records = [
            *self._orphaned_notices(table, now, lease),
            *self._take_groups(table, now, lease, resolved),
        ]
        taken: list[Held] = []
        for record in records:
            if record["notice"] == "digest":
                taken.append(replace(_held(record), token=record["RowKey"] if unit is not None else ""))
            elif resolved is not None and (burst := _burst(record)) is not None:
                resolved.append(burst)
        keys = [str(record["RowKey"]) for record in records]
        if unit is not None:
            unit.notices.update(dict.fromkeys(keys))
        elif keys:
            self._settle_taken(keys, [])
        if self._next_purge is None or now >= self._next_purge:
            self._next_purge = now + self._purge_interval
            self._purge_beside(now)
        return taken

    def _purge_beside(self, now: datetime) -> None:
        """Purge expired dedup keys on a thread of its own (one at a time), for up to
        `purge_budget`: every flush (each minute) deletes what expired, at the rate storage
        allows (thousands a second), so keys never pile up; no digest waits for it."""
        with self._lock:
            if self._purging:
                return
            self._purging = True

        def run() -> None:
            deadline = time.monotonic() + self._purge_budget.total_seconds()
            purged = 0
            try:
                while time.monotonic() < deadline:
                    done = self.purge_expired(now, limit=_PURGE_STEP)
                    purged += done
                    if done < _PURGE_STEP:
                        break
            except Exception as err:  # housekeeping must never cost a digest
                log.warning("purging expired dedup keys failed: %s", type(err).__name__)
            finally:
                self._purging = False
            if purged:
                log.info("purged %d expired dedup keys", purged)

        self._purger = threading.Thread(target=run, name="acs-triage-purge", daemon=True)
        self._purger.start()

    def _orphaned_notices(self, table: TableClient, now: datetime, lease: datetime) -> list[TableEntity]:
        """Records of digests and resolved bursts whose unit died before writing their alerts
        (the lease passed without the record being settled), leased anew to this caller
        (ETag-conditionally: of several flushers, one gets each)."""
        found = list(
            table.query_entities(
                "PartitionKey eq @pk and lease le @now", parameters={"pk": _GROUPS, "now": now}
            )
        )
        if not found:
            return []
        log.warning("%d digest or resolved notice(s) of a flush that died are written again", len(found))
        for record in found:
            record["lease"] = lease
        ops = [("update", r, {"mode": UpdateMode.REPLACE, **self._if_match(r)}) for r in found]
        if self._transact_all(table, ops) is None:
            return found
        leased: list[TableEntity] = []
        for record in found:  # another flusher took some: keep what this one wins
            try:
                table.update_entity(record, mode=UpdateMode.REPLACE, **self._if_match(record))
                leased.append(record)
            except (ResourceModifiedError, ResourceNotFoundError):
                continue
        return leased

    def _take_groups(
        self, table: TableClient, now: datetime, lease: datetime, resolved: list[Burst] | None
    ) -> list[TableEntity]:
        """Reset (or close) every due group, each with its record in the same transaction; the
        records written. A group that changed meanwhile is read again and taken as it is."""
        pending = list(
            table.query_entities(
                "PartitionKey eq @pk and due le @now", parameters={"pk": _GROUPS, "now": now}
            )
        )
        records: list[TableEntity] = []
        conflicts = 0
        width = _TRANSACTION_MAX // 2  # groups per transaction: halved by each conflict
        while conflicts < _ATTEMPTS:
            if not pending:
                return records
            chunk: list[TableEntity] = []
            size = 0
            while pending and len(chunk) < width and size < _TRANSACTION_BYTES:
                chunk.append(pending.pop(0))
                size += 2 * _entity_size(chunk[-1])
            ops: list[tuple[Any, ...]] = []
            written: list[TableEntity] = []
            for entity in chunk:
                group_op, record = self._take_ops(entity, now, lease, resolved is not None)
                ops.append(group_op)
                if record is not None:
                    ops.append(("create", record))
                    written.append(record)
            failed = self._transact(table, ops)
            for entity in chunk:
                self._rows.drop((_GROUPS, str(entity["RowKey"])))
            if failed is None:
                records += written
                continue
            # Nothing of the chunk was written. Busy groups (hits keep coming) change under a
            # wide transaction again and again: read them all again and take fewer at a time.
            for again in self._map(lambda e: self._get(table, _GROUPS, e["RowKey"]), chunk):
                if again is not None and not _closed(again) and _utc(again["due"]) <= now:
                    pending.append(again)  # else closed, or another flusher took it: a new window runs
            width = max(1, width // 2)
            conflicts += 1
            _backoff(conflicts)
        raise StoreContention("due groups kept changing; try again")

    def _take_ops(
        self, entity: TableEntity, now: datetime, lease: datetime, keep_resolved: bool
    ) -> tuple[tuple[Any, ...], TableEntity | None]:
        """The operation that resets (held counts) or closes (quiet for a whole window) a due
        group, and the record of the digest or resolved burst it gives (None: nothing to tell)."""
        if _int(entity.get("held", 0)) == 0:
            # Quiet for a whole window: close it, so the next occurrence alerts at once. Units
            # that counted into it and may still be recovered are kept in a closed row (see
            # `_mark`): their events are in this resolved burst's total already.
            closed = TableEntity(
                PartitionKey=_GROUPS, RowKey=entity["RowKey"], fingerprint=entity["fingerprint"]
            )
            self._mark(closed, _entries(entity), "", now)
            operation: tuple[Any, ...] = ("delete", entity, self._if_match(entity))
            if "applied" in closed:
                closed.update(closed=True, expires=self._applied_until(closed))
                operation = ("update", closed, {"mode": UpdateMode.REPLACE, **self._if_match(entity)})
            if not keep_resolved or _burst(entity) is None:
                return operation, None
            kind = "resolved"
        else:
            window = timedelta(seconds=_int(entity["window_seconds"]))
            fresh = _new_group(entity["RowKey"], entity["fingerprint"], now, window)
            fresh.update({k: entity[k] for k in _BURST if k in entity})
            self._mark(fresh, _entries(entity), "", now)  # what a digest reports stays applied
            operation = ("update", fresh, {"mode": UpdateMode.REPLACE, **self._if_match(entity)})
            kind = "digest"
        # Derived from the group as it was read: another flusher taking the same state would
        # write the same record, and only one of the two transactions can succeed.
        basis = f"{entity['RowKey']}|{entity.metadata['etag']}|{kind}"
        record = TableEntity(
            PartitionKey=_GROUPS,
            RowKey=_NOTICE + hashlib.sha256(basis.encode()).hexdigest()[:32],
            notice=kind,
            lease=lease,
            taken=now,  # the end of the window a digest reports (a record handed out again keeps it)
            **{k: entity[k] for k in _NOTICE_PROPERTIES if k in entity},
        )
        return operation, record

    def _settle_taken(self, notices: Sequence[str], summaries: Sequence[str]) -> None:
        """Forget the records of digests and resolved bursts, and mark silences' summaries
        sent, once their alerts are in the outbox. A failure is logged, not raised: the
        alerts are written, and the records are only handed out again (posted twice, never lost)."""
        table = self._state()
        deletes = [("delete", {"PartitionKey": _GROUPS, "RowKey": rk}) for rk in notices]
        sent = [
            (
                "update",
                {"PartitionKey": _SILENCES, "RowKey": rk, "summary_pending": False},
                {"mode": UpdateMode.MERGE},
            )
            for rk in summaries
        ]
        try:
            for ops in (deletes, sent):
                if self._transact_all(table, ops) is None:
                    continue
                for op in ops:  # one was missing (settled by another flusher): the rest, one by one
                    with contextlib.suppress(ResourceNotFoundError):
                        if op[0] == "delete":
                            table.delete_entity(op[1])
                        else:
                            table.update_entity(op[1], mode=UpdateMode.MERGE)
        except Exception as err:
            log.error(
                "%d flushed notice(s) could not be settled (%s); they are written again after "
                "the claim lease", len(notices) + len(summaries), type(err).__name__,
            )  # fmt: skip

    def _transact_all(self, table: TableClient, operations: Sequence[tuple[Any, ...]]) -> int | None:
        """Operations of one partition in transactions of up to 100, one after another: None
        when all went through, else the index (in `operations`) of the first chunk that did not."""
        for start in range(0, len(operations), _TRANSACTION_MAX):
            if self._transact(table, operations[start : start + _TRANSACTION_MAX]) is not None:
                return start
        return None

    def restore(self, held: Held, now: datetime, counted: bool = True, keys: Sequence[str] = ()) -> None:
        """Merge `held` back into its group, due by `now` (ETag-conditional, retried like
        `hit`). Held taken inside a unit carries its record's token: the merge and the record's
        deletion are one transaction, and a record already gone (another flusher handed it out
        again) means there is nothing to give back. Otherwise the write carries a token, so
        that a write which went through but whose answer was lost (and was retried) is
        recognised and not added twice.

        With counted=False and `keys` (events this unit recovered), the group's `applied`
        list tells which of them their dead unit had counted into it already: those are left
        out, except that a burst the dead unit opened (or whose events it alerted one by one)
        gets them into its digest, not its total, as their alerts may have been cut off."""
        if held.count <= 0:
            return
        now = _utc(now)
        restored = replace(held, first_seen=_utc(held.first_seen), last_seen=_utc(held.last_seen), token="")
        table = self._state()
        rk = row_key(held.fingerprint)
        self._rows.drop((_GROUPS, rk))
        token = uuid.uuid4().hex
        unit: _Unit | None = getattr(self._local, "unit", None)
        origins = [unit.recovered.get(key) for key in keys] if unit is not None and not counted else []
        for attempt in range(_ATTEMPTS):
            entity = self._get(table, _GROUPS, rk)
            entries = _entries(entity)
            uncounted, again = _uncounted(held.count, origins, entries)
            add = replace(restored, count=uncounted + again, samples=restored.samples[: uncounted + again])
            total = held.count if counted else uncounted  # what the burst's total gains
            operation: tuple[Any, ...]
            if add.count == 0:
                # All counted by the units that died: only note that this unit saw to them.
                if entity is None:
                    return
                self._mark(entity, entries, "r", now)
                if _closed(entity):
                    entity["expires"] = self._applied_until(entity)
                operation = ("update", entity, {"mode": UpdateMode.REPLACE, **self._if_match(entity)})
            elif entity is None or _closed(entity):  # closed meanwhile: open it again, already due
                window = timedelta(seconds=held.window_seconds)
                group = _new_group(rk, held.fingerprint, now - window, window)
                group.update(
                    total=_int64(total), started=add.first_seen, latest=add.last_seen,
                    example=_incident_json(held.incident),
                )  # fmt: skip
                if held.window_start is not None:  # the next digest reports the restored one's window
                    group["opened"] = min(group["opened"], _utc(held.window_start))
                _set_held(group, merge_held(add, None, held.window_seconds), token)
                self._mark(group, entries, "" if counted else "r", now)
                if entity is None:
                    operation = ("create", group)
                else:
                    operation = ("update", group, {"mode": UpdateMode.REPLACE, **self._if_match(entity)})
            else:
                if entity.get("restored") == token:
                    return  # ours went through, though a retry of it was refused
                window_seconds = _int(entity["window_seconds"])
                if _utc(entity["due"]) > now:  # due again by now, as before take_due
                    entity["opened"] = now - timedelta(seconds=window_seconds)
                    entity["due"] = now
                if held.window_start is not None and _utc(entity["opened"]) > _utc(held.window_start):
                    entity["opened"] = _utc(held.window_start)  # the next digest reports its window
                current = _held(entity) if _int(entity.get("held", 0)) > 0 else None
                _set_held(entity, merge_held(add, current, window_seconds), token)
                if not counted:  # the burst has not counted these yet (recovered events)
                    entity["total"] = _int64(_int(entity.get("total", 0)) + total)
                    entity["latest"] = max(_utc(entity.get("latest", add.last_seen)), add.last_seen)
                    self._mark(entity, entries, "r", now)
                operation = ("update", entity, {"mode": UpdateMode.REPLACE, **self._if_match(entity)})
            if not held.token:
                if self._transact(table, [operation]) is None:
                    return
            else:
                failed = self._transact(
                    table, [operation, ("delete", {"PartitionKey": _GROUPS, "RowKey": held.token})]
                )
                if failed is None or (failed != 0 and self._get(table, _GROUPS, held.token) is None):
                    if unit is not None:
                        unit.notices.pop(held.token, None)
                    return
            _backoff(attempt)
        raise StoreContention(f"group {held.fingerprint!r} kept changing; try again")

    def _mark(self, group: TableEntity, entries: list[list[Any]], flags: str, now: datetime) -> None:
        """Set `group`'s `applied` list: `entries` (as read with the row) pruned, and the unit
        open on this thread noted with `flags` (h: its hit counted here, o: and opened the
        burst, a: its events alerted one by one and were counted, r: it restored recovered
        events here). Written in the same entity write as the counts it speaks of, so a unit
        is in the list exactly when its counts are in the group (or in what a flush took from
        it): whoever recovers its events after it died counts them only if it is not."""
        unit: _Unit | None = getattr(self._local, "unit", None)
        horizon = (now - self._claim_lease - _APPLIED_KEEP).timestamp()
        with self._lock:
            finished = self._finished
            kept = [e for e in entries if e[1] >= horizon and e[0] not in finished]
        if unit is not None and flags:
            mine = next((e for e in kept if e[0] == unit.id), None)
            if mine is None:
                kept.append([unit.id, int(now.timestamp()), flags])
            else:
                mine[2] = "".join(sorted(set(mine[2] + flags)))
        kept = kept[-_APPLIED_MAX:]
        if kept:
            group["applied"] = orjson.dumps(kept).decode()
        else:
            group.pop("applied", None)

    def _applied_until(self, closed: TableEntity) -> datetime:
        """When a closed group's `applied` list has aged out (it may be purged then)."""
        newest = max(entry[1] for entry in _entries(closed))
        return datetime.fromtimestamp(newest, UTC) + self._claim_lease + _APPLIED_KEEP

    # -- silences ------------------------------------------------------------------------------
    # Rows of the state table under their own PartitionKey; every change is ETag-conditional.
    def add_silence(self, silence: SilenceRule) -> None:
        self._state().create_entity(
            TableEntity(
                PartitionKey=_SILENCES,
                RowKey=row_key(silence.id),
                id=silence.id,
                matcher=orjson.dumps(silence.matcher.conditions()).decode(),
                starts=_utc(silence.starts),
                ends=_utc(silence.ends),
                comment=silence.comment,
                created_by=silence.created_by,
                count=_int64(0),
                summarized=False,
            )
        )

    def list_silences(self, now: datetime, include_ended: bool = False) -> list[SilenceRule]:
        table = self._state()
        if include_ended:
            rows = table.query_entities("PartitionKey eq @pk", parameters={"pk": _SILENCES})
        else:
            rows = table.query_entities(
                "PartitionKey eq @pk and ends gt @now", parameters={"pk": _SILENCES, "now": _utc(now)}
            )
        return sorted((_silence(e) for e in rows), key=lambda s: (s.starts, s.id))

    def expire_silence(self, silence_id: str, now: datetime) -> SilenceRule | None:
        now = _utc(now)
        return self._change_silence(silence_id, lambda e: now < _utc(e["ends"]), lambda e: e.update(ends=now))

    def count_silenced(
        self, silence_id: str, count: int, first: Incident, now: datetime, recovered: Sequence[str] = ()
    ) -> bool:
        """See `Silences.count_silenced`. The silence names the units that counted into it
        (`_mark`, in the same write), so of the `recovered` events a unit that had them and
        died had counted here, none is counted again."""
        now = _utc(now)
        unit: _Unit | None = getattr(self._local, "unit", None)

        def add(entity: TableEntity) -> None:
            entries = _entries(entity)
            added = count
            if unit is not None and recovered:
                seen = {entry[0] for entry in entries}
                origins = (unit.recovered.get(key) for key in recovered)
                added -= min(count, sum(1 for units in origins if units and seen.intersection(units)))
            self._mark(entity, entries, "h", now)
            entity["count"] = _int64(_int(entity.get("count", 0)) + added)
            entity["last_seen"] = now
            if "incident" not in entity:
                entity["first_seen"] = now
                entity["incident"] = _incident_json(first)

        counted = [False]

        def active(entity: TableEntity) -> bool:
            counted[0] = not entity.get("summarized") and _utc(entity["starts"]) <= now < _utc(entity["ends"])
            return counted[0]

        self._change_silence(silence_id, active, add)
        return counted[0]

    def take_ended_silences(self, now: datetime) -> list[SilenceRule]:
        """See `Silences.take_ended_silences`. Inside a unit a claimed summary stays pending
        (with a lease) until the unit exits cleanly, its summary written; a summary whose unit
        died is handed out again once the lease has passed."""
        now = _utc(now)
        table = self._state()
        unit: _Unit | None = getattr(self._local, "unit", None)
        ended = [
            *table.query_entities(
                "PartitionKey eq @pk and ends le @now and summarized eq false",
                parameters={"pk": _SILENCES, "now": now},
            ),
            *table.query_entities(
                "PartitionKey eq @pk and summary_pending eq true and summary_lease le @now",
                parameters={"pk": _SILENCES, "now": now},
            ),
        ]
        taken: list[SilenceRule] = []
        for entity in ended:
            counted = _int(entity.get("count", 0)) > 0
            pending = unit is not None and counted
            try:  # only the flusher whose conditional update wins hands out the summary
                entity["summarized"] = True
                entity["summary_pending"] = pending
                entity["summary_lease"] = now + self._claim_lease
                table.update_entity(entity, mode=UpdateMode.REPLACE, **self._if_match(entity))
            except (ResourceModifiedError, ResourceNotFoundError):
                continue  # another flusher claimed it, or it was counted meanwhile: next flush
            if counted:
                taken.append(_silence(entity))
            if pending and unit is not None:
                unit.summaries[str(entity["RowKey"])] = None
        return sorted(taken, key=lambda s: (s.starts, s.id))

    def _change_silence(
        self,
        silence_id: str,
        wanted: Callable[[TableEntity], bool],
        change: Callable[[TableEntity], None],
    ) -> SilenceRule | None:
        """Apply `change` to a silence when `wanted` says so (ETag-conditional, retried)."""
        table = self._state()
        rk = row_key(silence_id)
        for attempt in range(_ATTEMPTS):
            entity = self._get(table, _SILENCES, rk)
            if entity is None:
                return None
            if not wanted(entity):
                return _silence(entity)
            change(entity)
            try:
                table.update_entity(entity, mode=UpdateMode.REPLACE, **self._if_match(entity))
                return _silence(entity)
            except (ResourceModifiedError, ResourceNotFoundError):
                _backoff(attempt)
        raise StoreContention(f"silence {silence_id!r} kept changing; try again")

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

    # -- hourly counters -----------------------------------------------------------------------
    def add_hourly(
        self, hour: datetime, counts: Mapping[str, int], recovered: Mapping[str, Sequence[str]] | None = None
    ) -> None:
        """Every counter of the batch in entity-group transactions (the hour is one partition),
        ETag-conditionally on what this instance last read or wrote (see `_write_rows`). Each
        counter names the units that counted into it (`_mark`), so of the `recovered` events a
        unit that had them and died had counted in this hour's counter, none is added again."""
        hour = hour_of(hour)
        partition = _HOURLY + hour.strftime("%Y%m%d%H")
        items = [(f, n) for f, n in counts.items() if n]
        unit: _Unit | None = getattr(self._local, "unit", None)

        def change(index: int, current: TableEntity | None) -> TableEntity:
            fingerprint, count = items[index]
            entries = _entries(current)
            if unit is not None and recovered and fingerprint in recovered:
                # A unit's write of this counter counts all its events of the fingerprint,
                # its own recovered ones too: any unit that had the event counted it here.
                seen = {entry[0] for entry in entries}
                origins = (unit.recovered.get(key) for key in recovered[fingerprint])
                count -= min(count, sum(1 for units in origins if units and seen.intersection(units)))
            counter = TableEntity(fingerprint=fingerprint, count=_int64(count))
            if current is not None:
                counter = TableEntity(current)
                counter["count"] = _int64(_int(current["count"]) + count)
            self._mark(counter, entries, "h", hour)
            return counter

        rks = [row_key(fingerprint) for fingerprint, _ in items]
        self._write_rows(self._state(), partition, rks, change, trusted=lambda entity: True, done=set())

    def hourly(self, start: datetime, end: datetime) -> list[tuple[datetime, str, int]]:
        start, end = _utc(start), _utc(end)
        first, last = (_HOURLY + hour_of(t).strftime("%Y%m%d%H") for t in (start, end))
        rows = self._state().query_entities(
            "PartitionKey ge @first and PartitionKey le @last", parameters={"first": first, "last": last}
        )
        out: list[tuple[datetime, str, int]] = []
        for entity in rows:
            hour = datetime.strptime(entity["PartitionKey"][len(_HOURLY) :], "%Y%m%d%H").replace(tzinfo=UTC)
            if start <= hour < end:  # the same hours as the other stores, whatever the bounds
                out.append((hour, str(entity["fingerprint"]), _int(entity["count"])))
        return out

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

    # -- health --------------------------------------------------------------------------------
    def probe(self) -> tuple[int, int]:
        """Ask every table and queue something cheap: (outbox depth, poison depth), as the
        service approximates them. Raises the SDK's error when storage does not answer."""
        for table in self._open_tables():
            self._get(table, "probe", "probe")
        outbox = self._queue(self.queue_name).get_queue_properties().approximate_message_count
        poison = self._queue(self.poison_queue_name).get_queue_properties().approximate_message_count
        return int(outbox or 0), int(poison or 0)

    def look(self) -> tuple[tuple[int, int] | None, list[str]]:
        """Like `probe`, but reading only: ((outbox depth, poison depth) or None, the tables and
        queues that do not exist). Creates nothing, so `doctor` can look at an account it must
        not change. Raises the SDK's error when storage does not answer or refuses access."""
        missing: list[str] = []
        service = self._table_service()
        for name in (self._dedup_name, self._state_name):
            try:
                service.get_table_client(name).get_entity("probe", "probe")
            except ResourceNotFoundError as err:
                if getattr(err, "error_code", None) == "TableNotFound":
                    missing.append(f"table {name}")
        depths: list[int] = []
        for name in (self.queue_name, self.poison_queue_name):
            try:
                count = self._queue_client(name).get_queue_properties().approximate_message_count
            except ResourceNotFoundError:
                missing.append(f"queue {name}")
            else:
                depths.append(int(count or 0))
        return ((depths[0], depths[1]) if len(depths) == 2 else None), missing

    # -- helpers -------------------------------------------------------------------------------
    @staticmethod
    def _get(table: TableClient, partition: str, rk: str) -> TableEntity | None:
        try:
            return table.get_entity(partition, rk)
        except ResourceNotFoundError:
            return None

    @staticmethod
    def _if_match(entity: TableEntity) -> dict[str, Any]:
        return {"etag": entity.metadata["etag"], "match_condition": MatchConditions.IfNotModified}

    @classmethod
    def _transact(cls, table: TableClient, operations: Iterable[tuple[Any, ...]]) -> int | None:
        """Submit one transaction: None when it was written; on a conflict (nothing written)
        the index of the operation the service named (len(operations) if it named none)."""
        return cls._transact_replies(table, operations)[0]

    @staticmethod
    def _transact_replies(
        table: TableClient, operations: Iterable[tuple[Any, ...]]
    ) -> tuple[int | None, list[Mapping[str, Any]]]:
        """`_transact`, with the service's reply to each operation (their new ETags) when written."""
        operations = list(operations)
        if not operations:
            return None, []
        try:
            return None, list(table.submit_transaction(operations))
        except TableTransactionError as err:
            if not _is_conflict(err):
                raise
            # The service prefixes its message with the failed operation's index ("0:…").
            index = getattr(err, "index", None)
            if isinstance(index, int) and 0 <= index < len(operations):
                named = str(err.message or "").startswith(f"{index}:")
                return (index if named else len(operations)), []
            return len(operations), []


class QueueLease:
    """An outbox message received from the queue: `done()` deletes it; `fail()` makes it
    visible again after the store's retry_delay; `fail(poison=True)` moves it to the
    poison queue, as the host does after maxDequeueCount."""

    __slots__ = ("_message", "_store")

    def __init__(self, store: AzureStore, message: QueueMessage) -> None:
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


def _origin(row: TableEntity) -> tuple[str, ...]:
    """The units that had a dedup row taken over as RECOVERED: the one that claimed it first,
    then each that recovered it and died in turn, up to the row's own unit."""
    chain = orjson.loads(row["chain"]) if row.get("chain") else []
    return (*(str(unit) for unit in chain), str(row["unit"]))


def _entries(group: TableEntity | None) -> list[list[Any]]:
    """A group row's `applied` list: [unit id, epoch seconds, flags] each (see `_mark`)."""
    text = group.get("applied") if group is not None else None
    return list(orjson.loads(text)) if text else []


def _closed(group: TableEntity) -> bool:
    """A closed group kept only for its `applied` list: to every reader, no group at all."""
    return bool(group.get("closed", False))


def _uncounted(
    count: int, origins: Sequence[tuple[str, ...] | None], entries: list[list[Any]]
) -> tuple[int, int]:
    """Of `count` recovered events (`origins`: the units that had each, where known, see
    `_origin`), (how many no unit counted yet, how many were counted in the burst's total
    but may have lost their alert: the first event of a burst the first claimant opened,
    once, and events it alerted one by one). An event was counted when its first claimant's
    hit or alert is in `entries`, or a later unit that had it restored or hit this group (a
    unit restores its recovered events before it counts its own). Uses up the `o` flags."""
    by_unit = {entry[0]: entry for entry in entries}
    counted = again = 0
    for origin in origins:
        if not origin:
            continue
        first = by_unit.get(origin[0])
        flags = str(first[2]) if first is not None else ""
        if "a" in flags:
            counted += 1
            again += 1
        elif "h" in flags:
            counted += 1
            if "o" in flags and first is not None:
                again += 1
                first[2] = flags.replace("o", "")
        elif any(unit in by_unit and set(str(by_unit[unit][2])) & {"r", "h"} for unit in origin[1:]):
            counted += 1
    return count - min(counted, count), min(again, count)


def _new_group(rk: str, fingerprint: str, now: datetime, window: timedelta) -> TableEntity:
    return TableEntity(
        PartitionKey=_GROUPS,
        RowKey=rk,
        fingerprint=fingerprint,
        opened=now,
        due=now + window,
        window_seconds=int(window.total_seconds()),
        held=_int64(0),
    )


def _add_held(group: TableEntity, count: int, first: Sequence[Incident], now: datetime) -> None:
    """Add `count` held occurrences (first: the earliest of them) to a group entity."""
    if count <= 0 or not first:
        return
    held = _int(group.get("held", 0))
    if held == 0:
        group["first_seen"] = now
        group["incident"] = _incident_json(first[0])
        samples: list[dict[str, str]] = []
    else:
        samples = orjson.loads(group["samples"])
    room = MAX_SAMPLES - len(samples)
    if room > 0:
        samples.extend(sample_ids(first, room))
    group["samples"] = orjson.dumps(samples).decode()
    group["held"] = _int64(held + count)
    group["last_seen"] = now


def _set_held(group: TableEntity, held: Held, token: str) -> None:
    """Make `held` a group entity's held state, marked with the restore that wrote it."""
    group["held"] = _int64(held.count)
    group["first_seen"] = held.first_seen
    group["last_seen"] = held.last_seen
    group["incident"] = _incident_json(held.incident)
    group["samples"] = orjson.dumps(held.samples).decode()
    group["restored"] = token


def _held(entity: TableEntity) -> Held:
    return Held(
        fingerprint=entity["fingerprint"],
        count=_int(entity["held"]),
        first_seen=_utc(entity["first_seen"]),
        last_seen=_utc(entity["last_seen"]),
        incident=incident_from_dict(orjson.loads(entity["incident"])),
        window_seconds=_int(entity["window_seconds"]),
        samples=orjson.loads(entity["samples"]),
        burst_count=_int(entity.get("total", 0)),
        burst_started=_utc(entity["started"]) if "started" in entity else None,
        window_start=_utc(entity["opened"]) if "opened" in entity else None,
        window_end=_utc(entity["taken"]) if "taken" in entity else None,
    )


def _burst(entity: TableEntity) -> Burst | None:
    """The whole burst of a group entity, or None for a group written before totals were kept."""
    if _int(entity.get("total", 0)) <= 0 or "example" not in entity:
        return None
    return Burst(
        fingerprint=entity["fingerprint"],
        count=_int(entity["total"]),
        first_seen=_utc(entity["started"]),
        last_seen=_utc(entity["latest"]),
        incident=incident_from_dict(orjson.loads(entity["example"])),
        window_seconds=_int(entity["window_seconds"]),
    )


def _silence(entity: TableEntity) -> SilenceRule:
    incident = entity.get("incident")
    return SilenceRule(
        id=entity["id"],
        matcher=Matcher.model_validate(orjson.loads(entity["matcher"])),
        starts=_utc(entity["starts"]),
        ends=_utc(entity["ends"]),
        comment=entity.get("comment", ""),
        created_by=entity.get("created_by", ""),
        count=_int(entity.get("count", 0)),
        first_seen=_utc(entity["first_seen"]) if "first_seen" in entity else None,
        last_seen=_utc(entity["last_seen"]) if "last_seen" in entity else None,
        incident=incident_from_dict(orjson.loads(incident)) if incident else None,
        summarized=bool(entity.get("summarized", False)),
    )


_PROPERTY_MAX = 30_000  # characters; a string property holds 64 KiB of UTF-16


def _entity_size(entity: Mapping[str, Any]) -> int:
    """About how many bytes an entity takes in a transaction's body (its text properties rule)."""
    return 200 + sum(2 * len(value) for value in entity.values() if isinstance(value, str))


def _incident_json(incident: Incident) -> str:
    """The incident as JSON for a table property; overlong event text is shortened to fit."""
    text = orjson.dumps(incident_to_dict(incident)).decode()
    if len(text) <= _PROPERTY_MAX:
        return text
    doc = incident_to_dict(incident)
    doc["message"] = doc["message"][:2000]
    doc["details"] = {k[:200]: v[:1000] for k, v in list(doc["details"].items())[:20]}
    doc["ids"] = {k[:200]: v[:1000] for k, v in list(doc["ids"].items())[:20]}
    return orjson.dumps(doc).decode()
