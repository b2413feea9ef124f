"""What every part of the Azure store shares: the tables' and the queue's names and limits,
RowKeys and partitions, the SDK clients and their one connection pool, the store's thread pool,
entity-group transactions, and `AzureCore`, the base class holding the store's state.

Units (see `AzureCore.unit`) live here too, because every concern takes part in them: claims
name their unit, groups, hourly counters and silences note it in their `applied` list
(`AzureCore._mark`), and a flush's records and silences' summaries are settled when it exits
cleanly.

Concurrency comes from the service, not from a lock: a dedup key is an insert that fails on
conflict; every read-modify-write (group counters, send slots, an expired key taken over) is
conditional on the entity's ETag and is retried when another instance got there first. So two
instances never both own a key, and no held count is lost or taken twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Self, TypeVar

import orjson
import requests
from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
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
from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy
from pydantic import SecretStr
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from ...codec import incident_to_dict
from ...errors import ConfigurationError, TriageError
from ...model import Incident
from ...settings import StorageConnection

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

log = logging.getLogger("triage.store")
# The SDK logs every request and response at INFO: in a Function App, a log line per storage
# call. Its warnings and errors still come through.
logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)

_TRANSACTION_MAX = 100  # operations in one entity group transaction (one partition)
_PARTITION_DIGITS = 1  # hex digits of a key's SHA-256 that name its partition: 16 partitions
# Partitions of the state table (the dedup table's are hex digits, and `sent`).
_GROUPS = "group"
_UNITS = "unit"  # completion markers of finished units (see `AzureCore.unit`)
_SLOTS = "slot"
_SILENCES = "silence"
_HOURLY = "hourly-"  # + YYYYMMDDHH: one partition per hour, so a period is one range query
_SENT = "sent"  # dedup table: ids of posted outbox messages (event keys' partitions are hex digits)
_POOL_CONNECTIONS = 64  # kept-alive connections to storage, shared by every client of a store
_ATTEMPTS = 100  # optimistic-concurrency retries before giving up on a contended entity
_REMEMBERED_KEYS = 20_000  # live claims of this instance kept in memory (a few batches)
_REMEMBERED_UNITS = 20_000  # ids of finished units kept in memory (final: never un-finished)
# A group remembers the units that counted into it (`applied`, see `AzureCore._mark`): the
# newest _APPLIED_MAX, each for the claim lease + _APPLIED_KEEP (the retry that recovers a
# dead unit's events comes after its lease), except those known here to have finished.
_APPLIED_MAX = 50
_APPLIED_KEEP = timedelta(hours=1)
_ROW_KEY_MAX = 400  # characters; the service allows 1 KiB, UTF-16
_TABLE_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,53}$")
_QUEUE_NAME = re.compile(r"^(?=.{3,56}$)[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9]))*$")
# Characters a RowKey may not hold (/ \ # ? and controls), plus % and ~ that our encoding uses.
_ROW_KEY_UNSAFE = re.compile(r"[%~/\\#?\x00-\x1f\x7f-\x9f]")
_CONFLICTS = {"EntityAlreadyExists", "UpdateConditionNotSatisfied", "ResourceNotFound", "EntityNotFound"}
_PROPERTY_MAX = 30_000  # characters; a string property holds 64 KiB of UTF-16

T = TypeVar("T")
R = TypeVar("R")


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


def _entries(group: TableEntity | None) -> list[list[Any]]:
    """A group row's `applied` list: [unit id, epoch seconds, flags] each (see `_mark`)."""
    text = group.get("applied") if group is not None else None
    return list(orjson.loads(text)) if text else []


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


class AzureCore:
    """The state an Azure store keeps (clients, pools, what this instance remembers) and what
    every concern of it calls: its tables and queues, its thread pool, units, the `applied`
    list, and entity-group transactions. `AzureStore` composes it with the concerns."""

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

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- units ---------------------------------------------------------------------------------
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

    def _remember(self, claimed: Sequence[tuple[str, datetime]]) -> None:
        with self._lock:
            mine = self._mine
            mine.update(claimed)
            overflow = len(mine) - _REMEMBERED_KEYS
            if overflow > 0:  # forget the oldest (dicts keep insertion order)
                for key in list(itertools.islice(mine, overflow)):
                    del mine[key]

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

    def _transact_all(self, table: TableClient, operations: Sequence[tuple[Any, ...]]) -> int | None:
        """Operations of one partition in transactions of up to 100, one after another: None
        when all went through, else the index (in `operations`) of the first chunk that did not."""
        for start in range(0, len(operations), _TRANSACTION_MAX):
            if self._transact(table, operations[start : start + _TRANSACTION_MAX]) is not None:
                return start
        return None

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
