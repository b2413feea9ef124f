"""Local stand-ins for chat webhooks: a Slack-like and a Teams-Workflows-like HTTP server.

For tests, benchmarks and trying acs-triage without a workspace. They answer as the services
do (status codes and bodies, rate limits, size and Block Kit limits), fail on purpose when
told to, and record what they receive. They listen on 127.0.0.1 only.

    with SlackSink() as slack:            # port 0: a free port; slack.url is the webhook
        slack.fail_first(2, status=500)   # then 200 "ok"
        ...
        assert len(slack.accepted) == 1

    python -m tools.sinks --kind teams --port 9000    # print what arrives
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import math
import secrets
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

__all__ = [
    "Fault",
    "PagerDutySink",
    "RateLimit",
    "Received",
    "SlackSink",
    "TeamsSink",
    "WebhookSink",
    "main",
    "pagerduty_errors",
]

SLACK_MAX_BLOCKS = 50
SLACK_HEADER_TEXT_MAX = 150
SLACK_SECTION_TEXT_MAX = 3000
SLACK_FIELDS_MAX = 10
SLACK_FIELD_TEXT_MAX = 2000
TEAMS_MAX_BYTES = 28 * 1024
ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
WEBHOOK_SCHEMA = Path(__file__).resolve().parent.parent / "docs" / "webhook-alert.schema.json"


@dataclass(frozen=True, slots=True)
class Fault:
    """A scripted answer: `status` with `body` and `headers`, or (drop=True) a connection
    closed without any answer."""

    status: int = 500
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    drop: bool = False


@dataclass(frozen=True, slots=True)
class Received:
    """One request as the sink saw it, and what it answered."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    status: int  # 0 when the connection was dropped
    answer: bytes
    at: float  # the sink's clock

    @property
    def json(self) -> Any:
        """The body parsed as JSON, or None when it is not JSON."""
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return None


class RateLimit:
    """A token bucket: `burst` requests at once, refilled at `per_second`. When empty, the
    sink answers 429, with Retry-After (whole seconds) unless retry_after=False."""

    def __init__(self, per_second: float, burst: int = 1, *, retry_after: bool = True) -> None:
        self.per_second = per_second
        self.burst = burst
        self.retry_after = retry_after
        self._tokens = float(burst)
        self._last: float | None = None

    def take(self, now: float) -> float | None:
        """Take a token: None when allowed, else the seconds until one is free."""
        if self._last is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.per_second)
        self._last = now
        if self._tokens >= 1.0 - 1e-9:
            self._tokens -= 1.0
            return None
        return (1.0 - self._tokens) / self.per_second


_Answer = tuple[int, bytes, dict[str, str]]


class _Sink:
    """An HTTP server on 127.0.0.1 that answers POSTs to one webhook path.

    rate_limit: True (the service's own limit), False (never 429) or a RateLimit of your own;
    clock: what the rate limit and the records read (inject a fake one in tests)."""

    kind = "webhook"
    per_second = 1.0  # the service's own rate limit
    burst = 1

    def __init__(
        self,
        port: int = 0,
        *,
        path: str | None = None,
        rate_limit: RateLimit | bool = True,
        clock: Callable[[], float] = time.monotonic,
        on_receive: Callable[[Received], None] | None = None,
    ) -> None:
        self.port = port
        self.path = path or self.new_path()
        if isinstance(rate_limit, RateLimit):
            self.rate_limit: RateLimit | None = rate_limit
        else:
            self.rate_limit = RateLimit(self.per_second, self.burst) if rate_limit else None
        self.clock = clock
        self.on_receive = on_receive
        self._lock = threading.Lock()
        self._faults: deque[Fault] = deque()
        self._received: list[Received] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> _Sink:
        """Listen (port 0 picks a free port) and serve on a background thread."""
        sink = self

        class Handler(_Handler):
            owner = sink

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name=f"{self.kind}-sink", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close open connections, free the port."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        with self._lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            with contextlib.suppress(OSError):  # the client may have closed it already
                connection.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> _Sink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The webhook URL to configure (it holds the path's token, like the real thing)."""
        return self.base_url + self.path

    # -- scripting and records -------------------------------------------------------------------
    def script(self, faults: Iterable[Fault]) -> None:
        """Answer the next posts with these faults, in order, before behaving normally."""
        with self._lock:
            self._faults.extend(faults)

    def fail_first(
        self, count: int, status: int = 500, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> None:
        """Answer the next `count` posts with `status`."""
        self.script([Fault(status, body, dict(headers or {}))] * count)

    def drop_first(self, count: int) -> None:
        """Close the connection of the next `count` posts without answering."""
        self.script([Fault(drop=True)] * count)

    @property
    def received(self) -> list[Received]:
        """Every request so far, whatever was answered."""
        with self._lock:
            return list(self._received)

    @property
    def accepted(self) -> list[Any]:
        """The JSON payloads answered with a 2xx, in order."""
        return [r.json for r in self.received if 200 <= r.status < 300]

    def clear(self) -> None:
        """Forget what was received and any scripted faults left."""
        with self._lock:
            self._received.clear()
            self._faults.clear()

    # -- behaviour -------------------------------------------------------------------------------
    def answer(
        self, method: str, path: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> _Answer | Fault:
        """What the service would answer (a Fault with drop=True: no answer at all)."""
        if path.split("?", 1)[0] != self.path:
            return self.not_found()
        if method != "POST":
            return 405, b"", {"Allow": "POST"}
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
            wait = self.rate_limit.take(self.clock()) if self.rate_limit and fault is None else None
        if fault is not None:
            return fault if fault.drop else (fault.status, fault.body, dict(fault.headers))
        if wait is not None:
            return self.throttled(wait)
        return self.respond(body, headers or {})

    def respond(self, body: bytes, headers: Mapping[str, str]) -> _Answer:
        """The answer to a post that is neither scripted to fail nor throttled."""
        return self.validate(body) or self.accept()

    def new_path(self) -> str:
        """A webhook path with a fresh token, shaped as the service makes them."""
        raise NotImplementedError

    def not_found(self) -> _Answer:
        return 404, b"", {}

    def throttled(self, wait: float) -> _Answer:
        says_when = self.rate_limit is None or self.rate_limit.retry_after
        return 429, b"", {"Retry-After": str(max(1, math.ceil(wait)))} if says_when else {}

    def validate(self, body: bytes) -> _Answer | None:
        """A 4xx for a payload the service would refuse; None when it is fine."""
        raise NotImplementedError

    def accept(self) -> _Answer:
        raise NotImplementedError

    def _record(self, received: Received) -> None:
        with self._lock:
            self._received.append(received)
        if self.on_receive is not None:
            self.on_receive(received)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner: _Sink

    def setup(self) -> None:
        super().setup()
        with self.owner._lock:
            self.owner._connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.owner._lock:
                self.owner._connections.discard(self.connection)

    def _serve(self) -> None:
        sink = self.owner
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self._send(411, b"", {})
            return
        body = self.rfile.read(int(length))
        answer = sink.answer(self.command, self.path, body, dict(self.headers.items()))
        status, text = (0, b"") if isinstance(answer, Fault) else (answer[0], answer[1])
        sink._record(
            Received(self.command, self.path, dict(self.headers.items()), body, status, text, sink.clock())
        )
        if isinstance(answer, Fault):
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)  # no status line: the client sees a reset
            return
        self._send(*answer)

    def _send(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        if body and not any(k.lower() == "content-type" for k in headers):
            self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET = do_PUT = do_DELETE = do_PATCH = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the sink records requests itself; the URL's token stays out of stderr


class SlackSink(_Sink):
    """Behaves like a Slack incoming webhook: 200 `ok`; 429 with Retry-After above about one
    post a second; 400 `invalid_payload`, `no_text`, `invalid_blocks`, `invalid_attachments`;
    404 `no_service` for any other path."""

    kind = "slack"
    per_second = 1.0
    burst = 2  # "short bursts >1 allowed"

    def new_path(self) -> str:
        return f"/services/T0LOCAL00/B0LOCAL00/{secrets.token_hex(12)}"

    def not_found(self) -> _Answer:
        return 404, b"no_service", {}

    def throttled(self, wait: float) -> _Answer:
        status, _, headers = super().throttled(wait)
        return status, b"rate_limited", headers

    def validate(self, body: bytes) -> _Answer | None:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _slack_error("invalid_payload")
        if not isinstance(doc, dict):
            return _slack_error("invalid_payload")
        if not any(doc.get(key) for key in ("text", "blocks", "attachments")):
            return _slack_error("no_text")
        attachments = doc.get("attachments", [])
        if not isinstance(attachments, list) or not all(isinstance(a, dict) for a in attachments):
            return _slack_error("invalid_attachments")
        lists = [doc.get("blocks", [])] + [a.get("blocks", []) for a in attachments]
        if not all(isinstance(blocks, list) for blocks in lists):
            return _slack_error("invalid_blocks")
        blocks = [block for blocks in lists for block in blocks]
        if len(blocks) > SLACK_MAX_BLOCKS or not all(_block_ok(block) for block in blocks):
            return _slack_error("invalid_blocks")
        return None

    def accept(self) -> _Answer:
        return 200, b"ok", {}


def _slack_error(code: str) -> _Answer:
    return 400, code.encode(), {}


def _text_of(element: Any) -> str | None:
    if isinstance(element, dict) and isinstance(element.get("text"), str):
        return str(element["text"])
    return None


def _block_ok(block: Any) -> bool:
    """Block Kit limits a webhook post must keep (the ones our alerts can run into)."""
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        return False
    kind = block["type"]
    if kind == "header":
        text = _text_of(block.get("text"))
        return text is not None and 0 < len(text) <= SLACK_HEADER_TEXT_MAX
    if kind == "section":
        text = _text_of(block.get("text"))
        fields = block.get("fields")
        if text is None and not fields:
            return False
        if text is not None and len(text) > SLACK_SECTION_TEXT_MAX:
            return False
        if fields is not None:
            if not isinstance(fields, list) or len(fields) > SLACK_FIELDS_MAX:
                return False
            texts = [_text_of(f) for f in fields]
            return all(t is not None and len(t) <= SLACK_FIELD_TEXT_MAX for t in texts)
    return True


class TeamsSink(_Sink):
    """Behaves like a Teams Workflows webhook ("Send webhook alerts to a channel"): 202 with
    an empty body; 413 over 28 KB; 429 above 4 requests a second (Retry-After optional);
    400 when the body is not a message with Adaptive Card attachments; 404 elsewhere."""

    kind = "teams"
    per_second = 4.0
    burst = 4

    def new_path(self) -> str:
        return f"/workflows/{secrets.token_hex(16)}/triggers/manual/paths/invoke"

    def validate(self, body: bytes) -> _Answer | None:
        if len(body) > TEAMS_MAX_BYTES:
            message = "The payload is too large. Please make sure the size is less than 28KB."
            return _teams_error(413, "MessageSizeExceeded", message)
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _teams_error(400, "InvalidRequestContent", "The request content is not valid JSON.")
        problem = _envelope_problem(doc)
        return _teams_error(400, "InvalidRequestContent", problem) if problem else None

    def accept(self) -> _Answer:
        return 202, b"", {}


def _teams_error(status: int, code: str, message: str) -> _Answer:
    body = orjson.dumps({"error": {"code": code, "message": message}})
    return status, body, {"Content-Type": "application/json"}


def _envelope_problem(doc: Any) -> str | None:
    if not isinstance(doc, dict) or doc.get("type") != "message":
        return "The body must be an object with type 'message'."
    attachments = doc.get("attachments")
    if not isinstance(attachments, list) or not attachments:
        return "The message must have a non-empty 'attachments' list."
    for attachment in attachments:
        if not isinstance(attachment, dict) or attachment.get("contentType") != ADAPTIVE_CARD:
            return f"Each attachment must have contentType '{ADAPTIVE_CARD}'."
        content = attachment.get("content")
        if not isinstance(content, dict) or content.get("type") != "AdaptiveCard":
            return "Each attachment's content must be an Adaptive Card (type 'AdaptiveCard')."
    return None


# -- PagerDuty -------------------------------------------------------------------------------------
PAGERDUTY_ROUTING_KEY_CHARS = 32
PAGERDUTY_SUMMARY_MAX = 1024
PAGERDUTY_DEDUP_KEY_MAX = 255
PAGERDUTY_SEVERITIES = frozenset({"critical", "error", "warning", "info"})
PAGERDUTY_ACTIONS = frozenset({"trigger", "acknowledge", "resolve"})
_PAGERDUTY_KEYS = frozenset(
    {"routing_key", "event_action", "dedup_key", "payload", "images", "links", "client", "client_url"}
)
_PAGERDUTY_PAYLOAD_KEYS = frozenset(
    {"summary", "source", "severity", "timestamp", "component", "group", "class", "custom_details"}
)


class PagerDutySink(_Sink):
    """Behaves like the PagerDuty Events API v2 (`/v2/enqueue`): 202 `{"status": "success",
    "message": "Event processed", "dedup_key": …}`; 400 `{"status": "invalid event", "message":
    "Event object is invalid", "errors": […]}` for an event outside their schema (routing key of 32
    characters, event_action, summary ≤ 1024, source, severity, dedup_key ≤ 255 and required to
    resolve); 429 `{"status": "throttle event", …}` above its rate (ours: PagerDuty adjusts its
    limit dynamically and documents no number), without Retry-After.

    `incidents` follows what PagerDuty would show: dedup_key → "triggered" or "resolved";
    `routing_key` (default: a fresh one) is the only key it accepts."""

    kind = "pagerduty"
    per_second = 2.0
    burst = 4

    def __init__(self, port: int = 0, *, routing_key: str | None = None, **options: Any) -> None:
        options.setdefault("rate_limit", RateLimit(self.per_second, self.burst, retry_after=False))
        super().__init__(port, **options)
        self.routing_key = routing_key or secrets.token_hex(PAGERDUTY_ROUTING_KEY_CHARS // 2)
        self.incidents: dict[str, str] = {}

    def new_path(self) -> str:
        return "/v2/enqueue"

    def throttled(self, wait: float) -> _Answer:
        status, _, headers = super().throttled(wait)
        message = "Requests for this service are arriving too quickly. Please retry later."
        body = orjson.dumps({"status": "throttle event", "message": message})
        return status, body, {**headers, "Content-Type": "application/json"}

    def respond(self, body: bytes, headers: Mapping[str, str]) -> _Answer:
        try:
            event = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _pagerduty_invalid(["Event object is not valid JSON"])
        errors = pagerduty_errors(event)
        if not errors and event["routing_key"] != self.routing_key:
            errors = ["Invalid routing key"]
        if errors:
            return _pagerduty_invalid(errors)
        action, key = event["event_action"], event.get("dedup_key") or secrets.token_hex(16)
        with self._lock:
            if action == "trigger":
                self.incidents[key] = "triggered"
            elif action == "resolve" and self.incidents.get(key) == "triggered":
                self.incidents[key] = "resolved"
        answer = {"status": "success", "message": "Event processed", "dedup_key": key}
        return 202, orjson.dumps(answer), {"Content-Type": "application/json"}

    def open_incidents(self) -> list[str]:
        """The dedup keys triggered and not resolved since: what PagerDuty would still page about."""
        with self._lock:
            return sorted(key for key, state in self.incidents.items() if state == "triggered")

    def assert_every_trigger_resolved(self) -> None:
        """Raise AssertionError naming each incident still open (and when nothing was triggered:
        a resolve test that triggered nothing proves nothing)."""
        with self._lock:
            triggered = bool(self.incidents)
        if not triggered:
            raise AssertionError("no PagerDuty incident was triggered")
        still_open = self.open_incidents()
        if still_open:
            raise AssertionError(f"PagerDuty incidents still open: {still_open}")


def pagerduty_errors(event: Any) -> list[str]:
    """Why the Events API v2 would refuse `event` ([] when it would accept it)."""
    if not isinstance(event, dict):
        return ["Event object is invalid"]
    errors = [f"'{key}' is not a recognized field" for key in event if key not in _PAGERDUTY_KEYS]
    key = event.get("routing_key")
    if not isinstance(key, str) or len(key) != PAGERDUTY_ROUTING_KEY_CHARS:
        errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
    action = event.get("event_action")
    if action not in PAGERDUTY_ACTIONS:
        errors.append("'event_action' is invalid (must be one of trigger, acknowledge, resolve)")
    dedup = event.get("dedup_key")
    if dedup is not None and (not isinstance(dedup, str) or not 0 < len(dedup) <= PAGERDUTY_DEDUP_KEY_MAX):
        errors.append("'dedup_key' must be a string of at most 255 characters")
    if action in ("acknowledge", "resolve") and not dedup:
        errors.append("'dedup_key' is required for acknowledge and resolve events")
    if action == "trigger":
        errors += _pagerduty_payload_errors(event.get("payload"))
    for name in ("links", "images"):
        items = event.get(name, [])
        href = "href" if name == "links" else "src"
        if not isinstance(items, list) or not all(
            isinstance(i, dict) and isinstance(i.get(href), str) and i[href] for i in items
        ):
            errors.append(f"'{name}' must be a list of objects with '{href}'")
    return errors


def _pagerduty_payload_errors(payload: Any) -> list[str]:
    if not isinstance(payload, dict):
        return ["'payload' is required for trigger events"]
    unknown = [key for key in payload if key not in _PAGERDUTY_PAYLOAD_KEYS]
    errors = [f"'payload.{key}' is not a recognized field" for key in unknown]
    summary = payload.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        errors.append("'payload.summary' is missing or blank")
    elif len(summary) > PAGERDUTY_SUMMARY_MAX:
        errors.append("'payload.summary' is longer than 1024 characters")
    source = payload.get("source")
    if not isinstance(source, str) or not source.strip():
        errors.append("'payload.source' is missing or blank")
    if payload.get("severity") not in PAGERDUTY_SEVERITIES:
        errors.append("'payload.severity' is invalid (must be one of critical, error, warning, info)")
    if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
        errors.append("'payload.custom_details' must be an object")
    return errors


def _pagerduty_invalid(errors: list[str]) -> _Answer:
    body = orjson.dumps({"status": "invalid event", "message": "Event object is invalid", "errors": errors})
    return 400, body, {"Content-Type": "application/json"}


# -- generic webhook -------------------------------------------------------------------------------
SIGNATURE_TOLERANCE_SECONDS = 300


class WebhookSink(_Sink):
    """A receiver of acs-triage's generic webhook, written as docs/webhook.md tells receivers to:
    with `secret` (a `whsec_` key, or a legacy key), it answers 401 unless the standardwebhooks
    package verifies the request (webhook-id, webhook-timestamp within 5 minutes of the library's
    clock, a matching `v1,` signature) and, for a legacy key, the old X-ACS-Triage-* headers also
    verify (within 5 minutes of this sink's clock); 400 unless the body is valid against
    docs/webhook-alert.schema.json; else 200. A webhook-id it has taken before (a retry of a
    message it answered, or a replay) is answered 200 and only noted in `duplicates`, as Standard
    Webhooks asks of receivers. No rate limit unless one is given."""

    kind = "webhook"

    def __init__(self, port: int = 0, *, secret: str | None = None, **options: Any) -> None:
        options.setdefault("rate_limit", False)
        options.setdefault("clock", time.time)
        super().__init__(port, **options)
        self.secret = secret
        self._validator: Any = None
        self.taken_ids: set[str] = set()
        self.duplicates: list[str] = []  # webhook-ids received again after being taken

    def new_path(self) -> str:
        return f"/hooks/{secrets.token_hex(12)}"

    def respond(self, body: bytes, headers: Mapping[str, str]) -> _Answer:
        problem = self.signature_problem(body, headers) if self.secret else None
        if problem:
            return 401, orjson.dumps({"error": problem}), {"Content-Type": "application/json"}
        message_id = {k.lower(): v for k, v in headers.items()}.get("webhook-id")
        if message_id is not None and message_id in self.taken_ids:
            self.duplicates.append(message_id)
            return 200, b"", {}
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return 400, orjson.dumps({"error": "not JSON"}), {"Content-Type": "application/json"}
        errors = [e.message for e in self.validator.iter_errors(doc)]
        if errors:
            return 400, orjson.dumps({"error": "; ".join(errors)[:500]}), {"Content-Type": "application/json"}
        if message_id is not None:
            self.taken_ids.add(message_id)
        return 200, b"", {}

    @property
    def validator(self) -> Any:
        """The JSON Schema validator of docs/webhook-alert.schema.json (jsonschema is a dev package)."""
        if self._validator is None:
            import jsonschema

            schema = orjson.loads(WEBHOOK_SCHEMA.read_bytes())
            self._validator = jsonschema.Draft202012Validator(
                schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
            )
        return self._validator

    def signature_problem(self, body: bytes, headers: Mapping[str, str]) -> str | None:
        """Why the request's signature does not verify, or None (how docs/webhook.md says to check)."""
        from standardwebhooks import Webhook, WebhookVerificationError  # a dev package

        assert self.secret is not None
        legacy = not self.secret.startswith("whsec_")
        try:
            Webhook(self.secret.encode() if legacy else self.secret).verify(
                body, dict(headers), json_parse=False
            )
        except WebhookVerificationError as err:
            return f"standard webhooks: {err}"
        return self.legacy_problem(body, headers) if legacy else None

    def legacy_problem(self, body: bytes, headers: Mapping[str, str]) -> str | None:
        """The scheme before Standard Webhooks: X-ACS-Triage-Signature over `<timestamp>.<body>`."""
        lowered = {k.lower(): v for k, v in headers.items()}
        timestamp = lowered.get("x-acs-triage-timestamp", "")
        given = lowered.get("x-acs-triage-signature", "")
        if not timestamp.isdigit() or not given:
            return "missing signature"
        if abs(self.clock() - int(timestamp)) > SIGNATURE_TOLERANCE_SECONDS:
            return "timestamp outside the tolerance (a replay?)"
        assert self.secret is not None
        mac = hmac.new(self.secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
        if not hmac.compare_digest(given, "sha256=" + mac.hexdigest()):
            return "signature does not match"
        return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run one sink in the foreground and print every request it receives."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.sinks",
        description="A local Slack-like or Teams-like webhook that prints what it receives.",
    )
    parser.add_argument("--kind", choices=tuple(SINKS), default="slack")
    parser.add_argument("--port", type=int, default=9000, help="0 picks a free port")
    parser.add_argument("--path", help="the webhook path (default: a random token, as the services give)")
    parser.add_argument("--no-rate-limit", action="store_true", help="never answer 429")
    parser.add_argument("--no-retry-after", action="store_true", help="429 without a Retry-After header")
    parser.add_argument(
        "--fail-first", type=int, default=0, metavar="N", help="answer the first N posts with --status"
    )
    parser.add_argument("--status", type=int, default=500, help="status for --fail-first (default 500)")
    parser.add_argument(
        "--secret",
        help="webhook: verify Standard Webhooks signatures with this key (whsec_…); a legacy key also "
        "checks the old X-ACS-Triage-* headers",
    )
    parser.add_argument("--routing-key", help="pagerduty: the 32-character key it accepts (default: new)")
    args = parser.parse_args(argv)

    def show(received: Received) -> None:
        doc = received.json
        if doc is not None:
            shown = orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode()
        else:
            shown = received.body[:2000].decode(errors="replace")
        status = received.status or "dropped"
        print(f"{received.method} {status} ({len(received.body)} bytes)\n{shown}", flush=True)

    kind = SINKS[args.kind]
    limit: RateLimit | bool = (
        False
        if args.no_rate_limit
        else RateLimit(kind.per_second, kind.burst, retry_after=not args.no_retry_after)
    )
    options: dict[str, Any] = {"path": args.path, "rate_limit": limit, "on_receive": show}
    if args.kind == "webhook":
        options["secret"] = args.secret
    if args.kind == "pagerduty":
        options["routing_key"] = args.routing_key
    sink = kind(args.port, **options)
    try:
        sink.start()
    except OSError as err:  # one line with the fix, not a traceback
        said = f"error: cannot listen on port {args.port} ({err.strerror}): choose another --port"
        print(said, file=sys.stderr)
        return 2
    if args.fail_first:
        sink.fail_first(args.fail_first, status=args.status)
    print(f"{args.kind} webhook listening: {sink.url}  (Ctrl-C stops)", flush=True)
    if isinstance(sink, PagerDutySink):
        print(f"routing key: {sink.routing_key}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        sink.stop()
    return 0


SINKS: dict[str, type[_Sink]] = {
    "slack": SlackSink,
    "teams": TeamsSink,
    "pagerduty": PagerDutySink,
    "webhook": WebhookSink,
}

if __name__ == "__main__":
    raise SystemExit(main())
