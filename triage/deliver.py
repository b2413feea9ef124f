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
import zlib
from collections.abc import Callable, Mapping
from datetime import UTC
from typing import TYPE_CHECKING

from .destinations import Destination
from .errors import DeliveryDeferred, DeliveryError, SlotYielded
from .redact import REDACTED, redact_url
from .render.content import payload_bytes
from .settings import Settings
from .store import OutboxMessage, Store

if TYPE_CHECKING:  # requests costs ~60 ms to import: only a delivery pays for it
    import requests

__all__ = ["Deliverer", "parse_retry_after", "post"]

log = logging.getLogger("triage.deliver")

# A digest, notice or report that yields its send slot comes back within this many slots (by
# its id), each at least this long (a destination without an interval is paced by holds only).
_YIELD_SPREAD_SLOTS = 30
_MIN_YIELD_SECONDS = 1.0
_MAX_YIELDS = 20

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
    raises so that the queue (or the local drain loop) tries again later.

    The destination's pace lives here, in one place, for every kind: before each attempt the
    worker asks the store how long the destination is held (booked send slots and Retry-After
    holds, shared by every instance); it waits that long when the wait is within
    ACS_TRIAGE_MAX_RETRY_AFTER_SECONDS, and otherwise raises DeliveryDeferred, so the message goes
    back to the queue with that delay. Every Retry-After a destination answers is booked in the
    store before anything else happens, the last attempt's included."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
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
        """Post one message or raise DeliveryError (retry=True: try again later; DeliveryDeferred:
        put it back in the outbox with its delay). A message posted before (the store remembers
        each posted id, see Outbox.mark_sent) is not posted again."""
        destination = self.settings.destinations.get(message.destination)
        if destination is None:
            raise DeliveryError(
                f"destination {message.destination!r} is not configured; set ACS_TRIAGE_"
                f"{message.destination.upper()}_URL (the message stays in the queue)",
                retry=True,
            )
        if self.store.was_sent(message.id, self.clock()):
            # Posted already; the process died before the queue heard of it. Not again.
            log.warning("%s was delivered to %s before; not posting it again", message.id, destination.name)
            return
        kind = destination.kind
        payload = message.payload_dict()
        attempt = 0
        while True:
            self._wait_for_slot(destination, message, first_try=attempt == 0)
            # Secrets join the body only here, never the outbox; headers are made per attempt,
            # so a signature's timestamp is the time of this very send. The message id is the
            # same on every attempt, dequeue and re-drive: a destination's idempotency key.
            body = payload_bytes(kind.finish(payload, destination))
            try:
                headers = kind.headers(body, destination, self.clock(), message.id)
                post(self.session, destination, body, self.settings.http_timeout_seconds, headers)
            except DeliveryError as err:
                if err.retry_after is not None:
                    # Booked first: every sender of this destination, on every instance, holds
                    # off until then, whether or not this worker tries again.
                    self.store.hold_send(destination.name, self.clock() + err.retry_after)
                if not err.retry:
                    smaller = kind.fallback(payload, str(err))
                    if smaller is not None and smaller != payload:
                        # Refused as it was: what the destination falls back to still informs.
                        log.warning("%s; resending in the destination's fallback form", err)
                        payload = smaller
                        continue
                    raise
                if attempt >= len(_BACKOFF):
                    raise
                if err.retry_after is None:
                    # No word from the destination: a short back-off, for every sender alike.
                    self.store.hold_send(destination.name, self.clock() + _BACKOFF[attempt])
                log.warning("%s; retrying", err)
                attempt += 1
                continue
            log.info("delivered %s to %s", message.id, destination.name)
            self._mark_sent(message, destination)
            return

    def _wait_for_slot(self, destination: Destination, message: OutboxMessage, first_try: bool) -> None:
        """Wait for the destination's next send slot (its interval and any hold), or raise
        DeliveryDeferred when that is longer than a worker may wait, or (SlotYielded) when
        `message` is not a first alert and slots are booked beyond the next one."""
        name, interval = destination.name, destination.kind.send_interval
        limit = self.settings.max_retry_after_seconds
        held = self.store.send_wait(name, self.clock())
        if held > limit:  # nothing booked: the message comes back when the hold has passed
            raise DeliveryDeferred(
                f"{name}: held off for {held:.0f}s (Retry-After); back to the queue until then",
                retry_after=held,
            )
        if not message.urgent and first_try and message.attempts < _MAX_YIELDS and held > interval:
            # First alerts go first: a digest, notice or report takes only a slot that is free
            # (or next), never one a first alert would then wait behind. The slots it leaves
            # are taken by whatever comes next; it comes back when they are likely free, spread
            # by its id over a few dozen slots so that a flush's digests do not return at once.
            # Only before its first post (a retry keeps the slot it failed in, so a failing
            # message still reaches the poison queue), and a bounded number of times (each
            # return counts in `attempts`): a steady stream of first alerts cannot starve it.
            spread = zlib.crc32(message.id.encode()) % _YIELD_SPREAD_SLOTS
            raise SlotYielded(
                f"{name}: {held:.1f}s of send slots booked; {message.id} yields them to first alerts",
                retry_after=held + spread * max(interval, _MIN_YIELD_SECONDS),
            )
        wait = self.store.reserve_send(name, interval, self.clock()) if interval else held
        if wait > limit:  # other workers booked the slots in between: the slot goes unused
            reason = f"{name}: next send slot in {wait:.0f}s; back to the queue until then"
            raise DeliveryDeferred(reason, retry_after=wait)
        if wait > 0:
            self.sleep(wait)

    def _mark_sent(self, message: OutboxMessage, destination: Destination) -> None:
        try:
            self.store.mark_sent(message.id, self.clock())
        except Exception as err:  # posted already: failing now would only post it again
            log.error(
                "%s was delivered to %s but could not be recorded as sent (%s); a redelivery of it "
                "would post it again",
                message.id, destination.name, type(err).__name__,
            )  # fmt: skip
