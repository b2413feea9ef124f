"""acs-triage as an Azure Functions app (Python v2 programming model).

Routes (the host adds the /api prefix):
  POST, OPTIONS /api/eventgrid   Event Grid deliveries (both schemas) and both handshakes (FUNCTION)
  POST          /api/callbacks   Call Automation callbacks (CloudEvents arrays) (FUNCTION)
  GET           /api/health      settings and storage checked; 200 or 503 (ANONYMOUS, nothing secret)
  GET, POST     /api/silence/<token>  the "Silence…" page an alert links to (ANONYMOUS: the signed
                                 token is the credential; 404 without a valid one)
Plus a queue trigger that delivers the outbox (the queue named by the ACS_TRIAGE_OUTBOX_QUEUE
app setting), a timer that posts burst digests and one that posts the daily report when
ACS_TRIAGE_REPORT_SCHEDULE says so.
Each function is a few lines: the behaviour lives in triage.service.
"""

from __future__ import annotations

import logging
import os
import threading

import azure.functions as func
import orjson

from triage import redact
from triage.checks import check
from triage.errors import ConfigurationError, DeliveryError
from triage.service import Answer, Service, handshake_from_env, health_answer, log_once
from triage.settings import OUTBOX_QUEUE_SETTING, STORAGE_SETTING
from triage.store import OutboxMessage

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

_service: Service | None = None
_lock = threading.Lock()


def service() -> Service:
    """The process's Service, built on first use from the app settings."""
    global _service  # noqa: PLW0603 - one per worker process, like the host's own clients
    if _service is None:
        with _lock:
            if _service is None:
                _service = Service.from_env()
                redact.install(_service.settings)  # no webhook URL or key in any log line
    return _service


def configure(instance: Service) -> None:
    """Use this Service instead of one built from the environment (local tools, tests)."""
    global _service  # noqa: PLW0603
    with _lock:
        _service = instance
        redact.install(instance.settings)


def _respond(answer: Answer) -> func.HttpResponse:
    return func.HttpResponse(answer.body, status_code=answer.status, headers=answer.headers)


def _handle(route: str, req: func.HttpRequest) -> func.HttpResponse:
    try:
        current = service()
    except ConfigurationError as err:
        # The handshake needs no destination: a subscription made while a Key Vault reference
        # is still unresolved must not fail for it.
        if route == "eventgrid":
            handshake = handshake_from_env(
                os.environ, req.method.upper(), req.headers, req.params, req.get_body()
            )
            if handshake is not None:
                return _respond(handshake)
        # Settings that cannot work: 503 with what to fix, so Event Grid retries once it is fixed.
        log_once(str(err))
        return _respond(Answer.error(503, str(err)))
    return _respond(current.handle_http(route, req.method.upper(), req.headers, req.params, req.get_body()))


@app.route(route="eventgrid", methods=["POST", "OPTIONS"])
def eventgrid(req: func.HttpRequest) -> func.HttpResponse:
    """Event Grid webhook: SubscriptionValidation, CloudEvents OPTIONS handshake, events."""
    return _handle("eventgrid", req)


@app.route(route="callbacks", methods=["POST"])
def callbacks(req: func.HttpRequest) -> func.HttpResponse:
    """Call Automation callback URI (give it as callbackUri / operationCallbackUri)."""
    return _handle("callbacks", req)


# Anonymous: a person opens it from a chat alert, without a function key. The signed token in
# the path is the credential; anything else answers 404 (triage.silence_page).
@app.route(route="silence/{token}", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
def silence(req: func.HttpRequest) -> func.HttpResponse:
    """The "Silence…" page of an alert: GET shows it, POST starts or expires a silence."""
    token = req.route_params.get("token", "")
    try:
        current = service()
    except ConfigurationError:
        return _respond(Answer(404, b"Not found\n", {"Content-Type": "text/plain; charset=utf-8"}))
    return _respond(current.silence_page(req.method.upper(), token, req.headers, req.get_body()))


@app.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    """Settings valid and storage answering: 200 {"status": "ok"}; else 503 with the problems."""
    try:
        current = service()
    except ConfigurationError:
        return _respond(health_answer(check(os.environ)[1]))
    return _respond(current.health())


# The queue's name is an app setting, resolved by the host, so that trigger and store agree.
@app.queue_trigger(arg_name="msg", queue_name=f"%{OUTBOX_QUEUE_SETTING}%", connection=STORAGE_SETTING)
def deliver(msg: func.QueueMessage) -> None:
    """Post one rendered alert. A failure worth retrying raises, so the host retries; after
    maxDequeueCount the message moves to the poison queue, so a webhook outage loses nothing.
    A payload the webhook refuses (4xx) goes to the poison queue at once. After a successful
    post, that destination's recently poisoned messages are re-queued."""
    message = OutboxMessage.from_dict(orjson.loads(msg.get_body()))
    logging.info("delivering %s (dequeue count %s)", message.id, msg.dequeue_count)
    try:
        posted = service().deliver(message, msg.dequeue_count or 1)
    except DeliveryError as err:
        if err.retry:
            raise
        # The webhook refused this payload (a 4xx): posting it again cannot help.
        service().store.dead_letter(message, str(err))
        return
    if posted:  # (else its destination holds it off: a copy waits in the queue, this one is done)
        # The destination takes posts again: what an outage poisoned goes back to the outbox.
        service().redrive_after_success(message.destination)


@app.timer_trigger(schedule="0 * * * * *", arg_name="timer", run_on_startup=False, use_monitor=False)
def flush(timer: func.TimerRequest) -> None:
    """Every minute: one digest per burst whose grouping window has ended; then a look at the
    poison queue (a probe of a destination that failed, a notice before alerts age out)."""
    report = service().flush()
    if report.digests:
        logging.info("posted %d digest(s)", report.digests)
    service().redrive_tick()


# Every 5 minutes, whatever the setting: a timer bound to a missing %SETTING% would fail the
# host's indexing of the whole app. The schedule itself is read and kept by report_tick.
@app.timer_trigger(schedule="0 */5 * * * *", arg_name="timer", run_on_startup=False, use_monitor=False)
def report(timer: func.TimerRequest) -> None:
    """The daily report, posted once per scheduled time across instances (off when unset)."""
    posted = service().report_tick()
    if posted is not None:
        logging.info("daily report queued: %d failures", posted.total)
