"""A stand-in for the Azure Functions host, for local runs and tests.

It indexes function_app.app through `get_functions()` (as the host does) and runs the
registered functions themselves: HTTP routes behind a local HTTP server, the queue
trigger over the outbox, the timer on demand. It is not the host: no function keys
(like `func start`), and queue semantics are the outline of the host's (retry on raise,
poison after max dequeue count), not its exact timing.
"""

from __future__ import annotations

import inspect
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func
from azure.functions.queue import QueueMessage
from azure.functions.timer import TimerRequest

__all__ = ["LocalHost", "serve"]

log = logging.getLogger("triage.localhost")
ROOT = Path(__file__).resolve().parent.parent
MAX_DEQUEUE_COUNT = 8  # host.json extensions.queues.maxDequeueCount


@dataclass
class _Route:
    pattern: re.Pattern[str]
    methods: set[str]
    function: Callable[..., Any]
    arg: str


class LocalHost:
    """The Function App's functions, callable the way the host calls them."""

    def __init__(self, app: func.FunctionApp | None = None, route_prefix: str | None = None) -> None:
        if app is None:
            import function_app

            app = function_app.app
        if route_prefix is None:
            host = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))
            route_prefix = host.get("extensions", {}).get("http", {}).get("routePrefix", "api")
        self.prefix = "/" + route_prefix.strip("/") if route_prefix else ""
        # get_functions() refuses a second call on one app (it tracks names it returned).
        app.functions_bindings = {}
        self.routes: list[_Route] = []
        self.queue_functions: dict[str, Callable[..., Any]] = {}
        self.timer_functions: dict[str, Callable[..., Any]] = {}
        for function in app.get_functions():
            trigger = function.get_trigger()
            kind = trigger.get_dict_repr()["type"]
            user = function.get_user_function()
            if function.is_http_function():
                methods = {str(getattr(m, "value", m)).upper() for m in (trigger.methods or [])}
                route = trigger.route or function.get_function_name()
                pattern = re.compile("^" + re.escape(route.strip("/")) + "/?$")
                self.routes.append(_Route(pattern, methods, user, trigger.name))
            elif kind == "queueTrigger":
                self.queue_functions[trigger.get_dict_repr()["queueName"]] = user
            elif kind == "timerTrigger":
                self.timer_functions[function.get_function_name()] = user

    def http(
        self, method: str, path: str, headers: dict[str, str], body: bytes, query: str = ""
    ) -> tuple[int, dict[str, str], bytes]:
        """Dispatch one request to the matching HTTP function: (status, headers, body)."""
        if not path.startswith(self.prefix):
            return 404, {}, b"not found"
        sub = path[len(self.prefix) :].strip("/")
        allowed: set[str] = set()
        for route in self.routes:
            if not route.pattern.match(sub):
                continue
            allowed |= route.methods
            if method not in route.methods:
                continue
            request = func.HttpRequest(
                method=method,
                url=f"http://localhost{path}" + (f"?{query}" if query else ""),
                headers=headers,
                params=dict(parse_qsl(query)),
                route_params={},
                body=body,
            )
            try:
                response = route.function(**{route.arg: request})
            except Exception:  # the host answers 500 when a function raises
                log.exception("function raised")
                return 500, {}, b"function raised"
            out = dict(response.headers)
            if response.mimetype and not any(k.lower() == "content-type" for k in out):
                out["Content-Type"] = response.mimetype
            return response.status_code, out, response.get_body()
        if allowed:
            return 405, {"Allow": ", ".join(sorted(allowed))}, b"method not allowed"
        return 404, {}, b"not found"

    def run_timers(self) -> None:
        """Fire every timer trigger once."""
        for function in self.timer_functions.values():
            function(TimerRequest(past_due=False))

    def run_queue(self, store: Any, max_messages: int = 32) -> tuple[int, int]:
        """Hand queued outbox messages to the queue trigger: (delivered, failed attempts).
        A message whose function raises is retried later; after MAX_DEQUEUE_COUNT it is
        moved to the store's poison list, as the host moves it to the poison queue."""
        delivered = failed = 0
        for queue_name, function in self.queue_functions.items():
            for lease in store.poll(queue_name, max_messages):
                message = QueueMessage(id=lease.id, body=lease.body, dequeue_count=lease.dequeue_count)
                try:
                    function(**{_arg_name(function): message})
                except Exception as err:
                    failed += 1
                    poison = lease.dequeue_count >= MAX_DEQUEUE_COUNT
                    log.warning("queue function failed (try %d): %s", lease.dequeue_count, err)
                    lease.fail(poison=poison)
                else:
                    delivered += 1
                    lease.done()
        return delivered, failed


def _arg_name(function: Callable[..., Any]) -> str:
    return next(iter(inspect.signature(function).parameters))


def serve(host: str = "127.0.0.1", port: int = 7071, tick_seconds: float = 1.0) -> None:
    """Serve the Function App's routes on host:port until interrupted; a background loop
    drains the outbox and fires the digest timer, as the Functions host would."""
    import function_app

    local = LocalHost(function_app.app)
    service = function_app.service()
    max_body = service.settings.max_body_bytes

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _dispatch(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > max_body:
                # Refuse before reading: a huge body must not cost memory.
                self._send(413, {"Content-Type": "application/json"},
                           json.dumps({"error": f"body is {length} bytes; the limit is {max_body}"}).encode())
                self.close_connection = True
                return
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            status, headers, payload = local.http(
                self.command, parts.path, dict(self.headers.items()), body, parts.query
            )
            self._send(status, headers, payload)

        def _send(self, status: int, headers: dict[str, str], payload: bytes) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_POST = do_OPTIONS = do_GET = do_PUT = do_DELETE = _dispatch

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            log.info("%s %s", self.address_string(), format % args)

    server = ThreadingHTTPServer((host, port), Handler)
    stop = threading.Event()

    def background() -> None:
        last_timer = 0.0
        while not stop.wait(tick_seconds):
            try:
                local.run_queue(service.store)
                if time.monotonic() - last_timer >= 60 or tick_seconds < 1:
                    local.run_timers()
                    last_timer = time.monotonic()
            except Exception:
                log.exception("background loop failed")

    worker = threading.Thread(target=background, name="localhost-background", daemon=True)
    worker.start()
    log.warning("serving %s on http://%s:%d%s/{eventgrid,callbacks}", "acs-triage", host, port, local.prefix)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.server_close()
