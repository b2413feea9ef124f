"""Policy as stages: what happens to failures between the catalog and the outbox.

A stage is a callable `Stage(batch) -> None` that works on a `Batch` in place: it takes
`candidates` (failures still in play) and turns them into `pending` alerts, or acts on those.
`triage.pipeline` composes them in one place:

    events:  SuppressSuccesses → Dedup → Silence → Recover → Group → Route → Enqueue
    digests: Digests → SilenceSummaries → Route → Enqueue

Each stage gives back what it took when it cannot finish: `Group` releases the dedup claims of
occurrences it could not count, `Enqueue` gives back (claims released, digest counts restored)
every alert it could not write, so that Event Grid's retry, or the next flush, reports them.

Successes are suppressed before dedup (not after, as DESIGN.md lists them): a success needs no
claim, so a batch of successes costs no store write.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, overload

import orjson
from msgspec import Struct, field
from msgspec.structs import replace

from .destinations import Destination
from .events import Skip
from .ingest import Rejected
from .inhibit import INHIBIT_PREFIX, Inhibition
from .model import Alert, Facts, Guidance, Incident, Severity
from .routing import MUTE_PREFIX, ROUTE_PREFIX, Lane, Routing, tracker_key
from .settings import DEFAULT_QUIET_SECONDS, Settings

if TYPE_CHECKING:
    from .silence_link import SilenceLinks
from .store import (
    MAX_SAMPLES,
    Burst,
    BurstGroups,
    Claim,
    DedupKeys,
    EnqueueFailed,
    Held,
    HitsFailed,
    Outbox,
    OutboxMessage,
    SilenceRule,
    Silences,
    Store,
)

__all__ = [
    "Batch",
    "Candidate",
    "Dedup",
    "Digests",
    "Enqueue",
    "Group",
    "Pending",
    "Recover",
    "Report",
    "Route",
    "Silence",
    "SilenceSummaries",
    "Stage",
    "StartInhibitions",
    "SuppressSuccesses",
    "outbox_message",
    "reminder_due",
    "run",
]

log = logging.getLogger("triage")

# (alert, format) → its payload: a dict, text (the text format), or the payload's JSON text (bytes).
Renderer = Callable[[Alert, str], Any]
MAX_LISTED_REJECTIONS = 20  # rejections an HTTP answer lists; the rest are counted
_SEVERITY_RANK = {Severity.NONE: 0, Severity.WARNING: 1, Severity.ERROR: 2}


class Report(Struct):
    """What one request (or one flush) did, event by event, in counts."""

    received: int = 0
    alerted: int = 0  # events that caused an immediate alert
    grouped: int = 0  # events held for a digest
    digests: int = 0  # digest alerts produced (flush)
    reminders: int = 0  # of those, reminders: bursts still firing after their repeat_interval
    resolved: int = 0  # resolved notices produced (flush): bursts that went quiet
    silenced: int = 0  # events a silence held back (counted for its summary, not alerted)
    silence_summaries: int = 0  # summaries of silences that ended (flush)
    unrouted: int = 0  # alerts no route matched: sent to the default route
    muted: int = 0  # events a muted route held back (counted for the summary when it ends)
    inhibited: int = 0  # events an inhibition held back while its source fired (triage.inhibit)
    duplicates: int = 0
    # Azure: events another delivery is counting right now (the request answers 503: retry),
    # and events taken over from a delivery that died mid-unit (held for a digest).
    busy: int = 0
    recovered: int = 0
    successes: int = 0
    skipped: int = 0
    invalid: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    # The ids of the outbox messages written: the payloads themselves are freed once queued.
    message_ids: list[str] = field(default_factory=list)
    # (outcome, event kind, "code/subcode") → events: what telemetry counts by kind and code.
    outcomes: Counter[tuple[str, str, str]] = field(default_factory=Counter)

    def tally(
        self, outcome: str, kind: str, incident: Facts | Incident | None = None, count: int = 1
    ) -> None:
        """Count `count` events of `kind` (with the incident's code, if any) as `outcome`."""
        code = "" if incident is None or incident.code is None else str(incident.code)
        if incident is not None and incident.subcode is not None:
            code = f"{code}/{incident.subcode}"
        self.outcomes[(outcome, kind, code)] += count

    def as_dict(self) -> dict[str, Any]:
        """The JSON body the HTTP routes answer with (no personal data, no secrets). It lists the
        first MAX_LISTED_REJECTIONS rejections and counts the rest (`rejected_unlisted`): a
        megabyte of bad items must not make an answer many times its size."""
        listed: list[dict[str, Any]] = [
            {"index": r.index, "id": r.event_id, "reason": r.reason}
            for r in self.rejected[:MAX_LISTED_REJECTIONS]
        ]
        room = MAX_LISTED_REJECTIONS - len(listed)
        invalid_skips = (s for s in self.skips if s.outcome == "invalid")
        listed += [
            {"id": s.event_id, "type": s.event_type, "reason": s.reason}
            for s in itertools.islice(invalid_skips, room)
        ]
        invalid = self.invalid + len(self.rejected)
        return {
            "received": self.received,
            "alerted": self.alerted,
            "grouped": self.grouped,
            "digests": self.digests,
            "reminders": self.reminders,
            "duplicates": self.duplicates,
            "busy": self.busy,
            "recovered": self.recovered,
            "silenced": self.silenced,
            "muted": self.muted,
            "inhibited": self.inhibited,
            "successes": self.successes,
            "skipped": self.skipped,
            "invalid": invalid,
            "rejected": listed,
            "rejected_unlisted": invalid - len(listed),
            "unrouted": self.unrouted,
            "messages": len(self.message_ids),
        }


class Shows(Protocol):
    """Where a candidate's shown incident comes from (events.Reading): read only when shown."""

    def incident(self) -> Incident: ...

    def ids(self) -> dict[str, str]: ...


class Candidate(Struct):
    """A failure with its guidance, and the key that dedups its event.

    Matching and counting read only `facts` (kind, context, codes, resource). The whole
    Incident, masked where masking is on, is built by `shown()` for the few that are shown:
    the alert, a digest's example, a silence's example; a digest's samples read their IDs alone.
    Most events of a burst are only counted, and building every one of them was most of a
    batch's cost."""

    key: str
    facts: Facts | Incident  # an Incident when it is already built
    guidance: Guidance
    source: Shows | None = None  # reads the shown incident (None: facts is it)
    recovered: bool = False  # taken over from a delivery that died mid-unit (Claim.RECOVERED)
    known_fingerprint: str = ""  # the pipeline knows it per distinct facts: not built per event

    @property
    def fingerprint(self) -> str:
        """The facts' fingerprint (see triage.model.fingerprint)."""
        return self.known_fingerprint or self.facts.fingerprint

    def shown(self) -> Incident:
        """The incident as alerts and the store hold it; built once."""
        if self.source is not None:
            self.facts, self.source = self.source.incident(), None
        assert isinstance(self.facts, Incident)
        return self.facts

    def ids(self) -> dict[str, str]:
        """The shown incident's IDs; read alone when the incident is not built yet (a digest's
        samples show only their IDs)."""
        return self.shown().ids if self.source is None else self.source.ids()


class Pending(Struct):
    """An alert on its way out, with what stands behind it: the dedup keys of the events it
    reports (released if it cannot be stored) or the digest counts it reports (restored)."""

    alert: Alert
    keys: list[str] = field(default_factory=list)
    held: Held | None = None
    destinations: list[Destination] = field(default_factory=list)
    # Where it goes, when the stage that made it knows: the route lanes that took it (events),
    # or the store key it reports (a digest's or resolved burst's, a mute's silence id).
    lanes: list[Lane] | None = None
    key: str = ""


def _keep(keys: Sequence[str]) -> None:
    """Nothing was claimed: nothing to release."""


def _keep_held(held: Held, now: datetime) -> None:
    """Nothing was taken: nothing to restore."""


class Batch(Struct):
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
        self.release_keys([key for p in pending for key in p.keys])
        for p in pending:
            if p.held is not None:
                try:
                    self.restore(p.held, self.now)
                except Exception as err:
                    log.error(
                        "could not give back %d held occurrence(s) of %r: %s",
                        p.held.count, p.held.fingerprint, err,
                    )  # fmt: skip

    def release_keys(self, keys: Sequence[str]) -> None:
        """Release claimed events that were not counted, so that their redelivery counts them
        (logged, not raised, on failure: see give_back)."""
        if keys:
            try:
                self.release(keys)
            except Exception as err:
                log.error("could not release %d claimed event key(s): %s", len(keys), type(err).__name__)


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


def _counted(
    lookup: Callable[[Incident], Guidance], tally: Held | Burst | SilenceRule, **fields: Any
) -> Alert:
    """The alert that reports what a store counted: a digest, a resolved burst, a silence."""
    incident = tally.incident
    assert incident is not None  # a silence with a count has its first occurrence
    return Alert(
        incident=incident,
        guidance=lookup(incident),
        count=tally.count,
        first_seen=tally.first_seen,
        last_seen=tally.last_seen,
        **fields,
    )


class SuppressSuccesses:
    """A code the catalog calls a success (severity none) is counted, never alerted."""

    def __call__(self, batch: Batch) -> None:
        report = batch.report
        failures: list[Candidate] = []
        for c in batch.candidates:
            if c.guidance.severity is Severity.NONE:
                report.successes += 1
                report.tally("success", c.facts.kind, c.facts)
            else:
                failures.append(c)
        batch.candidates = failures


class Dedup:
    """Event Grid delivers at least once: only the first delivery of an event goes on."""

    def __init__(self, store: DedupKeys, ttl: timedelta) -> None:
        self.store = store
        self.ttl = ttl

    def __call__(self, batch: Batch) -> None:
        if not batch.candidates:
            return
        claims = self.store.claim([c.key for c in batch.candidates], batch.now, self.ttl)
        batch.release = self.store.release
        report = batch.report
        kept: list[Candidate] = []
        for c, claim in zip(batch.candidates, claims, strict=True):
            if claim is Claim.NEW:
                kept.append(c)
            elif claim is Claim.RECOVERED:
                c.recovered = True
                kept.append(c)
            elif claim is Claim.BUSY:
                # Neither counted nor dropped: the 503 this request answers brings it back.
                report.busy += 1
                report.tally("busy", c.facts.kind, c.facts)
            else:
                report.duplicates += 1
                report.tally("duplicate", c.facts.kind, c.facts)
        batch.candidates = kept


class Silence:
    """Operators' silences: a failure that an active silence matches is counted for that
    silence's summary, not alerted. The active list is read from the store at most once every
    `cache_seconds` per process (it is on every request's path); the count itself is checked
    against the store, so a silence that ended meanwhile lets its failures alert."""

    def __init__(
        self,
        store: Silences,
        cache_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        inhibition: Inhibition | None = None,
    ) -> None:
        self.store = store
        self.cache_seconds = cache_seconds
        self._clock = clock
        # Inhibitions are silences too (triage.inhibit): a source is not held back by its own rule.
        self.inhibition = inhibition if inhibition else None
        self._cached: list[SilenceRule] = []
        self._fetched: float | None = None

    def forget(self) -> None:
        """Read the silences from the store on the next batch (one was started or ended here)."""
        self._fetched = None

    def active(self, now: datetime) -> list[SilenceRule]:
        """The silences in force at `now`, from the store or from the last few seconds' copy."""
        moment = self._clock()
        if self._fetched is None or moment - self._fetched >= self.cache_seconds:
            # A route's mute (triage.routing) holds back only what that route takes: not here.
            self._cached = [s for s in self.store.list_silences(now) if not s.id.startswith(MUTE_PREFIX)]
            self._fetched = moment
        return [s for s in self._cached if s.active(now)]

    def __call__(self, batch: Batch) -> None:
        if not batch.candidates:
            return
        silences = self.active(batch.now)
        if not silences:
            return
        matched: dict[str, list[Candidate]] = {}
        kept: list[Candidate] = []
        # Matchers read only these fields: decide once per distinct value, not once per event.
        decided: dict[tuple[Any, ...], SilenceRule | None] = {}
        for c in batch.candidates:
            facts = c.facts
            key = (facts.kind, facts.context, facts.code, facts.subcode, facts.resource)
            if key in decided:
                silence = decided[key]
            else:
                silence = decided[key] = self._first(silences, facts)
            if silence is None:
                kept.append(c)
            else:
                matched.setdefault(silence.id, []).append(c)
        ordered = list(matched.items())
        for done, (silence_id, held) in enumerate(ordered):
            try:
                recovered = [c.key for c in held if c.recovered]  # the store skips what the dead unit counted
                counted = self.store.count_silenced(
                    silence_id, len(held), held[0].shown(), batch.now, recovered
                )
            except Exception:
                # Claimed but neither counted nor alerted: let Event Grid's retry bring them back.
                rest = [*kept, *(c for _, cs in ordered[done:] for c in cs)]
                batch.release_keys([c.key for c in rest])
                raise
            if counted and silence_id.startswith(INHIBIT_PREFIX):
                batch.report.inhibited += len(held)
                batch.report.tally("inhibited", held[0].facts.kind, held[0].facts, len(held))
                if self.inhibition is not None:
                    self.inhibition.inhibited += len(held)
            elif counted:
                batch.report.silenced += len(held)
            else:
                kept.extend(held)  # the silence ended meanwhile: these alert as usual
        batch.candidates = kept

    def _first(self, silences: list[SilenceRule], facts: Facts | Incident) -> SilenceRule | None:
        """The first silence in force that holds back `facts`, if any."""
        inhibition = self.inhibition
        for silence in silences:
            if silence.matcher.matches(facts) and (
                inhibition is None or not inhibition.exempt(silence.id, facts)
            ):
                return silence
        return None


class StartInhibitions:
    """Source events of an inhibit rule (triage.inhibit) start its inhibition when none is in
    force for their `equal` values: a store silence the next batches hold its targets back in.
    Which are in force is read from the silences the Silence stage has read anyway (at most a
    few seconds old): a batch without a new source costs nothing. Never raises: an inhibition
    that could not be started holds nothing back, so the targets alert as usual."""

    def __init__(self, store: Silences, inhibition: Inhibition, silences: Silence) -> None:
        self.store = store
        self.inhibition = inhibition
        self.silences = silences

    def __call__(self, batch: Batch) -> None:
        inhibition, now = self.inhibition, batch.now
        wanted: dict[str, tuple[int, Candidate]] = {}
        seen: set[tuple[Any, ...]] = set()
        for c in batch.candidates:
            facts = c.facts
            key = (facts.kind, facts.context, facts.code, facts.subcode, facts.resource)
            if key in seen:
                continue
            seen.add(key)
            for number in inhibition.sources(facts):
                wanted.setdefault(inhibition.prefix(number, facts), (number, c))
        if not wanted:
            return
        try:
            running = {s.id[: s.id.rindex(":") + 1] for s in self.silences.active(now)}
            started = 0
            for prefix, (number, c) in wanted.items():
                if prefix not in running:
                    self.store.add_silence(SilenceRule(**inhibition.start(number, c.shown(), now)))
                    started += 1
        except Exception as err:
            log.warning(
                "an inhibition could not be started (%s): its targets alert as usual", type(err).__name__
            )
            started = 1
        if started:
            self.silences.forget()  # this instance holds targets back from its next batch on


class SilenceSummaries:
    """One notice per silence that ended having held events back: how many, which, when.
    Each summary is claimed atomically in the store, so one instance posts it, once."""

    def __init__(self, store: Silences, lookup: Callable[[Incident], Guidance]) -> None:
        self.store = store
        self.lookup = lookup

    def __call__(self, batch: Batch) -> None:
        for silence in self.store.take_ended_silences(batch.now):
            if silence.incident is None:
                continue
            note = f"silence {silence.id}: {silence.matcher.describe()}"
            if silence.created_by:
                note += f" · by {silence.created_by}"
            if silence.comment:
                note += f" · {silence.comment}"
            alert = _counted(self.lookup, silence, status="silenced", note=note)
            batch.pending.append(Pending(alert, key=silence.id))
            batch.report.silence_summaries += 1


class Recover:
    """Events taken over from a delivery that died before its unit finished (Azure). That
    delivery may have alerted them already, or not: so they never alert on their own; each
    burst's recovered events are put into its group as held occurrences, due at once
    (`restore`), and the next flush reports them in a digest. The store leaves out those the
    dead delivery had counted already (their keys tell it which): counted once, but the first
    event of a burst the dead delivery opened, which the digest reports too (its first alert
    may have been cut off); alerted at most once, with grouping on or off. A failure gives
    nothing back: the keys stay this unit's, and the next delivery recovers them again once
    the lease has passed."""

    def __init__(self, store: BurstGroups, lanes: Routing | timedelta) -> None:
        self.store = store
        self.lanes = _lanes(lanes)

    def __call__(self, batch: Batch) -> None:
        recovered = [c for c in batch.candidates if c.recovered]
        if not recovered:
            return
        batch.candidates = [c for c in batch.candidates if not c.recovered]
        by_key: dict[str, tuple[Lane, list[Candidate]]] = {}
        for c in recovered:
            for lane in self.lanes(c):
                by_key.setdefault(lane.key(c.facts, c.fingerprint), (lane, []))[1].append(c)
        now = batch.now
        for key, (lane, cs) in by_key.items():
            shown = [c.shown() for c in cs[:MAX_SAMPLES]]
            seconds = int((lane.window or lane.quiet).total_seconds())
            held = Held(key, len(cs), now, now, shown[0], seconds, [i.ids for i in shown])
            # The dead delivery may not have counted them into the burst: the store adds those
            # to its total too (their keys tell it which the dead unit had counted already).
            self.store.restore(held, now, counted=False, keys=[c.key for c in cs])
            batch.report.recovered += len(cs)
            batch.report.tally("recovered", shown[0].kind, shown[0], len(cs))


def _lanes(lanes: Routing | timedelta) -> Callable[[Candidate], list[Lane]]:
    """Which lanes take a candidate: the routes' (decided once per distinct facts and
    severity), or, given a bare window, one lane routed later by `Route`."""
    if isinstance(lanes, timedelta):
        only = [Lane("", None, lanes, lanes)]
        return lambda candidate: only
    routing = lanes
    if not routing.settings.routes:
        everything = [routing.default]
        return lambda candidate: everything
    decided: dict[tuple[Any, ...], list[Lane]] = {}

    def of(candidate: Candidate) -> list[Lane]:
        facts, severity = candidate.facts, candidate.guidance.severity
        key = (facts.kind, facts.context, facts.code, facts.subcode, facts.resource, severity)
        found = decided.get(key)
        if found is None:
            if len(decided) >= 4096:
                decided.clear()  # only junk codes get here: start over
            found = decided[key] = routing.lanes_for(facts, severity)
        return found

    return of


class Group:
    """Bursts, per route lane (triage.routing): the first occurrence of a burst alerts at once,
    repeats inside the lane's window (`group_interval`) are counted for one digest. With a window
    of 0, every failure alerts on its own, and its burst is still recorded (nothing held), so
    that once it has been quiet for the lane's quiet period the flush resolves it: every alert
    that fired is resolved. While a lane is muted (its time intervals), what it takes is counted
    in the mute's store silence, summarised when the muted period ends."""

    def __init__(self, store: Store, lanes: Routing | timedelta, quiet: timedelta | None = None) -> None:
        self.store = store
        if isinstance(lanes, timedelta):  # one window for all, routed afterwards by `Route`
            lane = Lane("", None, lanes, quiet or lanes or timedelta(seconds=DEFAULT_QUIET_SECONDS))
            self.lanes: Callable[[Candidate], list[Lane]] = lambda candidate: [lane]
            self.routed = False
            self.only: Lane | None = lane
        else:
            self.lanes = _lanes(lanes)
            self.routed = True
            # Without routes the default lane takes everything (a plain lane, never muted).
            self.only = None if lanes.settings.routes else lanes.default

    def __call__(self, batch: Batch) -> None:
        report, now = batch.report, batch.now
        # Keyed by burst key alone: each lane's keys are its own (see triage.routing).
        groups: dict[str, _BatchGroup] = {}
        lanes, only = self.lanes, self.only
        if only is not None:
            # No routes: one lane takes every event, never muted, keyed by the fingerprint itself.
            for c in batch.candidates:
                key = c.known_fingerprint or c.facts.fingerprint
                group = groups.get(key)
                if group is None:
                    groups[key] = _BatchGroup(c, only, key, None)
                else:
                    group.add(c)
        else:
            for c in batch.candidates:
                for lane in lanes(c):
                    until = None if lane.muted is None else lane.muted_until(now)
                    if until is not None:
                        key = lane.mute_id(until)
                    elif lane.plain:  # the default lane: keyed by fingerprint
                        key = c.fingerprint
                    else:
                        key = lane.key(c.facts, c.fingerprint)
                    group = groups.get(key)
                    if group is None:
                        groups[key] = _BatchGroup(c, lane, key, until)
                    else:
                        group.add(c)
        batch.candidates = []
        ordered = list(groups.values())
        counting: list[_BatchGroup] = []  # counted below, the whole batch at once
        for done, group in enumerate(ordered):
            try:
                if group.muted_until is not None and self._mute(group, now, report):
                    continue
                if not group.lane.window:
                    self._each_alone(group, batch)
                    continue
            except Exception:
                # These events were claimed but not counted: let Event Grid's retry count them.
                batch.give_back([Pending(g.alert(now), g.keys) for g in [*counting, *ordered[done:]]])
                raise
            counting.append(group)
        opened_by = self._hit(counting, batch)
        for group in counting:
            opened = opened_by[id(group)]
            held = group.count - 1 if opened else group.count
            report.grouped += held
            first = group.earliest[0].facts
            report.tally("grouped", first.kind, first, held)
            if opened:
                report.alerted += 1
                report.tally("alerted", first.kind, first)
                batch.pending.append(self._pending(group, group.alert(now), group.keys[:1]))

    def _hit(self, counting: list[_BatchGroup], batch: Batch) -> dict[int, bool]:
        """Count every group of the batch, one `hit_many` per window (a store writes them in as
        few round trips as it can): id(group) → whether its burst opened. On an error, every
        group not counted is given back before the store's error is raised."""
        by_window: dict[timedelta, list[_BatchGroup]] = {}
        for group in counting:
            by_window.setdefault(group.lane.window, []).append(group)
        opened: dict[int, bool] = {}
        now = batch.now
        for window, groups in by_window.items():
            try:
                answers = self.store.hit_many([(g.key, g.count, g.first) for g in groups], now, window)
            except HitsFailed as failed:
                counted = {id(groups[n]) for n in failed.counted} | set(opened)
                lost = [g for g in counting if id(g) not in counted]
                batch.give_back([Pending(g.alert(now), g.keys) for g in lost])
                raise failed.__cause__ or failed from None
            opened.update((id(g), answer) for g, answer in zip(groups, answers, strict=True))
        return opened

    def _pending(self, group: _BatchGroup, alert: Alert, keys: list[str]) -> Pending:
        if group.key.startswith(ROUTE_PREFIX):  # only a route's burst key may be a tracker's
            tracked = tracker_key(group.key, alert.incident)
            if tracked:
                alert = replace(alert, group=tracked)
        return Pending(alert, keys, lanes=[group.lane] if self.routed else None)

    def _each_alone(self, group: _BatchGroup, batch: Batch) -> None:
        """Grouping off in this lane: every failure alerts; its burst is recorded once per batch."""
        report, now = batch.report, batch.now
        alerts = [self._pending(group, new_alert(c.shown(), c.guidance, now), [c.key]) for c in group.every]
        self.store.alerted(group.key, group.count, alerts[0].alert.incident, now, group.lane.quiet)
        for p in alerts:
            report.alerted += 1
            report.tally("alerted", p.alert.incident.kind, p.alert.incident)
        batch.pending.extend(alerts)

    def _mute(self, group: _BatchGroup, now: datetime, report: Report) -> bool:
        """Count a muted lane's occurrences in its mute silence (made by the first that needs
        it); False when the silence is over (or just summarised): they alert instead."""
        first = group.earliest[0].shown()
        if not self.store.count_silenced(group.key, group.count, first, now):
            lane, until = group.lane, group.muted_until
            assert until is not None and lane.matcher is not None  # only a route's lane is muted
            intervals = (
                [*lane.route.mute_time_intervals, *lane.route.active_time_intervals] if lane.route else []
            )
            rule = SilenceRule(
                id=group.key,
                matcher=lane.matcher,
                starts=now,
                ends=until,
                comment=f"route {lane.name} muted by its time intervals ({', '.join(intervals)})",
                created_by="time intervals",
            )
            try:
                self.store.add_silence(rule)
            except Exception:  # another instance made it first: count in theirs
                log.info("mute silence %s exists already", group.key)
            if not self.store.count_silenced(group.key, group.count, first, now):
                return False
        report.muted += group.count
        report.tally("muted", first.kind, first, group.count)
        return True


class _BatchGroup:
    """Occurrences of one burst (a lane's key) within a batch: counted once, stored once."""

    __slots__ = ("count", "earliest", "every", "guidance", "key", "keys", "lane", "muted_until")

    def __init__(self, candidate: Candidate, lane: Lane, key: str, muted_until: datetime | None) -> None:
        self.count = 1
        self.earliest = [candidate]  # the earliest few: the alert, the digest's example, samples
        self.every = [candidate]  # grouping off: each alerts
        self.guidance = candidate.guidance
        self.keys = [candidate.key]  # every event's dedup key, to release them if counting fails
        self.lane = lane
        self.key = key
        self.muted_until = muted_until

    def add(self, candidate: Candidate) -> None:
        self.count += 1
        self.keys.append(candidate.key)
        if len(self.earliest) <= MAX_SAMPLES:
            self.earliest.append(candidate)
        if not self.lane.window:
            self.every.append(candidate)

    @property
    def first(self) -> Shown:
        return Shown(self.earliest)

    def alert(self, now: datetime) -> Alert:
        return new_alert(self.earliest[0].shown(), self.guidance, now)


class Shown(Sequence[Incident]):
    """The incidents of some candidates, each built (and masked) only when it is read. A store
    reads the first occurrence when a group opens and samples only while it has room for them:
    once a burst is under way, a batch's occurrences are counted and none is built."""

    __slots__ = ("_candidates",)

    def __init__(self, candidates: Sequence[Candidate]) -> None:
        self._candidates = candidates

    def __len__(self) -> int:
        return len(self._candidates)

    @overload
    def __getitem__(self, index: int) -> Incident: ...

    @overload
    def __getitem__(self, index: slice) -> Shown: ...

    def __getitem__(self, index: int | slice) -> Incident | Shown:
        if isinstance(index, slice):
            return Shown(self._candidates[index])
        return self._candidates[index].shown()

    def sample_ids(self, limit: int) -> list[dict[str, str]]:
        """The IDs of the first `limit` occurrences, without building their whole incidents."""
        return [c.ids() for c in self._candidates[:limit]]


class Digests:
    """One digest per burst whose window has ended (the timer's flush), and one resolved notice
    per burst that stayed quiet for a whole window (its group closed). `Route` decides who hears
    of it: without ACS_TRIAGE_SEND_RESOLVED only incident trackers (PagerDuty), whose incidents
    would otherwise never close.

    A burst still firing `repeat_interval` after its first alert (and again each interval after
    that) is reminded of: the digest whose window crosses that moment is sent as a reminder (see
    `reminder_due`), the whole alert again with the burst's totals. It is not an extra message:
    it carries that digest's count, so every event is still counted in one alert, and it needs
    no state of its own beyond what the store's flush already writes."""

    def __init__(
        self,
        store: BurstGroups,
        lookup: Callable[[Incident], Guidance],
        repeat: Callable[[str, Incident], timedelta] | None = None,
        inhibition: tuple[Inhibition, Silences] | None = None,
    ) -> None:
        self.store = store
        self.lookup = lookup
        self.repeat = repeat  # a burst key's repeat_interval (Routing.repeat_of); None: no reminders
        self.inhibition = inhibition if inhibition and inhibition[0] else None  # ended with their sources

    def __call__(self, batch: Batch) -> None:
        batch.restore = self.store.restore
        ended: list[Burst] = []
        taken = self.store.take_due(batch.now, ended)
        if self.inhibition is not None and ended:
            try:  # their summaries go out with this flush (SilenceSummaries comes next)
                self._end_inhibitions(ended, batch.now)
            except Exception as err:  # each ends by itself within INHIBIT_SPAN
                log.warning("inhibitions whose source ended could not be ended (%s)", type(err).__name__)
        for burst in ended:
            resolved = _counted(
                self.lookup,
                burst,
                window_seconds=burst.window_seconds,
                status="resolved",
                group=_group(burst),
            )
            batch.pending.append(Pending(resolved, key=burst.fingerprint))
        batch.report.resolved += len(ended)
        for held in taken:
            repeat = self.repeat(held.fingerprint, held.incident) if self.repeat is not None else timedelta(0)
            reminder: dict[str, Any] = {}
            if reminder_due(held, repeat):
                batch.report.reminders += 1
                reminder = {
                    "reminder_seconds": int(repeat.total_seconds()),
                    "burst_count": held.burst_count,
                    "burst_started": held.burst_started,
                }
            alert = _counted(
                self.lookup,
                held,
                samples=tuple(held.samples),
                digest=True,
                window_seconds=held.window_seconds,
                group=_group(held),
                **reminder,
            )
            batch.pending.append(Pending(alert, held=held, key=held.fingerprint))
            batch.report.digests += 1
            batch.report.tally("digest", held.incident.kind, held.incident)

    def _end_inhibitions(self, ended: list[Burst], now: datetime) -> None:
        """End the inhibitions whose source bursts ended in this flush (one read of the silences,
        only when a source ended)."""
        assert self.inhibition is not None
        inhibition, silences = self.inhibition
        prefixes = inhibition.ended_by([b.incident for b in ended])
        if prefixes:
            for silence in silences.list_silences(now):
                if silence.id.startswith(prefixes) and silence.active(now):
                    silences.expire_silence(silence.id, now)


def reminder_due(held: Held, repeat: timedelta) -> bool:
    """Whether the digest of `held` is its burst's reminder: its window (from the previous digest,
    or the first alert, to the flush that took it) holds a moment `repeat`, 2×`repeat`, … after
    the burst's first occurrence arrived. The windows of one burst follow each other without gap
    or overlap, so each such moment falls in exactly one digest's window: reminders come every
    `repeat` (at the first flush after each moment) without drifting later, and a store keeps
    no state for them beyond the window it resets anyway."""
    start, end, began = held.window_start, held.window_end, held.burst_started
    if not repeat or start is None or end is None or began is None:
        return False
    # Moments k·repeat after the start, k ≥ 1, in (start, end]: as many as their counts differ.
    return (end - began) // repeat > max((start - began) // repeat, 0)


def _group(tally: Held | Burst) -> str:
    """A route's group key, which an incident tracker keys the burst by (else: the fingerprint)."""
    return tracker_key(tally.fingerprint, tally.incident)


class Route:
    """Where each alert goes, as Alertmanager routes: rules in order, the first that matches
    wins unless it says `continue`; with no routes, every destination. An alert no rule matches
    goes to the default route (ACS_TRIAGE_DEFAULT_ROUTE, else every destination) and is counted:
    no configuration makes an alert vanish. An alert whose lanes are known (the events'), or
    whose stored key names a route (digests, resolved notices, a mute's summary) goes to that
    route's destinations. Resolved notices without ACS_TRIAGE_SEND_RESOLVED go only to incident
    trackers, whose incidents must close."""

    def __init__(self, settings: Settings, routing: Routing | None = None) -> None:
        self.settings = settings
        self.routing = routing or Routing(settings)

    @property
    def unrouted(self) -> int:
        """Alerts no rule matched, since this process started (/api/health)."""
        return self.routing.unrouted

    def __call__(self, batch: Batch) -> None:
        routing = self.routing
        # A batch's alerts share a few lanes: their destinations are looked up once per lane and
        # status (the lists are only read).
        chosen: dict[tuple[int, str], list[Destination]] = {}
        for p in batch.pending:
            lanes = p.lanes
            if lanes is None:
                lane = routing.lane_of_key(p.key, p.alert.incident) if p.key else None
                lanes = [lane] if lane is not None else routing.lanes_for(p.alert.incident, p.alert.severity)
            if self.settings.routes and lanes == [routing.default]:
                batch.report.unrouted += 1
                routing.unrouted += 1
                log.warning("no route matches %s: sent to the default route", p.alert.fingerprint)
            if len(lanes) != 1:
                p.destinations = routing.destinations(lanes, p.alert.status)
                continue
            key = (id(lanes[0]), p.alert.status)
            found = chosen.get(key)
            if found is None:
                found = chosen[key] = routing.destinations(lanes, p.alert.status)
            p.destinations = found

    def destinations(self, alert: Alert) -> list[Destination]:
        """The configured destinations `alert` is routed to, in order."""
        lanes = self.routing.lanes_for(alert.incident, alert.severity)
        return self.routing.destinations(lanes, alert.status)


class Enqueue:
    """Render each pending alert for its destinations and write them all to the outbox at
    once. Every alert not written is given back before the error is raised."""

    def __init__(
        self, outbox: Outbox, render: Callable[[], Renderer], links: SilenceLinks | None = None
    ) -> None:
        self.outbox = outbox
        self._render = render  # resolved on first use: a batch of successes renders nothing
        self.links = links  # "Silence…" links in firing alerts (ACS_TRIAGE_PUBLIC_URL and its key)

    def __call__(self, batch: Batch) -> None:
        report = batch.report
        rendered: list[tuple[Pending, list[OutboxMessage]]] = []
        try:
            for p in batch.pending:
                rendered.append((p, self.messages(p, batch.now)))
            # All at once: a store whose writes are separate requests makes them side by side.
            self.outbox.enqueue([m for _, messages in rendered for m in messages])
        except Exception as err:
            # Nothing may be lost: give back the counts behind every alert not (wholly) written,
            # so that a retry (or the next flush) reports them.
            written = err.written if isinstance(err, EnqueueFailed) else set()
            unwritten = [p for p, messages in rendered if any(m.id not in written for m in messages)]
            batch.give_back([*unwritten, *batch.pending[len(rendered) :]])
            if isinstance(err, EnqueueFailed) and isinstance(err.__cause__, Exception):
                raise err.__cause__ from None
            raise
        for p, messages in rendered:
            report.alerts.append(p.alert)
            report.message_ids.extend(m.id for m in messages)
        batch.pending = []

    def messages(self, pending: Pending, now: datetime) -> list[OutboxMessage]:
        """One outbox message per destination, with an id stable across retries of the same alert."""
        alert = pending.alert
        # A kind is told only the statuses it takes (a pager is not paged for silenced news).
        destinations = [d for d in pending.destinations if alert.status in d.kind.statuses]
        if not destinations:
            return []
        if self.links is not None and alert.status == "firing":
            # Not part of the message id: a retry's link (a later expiry) is the same message.
            alert = replace(alert, silence_url=self.links.url(alert.incident, now))
        render = self._render()
        fingerprint = alert.fingerprint  # a string built from the incident's fields on every read
        basis = f"{alert.group or fingerprint}|{alert.incident.event_id}|{alert.digest}|{alert.count}"
        if alert.status != "firing":  # a notice about the same example is another message
            basis += f"|{alert.status}|{alert.last_seen}"
        urgent = alert.status == "firing" and not alert.digest  # a first alert
        return [outbox_message(basis, d, render(alert, d.format), fingerprint, urgent) for d in destinations]


def outbox_message(
    basis: str, destination: Destination, rendered: Any, fingerprint: str, urgent: bool = True
) -> OutboxMessage:
    """A rendered payload for one destination, with an id derived from `basis` (stable across
    retries of the same alert or report). The text format is carried as {"text": …}; a payload
    rendered as JSON text (bytes) is carried as it is, and read back from the store as a dict.
    `urgent`: a first alert, posted ahead of digests, notices and reports."""
    if isinstance(rendered, bytes):
        payload: dict[str, Any] | orjson.Fragment = orjson.Fragment(rendered)
    elif isinstance(rendered, dict):
        payload = rendered
    else:
        payload = {"text": str(rendered)}
    return OutboxMessage(
        id=hashlib.sha256(f"{basis}|{destination.name}".encode()).hexdigest()[:32],
        destination=destination.name,
        payload=payload,
        fingerprint=fingerprint,
        urgent=urgent,
    )
