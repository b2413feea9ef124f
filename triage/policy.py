"""Policy as stages: what happens to failures between the catalog and the outbox.

A stage is a callable `Stage(batch) -> None` that works on a `Batch` in place: it takes
`candidates` (failures still in play) and turns them into `pending` alerts, or acts on those.
`triage.pipeline` composes them in one place:

    events:  SuppressSuccesses → Dedup → Group → Route → Enqueue
    digests: Digests → Route → Enqueue

Each stage gives back what it took when it cannot finish: `Group` releases the dedup claims of
occurrences it could not count, `Enqueue` gives back (claims released, digest counts restored)
every alert it could not write, so that Event Grid's retry, or the next flush, reports them.

Successes are suppressed before dedup (not after, as DESIGN.md lists them): a success needs no
claim, so a batch of successes costs no store write.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from .destinations import Destination
from .events import Skip
from .ingest import Rejected
from .model import Alert, Guidance, Incident, Severity
from .settings import Settings
from .store import MAX_SAMPLES, BurstGroups, DedupKeys, Held, Outbox, OutboxMessage

__all__ = [
    "Batch",
    "Candidate",
    "Dedup",
    "Digests",
    "Enqueue",
    "Group",
    "Pending",
    "Report",
    "Route",
    "Stage",
    "SuppressSuccesses",
    "run",
]

log = logging.getLogger("triage")

Renderer = Callable[[Alert, str], Any]
_SEVERITY_RANK = {Severity.NONE: 0, Severity.WARNING: 1, Severity.ERROR: 2}


@dataclass(slots=True)
class Report:
    """What one request (or one flush) did, event by event, in counts."""

    received: int = 0
    alerted: int = 0  # events that caused an immediate alert
    grouped: int = 0  # events held for a digest
    digests: int = 0  # digest alerts produced (flush)
    duplicates: int = 0
    successes: int = 0
    skipped: int = 0
    invalid: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    messages: list[OutboxMessage] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The JSON body the HTTP routes answer with (no personal data, no secrets)."""
        return {
            "received": self.received,
            "alerted": self.alerted,
            "grouped": self.grouped,
            "digests": self.digests,
            "duplicates": self.duplicates,
            "successes": self.successes,
            "skipped": self.skipped,
            "invalid": self.invalid + len(self.rejected),
            "rejected": [{"index": r.index, "id": r.event_id, "reason": r.reason} for r in self.rejected]
            + [
                {"id": s.event_id, "type": s.event_type, "reason": s.reason}
                for s in self.skips
                if s.outcome == "invalid"
            ],
            "messages": len(self.messages),
        }


@dataclass(slots=True)
class Candidate:
    """A failure with its guidance, and the key that dedups its event."""

    key: str
    incident: Incident
    guidance: Guidance


@dataclass(slots=True)
class Pending:
    """An alert on its way out, with what stands behind it: the dedup keys of the events it
    reports (released if it cannot be stored) or the digest counts it reports (restored)."""

    alert: Alert
    keys: list[str] = field(default_factory=list)
    held: Held | None = None
    destinations: list[Destination] = field(default_factory=list)


def _keep(keys: Sequence[str]) -> None:
    """Nothing was claimed: nothing to release."""


def _keep_held(held: Held, now: datetime) -> None:
    """Nothing was taken: nothing to restore."""


@dataclass(slots=True)
class Batch:
    """What flows through the stages of one request or one flush."""

    now: datetime
    report: Report
    candidates: list[Candidate] = field(default_factory=list)
    pending: list[Pending] = field(default_factory=list)
    release: Callable[[Sequence[str]], None] = _keep  # set by the stage that claimed keys
    restore: Callable[[Held, datetime], None] = _keep_held  # set by the stage that took digests

    def give_back(self, pending: Sequence[Pending]) -> None:
        """Undo the counting behind alerts that could not be stored. A failure here is logged
        (storage is likely down) so that the error that caused it is the one raised."""
        keys = [key for p in pending for key in p.keys]
        if keys:
            try:
                self.release(keys)
            except Exception as err:
                log.error("could not release %d claimed event key(s): %s", len(keys), type(err).__name__)
        for p in pending:
            if p.held is not None:
                try:
                    self.restore(p.held, self.now)
                except Exception as err:
                    log.error(
                        "could not give back %d held occurrence(s) of %r: %s",
                        p.held.count, p.held.fingerprint, err,
                    )  # fmt: skip


class Stage(Protocol):
    """One step of the policy: works on the batch in place; gives back what it took on failure."""

    def __call__(self, batch: Batch) -> None: ...


def run(stages: Sequence[Stage], batch: Batch) -> Report:
    """Run `batch` through `stages` in order; returns its report."""
    for stage in stages:
        stage(batch)
    return batch.report


def new_alert(incident: Incident, guidance: Guidance, now: datetime) -> Alert:
    """The alert for one occurrence, seen at the event's own time (or now, if it gave none)."""
    seen = incident.time or now
    return Alert(incident=incident, guidance=guidance, first_seen=seen, last_seen=seen)


class SuppressSuccesses:
    """A code the catalog calls a success (severity none) is counted, never alerted."""

    def __call__(self, batch: Batch) -> None:
        failures = [c for c in batch.candidates if c.guidance.severity is not Severity.NONE]
        batch.report.successes += len(batch.candidates) - len(failures)
        batch.candidates = failures


class Dedup:
    """Event Grid delivers at least once: only the first delivery of an event goes on."""

    def __init__(self, store: DedupKeys, ttl: timedelta) -> None:
        self.store = store
        self.ttl = ttl

    def __call__(self, batch: Batch) -> None:
        if not batch.candidates:
            return
        fresh = self.store.claim([c.key for c in batch.candidates], batch.now, self.ttl)
        batch.release = self.store.release
        kept = [c for c, new in zip(batch.candidates, fresh, strict=True) if new]
        batch.report.duplicates += len(batch.candidates) - len(kept)
        batch.candidates = kept


class Group:
    """Bursts: the first occurrence of a fingerprint alerts at once, repeats inside the window
    are counted for one digest. With a window of 0, every failure alerts on its own."""

    def __init__(self, store: BurstGroups, window: timedelta) -> None:
        self.store = store
        self.window = window

    def __call__(self, batch: Batch) -> None:
        report, now = batch.report, batch.now
        if not self.window:
            for c in batch.candidates:
                report.alerted += 1
                batch.pending.append(Pending(new_alert(c.incident, c.guidance, now), [c.key]))
            batch.candidates = []
            return
        groups: dict[str, _BatchGroup] = {}
        for c in batch.candidates:
            group = groups.get(c.incident.fingerprint)
            if group is None:
                groups[c.incident.fingerprint] = _BatchGroup(c)
            else:
                group.add(c)
        batch.candidates = []
        ordered = list(groups.items())
        for done, (fingerprint, group) in enumerate(ordered):
            try:
                opened = self.store.hit(fingerprint, group.count, group.first, now, self.window)
            except Exception:
                # These events were claimed but not counted: let Event Grid's retry count them.
                batch.give_back([Pending(group.alert(now), group.keys) for _, group in ordered[done:]])
                raise
            report.grouped += group.count - 1 if opened else group.count
            if opened:
                report.alerted += 1
                batch.pending.append(Pending(group.alert(now), group.keys[:1]))


class _BatchGroup:
    """Occurrences of one fingerprint within a batch: counted once, stored once."""

    __slots__ = ("count", "first", "guidance", "keys")

    def __init__(self, candidate: Candidate) -> None:
        self.count = 1
        self.first = [candidate.incident]  # the earliest few: the alert, the digest's example, samples
        self.guidance = candidate.guidance
        self.keys = [candidate.key]  # every event's dedup key, to release them if counting fails

    def add(self, candidate: Candidate) -> None:
        self.count += 1
        self.keys.append(candidate.key)
        if len(self.first) <= MAX_SAMPLES:
            self.first.append(candidate.incident)

    def alert(self, now: datetime) -> Alert:
        return new_alert(self.first[0], self.guidance, now)


class Digests:
    """One digest per burst whose window has ended (the timer's flush)."""

    def __init__(self, store: BurstGroups, lookup: Callable[[Incident], Guidance]) -> None:
        self.store = store
        self.lookup = lookup

    def __call__(self, batch: Batch) -> None:
        batch.restore = self.store.restore
        for held in self.store.take_due(batch.now):
            incident = held.incident
            alert = Alert(
                incident=incident,
                guidance=self.lookup(incident),
                count=held.count,
                first_seen=held.first_seen,
                last_seen=held.last_seen,
                samples=tuple(held.samples),
                digest=True,
                window_seconds=held.window_seconds,
            )
            batch.pending.append(Pending(alert, held=held))
        batch.report.digests += len(batch.pending)


class Route:
    """Where each alert goes: every matching route's destinations; with no routes, all."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __call__(self, batch: Batch) -> None:
        for p in batch.pending:
            p.destinations = self.destinations(p.alert)

    def destinations(self, alert: Alert) -> list[Destination]:
        """The configured destinations `alert` is routed to, in order."""
        settings = self.settings
        if not settings.routes:
            return list(settings.destinations.values())
        names: list[str] = []
        inc = alert.incident
        rank = _SEVERITY_RANK[alert.severity]
        for route in settings.routes:
            if rank < _SEVERITY_RANK[route.min_severity]:
                continue
            if route.kinds and inc.kind not in route.kinds:
                continue
            if route.contexts and inc.context not in route.contexts:
                continue
            if route.codes and inc.code not in route.codes:
                continue
            if route.subcodes and inc.subcode not in route.subcodes:
                continue
            names.extend(n for n in route.to if n not in names)
        return settings.destinations_for(names)


class Enqueue:
    """Render each pending alert for its destinations and write it to the outbox. An alert
    that cannot be written, and every one after it, is given back before the error is raised."""

    def __init__(self, outbox: Outbox, render: Callable[[], Renderer]) -> None:
        self.outbox = outbox
        self._render = render  # resolved on first use: a batch of successes renders nothing

    def __call__(self, batch: Batch) -> None:
        report = batch.report
        for index, p in enumerate(batch.pending):
            try:
                messages = self.messages(p)
                self.outbox.enqueue(messages)
            except Exception:
                # Nothing may be lost: give the counts back so a retry (or the next flush) reports them.
                batch.give_back(batch.pending[index:])
                raise
            report.alerts.append(p.alert)
            report.messages.extend(messages)
        batch.pending = []

    def messages(self, pending: Pending) -> list[OutboxMessage]:
        """One outbox message per destination, with an id stable across retries of the same alert."""
        alert = pending.alert
        # A kind is told only the statuses it takes (a pager is not paged for silenced news).
        destinations = [d for d in pending.destinations if alert.status in d.kind.statuses]
        if not destinations:
            return []
        render = self._render()
        basis = f"{alert.fingerprint}|{alert.incident.event_id}|{alert.digest}|{alert.count}"
        return [
            OutboxMessage(
                id=hashlib.sha256(f"{basis}|{d.name}".encode()).hexdigest()[:32],
                destination=d.name,
                payload=_as_payload(render(alert, d.format)),
                fingerprint=alert.fingerprint,
            )
            for d in destinations
        ]


def _as_payload(rendered: Any) -> dict[str, Any]:
    """Chat formats render to a JSON body; the text format is carried as {"text": …}."""
    return rendered if isinstance(rendered, dict) else {"text": str(rendered)}
