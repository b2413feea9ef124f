"""The HTTP behaviour of acs-triage, free of any web framework: bytes and headers in,
status, headers and body out. function_app.py and the local server are thin adapters."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson

from .auth import check_shared_secret
from .clock import utcnow
from .deliver import Deliverer
from .errors import TriageError
from .ingest import header, options_handshake, parse_body
from .pipeline import Report, Triage
from .settings import OUTBOX_QUEUE, Settings
from .store import OutboxMessage, Store, open_store

__all__ = ["Answer", "Service"]

log = logging.getLogger("triage")


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
            store = open_store(
                spec, conn, queue_name=OUTBOX_QUEUE, table_prefix=settings.table_prefix,
                claim_lease=timedelta(seconds=settings.claim_lease_seconds),
            )  # fmt: skip
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

    def deliver(self, message: OutboxMessage) -> None:
        """Deliver one outbox message (queue trigger); raises DeliveryError to retry."""
        self.deliverer.deliver(message)
