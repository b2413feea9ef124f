"""The HTTP behaviour of acs-triage, free of any web framework: bytes and headers in,
status, headers and body out. function_app.py and the local server are thin adapters."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson
from msgspec import Struct, field
from msgspec.structs import replace

from . import telemetry as telemetry_module
from .auth import check_shared_secret
from .checks import Problem, check_settings, env_problems, storage_failure, store_refusal
from .clock import utcnow
from .deliver import Deliverer
from .errors import ConfigurationError, DeliveryDeferred, DeliveryError, SlotYielded, TriageError
from .gcpause import paused
from .ingest import header, options_handshake, parse_body, stream_body
from .pipeline import Report, Triage
from .policy import outbox_message
from .settings import PREFIX, Settings, unresolved_references
from .store import Backlog, Claim, OutboxMessage, RedriveFilter, Store, open_configured
from .telemetry import Telemetry

if TYPE_CHECKING:
    from .model import Alert
    from .report import DailyReport

__all__ = [
    "MAX_DEQUEUE_COUNT",
    "Answer",
    "Service",
    "handshake_answer",
    "handshake_from_env",
    "health_answer",
    "log_once",
    "open_configured_store",
]

log = logging.getLogger("triage")
_REPORT_CLAIM_TTL = timedelta(hours=24)  # outlives the hour in which a late tick may still post
_REDRIVE_PAUSE = 60.0  # seconds between two looks at the poison queue for one destination
_PROBE_PAUSE_MIN, _PROBE_PAUSE_MAX = 60.0, 1800.0  # seconds between probes of a failing destination
_NOTICE_LEAD = 3600.0  # how long before poisoned alerts leave the re-drive window they are announced
_NOTICE_CLAIM_TTL = timedelta(days=8)  # outlives any poison queue message (7 days)
MAX_DEQUEUE_COUNT = 8  # host.json extensions.queues.maxDequeueCount: then the host poisons it

_logged: set[str] = set()
_logged_lock = threading.Lock()


def log_once(reason: str) -> None:
    """Log a reason the app cannot work at ERROR, once per process: every request answers 503
    with it, and one line per request would bury everything else."""
    with _logged_lock:
        if reason in _logged:
            return
        _logged.add(reason)
    log.error("%s", reason)


def open_configured_store(settings: Settings) -> Store:
    """The store the settings name, refusing one that would lose alerts here (store_refusal)."""
    refusal = store_refusal(settings)
    if refusal:
        raise ConfigurationError(refusal)
    return open_configured(settings)


class Answer(Struct, frozen=True):
    """An HTTP response, framework-neutral."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, doc: Any) -> Answer:
        return cls(status, orjson.dumps(doc), {"Content-Type": "application/json"})

    @classmethod
    def error(cls, status: int, reason: str) -> Answer:
        return cls.json(status, {"error": reason})


_VALIDATION_MARK = b"SubscriptionValidationEvent"
# Event Grid's validation POST is one small event (its code and URL: well under 1 KiB); the mark is
# looked for in the first bytes only, so a batch of events is not scanned to its end. A larger
# body naming it is answered by the pipeline, as any body is.
_VALIDATION_SCAN_BYTES = 64 * 1024
_HANDSHAKE_MAX_BYTES = Settings.model_fields["max_body_bytes"].default


def handshake_answer(
    method: str,
    headers: Mapping[str, str],
    params: Mapping[str, str],
    body: bytes,
    *,
    gate: Settings,
) -> Answer | None:
    """The answer to Event Grid's handshake (a SubscriptionValidationEvent POSTed alone, or the
    CloudEvents OPTIONS), or None when this request is not one or is not authentic (`gate`'s
    shared secret is set and the query string lacks it). It reads no destination and no storage:
    a subscription is made right after provisioning, while a Key Vault reference may still be
    unresolved or storage roles still propagating, and Event Grid gives up on a failed handshake."""
    if method == "OPTIONS":
        if not header(headers, "webhook-request-origin"):
            return None
    elif method != "POST" or body.find(_VALIDATION_MARK, 0, _VALIDATION_SCAN_BYTES) < 0:  # batches pass by
        return None
    try:
        check_shared_secret(gate, params)
    except TriageError:
        return None
    if method == "OPTIONS":
        status, answer_headers, text = options_handshake(headers)
        return Answer(status, text.encode(), answer_headers)
    try:
        envelope = parse_body(body, header(headers, "content-type"), _HANDSHAKE_MAX_BYTES)
    except TriageError:
        return None
    if envelope.validation_code is None or envelope.events:
        return None  # events beside it: the pipeline answers both (Event Grid never sends this)
    log.info("answering Event Grid subscription validation")
    return Answer.json(200, {"validationResponse": envelope.validation_code})


def handshake_from_env(
    env: Mapping[str, str], method: str, headers: Mapping[str, str], params: Mapping[str, str], body: bytes
) -> Answer | None:
    """`handshake_answer` when the settings as a whole do not parse: the shared secret is read
    alone. An unresolved Key Vault reference in it leaves nothing to authenticate with: None."""
    secret_setting, param_setting = f"{PREFIX}SHARED_SECRET", f"{PREFIX}SECRET_PARAM"
    if secret_setting in unresolved_references(env):
        return None
    gate: dict[str, str] = {}
    if env.get(secret_setting):
        gate["shared_secret"] = env[secret_setting]
    if env.get(param_setting):
        gate["secret_param"] = env[param_setting]
    return handshake_answer(method, headers, params, body, gate=Settings.model_validate(gate))


class Service:
    """Settings, store, pipeline and deliverer of one process, with the HTTP entry points."""

    def __init__(
        self,
        settings: Settings,
        store: Store | None = None,
        clock: Callable[[], datetime] = utcnow,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.telemetry = telemetry or Telemetry()
        self.problems: list[Problem] = check_settings(settings)
        # Why requests cannot be taken (storage missing or refused): they answer 503 with it.
        self.unavailable: Problem | None = None
        if store is None:
            try:
                store = open_configured_store(settings)
            except ConfigurationError as err:
                self.unavailable = storage_failure(err, settings)
                log_once(str(err))
                from .store.memory import MemoryStore

                store = MemoryStore()  # never takes an event: every request answers 503 first
        self.store: Store = store
        self.triage = Triage(settings, self.store)
        self.deliverer = Deliverer(settings, self.store)
        self._redriven_at: dict[str, float] = {}
        self.links = settings.silence_links()  # "Silence…" links, when configured

    @classmethod
    def from_env(cls) -> Service:
        """Build everything from the environment (Function App settings), with telemetry when
        APPLICATIONINSIGHTS_CONNECTION_STRING is set."""
        service = cls(Settings.from_env(), telemetry=telemetry_module.from_env())
        # Misspelt or contradicting names show in /api/health: they parse, but do not do what was meant.
        service.problems += env_problems(os.environ)
        return service

    def handle_http(
        self,
        route: str,
        method: str,
        headers: Mapping[str, str],
        params: Mapping[str, str],
        body: bytes,
        *,
        now: datetime | None = None,
    ) -> Answer:
        """One request to /api/eventgrid or /api/callbacks. Bad input is a 4xx with a reason;
        storage trouble is a 503 so that Event Grid retries; never a bare 500. The handshake
        is answered before storage is looked at (handshake_answer)."""
        if route == "eventgrid":
            handshake = handshake_answer(method, headers, params, body, gate=self.settings)
            if handshake is not None:
                return handshake
        if self.unavailable is not None:
            return Answer.error(503, self.unavailable.message)
        with self.telemetry.span("acs_triage.http", route=route, method=method):
            try:
                check_shared_secret(self.settings, params)
                if method == "OPTIONS":
                    status, answer_headers, text = options_handshake(headers)
                    return Answer(status, text.encode(), answer_headers)
                if method != "POST":
                    answer = Answer.error(405, f"method {method} is not allowed; use POST")
                    return Answer(405, answer.body, {**answer.headers, "Allow": "POST, OPTIONS"})
                if route == "callbacks":
                    self._check_callback_token(headers)
                with paused():  # see triage.gcpause; the batch is freed before the collector resumes
                    return self._post(headers, body, now)
            except TriageError as err:
                if err.status >= 500:
                    log.error("%s", err)
                    return Answer.error(503, str(err))
                return Answer.error(err.status, str(err))
            except Exception as err:  # storage or another dependency failed: let the sender retry
                problem = storage_failure(err, self.settings)
                if problem is not None:  # a setting to fix: say which, once, not a trace per request
                    log_once(problem.message)
                    return Answer.error(503, problem.message)
                log.exception("request failed: %s", type(err).__name__)
                return Answer.error(503, f"temporarily unable to process events ({type(err).__name__})")

    def _post(self, headers: Mapping[str, str], body: bytes, now: datetime | None) -> Answer:
        """A POST of events (or of a validation handshake): parsed, run through the pipeline."""
        # Each event is read from the body as the pipeline takes it, while it is still in cache.
        envelope, events = stream_body(body, header(headers, "content-type"), self.settings.max_body_bytes)
        report = self.triage.handle(events, now or self.clock(), envelope.rejected)
        if envelope.validation_code is not None and not envelope.events:
            # Event Grid schema handshake: answer only what was asked; never fetch validationUrl.
            # (With no events, the pipeline above counted the rejected items and did nothing else.)
            log.info("answering Event Grid subscription validation")
            return Answer.json(200, {"validationResponse": envelope.validation_code})
        self.telemetry.events(report)
        if envelope.validation_code is not None:  # Event Grid sends it alone; never drop the rest
            return Answer.json(200, {"validationResponse": envelope.validation_code, **report.as_dict()})
        if envelope.rejected or any(s.outcome == "invalid" for s in report.skips):
            log.warning("batch had %d unreadable event(s)", len(envelope.rejected) + report.invalid)
        if report.busy:
            # The rest of the batch is done; Event Grid redelivers it all, and by then
            # these are finished (duplicates) or their claimant died (recovered).
            reason = f"{report.busy} events are being processed by another delivery; retry"
            return Answer.json(503, {"error": reason, **report.as_dict()})
        return Answer.json(200, report.as_dict())

    def _check_callback_token(self, headers: Mapping[str, str]) -> None:
        if self.settings.callback_audience:
            from .jwt_auth import validate_callback_token

            validate_callback_token(self.settings, header(headers, "authorization"))

    def silence_page(
        self, method: str, token: str, headers: Mapping[str, str], body: bytes, *, now: datetime | None = None
    ) -> Answer:
        """GET or POST /api/silence/<token> (triage.silence_page): 404 unless the token is one
        this app signed, for a time not yet past; never a 500."""
        from .silence_page import NOT_FOUND, answer

        now = now or self.clock()
        if self.unavailable is not None:
            if self.links is None or self.links.read(token, now) is None:
                return Answer(NOT_FOUND.status, NOT_FOUND.body, NOT_FOUND.headers)
            return Answer.error(503, self.unavailable.message)
        try:
            page, changed = answer(
                self.links,
                self.store,
                method,
                token,
                headers=headers,
                body=body,
                now=now,
                mask=self.settings.mask_pii,
            )
        except Exception as err:  # a bug must not become a 500 with a trace in the answer
            log.exception("silence page failed: %s", type(err).__name__)
            return Answer.error(503, "the silence page failed; try again")
        if changed:
            self.triage.silences_changed()  # this instance honours it from its next event
        return Answer(page.status, page.body, page.headers)

    def health(self) -> Answer:
        """GET /api/health: 200 when the settings are valid and storage answers, else 503 with
        the problems; the outbox and poison depths when storage is Azure, and on every store the
        age of the oldest poisoned alert (`poison_oldest_seconds`, null when none). Nothing secret."""
        problems = list(self.problems)
        doc: dict[str, Any] = {}
        if self.unavailable is not None:
            problems.append(self.unavailable)
        elif hasattr(self.store, "probe"):
            try:
                outbox, poison = self.store.probe()
            except Exception as err:
                problem = storage_failure(err, self.settings) or Problem(
                    "error", "AzureWebJobsStorage", f"storage did not answer ({type(err).__name__})"
                )
                problems.append(problem)
            else:
                doc["outbox"] = {"depth": outbox, "poison": poison}
        # Alerts no route matched (sent to the default route), on this instance since it started:
        # a rule set with a gap shows here before anyone misses an alert.
        doc["unrouted"] = self.triage.unrouted
        if self.settings.inhibit_rules:  # held back while a source fires: counted, summarised
            doc["inhibited"] = self.triage.inhibited
        if self.unavailable is None:
            try:
                oldest = self.store.oldest_poisoned(self.deliverer.clock())
            except Exception as err:  # storage trouble: already a problem above (Azure) or next
                log.warning("reading the poison queue's age failed: %s", type(err).__name__)
            else:
                # How long the oldest undelivered alert has waited: nothing there ages out unseen.
                doc["poison_oldest_seconds"] = None if oldest is None else round(oldest)
        return health_answer(problems, doc)

    def flush(self, now: datetime | None = None) -> Report:
        """Emit digests for groups whose window ended (timer trigger)."""
        if self.unavailable is not None:
            raise ConfigurationError(self.unavailable.message)
        report = self.triage.flush(now or self.clock())
        self.telemetry.events(report)
        return report

    def deliver(self, message: OutboxMessage, dequeue_count: int = 1) -> bool:
        """Deliver one outbox message (queue trigger); raises DeliveryError to retry. True when it
        was posted; False when its destination holds posts off for longer than a worker waits:
        it is back in the outbox with that delay (the caller settles its lease as done). Counted
        by destination: delivered, deferred, failed, or poisoned when this was the host's last try."""
        if self.unavailable is not None:
            raise ConfigurationError(self.unavailable.message)
        started = time.perf_counter()
        with self.telemetry.span("acs_triage.deliver", destination=message.destination):
            try:
                self.deliverer.deliver(message)
            except DeliveryDeferred as err:
                # Not a failure: the destination said when. A copy waits out the hold in the queue
                # (its dequeue count starts again: holds never poison a message).
                self.store.defer(replace(message, attempts=message.attempts + 1), err.delay)
                log.log(logging.INFO if isinstance(err, SlotYielded) else logging.WARNING, "%s", err)
                self.telemetry.delivery(message.destination, "deferred", time.perf_counter() - started)
                return False
            except DeliveryError as err:
                last = not err.retry or dequeue_count >= MAX_DEQUEUE_COUNT
                outcome = "poisoned" if last else "failed"
                self.telemetry.delivery(message.destination, outcome, time.perf_counter() - started)
                raise
        self.telemetry.delivery(message.destination, "delivered", time.perf_counter() - started)
        return True

    def redrive_after_success(self, destination: str) -> int:
        """A post to `destination` just succeeded: re-queue its poisoned messages younger than
        ACS_TRIAGE_REDRIVE_MAX_AGE_HOURS, oldest first (refused payloads never). Looks at the
        poison queue at most once a minute per destination and process. Never raises: the post
        it follows has been made, and must not be retried because of this."""
        max_age = self.settings.redrive_max_age_hours * 3600
        now = self.deliverer.clock()
        if not max_age or now - self._redriven_at.get(destination, -_REDRIVE_PAUSE) < _REDRIVE_PAUSE:
            return 0
        self._redriven_at[destination] = now
        try:
            moved = self.store.redrive(now, RedriveFilter(destination=destination, younger_than=max_age))
        except Exception as err:  # the next success tries again
            log.warning("re-driving the poison queue of %r failed: %s", destination, type(err).__name__)
            return 0
        if moved:
            log.warning("%r accepts posts again: %d poisoned message(s) re-queued", destination, moved)
        return moved

    def redrive_tick(self, now: float | None = None) -> int:
        """The timer's look at the poison queue, so that nothing there waits for luck. Per
        configured destination with poisoned alerts: once its oldest is within an hour of
        leaving ACS_TRIAGE_REDRIVE_MAX_AGE_HOURS (or at once when that is 0), one short notice,
        "N alerts could not be delivered to X", goes to every other destination; and, after a
        back-off that grows with the outage (shared by every instance through the store), its
        oldest re-drivable alert goes back to the outbox as a probe. Once a post succeeds, the
        queue function re-drives the rest (`redrive_after_success`), at the destination's pace.
        Returns how many messages went back. Never raises: the digests come first."""
        now = self.deliverer.clock() if now is None else now
        try:
            if self.store.oldest_poisoned(now) is None:
                return 0
            rows = self.store.outbox_status(now)
        except Exception as err:
            log.warning("reading the poison queue failed: %s", type(err).__name__)
            return 0
        moved = 0
        for row in rows:
            if row.destination not in self.settings.destinations or not row.poisoned:
                continue
            try:
                self._announce_undelivered(row, now)
                moved += self._probe(row, now)
            except Exception as err:  # the next tick tries again
                log.warning("the poison queue of %r: %s", row.destination, type(err).__name__)
        return moved

    def _probe(self, row: Backlog, now: float) -> int:
        """Re-drive the destination's oldest re-drivable poisoned alert, unless a probe of it ran
        within the back-off: the longer the outage, the rarer the probes (1 to 30 minutes)."""
        max_age = self.settings.redrive_max_age_hours * 3600
        if not max_age or row.poisoned <= row.refused:
            return 0
        key = f"probe|{row.destination}"
        if self.store.send_wait(key, now) > 0:
            return 0
        pause = min(_PROBE_PAUSE_MAX, max(_PROBE_PAUSE_MIN, (row.oldest_poisoned or 0.0) / 8))
        self.store.hold_send(key, now + pause)
        which = RedriveFilter(destination=row.destination, younger_than=max_age, limit=1)
        moved = self.store.redrive(now, which)
        if moved:
            log.warning("probing %r with one of its %d poisoned alert(s)", row.destination, row.poisoned)
        return moved

    def _announce_undelivered(self, row: Backlog, now: float) -> None:
        """Tell the other destinations, once per oldest stuck alert, that alerts for this one
        are stuck, before they leave the automatic re-drive window."""
        max_age = self.settings.redrive_max_age_hours * 3600
        age = row.oldest_poisoned or 0.0
        if age < max_age - min(_NOTICE_LEAD, max_age / 4):
            return
        since = now - age
        key = f"undelivered|{row.destination}|{int(since // 60)}"  # the oldest's minute: once each
        if self.store.claim([key], utcnow(), _NOTICE_CLAIM_TTL)[0] is not Claim.NEW:
            return
        others = [
            d for name, d in self.settings.destinations.items()
            if name != row.destination and d.kind.postable and "firing" in d.kind.statuses
        ]  # fmt: skip
        if not others:
            log.error(
                "%d alert(s) could not be delivered to %r and there is no other destination to tell",
                row.poisoned, row.destination,
            )  # fmt: skip
            return
        alert = undelivered_alert(row, now, max_age)
        messages = [outbox_message(key, d, d.kind.render(alert), alert.fingerprint) for d in others]
        try:
            self.store.enqueue(messages)
        except Exception:
            self.store.release([key])  # the next tick tries again
            raise
        log.error(
            "%d alert(s) could not be delivered to %r: told %d other destination(s)",
            row.poisoned,
            row.destination,
            len(others),
        )

    def report(self, end: datetime, period: timedelta) -> DailyReport:
        """The daily report of the hours in [end - period, end), from the store's counters."""
        from .report import build

        return build(self.store, end, period)

    def report_messages(self, report: DailyReport, slot: str) -> list[OutboxMessage]:
        """The report rendered for each report destination, with ids stable for one `slot`."""
        messages = []
        for destination in self.settings.report_destinations():
            render = destination.kind.report
            assert render is not None  # report_destinations keeps only kinds with a report form
            messages.append(outbox_message(f"report|{slot}", destination, render(report), "report", False))
        return messages

    def report_tick(self, now: datetime | None = None) -> DailyReport | None:
        """The report timer: when ACS_TRIAGE_REPORT_SCHEDULE has a time due, claim it in the store
        (so one instance posts it, once) and put the report in the outbox. Returns what was posted."""
        schedule = self.settings.report_schedule
        if schedule is None:
            return None
        from .schedule import due

        now = now or self.clock()
        scheduled = due(schedule, now)
        if scheduled is None:
            return None
        slot = f"report|{scheduled.isoformat()}"
        if self.store.claim([slot], now, _REPORT_CLAIM_TTL)[0] is not Claim.NEW:  # outside a unit: never busy
            return None  # another instance (or an earlier tick) posted it
        try:
            report = self.report(scheduled, timedelta(hours=self.settings.report_period_hours))
            self.store.enqueue(self.report_messages(report, slot))
        except Exception:
            self.store.release([slot])  # the next tick tries again
            raise
        log.info("daily report for %s queued", scheduled.isoformat())
        return report


def undelivered_alert(row: Backlog, now: float, max_age: float) -> Alert:
    """The notice that alerts for `row.destination` are stuck in its poison queue, as an alert
    every destination kind renders: what, since when, and what to do."""
    from .model import Alert, Category, Guidance, Incident, Match, Severity

    age = row.oldest_poisoned or 0.0
    since = datetime.fromtimestamp(now - age, UTC)
    count = f"{row.poisoned} alert{'s' if row.poisoned != 1 else ''}"
    text = f"{count} could not be delivered to {row.destination}"
    hours = f"{max_age / 3600:g} h"
    advice = (
        f"Check {row.destination}'s webhook (its URL, the service's status); once it answers, the "
        f"alerts poisoned less than {hours} ago are re-driven automatically. Older ones wait in "
        f"the poison queue: python -m triage outbox redrive --destination {row.destination}"
    )
    refused = f"; {row.refused} refused by it (4xx)" if row.refused else ""
    incident = Incident(
        kind="AlertsNotDelivered",
        event_type="acs-triage.AlertsNotDelivered",
        event_id=f"undelivered|{row.destination}|{int((now - age) // 60)}",
        source="acs-triage",
        resource=row.destination,
        time=since,
        # The schema's contexts are ACS areas; a notice about our own delivery is in none of
        # them, so it carries the one most alerts come from.
        context="call-automation",
        code=None,
        subcode=None,
        message=f"{text} (the oldest waits since {since:%Y-%m-%d %H:%M} UTC{refused})",
        ids={},
        details={"destination": row.destination, "poisoned": str(row.poisoned), "refused": str(row.refused)},
    )
    guidance = Guidance(
        code=None,
        subcode=None,
        message=text,
        category=Category.UNEXPECTED_SERVER,
        severity=Severity.ERROR,
        advice=advice,
        source="acs-triage outbox",
        match=Match.UNKNOWN,
    )
    return Alert(incident=incident, guidance=guidance, count=row.poisoned, first_seen=since, last_seen=since)


def health_answer(problems: list[Problem], extra: Mapping[str, Any] | None = None) -> Answer:
    """The health route's answer for these problems: 503 when any is an error."""
    failing = any(p.level == "error" for p in problems)
    doc: dict[str, Any] = {"status": "error" if failing else "ok"}
    if problems:
        doc["problems"] = [p.as_dict() for p in problems]
    doc.update(extra or {})
    return Answer.json(503 if failing else 200, doc)
