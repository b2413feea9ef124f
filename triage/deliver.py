"""Posting rendered alerts to Teams and Slack webhooks.

One place decides what is worth retrying (as Alertmanager's Retrier does): connection
errors, timeouts, 408, 429 and 5xx are; other 4xx are not (the payload or the
configuration must change). The webhook URL is the credential: it never appears in a
log line, an exception or an alert. Errors name the destination instead.
"""

from __future__ import annotations

import email.utils
import logging
import threading
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
# How often the one worker that waits for a destination's next slot on behalf of a digest
# (see Deliverer._take_free_slot) tries for it before the digest yields after all.
_STANDBY_TRIES = 3

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
    worker books the destination's next send slot in the store (after the slots booked and any
    Retry-After hold, shared by every instance), in the same store step that reads how far off it
    is; it waits for it when that is within ACS_TRIAGE_MAX_RETRY_AFTER_SECONDS, and otherwise
    books nothing and raises DeliveryDeferred, so the message goes back to the queue with that
    delay. Every Retry-After a destination answers is booked in the
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
        # Per destination: held by the one worker waiting for the next free slot for a digest.
        self._standby: dict[str, threading.Lock] = {}

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
        """Book the destination's next send slot (its interval and any hold) and wait for it, or
        raise DeliveryDeferred when it is further off than a worker may wait. A message that is
        not a first alert takes only a slot free now (see `_take_free_slot`). Reading the wait
        and booking are one store step: other workers cannot book slots in between."""
        limit = self.settings.max_retry_after_seconds
        if not message.urgent and first_try and message.attempts < _MAX_YIELDS:
            # Only before its first post (a retry keeps its turn, so a failing message still
            # reaches the poison queue), and a bounded number of times (each return counts in
            # `attempts`): a steady stream of first alerts cannot starve it.
            self._take_free_slot(destination, message, limit)
            return
        name = destination.name
        booked, wait = self.store.reserve_send_within(
            name, destination.kind.send_interval, self.clock(), limit
        )
        if not booked:
            raise _held_off(name, wait)
        if wait > 0:
            self.sleep(wait)

    def _take_free_slot(self, destination: Destination, message: OutboxMessage, limit: float) -> None:
        """First alerts go first: a digest, notice or report books a send slot only when it is
        free now, so a first alert never waits behind more than one of them (one interval).
        When the next slot is at most one interval off, one worker per destination (of this
        process) waits for it without booking it and tries again, so that one worker alone
        still posts digests back to back; any other such message raises SlotYielded and comes
        back when the slots are likely free, spread by its id over a few dozen slots so that a
        flush's digests do not return at once. A first alert polled meanwhile takes the slot."""
        name, interval = destination.name, destination.kind.send_interval
        standby = self._standby.setdefault(name, threading.Lock())
        waiting = False
        try:
            for tries_left in reversed(range(_STANDBY_TRIES)):
                booked, wait = self.store.reserve_send_within(name, interval, self.clock(), 0.0)
                if booked:
                    return
                if wait > limit:
                    raise _held_off(name, wait)
                if wait > interval or not tries_left or not (waiting or standby.acquire(blocking=False)):
                    spread = zlib.crc32(message.id.encode()) % _YIELD_SPREAD_SLOTS
                    raise SlotYielded(
                        f"{name}: {wait:.1f}s of send slots booked; {message.id} yields them to first alerts",
                        retry_after=wait + spread * max(interval, _MIN_YIELD_SECONDS),
                    )
                waiting = True
                self.sleep(wait)
        finally:
            if waiting:
                standby.release()

    def _mark_sent(self, message: OutboxMessage, destination: Destination) -> None:
        try:
            self.store.mark_sent(message.id, self.clock())
        except Exception as err:  # posted already: failing now would only post it again
            log.error(
                "%s was delivered to %s but could not be recorded as sent (%s); a redelivery of it "
                "would post it again",
                message.id, destination.name, type(err).__name__,
            )  # fmt: skip


def _held_off(name: str, wait: float) -> DeliveryDeferred:
    """The destination's next slot is further off than a worker may wait (a Retry-After): the
    message goes back to the queue until then, and nothing was booked for it."""
    return DeliveryDeferred(
        f"{name}: held off for {wait:.0f}s; back to the queue until then", retry_after=wait
    )
