"""The pipeline: RawEvents → Incidents → Guidance → policy (dedup, suppress, group, route)
→ rendered OutboxMessages. No network here; state goes through the Store it is given,
time through the `now` it is given."""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from .destinations import Destination
from .events import Skip, to_incident
from .ingest import RawEvent, Rejected
from .model import Alert, Context, Guidance, Incident, Severity
from .settings import Settings
from .store import MAX_SAMPLES, Held, OutboxMessage, Store

__all__ = ["Lookup", "Report", "Triage"]

log = logging.getLogger("triage")

Lookup = Callable[[int | None, int | None, Context | None, str | None], Guidance]
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
    # (outcome, event kind, "code/subcode") → events: what telemetry counts by kind and code.
    outcomes: Counter[tuple[str, str, str]] = field(default_factory=Counter)

    def tally(self, outcome: str, kind: str, incident: Incident | None = None, count: int = 1) -> None:
        """Count `count` events of `kind` (with the incident's code, if any) as `outcome`."""
        code = "" if incident is None or incident.code is None else str(incident.code)
        if incident is not None and incident.subcode is not None:
            code = f"{code}/{incident.subcode}"
        self.outcomes[(outcome, kind, code)] += count

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


class Triage:
    """The pipeline with its settings, store and catalog. One per process; thread-safe
    as long as the store is."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        lookup: Lookup | None = None,
        render: Renderer | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        if lookup is None:
            from .catalog import lookup as catalog_lookup

            lookup = catalog_lookup
        self._lookup = lookup
        self._render = render

    # -- events in --------------------------------------------------------------------------
    def handle(self, raws: Sequence[RawEvent], now: datetime, rejected: Iterable[Rejected] = ()) -> Report:
        """Run a batch through the pipeline; alerts to send end up in the store's outbox."""
        report = Report(received=len(raws), rejected=list(rejected))
        report.received += len(report.rejected)
        if report.rejected:
            report.tally("invalid", "unreadable", count=len(report.rejected))
        settings = self.settings
        failures: list[tuple[str, Incident, Guidance]] = []
        for raw in raws:
            outcome = to_incident(raw, resource=settings.resource, mask=settings.mask_pii)
            if isinstance(outcome, Skip):
                self._count_skip(report, outcome)
                continue
            guidance = self._lookup(outcome.code, outcome.subcode, outcome.context, outcome.kind)
            if guidance.severity is Severity.NONE:
                report.successes += 1
                report.tally("success", outcome.kind, outcome)
                continue
            failures.append((f"{raw.source}|{raw.id}", outcome, guidance))
        if not failures:
            return report

        # Event Grid delivers at least once: only the first delivery of an event counts.
        ttl = timedelta(hours=settings.dedup_ttl_hours)
        claimed = self.store.claim([key for key, _, _ in failures], now, ttl)
        window = timedelta(seconds=settings.group_window_seconds)
        outgoing: list[tuple[Alert, list[str]]] = []
        groups: dict[str, _BatchGroup] = {}
        for (key, incident, guidance), fresh in zip(failures, claimed, strict=True):
            if not fresh:
                report.duplicates += 1
                report.tally("duplicate", incident.kind, incident)
            elif not window:  # grouping off: every event alerts on its own
                report.alerted += 1
                report.tally("alerted", incident.kind, incident)
                outgoing.append((self._alert(incident, guidance, now), [key]))
            elif (group := groups.get(incident.fingerprint)) is None:
                groups[incident.fingerprint] = _BatchGroup(incident, guidance, key)
            else:
                group.add(incident, key)

        pending = list(groups.items())
        for done, (fingerprint, group) in enumerate(pending):
            try:
                opened = self.store.hit(fingerprint, group.count, group.first, now, window)
            except Exception:
                # These events were claimed but not counted: let Event Grid's retry count them.
                self.store.release([key for _, g in pending[done:] for key in g.keys])
                raise
            report.grouped += group.count - 1 if opened else group.count
            first = group.first[0]
            report.tally("grouped", first.kind, first, group.count - 1 if opened else group.count)
            if opened:
                report.alerted += 1
                report.tally("alerted", first.kind, first)
                outgoing.append((self._alert(group.first[0], group.guidance, now), group.keys[:1]))

        for alert, keys in outgoing:
            report.alerts.append(alert)
            messages = self._messages(alert)
            try:
                self.store.enqueue(messages)
            except Exception:
                # Nothing may be lost: forget the claim so Event Grid's retry gets through.
                self.store.release(keys)
                raise
            report.messages.extend(messages)
        return report

    @staticmethod
    def _count_skip(report: Report, skip: Skip) -> None:
        report.tally(skip.outcome, skip.event_type)
        if skip.outcome == "success":
            report.successes += 1
        elif skip.outcome == "invalid":
            report.invalid += 1
            report.skips.append(skip)
            log.warning(
                "invalid event skipped: id=%s type=%s: %s", skip.event_id, skip.event_type, skip.reason
            )
        else:
            report.skipped += 1
            report.skips.append(skip)
            log.info("event skipped: type=%r: %s", skip.event_type, skip.reason)

    def _alert(self, incident: Incident, guidance: Guidance, now: datetime) -> Alert:
        seen = incident.time or now
        return Alert(incident=incident, guidance=guidance, first_seen=seen, last_seen=seen)

    # -- digests ----------------------------------------------------------------------------
    def flush(self, now: datetime) -> Report:
        """Post one digest per group whose window has ended (the timer trigger calls this)."""
        report = Report()
        due = self.store.take_due(now)
        for done, held in enumerate(due):
            try:
                alert = self._digest(held)
                messages = self._messages(alert)
                self.store.enqueue(messages)
            except Exception:
                # Taken but not stored: give the counts back for the next flush to report.
                for undelivered in due[done:]:
                    self._restore(undelivered, now)
                raise
            report.digests += 1
            report.tally("digest", held.incident.kind, held.incident)
            report.alerts.append(alert)
            report.messages.extend(messages)
        return report

    def _restore(self, held: Held, now: datetime) -> None:
        try:
            self.store.restore(held, now)
        except Exception as err:  # storage is likely down: say what is lost, keep the first error
            log.error(
                "could not give back %d held occurrence(s) of %r: %s", held.count, held.fingerprint, err
            )

    def _digest(self, held: Held) -> Alert:
        incident = held.incident
        guidance = self._lookup(incident.code, incident.subcode, incident.context, incident.kind)
        return Alert(
            incident=incident,
            guidance=guidance,
            count=held.count,
            first_seen=held.first_seen,
            last_seen=held.last_seen,
            samples=tuple(held.samples),
            digest=True,
            window_seconds=held.window_seconds,
        )

    # -- routing and rendering ----------------------------------------------------------------
    def destinations(self, alert: Alert) -> list[Destination]:
        """Where an alert goes: every matching route's destinations; with no routes, all."""
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

    def _messages(self, alert: Alert) -> list[OutboxMessage]:
        destinations = self.destinations(alert)
        if not destinations:
            return []
        if self._render is None:
            from .render import render as render_alert

            self._render = cast(Renderer, render_alert)
        render = self._render
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


class _BatchGroup:
    """Occurrences of one fingerprint within a batch: counted once, stored once."""

    __slots__ = ("count", "first", "guidance", "keys")

    def __init__(self, incident: Incident, guidance: Guidance, key: str) -> None:
        self.count = 1
        self.first = [incident]  # the earliest few: the alert, the digest's example, samples
        self.guidance = guidance
        self.keys = [key]  # every event's dedup key, to release them if counting fails

    def add(self, incident: Incident, key: str) -> None:
        self.count += 1
        self.keys.append(key)
        if len(self.first) <= MAX_SAMPLES:
            self.first.append(incident)


def _as_payload(rendered: Any) -> dict[str, Any]:
    """Chat formats render to a JSON body; the text format is carried as {"text": …}."""
    return rendered if isinstance(rendered, dict) else {"text": str(rendered)}
