"""A stand-in for the Azure Functions host, for local runs and tests.

It indexes function_app.app through `get_functions()` (as the host does) and runs the
registered functions themselves: HTTP routes behind a local HTTP server, the queue
trigger over the outbox, the timer on demand. It is not the host: no function keys
(like `func start`), and queue semantics are the outline of the host's (retry on raise,
poison after max dequeue count), not its exact timing.
"""

from __future__ import annotations

import errno
import inspect
import json
import logging
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func
from azure.functions.queue import QueueMessage
from azure.functions.timer import TimerRequest
from pydantic import SecretStr

from triage import telemetry
from triage.checks import check, env_problems, is_no_destination, probe, problems_block
from triage.deliver import Deliverer
from triage.destinations import Destination
from triage.errors import ConfigurationError, TriageError
from triage.service import Service
from triage.settings import OUTBOX_QUEUE_SETTING, Settings, app_names, destination_settings
from triage.store import OutboxMessage, configured_spec

__all__ = [
    "TERMINAL",
    "LocalHost",
    "LocalServer",
    "TerminalDeliverer",
    "resolve_binding",
    "serve",
    "start_checked",
]

log = logging.getLogger("triage.localhost")
ROOT = Path(__file__).resolve().parent.parent
MAX_DEQUEUE_COUNT = 8  # host.json extensions.queues.maxDequeueCount
_EXPRESSION = re.compile(r"%([^%]+)%")
TERMINAL_URL = "http://terminal.invalid/"  # never posted to: TerminalDeliverer prints instead


def resolve_binding(value: str, app_settings: Mapping[str, str], function: str) -> str:
    """A binding property with its %NAME% expressions replaced by app settings, as the host
    does when it indexes the app. A missing setting fails, as the function would fail to index."""

    def setting(found: re.Match[str]) -> str:
        name = found.group(1)
        resolved = app_settings.get(name)
        if not resolved:
            raise ConfigurationError(
                f"{name} is not set: function {function!r} binds %{name}%, so the host cannot index it"
            )
        return resolved

    return _EXPRESSION.sub(setting, value)


@dataclass
class _Route:
    pattern: re.Pattern[str]
    methods: set[str]
    function: Callable[..., Any]
    arg: str


class LocalHost:
    """The Function App's functions, callable the way the host calls them."""

    def __init__(
        self,
        app: func.FunctionApp | None = None,
        route_prefix: str | None = None,
        app_settings: Mapping[str, str] | None = None,
    ) -> None:
        if app is None:
            import function_app

            app = function_app.app
        if route_prefix is None:
            host = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))
            route_prefix = host.get("extensions", {}).get("http", {}).get("routePrefix", "api")
        self.prefix = "/" + route_prefix.strip("/") if route_prefix else ""
        if app_settings is None:
            # The environment, as `func start` sees it (local.settings.json Values), with the
            # outbox queue Settings.from_env() would use when a local run does not name one.
            app_settings = {OUTBOX_QUEUE_SETTING: app_names(os.environ)[0], **os.environ}
        settings = app_settings
        # get_functions() refuses a second call on one app (it tracks names it returned).
        app.functions_bindings = {}
        self.routes: list[_Route] = []
        self.queue_functions: dict[str, Callable[..., Any]] = {}
        self.timer_functions: dict[str, Callable[..., Any]] = {}
        for function in app.get_functions():
            trigger: Any = function.get_trigger()
            kind = trigger.get_dict_repr()["type"]
            user = function.get_user_function()
            name = str(function.get_function_name())
            if function.is_http_function():
                methods = {str(getattr(m, "value", m)).upper() for m in (trigger.methods or [])}
                route = str(trigger.route or name)
                pattern = _route_pattern(route)
                self.routes.append(_Route(pattern, methods, user, trigger.name))
            elif kind == "queueTrigger":
                queue_name = resolve_binding(trigger.get_dict_repr()["queueName"], settings, name)
                self.queue_functions[queue_name] = user
            elif kind == "timerTrigger":
                self.timer_functions[name] = user

    def http(
        self, method: str, path: str, headers: dict[str, str], body: bytes, query: str = ""
    ) -> tuple[int, dict[str, str], bytes]:
        """Dispatch one request to the matching HTTP function: (status, headers, body)."""
        if not path.startswith(self.prefix):
            return 404, {}, b"not found"
        sub = path[len(self.prefix) :].strip("/")
        allowed: set[str] = set()
        for route in self.routes:
            matched = route.pattern.match(sub)
            if not matched:
                continue
            allowed |= route.methods
            if method not in route.methods:
                continue
            request = func.HttpRequest(
                method=method,
                url=f"http://localhost{path}" + (f"?{query}" if query else ""),
                headers=headers,
                params=dict(parse_qsl(query)),
                route_params=matched.groupdict(),
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
            # One message per poll, as a host with a batch of one would: a first alert queued
            # meanwhile is taken next (the local stores hand out first alerts first).
            for lease in _one_by_one(store, queue_name, max_messages):
                message = QueueMessage(  # type: ignore[no-untyped-call]
                    id=lease.id, body=lease.body, dequeue_count=lease.dequeue_count
                )
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


def _one_by_one(store: Any, queue_name: str, most: int) -> Iterator[Any]:
    """Up to `most` leases of `queue_name`, each polled when the one before it is settled."""
    for _ in range(most):
        leases = store.poll(queue_name, 1)
        if not leases:
            return
        yield from leases


def _route_pattern(route: str) -> re.Pattern[str]:
    """A route template as the host matches it: `silence/{token}` takes one path segment as the
    route parameter `token`."""
    parts = re.split(r"\{(\w+)\}", route.strip("/"))
    text = "".join(re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/]+)" for i, part in enumerate(parts))
    return re.compile("^" + text + "/?$")


def _arg_name(function: Callable[..., Any]) -> str:
    return next(iter(inspect.signature(function).parameters))


class LocalServer:
    """The Function App's HTTP routes on a real socket, plus a background loop that drains
    the outbox through the queue trigger and fires the digest timer, as the host would.
    Use as a context manager, or `start()` / `stop()`; `url` is set once started."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        tick_seconds: float = 1.0,
        timer_seconds: float = 60.0,
        read_timeout: float = 30.0,
        *,
        outbox_workers: int = 4,
    ) -> None:
        import function_app

        self.service = function_app.service()
        # A local run need not set the queue's app setting: the outbox the service writes is the
        # one the trigger binds, as in Azure where the deploy sets ACS_TRIAGE_OUTBOX_QUEUE.
        app_settings = {OUTBOX_QUEUE_SETTING: self.service.settings.outbox_queue, **os.environ}
        self.local = LocalHost(function_app.app, app_settings=app_settings)
        self.tick_seconds = tick_seconds
        self.timer_seconds = timer_seconds
        # Several deliveries at once, as the Functions host runs a batch of queue messages: a
        # digest that finds its destination's slots booked ahead yields them, so a first alert
        # behind it in the queue is taken by the next free worker (deliver.Deliverer).
        self.outbox_workers = max(1, outbox_workers)
        self._poll_lock = threading.Lock()
        self._poll_at = 0.0  # when the last idle worker in turn polls (time.monotonic)
        self._stop = threading.Event()
        self._server = ThreadingHTTPServer(
            (host, port), _handler(self.local, self.service.settings.max_body_bytes, read_timeout)
        )
        self._server.daemon_threads = True
        self.url = f"http://{host}:{self._server.server_address[1]}"
        self._threads: list[threading.Thread] = []

    def start(self) -> LocalServer:
        """Start serving in background threads: HTTP, the outbox's workers, and the digest timer
        each on its own, so that a webhook outage (delivery sleeping in its retries) never holds
        up digests."""
        outbox = [(self._deliver_loop, f"outbox-{n}") for n in range(self.outbox_workers)]
        for target, name in (
            (self._server.serve_forever, "http"),
            *outbox,
            (self._timer_loop, "timer"),
        ):
            thread = threading.Thread(target=target, name=f"localhost-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop serving and wait for the threads."""
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _deliver_loop(self) -> None:
        while not self._stop.wait(self._next_poll()):
            try:
                self.local.run_queue(self.service.store)
            except Exception:
                log.exception("outbox loop failed")

    def _next_poll(self) -> float:
        """Seconds until this idle worker polls the outbox again: the workers take turns, a
        tick shared out between them, so that a message queued while the outbox is idle is
        taken within tick_seconds / outbox_workers (each worker still polls once a tick), not
        when they all wake together (as they would, having found the outbox empty at once)."""
        step = self.tick_seconds / self.outbox_workers
        with self._poll_lock:
            now = time.monotonic()
            self._poll_at = max(now + step, self._poll_at + step)
            return self._poll_at - now

    def _timer_loop(self) -> None:
        while not self._stop.wait(self.timer_seconds):
            try:
                self.local.run_timers()
            except Exception:
                log.exception("timer loop failed")


def _handler(local: LocalHost, max_body: int, read_timeout: float) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # A socket timeout: a client that sends less than its Content-Length (or nothing) frees
        # its thread after this long instead of holding it forever.
        timeout = read_timeout

        def _dispatch(self) -> None:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0 or length > max_body:
                # Refuse before reading: a huge body must not cost memory.
                reason = (
                    f"body is {length} bytes; the limit is {max_body}" if length > 0 else "bad Content-Length"
                )
                self._send(
                    413 if length > 0 else 400,
                    {"Content-Type": "application/json"},
                    json.dumps({"error": reason}).encode(),
                )
                self.close_connection = True
                return
            try:
                body = self.rfile.read(length) if length else b""
            except TimeoutError:
                self._send(
                    408,
                    {"Content-Type": "application/json"},
                    json.dumps({"error": f"body not received within {read_timeout:g}s"}).encode(),
                )
                self.close_connection = True
                return
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

        def log_message(self, format: str, *args: Any) -> None:
            log.info("%s %s", self.address_string(), format % args)

    return Handler


TERMINAL = "terminal"  # the destination `serve` prints alerts to when none is configured


class TerminalDeliverer(Deliverer):
    """Prints each outbox message in its text form instead of posting it: `serve` without a
    destination shows the alerts it would have sent, rather than dropping them unseen."""

    def __init__(self, settings: Settings, store: Any, out: TextIO) -> None:
        super().__init__(settings, store)
        self.out = out
        self._lock = threading.Lock()

    def deliver(self, message: OutboxMessage) -> None:
        """Print the message's text (the text kind renders alerts as plain lines)."""
        text = message.payload_dict()["text"]
        with self._lock:  # one alert's lines never interleave with another's
            print(f"{text}\n", file=self.out, flush=True)


def start_checked(host: str, port: int, out: TextIO = sys.stdout, note: TextIO = sys.stderr) -> LocalServer:
    """Start serving once the settings pass the checks `doctor` makes; with no destination the
    alerts are printed to `out`. Raises ConfigurationError (settings) or TriageError (the port)."""
    import function_app

    settings_read, problems = check(os.environ)
    # Storage that does not answer would make every request a 503: found before listening.
    if (
        settings_read is not None
        and settings_read.storage is not None
        and configured_spec(settings_read) == "azure"
        and not problems_block(problems)
    ):
        problems += probe(settings_read)[1]
    errors = [p for p in problems if p.level == "error" and not is_no_destination(p)]
    for problem in problems:
        if problem not in errors and not is_no_destination(problem):
            print(f"{problem.level}: {problem.message}", file=note)
    if errors:
        for problem in errors:
            print(f"error: {problem.message}", file=note)
        raise ConfigurationError(
            f"serve did not start: {len(errors)} setting(s) above cannot work; fix them "
            f"(`./dev triage doctor` checks them again)"
        )
    settings = Settings.from_env()
    terminal = not [d for d in settings.destinations.values() if d.kind.postable]
    if terminal:
        printed = Destination(name=TERMINAL, format="text", url=SecretStr(TERMINAL_URL))
        settings = settings.model_copy(update={"destinations": {TERMINAL: printed}})
    service = Service(settings, telemetry=telemetry.from_env())
    service.problems += env_problems(os.environ)
    if terminal:
        service.deliverer = TerminalDeliverer(settings, service.store, out)
    function_app.configure(service)
    try:
        server = LocalServer(host, port).start()
    except OSError as err:
        raise TriageError(_bind_failure(err, host, port)) from None
    print(
        f"acs-triage listening on {server.url}{server.local.prefix}/eventgrid and "
        f"{server.local.prefix}/callbacks (health: {server.local.prefix}/health)",
        file=note,
    )
    if terminal:
        print(
            f"no destination is configured ({', '.join(destination_settings())}): each alert is "
            f"printed here instead of posted",
            file=note,
        )
    return server


def _bind_failure(err: OSError, host: str, port: int) -> str:
    if err.errno == errno.EADDRINUSE:
        return f"port {port} is already in use (another `serve`?): stop that one or choose --port N"
    if err.errno == errno.EACCES:
        return f"port {port} needs privileges to listen on: choose --port 1024 or above (default 7071)"
    if err.errno == errno.EADDRNOTAVAIL or isinstance(err, socket.gaierror):
        return f"--host {host} is not an address of this machine: use 127.0.0.1 (the default) or 0.0.0.0"
    return f"cannot listen on {host}:{port}: {err.strerror or err}"


def serve(host: str = "127.0.0.1", port: int = 7071) -> None:
    """Serve until interrupted (`python -m triage serve`)."""
    server = start_checked(host, port)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
