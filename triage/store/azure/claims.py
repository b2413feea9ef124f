"""Dedup keys: claiming a batch's event keys (who owns each, and which a dead unit left to be
recovered), giving them back, and purging the expired ones.

Round trips are the cost here, so a batch's claims go in entity-group transactions of up to
100 inserts per dedup partition, on a few threads; keys this instance holds a live claim on are
answered without a round trip. Expired keys (with units' completion markers and closed groups)
are purged beside the flush, in rounds, at the rate storage allows.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, TableEntity, UpdateMode

from .. import Claim
from ._core import (
    _ATTEMPTS,
    _GROUPS,
    _UNITS,
    AzureCore,
    StoreContention,
    _backoff,
    _partition,
    _transactions,
    _Unit,
    _utc,
    log,
    row_key,
)

# A chunk's conflicting keys set aside one per round trip before the rest is read instead
# (when duplicates also outnumber the new keys seen so far).
_SET_ASIDE = 4
_PURGE_STEP = 5_000  # expired rows one purge round reads and deletes
_CHAIN_MAX = 8  # units a recovered key's row names (the first claimant, then each that died)

_Key = tuple[int, str]  # a key's index in the batch, and its RowKey

_OWNED = (Claim.NEW, Claim.RECOVERED)  # the claims that make the caller the key's owner


class AzureClaims(AzureCore):
    """Claims on event keys in the dedup table, and the purge of expired rows."""

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


def _origin(row: TableEntity) -> tuple[str, ...]:
    """The units that had a dedup row taken over as RECOVERED: the one that claimed it first,
    then each that recovered it and died in turn, up to the row's own unit."""
    chain = orjson.loads(row["chain"]) if row.get("chain") else []
    return (*(str(unit) for unit in chain), str(row["unit"]))
