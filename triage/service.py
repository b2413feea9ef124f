"""The HTTP behaviour of acs-triage, free of any web framework: bytes and headers in,
status, headers and body out. function_app.py and the local server are thin adapters."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from .auth import check_shared_secret
from .clock import utcnow
from .deliver import Deliverer
from .errors import TriageError
from .ingest import header, options_handshake, parse_body
from .pipeline import Report, Triage
from .settings import OUTBOX_QUEUE, Settings
from .store import OutboxMessage, Store, open_store

if TYPE_CHECKING:
    from .report import DailyReport

__all__ = ["Answer", "Service"]

log = logging.getLogger("triage")
_REPORT_CLAIM_TTL = timedelta(hours=24)  # outlives the hour in which a late tick may still post


@dataclass(frozen=True, slots=True)
class Answer:
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


class Service:
    """Settings, store, pipeline and deliverer of one process, with the HTTP entry points."""

    def __init__(
        self, settings: Settings, store: Store | None = None, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.settings = settings
        self.clock = clock
        if store is None:
            spec = settings.store
            if spec == "auto":
                spec = "azure" if settings.storage_connection else "memory"
            conn = settings.storage_connection.get_secret_value() if settings.storage_connection else None
            store = open_store(spec, conn, queue_name=OUTBOX_QUEUE, table_prefix=settings.table_prefix)
        self.store: Store = store
        self.triage = Triage(settings, self.store)
        self.deliverer = Deliverer(settings, self.store)

    @classmethod
    def from_env(cls) -> Service:
        """Build everything from the environment (Function App settings)."""
        return cls(Settings.from_env())

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
        storage trouble is a 503 so that Event Grid retries; never a bare 500."""
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
            envelope = parse_body(body, header(headers, "content-type"), self.settings.max_body_bytes)
            if envelope.validation_code is not None and not envelope.events:
                # Event Grid schema handshake: answer only what was asked; never fetch validationUrl.
                log.info("answering Event Grid subscription validation")
                return Answer.json(200, {"validationResponse": envelope.validation_code})
            report = self.triage.handle(envelope.events, now or self.clock(), envelope.rejected)
            if envelope.validation_code is not None:  # Event Grid sends it alone; never drop the rest
                return Answer.json(200, {"validationResponse": envelope.validation_code, **report.as_dict()})
            if envelope.rejected or any(s.outcome == "invalid" for s in report.skips):
                log.warning("batch had %d unreadable event(s)", len(envelope.rejected) + report.invalid)
            return Answer.json(200, report.as_dict())
        except TriageError as err:
            if err.status >= 500:
                log.error("%s", err)
                return Answer.error(503, str(err))
            return Answer.error(err.status, str(err))
        except Exception as err:  # storage or another dependency failed: let the sender retry
            log.exception("request failed: %s", type(err).__name__)
            return Answer.error(503, f"temporarily unable to process events ({type(err).__name__})")

    def _check_callback_token(self, headers: Mapping[str, str]) -> None:
        if self.settings.callback_audience:
            from .jwt_auth import validate_callback_token

            validate_callback_token(self.settings, header(headers, "authorization"))

    def flush(self, now: datetime | None = None) -> Report:
        """Emit digests for groups whose window ended (timer trigger)."""
        return self.triage.flush(now or self.clock())

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
            rendered = render(report)
            messages.append(
                OutboxMessage(
                    id=hashlib.sha256(f"report|{slot}|{destination.name}".encode()).hexdigest()[:32],
                    destination=destination.name,
                    payload=rendered if isinstance(rendered, dict) else {"text": rendered},
                    fingerprint="report",
                )
            )
        return messages

    def report_tick(self, now: datetime | None = None) -> DailyReport | None:
        """The report timer: when ACS_TRIAGE_REPORT_SCHEDULE has a time due, claim it in the store
        (so one instance posts it, once) and put the report in the outbox. Returns what was posted."""
        schedule = self.settings.report_schedule
        if schedule is None:
            return None
        from .report import due

        now = now or self.clock()
        scheduled = due(schedule, now)
        if scheduled is None:
            return None
        slot = f"report|{scheduled.isoformat()}"
        if not self.store.claim([slot], now, _REPORT_CLAIM_TTL)[0]:
            return None  # another instance (or an earlier tick) posted it
        try:
            report = self.report(scheduled, timedelta(hours=self.settings.report_period_hours))
            self.store.enqueue(self.report_messages(report, slot))
        except Exception:
            self.store.release([slot])  # the next tick tries again
            raise
        log.info("daily report for %s queued", scheduled.isoformat())
        return report

    def deliver(self, message: OutboxMessage) -> None:
        """Deliver one outbox message (queue trigger); raises DeliveryError to retry."""
        self.deliverer.deliver(message)
