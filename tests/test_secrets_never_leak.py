"""Webhook URLs, the shared secret and credential headers never show up where people can read them:
logs (at DEBUG, urllib3 included), exception texts, HTTP answers, rendered alerts, reprs.
And the Event Grid handshake never makes the app reach out to a URL from the payload.

The webhooks are loopback servers that fail in every way a real one can: 500, 429, 404, an
error page that echoes the request line, a dropped connection, no answer in time.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import function_app
from samples import sample, sample_bytes
from tools.localhost import LocalHost
from triage import redact
from triage.deliver import Deliverer
from triage.errors import DeliveryError
from triage.render import render
from triage.service import Service
from triage.settings import Settings
from triage.store import OutboxMessage
from triage.store.memory import MemoryStore

TEAMS_SIG = "SUPERSECRETsig0x7f3a9c41d2e8b6"
SLACK_TOKEN = "SUPERSECRETslack5Hq8Lm2Np4Rt"
SHARED_SECRET = "SUPERSECRETshared9Vb3"
MARKER = "SUPERSECRET"
BEHAVIOURS = ("500", "429", "404", "echo", "close", "slow")
HOST = LocalHost(function_app.app)
FAILURE = sample_bytes("callbacks/play-failed-400-8535.json")


class Webhooks:
    """One loopback server; the first path segment says how it fails."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                owner.hits.append(self.path)
                behaviour = self.path.split("/")[1]
                if behaviour == "close":
                    self.close_connection = True
                    return  # no status line: the client sees the connection drop
                if behaviour == "slow":
                    time.sleep(0.5)
                status, body, extra = {
                    "500": (500, "internal error", {}),
                    "429": (429, "rate limited", {"Retry-After": "0"}),
                    "404": (404, "no such workflow", {}),
                    # Plenty of servers and proxies do this: the request line in the error page.
                    "echo": (400, f"Cannot POST {self.path}", {}),
                    "slow": (200, "1", {}),
                }[behaviour]
                payload = body.encode()
                try:
                    self.send_response(status)
                    for key, value in extra.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting ("slow"): that is the point

            def do_GET(self) -> None:
                owner.hits.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def webhooks() -> Iterator[Webhooks]:
    server = Webhooks()
    yield server
    server.close()


def teams_url(base: str, behaviour: str) -> str:
    return (
        f"{base}/{behaviour}/workflows/3f1c0d2e9a8b47c6b5d4e3f2a1b0c9d8/triggers/manual/paths/invoke"
        f"?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={TEAMS_SIG}"
    )


def slack_url(base: str, behaviour: str) -> str:
    return f"{base}/{behaviour}/services/T0AAAAAAA/B0BBBBBBB/{SLACK_TOKEN}"


def leaky_settings(base: str, behaviours: tuple[str, ...] = BEHAVIOURS) -> Settings:
    env = {
        "ACS_TRIAGE_SHARED_SECRET": SHARED_SECRET,
        "ACS_TRIAGE_HTTP_TIMEOUT_SECONDS": "0.15",
    }
    for behaviour in behaviours:
        env[f"ACS_TRIAGE_DEST_T{behaviour.upper()}_URL"] = teams_url(base, behaviour)
        env[f"ACS_TRIAGE_DEST_T{behaviour.upper()}_FORMAT"] = "teams"
        env[f"ACS_TRIAGE_DEST_S{behaviour.upper()}_URL"] = slack_url(base, behaviour)
        env[f"ACS_TRIAGE_DEST_S{behaviour.upper()}_FORMAT"] = "slack"
    return Settings.from_env(env)


@pytest.fixture
def redaction() -> Iterator[None]:
    yield
    redact.uninstall()


def assert_no_secret(text: str, where: str) -> None:
    # Every secret starts with MARKER, so one cut short by an excerpt is caught too.
    assert MARKER not in text, f"{where} contains a secret: {text[:300]!r}"


def record_texts(records: list[logging.LogRecord]) -> Iterator[tuple[str, str]]:
    for record in records:
        where = f"log record {record.name}:{record.levelname}"
        yield record.getMessage(), where
        if record.exc_text:
            yield record.exc_text, where + " traceback"
        if record.exc_info and record.exc_info[1] is not None:
            yield "".join(traceback.format_exception(record.exc_info[1])), where + " exc_info"
        if record.stack_info:
            yield record.stack_info, where + " stack"


@dataclass
class Run:
    answers: list[bytes]
    store: MemoryStore


def run_through_the_app(settings: Settings) -> Run:
    """POST a failure through the route, then let the queue trigger try every destination."""
    store = MemoryStore()
    service = Service(settings, store)
    service.deliverer.sleep = lambda seconds: None  # keep the in-process retries instant
    function_app.configure(service)
    try:
        answers = [HOST.http("POST", "/api/callbacks", {}, FAILURE, f"secret={SHARED_SECRET}")[2]]
        answers.append(HOST.http("POST", "/api/callbacks", {}, FAILURE, "secret=wrong")[2])
        HOST.run_queue(store)
    finally:
        function_app.configure(Service(Settings.from_env({}), MemoryStore()))
    return Run(answers, store)


def test_failed_deliveries_leave_no_secret_in_any_log_record_even_at_debug(
    webhooks: Webhooks, caplog: pytest.LogCaptureFixture, redaction: None
) -> None:
    settings = leaky_settings(webhooks.base)
    redact.install(settings)
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="urllib3")  # as loud as an operator could make it
    run_through_the_app(settings)

    for behaviour in BEHAVIOURS:
        assert any(hit.startswith(f"/{behaviour}/") for hit in webhooks.hits), behaviour
    urllib3_lines = [r.getMessage() for r in caplog.records if r.name.startswith("urllib3")]
    assert any('"POST <redacted> HTTP/1.1"' in line for line in urllib3_lines)
    assert any("queue function failed" in r.getMessage() for r in caplog.records)
    for text, where in record_texts(caplog.records):
        assert_no_secret(text, where)
    assert_no_secret(caplog.text, "formatted log")


def test_install_quiets_urllib3_request_lines(
    webhooks: Webhooks, caplog: pytest.LogCaptureFixture, redaction: None
) -> None:
    settings = leaky_settings(webhooks.base, ("500",))
    redact.install(settings)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(DeliveryError):
        Deliverer(settings, MemoryStore(), sleep=lambda s: None).deliver(
            OutboxMessage("m1", "t500", {"text": "hello"})
        )
    assert not [r for r in caplog.records if r.name.startswith("urllib3") and r.levelno < logging.INFO]


@pytest.mark.parametrize("behaviour", ["500", "429", "404", "close", "slow"])
def test_delivery_errors_name_the_destination_never_its_url(webhooks: Webhooks, behaviour: str) -> None:
    settings = leaky_settings(webhooks.base, (behaviour,))
    deliverer = Deliverer(settings, MemoryStore(), sleep=lambda s: None)
    for name in (f"t{behaviour}", f"s{behaviour}"):
        with pytest.raises(DeliveryError) as caught:
            deliverer.deliver(OutboxMessage("m1", name, {"text": "hello"}))
        err = caught.value
        assert err.args[0].startswith(f"{name}: ")
        for text in (str(err), repr(err), "".join(traceback.format_exception(err))):
            assert_no_secret(text, f"DeliveryError for {behaviour}")
            assert webhooks.base not in text


def test_an_error_page_that_echoes_the_request_line_does_not_put_the_url_in_the_error(
    webhooks: Webhooks,
) -> None:
    settings = leaky_settings(webhooks.base, ("echo",))
    deliverer = Deliverer(settings, MemoryStore(), sleep=lambda s: None)
    for name in ("techo", "secho"):
        with pytest.raises(DeliveryError) as caught:
            deliverer.deliver(OutboxMessage("m1", name, {"text": "hello"}))
        assert_no_secret(str(caught.value), "DeliveryError for an echoing error page")


def test_redact_url_removes_every_identifying_part_of_a_webhook_url(webhooks: Webhooks) -> None:
    teams, slack = teams_url(webhooks.base, "echo"), slack_url(webhooks.base, "echo")
    cases = {
        teams: [teams, f"Cannot POST {teams[len(webhooks.base) :]}", f"signature {TEAMS_SIG} expired"],
        slack: [slack, f"Cannot POST {slack[len(webhooks.base) :]}", f"no_team for {SLACK_TOKEN}"],
    }
    for url, texts in cases.items():
        for text in texts:
            assert_no_secret(redact.redact_url(text, url), "redact_url")


def test_http_answers_and_rendered_alerts_carry_no_secret(webhooks: Webhooks) -> None:
    settings = leaky_settings(webhooks.base, ("500",))
    run = run_through_the_app(settings)
    for answer in run.answers:
        assert_no_secret(answer.decode(), "HTTP answer")
    messages = list(run.store.outbox) + list(run.store.poison)
    assert messages
    for message in messages:
        assert_no_secret(json.dumps(message.to_dict()), f"outbox message for {message.destination}")


def test_rendering_an_alert_in_every_format_shows_no_secret() -> None:
    from factories import make_alert

    for fmt in ("teams", "slack", "text"):
        assert_no_secret(json.dumps(render(make_alert(), fmt)), f"{fmt} rendering")


def test_settings_and_destinations_never_print_their_urls(webhooks: Webhooks) -> None:
    settings = leaky_settings(webhooks.base)
    texts = [repr(settings), str(settings), settings.model_dump_json(), str(settings.model_dump())]
    for destination in settings.destinations.values():
        texts += [repr(destination), str(destination), f"{destination}", destination.model_dump_json()]
    for text in texts:
        assert_no_secret(text, "settings text")
        assert webhooks.base not in text
        assert "/services/" not in text and "/workflows/" not in text


def test_a_logged_header_dump_or_query_string_is_redacted(
    caplog: pytest.LogCaptureFixture, redaction: None
) -> None:
    redact.install(leaky_settings("https://hooks.example"))
    caplog.set_level(logging.DEBUG)
    log = logging.getLogger("triage.anything")
    jwt_like = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJhY3MifQ.c2lnbmF0dXJlLWJ5dGVz"
    log.debug("headers %s", {"Authorization": f"Bearer {jwt_like}", "aeg-sas-key": "k3yMaterial"})
    log.info("request to /api/eventgrid?secret=%s&x=1", SHARED_SECRET)
    log.info("request to /api/eventgrid?code=functionKeyValue123")
    log.warning("conn DefaultEndpointsProtocol=https;AccountName=a;AccountKey=c3RvcmFnZUtleQ==;")
    text = caplog.text
    for secret in (jwt_like, "k3yMaterial", SHARED_SECRET, "functionKeyValue123", "c3RvcmFnZUtleQ=="):
        assert secret not in text
    assert "'Authorization': 'Bearer <redacted>'" in text
    assert "secret=<redacted>&x=1" in text and "AccountKey=<redacted>" in text


def test_an_exception_that_quotes_a_url_is_redacted_in_the_traceback(
    caplog: pytest.LogCaptureFixture, redaction: None
) -> None:
    url = slack_url("https://hooks.example", "500")
    redact.install(leaky_settings("https://hooks.example"))
    caplog.set_level(logging.DEBUG)
    try:
        raise ConnectionError(f"Max retries exceeded with url: {url}")
    except ConnectionError:
        logging.getLogger("azure.core").exception("post failed")
    assert SLACK_TOKEN not in caplog.text
    assert "Max retries exceeded with url: <redacted>" in caplog.text
    assert "ConnectionError" in caplog.text  # the traceback is still there, redacted


def test_ordinary_log_lines_are_left_alone(caplog: pytest.LogCaptureFixture, redaction: None) -> None:
    redact.install(leaky_settings("https://hooks.example"))
    caplog.set_level(logging.INFO)
    line = "delivered 4f2a to teams: Azure Communication Services triggers workflows (2016-06-01)"
    logging.getLogger("triage").info(line)
    assert caplog.records[-1].getMessage() == line


def test_overlapping_secrets_are_each_redacted_whole() -> None:
    # The shorter secret starts first and runs into the longer one: taken left to right it would
    # consume the longer one's start, and what follows would no longer match it.
    longer, shorter = "tokenABCDEFGH12345678", "Xprefix-token"
    redactor = redact.Redactor([shorter, longer])
    text = redactor.redact(f"posted Xprefix-tokenABCDEFGH12345678 and {shorter} alone")
    assert "ABCDEFGH" not in text and "Xprefix-token" not in text
    assert text == "posted Xprefix-<redacted> and <redacted> alone"


def test_install_twice_replaces_the_secrets_and_uninstall_restores_logging(redaction: None) -> None:
    before = logging.getLogRecordFactory()
    redact.install(leaky_settings("https://hooks.example"))
    redact.install(Settings.from_env({"ACS_TRIAGE_SHARED_SECRET": "another-secret-1"}))
    record = logging.getLogger("triage").makeRecord(
        "triage", logging.INFO, "f", 1, "%s %s", ("another-secret-1", SHARED_SECRET), None
    )
    assert record.getMessage() == f"<redacted> {SHARED_SECRET}"
    redact.uninstall()
    assert logging.getLogRecordFactory() is before


def test_the_validation_handshake_never_fetches_the_validation_url(
    webhooks: Webhooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = sample("eventgrid/subscription-validation.json")
    doc[0]["data"]["validationUrl"] = f"{webhooks.base}/validate?id=1&token=abc"
    body = json.dumps(doc).encode()
    function_app.configure(Service(Settings.from_env({}), MemoryStore()))
    outbound: list[Any] = []

    def no_network(*args: Any, **kwargs: Any) -> Any:
        outbound.append(args)
        raise AssertionError("the handshake tried to open a connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    hits_before = len(webhooks.hits)
    status, _, answer = HOST.http(
        "POST", "/api/eventgrid", {"aeg-event-type": "SubscriptionValidation"}, body
    )
    callback = f"{webhooks.base}/validate-cloudevents"
    options = HOST.http(
        "OPTIONS",
        "/api/eventgrid",
        {"WebHook-Request-Origin": "eventgrid.azure.net", "WebHook-Request-Callback": callback},
        b"",
    )
    monkeypatch.undo()
    assert status == 200 and json.loads(answer) == {"validationResponse": doc[0]["data"]["validationCode"]}
    assert options[0] == 200
    assert outbound == []
    time.sleep(0.05)  # a fetch started in the background would have landed by now
    assert len(webhooks.hits) == hits_before
