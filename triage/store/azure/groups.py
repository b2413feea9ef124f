"""Burst groups and hourly counters, in the state table: hits and alerts counted into groups,
the flush that takes due groups (digests and resolved bursts), a restore that gives held
counts back, and each fingerprint's count per hour.

A batch's burst counts go in entity-group transactions on the groups partition and its hourly
counters on the hour's partition, each conditional on the row as this instance last read or
wrote it (read once, all at once, when unknown). A flush resets each due group in the same
transaction that records the digest (or resolved burst) it gives, so that a crash between the
two loses nothing. A group's `applied` list (`AzureCore._mark`) names the units that counted
into it, so that events recovered from a unit that died are counted once.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, TableEntity, UpdateMode
from msgspec.structs import replace

from ...codec import incident_from_dict
from ...model import Incident
from .. import MAX_SAMPLES, Burst, Held, HitsFailed, hour_of, merge_held, sample_ids
from ._core import (
    _APPLIED_KEEP,
    _ATTEMPTS,
    _GROUPS,
    _HOURLY,
    _TRANSACTION_MAX,
    StoreContention,
    _backoff,
    _entries,
    _incident_json,
    _int,
    _int64,
    _Unit,
    _utc,
    log,
    row_key,
)
from .claims import AzureClaims

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
_POINT_READS = 8  # unknown rows read one by one (in parallel); more: the partition in one query


class AzureGroups(AzureClaims):
    """Burst groups and hourly counters. A flush starts the purge of expired keys beside it
    (`AzureClaims._purge_beside`), hence built on `AzureClaims`."""

    # -- hits and alerts -----------------------------------------------------------------------
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

    # -- flush ---------------------------------------------------------------------------------
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

    # -- restore -------------------------------------------------------------------------------
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

    def _applied_until(self, closed: TableEntity) -> datetime:
        """When a closed group's `applied` list has aged out (it may be purged then)."""
        newest = max(entry[1] for entry in _entries(closed))
        return datetime.fromtimestamp(newest, UTC) + self._claim_lease + _APPLIED_KEEP

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


def _entity_size(entity: Mapping[str, Any]) -> int:
    """About how many bytes an entity takes in a transaction's body (its text properties rule)."""
    return 200 + sum(2 * len(value) for value in entity.values() if isinstance(value, str))
