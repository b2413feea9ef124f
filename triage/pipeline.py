"""The pipeline: RawEvents → Incidents → Guidance → policy stages (triage.policy) → rendered
OutboxMessages. No network here; state goes through the store it is given, time through the
`now` it is given. The stages are composed here, and only here."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import cast

from .destinations import Destination
from .events import Skip, read
from .ingest import RawEvent, Rejected
from .inhibit import Inhibition
from .model import Alert, Context, Facts, Guidance, Incident
from .policy import (
    Batch,
    Candidate,
    Dedup,
    Digests,
    Enqueue,
    Group,
    Recover,
    Renderer,
    Report,
    Route,
    Silence,
    SilenceSummaries,
    Stage,
    StartInhibitions,
    SuppressSuccesses,
    run,
)
from .report import CountHourly
from .routing import Routing
from .settings import Settings
from .store import Store

__all__ = ["Lookup", "Report", "StatusLookup", "Triage"]

log = logging.getLogger("triage")

Lookup = Callable[[int | None, int | None, Context | None, str | None, str], Guidance]
# (status word, context, event kind) → Guidance: for events that report a status, not a code.
StatusLookup = Callable[[str, Context, str | None], Guidance]
_KNOWN_FACTS = 4096


class Triage:
    """The pipeline with its settings, store and catalog. One per process; thread-safe
    as long as the store is."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        lookup: Lookup | None = None,
        render: Renderer | None = None,
        status_lookup: StatusLookup | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        if lookup is None:
            from .catalog import lookup as catalog_lookup

            lookup = catalog_lookup
        self._lookup = lookup
        if status_lookup is None:
            from .catalog import lookup_status

            status_lookup = lookup_status
        self._status_lookup = status_lookup
        # Guidance and fingerprint per distinct facts: a batch repeats a few.
        self._known: dict[Facts, tuple[Guidance, str]] = {}
        self._render = render
        routing = Routing(settings)
        self._route = Route(settings, routing)
        enqueue = Enqueue(store, self._renderer, settings.silence_links())
        self.inhibition = Inhibition(settings.inhibit_rules)
        self._silence = Silence(store, inhibition=self.inhibition)
        # Only with rules: a batch of an app without them passes no stage of theirs.
        inhibit: tuple[Stage, ...] = (
            (StartInhibitions(store, self.inhibition, self._silence),) if self.inhibition else ()
        )
        self.event_stages: tuple[Stage, ...] = (
            SuppressSuccesses(),
            Dedup(store, timedelta(hours=settings.dedup_ttl_hours)),
            CountHourly(store),  # the daily report's counters: one write per batch
            self._silence,
            *inhibit,
            Recover(store, routing),
            Group(store, routing),
            self._route,
            enqueue,
        )
        self.digest_stages: tuple[Stage, ...] = (
            Digests(store, self._guidance, routing.repeat_of, (self.inhibition, store)),
            SilenceSummaries(store, self._guidance),
            self._route,
            enqueue,
        )

    def handle(self, raws: Iterable[RawEvent], now: datetime, rejected: Iterable[Rejected] = ()) -> Report:
        """Run a batch through the pipeline; alerts to send end up in the store's outbox.
        `rejected` is read once `raws` is done: a streamed body (ingest.stream_body) fills it
        as it goes."""
        report = Report()
        resource, mask = self.settings.resource, self.settings.mask_pii
        batch = Batch(now, report)
        candidates = batch.candidates
        known = self._known
        received = 0
        for raw in raws:
            received += 1
            # Only the facts: the few incidents that are shown are built by Candidate.shown.
            try:
                reading = read(raw, resource=resource, mask=mask)
            except (ValueError, TypeError, RecursionError) as exc:
                # One event is the unit of failure: whatever its data holds, it alone is refused.
                reason = f"event data could not be read ({type(exc).__name__})"
                reading = Skip(raw.id, raw.type, reason, "invalid")
            if isinstance(reading, Skip):
                self._count_skip(report, reading)
                continue
            facts = reading.facts
            guidance, fingerprint = known.get(facts) or self._learn(facts)
            candidates.append(
                Candidate(f"{raw.source}|{raw.id}", facts, guidance, reading, False, fingerprint)
            )
        report.rejected = list(rejected)
        report.received = received + len(report.rejected)
        if report.rejected:
            report.tally("invalid", "unreadable", count=len(report.rejected))
        if not candidates:
            return report
        # Claims, counts and outbox writes as one unit: a crash between them must neither
        # lose an event (claimed, never counted) nor alert it twice.
        with self.store.unit():
            return run(self.event_stages, batch)

    def flush(self, now: datetime) -> Report:
        """Post one digest per group whose window has ended, a resolved notice per burst that went
        quiet and a summary per silence that ended (the timer trigger calls this)."""
        with self.store.unit():  # counts taken and their digests written together, where it can
            return run(self.digest_stages, Batch(now, Report()))

    @property
    def inhibited(self) -> int:
        """Events inhibitions held back since this process started (/api/health)."""
        return self.inhibition.inhibited

    @property
    def unrouted(self) -> int:
        """Alerts no route matched since this process started (they went to the default route)."""
        return self._route.unrouted

    def silences_changed(self) -> None:
        """A silence was started or ended in this process: read the silences afresh on the next
        batch (other instances read them within their few seconds' cache)."""
        self._silence.forget()

    def destinations(self, alert: Alert) -> list[Destination]:
        """Where an alert goes: every matching route's destinations; with no routes, all."""
        return self._route.destinations(alert)

    def _guidance(self, facts: Facts | Incident) -> Guidance:
        """The catalog's answer for a failure: by its status word where it has one, else by its
        code (and the row the source's conditions chose)."""
        if facts.status:
            return self._status_lookup(facts.status, facts.context, facts.kind)
        return self._lookup(facts.code, facts.subcode, facts.context, facts.kind, facts.row)

    def _learn(self, facts: Facts) -> tuple[Guidance, str]:
        """Guidance and fingerprint of facts not seen before (a batch repeats a few facts)."""
        if len(self._known) >= _KNOWN_FACTS:
            self._known.clear()  # only junk codes get here: start over
        known = self._known[facts] = (self._guidance(facts), facts.fingerprint)
        return known

    def _renderer(self) -> Renderer:
        if self._render is None:
            from .render.template import render_json as render_alert

            self._render = cast(Renderer, render_alert)
        return self._render

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
