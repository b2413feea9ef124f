"""Posting rendered alerts to Teams and Slack webhooks.

One place decides what is worth retrying (as Alertmanager's Retrier does): connection
errors, timeouts, 408, 429 and 5xx are; other 4xx are not (the payload or the
configuration must change). The webhook URL is the credential: it never appears in a
log line, an exception or an alert. Errors name the destination instead.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC
from typing import TYPE_CHECKING

from .destinations import Destination
from .errors import DeliveryError
from .redact import REDACTED, redact_url
from .render.content import payload_bytes
from .settings import Settings
from .store import OutboxMessage, SendPacing

if TYPE_CHECKING:  # requests costs ~60 ms to import: only a delivery pays for it
    import requests

__all__ = ["Deliverer", "parse_retry_after", "post"]

log = logging.getLogger("triage.deliver")

_BACKOFF = (0.5, 2.0)  # in-process retries before handing the message back to the queue


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


def post(
    session: requests.Session,
    destination: Destination,
    body: bytes,
    timeout: float,
    headers: Mapping[str, str] | None = None,
) -> None:
    """POST one payload (with the destination kind's `headers`, e.g. a signature). Returns on 2xx
    (Teams Workflows and PagerDuty answer 202); raises DeliveryError(retry=…) otherwise, with a
    message free of the URL and of the destination's secret."""
    import requests

    name = destination.name
    try:
        response = session.post(
            destination.url.get_secret_value(),
            data=body,
            headers={"Content-Type": "application/json; charset=utf-8", **(headers or {})},
            timeout=(3.05, timeout),
            allow_redirects=False,
        )
    except requests.Timeout:
        raise DeliveryError(f"{name}: no answer within {timeout:g}s", retry=True) from None
    except requests.RequestException as exc:
        # str(exc) names the URL, so only the exception's type is kept.
        raise DeliveryError(f"{name}: connection failed ({type(exc).__name__})", retry=True) from None
    status = response.status_code
    if 200 <= status < 300:
        return
    reason = _reason(response, destination)
    if status == 429:
        after = parse_retry_after(response.headers.get("Retry-After"))
        raise DeliveryError(f"{name}: rate limited (429){reason}", retry=True, retry_after=after)
    if status >= 500 or status == 408:
        raise DeliveryError(f"{name}: server error {status}{reason}", retry=True)
    raise DeliveryError(f"{name}: rejected with {status}{reason}", retry=False)


def _reason(response: requests.Response, destination: Destination) -> str:
    """A short, safe excerpt of the error body (Slack says e.g. 'invalid_blocks'). Some servers
    echo the request line or the event in their error page: the URL and the destination's secret
    are redacted before the text is shortened."""
    text = redact_url(response.text.strip().replace("\n", " "), destination.url.get_secret_value())
    if destination.secret is not None and destination.secret.get_secret_value():
        text = text.replace(destination.secret.get_secret_value(), REDACTED)
    if not text:
        return ""
    return ": " + (text[:160] + "…" if len(text) > 160 else text)


class Deliverer:
    """Sends OutboxMessages: paces per destination, retries briefly in process, then
    raises so that the queue (or the local drain loop) tries again later."""

    def __init__(
        self,
        settings: Settings,
        store: SendPacing,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self._session = session
        self.sleep = sleep
        self.clock = clock

    @property
    def session(self) -> requests.Session:
        """The HTTP session, made on first use (keeps connections to the webhooks open)."""
        if self._session is None:
            import requests

            self._session = requests.Session()
        return self._session

    def deliver(self, message: OutboxMessage) -> None:
        """Post one message or raise DeliveryError (retry=True: try again later)."""
        destination = self.settings.destinations.get(message.destination)
        if destination is None:
            raise DeliveryError(
                f"destination {message.destination!r} is not configured; set ACS_TRIAGE_"
                f"{message.destination.upper()}_URL (the message stays in the queue)",
                retry=True,
            )
        kind = destination.kind
        payload = message.payload_dict()
        attempt = 0
        while True:
            # Secrets join the body only here, never the outbox; headers are made per attempt,
            # so a signature's timestamp is the time of this very send.
            body = payload_bytes(kind.finish(payload, destination))
            self._pace(destination)
            try:
                headers = kind.headers(body, destination, self.clock(), message.id)
                post(self.session, destination, body, self.settings.http_timeout_seconds, headers)
                log.info("delivered %s to %s", message.id, destination.name)
                return
            except DeliveryError as err:
                if not err.retry:
                    smaller = kind.fallback(payload, str(err))
                    if smaller is not None and smaller != payload:
                        # Refused as it was: what the destination falls back to still informs.
                        log.warning("%s; resending in the destination's fallback form", err)
                        payload = smaller
                        continue
                if err.retry_after is not None:
                    # Every 429 holds the destination for its Retry-After, for every message and
                    # instance, whether this worker waits here or hands the message back.
                    self.store.reserve_send(destination.name, err.retry_after, self.clock())
                if not err.retry or attempt >= len(_BACKOFF):
                    raise
                wait = err.retry_after if err.retry_after is not None else _BACKOFF[attempt]
                if wait > self.settings.max_retry_after_seconds:
                    raise  # too long to hold the worker: the queue's visibility timeout takes over
                log.warning("%s; retrying in %.1fs", err, wait)
                if err.retry_after is None:
                    self._hold(destination, wait)
                else:
                    self.sleep(wait)  # the hold is booked above; the next post's pacing respects it
                attempt += 1

    def _pace(self, destination: Destination) -> None:
        interval = destination.kind.send_interval
        if interval:
            wait = self.store.reserve_send(destination.name, interval, self.clock())
            if wait > 0:
                self.sleep(wait)

    def _hold(self, destination: Destination, seconds: float) -> None:
        # A 429 holds every sender of this destination, not just this one.
        self.store.reserve_send(destination.name, seconds, self.clock())
        self.sleep(seconds)
