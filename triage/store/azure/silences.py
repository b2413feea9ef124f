"""Silences: rows of the state table under their own PartitionKey, each change
ETag-conditional; what each silenced, counted once per unit (`AzureCore._mark`), and the
summaries of ended ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

import orjson
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableEntity, UpdateMode

from ...codec import incident_from_dict
from ...matchers import Matcher
from ...model import Incident
from .. import SilenceRule
from ._core import (
    _ATTEMPTS,
    _SILENCES,
    AzureCore,
    StoreContention,
    _backoff,
    _entries,
    _incident_json,
    _int,
    _int64,
    _Unit,
    _utc,
    row_key,
)


class AzureSilences(AzureCore):
    """Silence rules, what they silenced, and the summaries of ended ones."""

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
