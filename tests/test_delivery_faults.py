"""Delivery under faults, end to end: Event Grid batches go in through LocalHost's
/api/eventgrid route, function_app's queue trigger delivers through the real Deliverer, and
the Slack-like and Teams-like sinks answer as the services do, or fail on purpose.

Time is a FakeClock shared by the app, the deliverer and the sinks: nothing here sleeps, and
waits are asserted on what the deliverer asked to sleep.

The harness (FakeClock, sms_failures, the app and sink fixtures) is also used by test_storm
and test_store_concurrency.
"""

from __future__ import annotations

import copy
import itertools
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson
import pytest
import requests
from azurite_server import (  # noqa: F401 - pytest fixtures
    STORE_KINDS,
    azure_store_fixture,
    azurite_fixture,
    make_store_fixture,
    poisoned,
)
from factories import make_guidance

import function_app
from samples import sample, sample_bytes
from tools.localhost import MAX_DEQUEUE_COUNT, LocalHost
from tools.sinks import Fault, RateLimit, SlackSink, TeamsSink
from triage.deliver import Deliverer
from triage.errors import DeliveryError
from triage.model import Category, Context, Guidance
from triage.pipeline import Triage
from triage.service import Service
from triage.settings import Settings
from triage.store import OutboxMessage

_SMS_FAILURE = sample("eventgrid/sms-delivery-failed-4007-opt-out.json")[0]
WINDOW_SECONDS = 300
START = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


# -- harness -------------------------------------------------------------------------------------
class FakeClock:
    """The one clock of a test: it moves only when advanced or slept on."""

    def __init__(self, start: datetime = START) -> None:
        self._now = start.timestamp()
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def time(self) -> float:
        with self._lock:
            return self._now

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self._now += seconds

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


def sms_failures(count: int, *, code: int = 4007, start: int = 0) -> list[dict[str, Any]]:
    """`count` Event Grid SMS delivery failures with error `code`, each its own message id
    (made from samples/eventgrid/sms-delivery-failed-4007-opt-out.json)."""
    events = []
    for n in range(start, start + count):
        event = copy.deepcopy(_SMS_FAILURE)
        message_id = f"Outgoing_2026112009{code}{n:010d}"
        event["id"] = event["data"]["messageId"] = message_id
        event["data"]["deliveryStatusDetails"] = f"ErrorCode: {code}. ErrorMessage: Message failed to deliver"
        events.append(event)
    return events


def fixed_guidance(
    code: int | None, subcode: int | None, context: Context | None, kind: str | None = None, row: str = ""
) -> Guidance:
    """A catalog stand-in: these tests are about state and delivery, not about advice."""
    return make_guidance(
        code, subcode, message="Message failed to deliver.", category=Category.UNEXPECTED_CLIENT
    )


@dataclass
class App:
    """function_app as the Functions host runs it, on LocalHost, with a FakeClock."""

    host: LocalHost
    service: Service
    store: Any
    clock: FakeClock
    answers: list[bytes] = field(default_factory=list)

    def post(self, events: list[dict[str, Any]] | bytes) -> dict[str, Any]:
        """POST an Event Grid batch to /api/eventgrid; the report the route answers."""
        body = events if isinstance(events, bytes) else orjson.dumps(events)
        headers = {"Content-Type": "application/json", "aeg-event-type": "Notification"}
        status, _, answer = self.host.http("POST", "/api/eventgrid", headers, body)
        self.answers.append(answer)
        assert status == 200, answer
        report: dict[str, Any] = orjson.loads(answer)
        return report

    def deliver(self, rounds: int = 3 * MAX_DEQUEUE_COUNT) -> tuple[int, int]:
        """Run the queue trigger until the outbox is empty: (delivered, failed attempts)."""
        delivered = failed = 0
        for _ in range(rounds):
            done, failures = self.host.run_queue(self.store)
            delivered, failed = delivered + done, failed + failures
            if not done and not failures:
                break
        return delivered, failed

    def flush(self) -> None:
        """Fire the digest timer."""
        self.host.run_timers()


@pytest.fixture(name="clock")
def clock_fixture() -> FakeClock:
    return FakeClock()


@pytest.fixture(name="make_app")
def make_app_fixture(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> Callable[..., App]:
    """make_app(store, slack_url=…, teams_url=…, **ACS_TRIAGE settings) → App."""
    monkeypatch.setattr(function_app, "_service", None)  # restored after the test

    def make(store: Any, **settings: str) -> App:
        env = {"ACS_TRIAGE_GROUP_WINDOW_SECONDS": str(WINDOW_SECONDS)}
        env.update({f"ACS_TRIAGE_{name.upper()}": value for name, value in settings.items()})
        config = Settings.from_env(env)
        service = Service(config, store, clock=clock.now)
        service.triage = Triage(config, store, lookup=fixed_guidance)
        service.deliverer = Deliverer(config, store, sleep=clock.sleep, clock=clock.time)
        function_app.configure(service)
        return App(LocalHost(function_app.app), service, store, clock)

    return make


@pytest.fixture(name="slack")
def slack_fixture(clock: FakeClock) -> Iterator[SlackSink]:
    with SlackSink(clock=clock.time) as sink:
        yield sink


@pytest.fixture(name="teams")
def teams_fixture(clock: FakeClock) -> Iterator[TeamsSink]:
    with TeamsSink(clock=clock.time) as sink:
        yield sink


def waited_in_order(clock: FakeClock, expected: list[float]) -> bool:
    """True when the deliverer slept these durations, in this order (pacing waits between)."""
    remaining = iter(clock.sleeps)
    return all(any(abs(s - e) < 1e-6 for s in remaining) for e in expected)


# -- retries -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", STORE_KINDS)
def test_a_webhook_that_answers_500_then_recovers_gets_the_alert_exactly_once(
    kind: str,
    make_store: Callable[[str], Any],
    make_app: Callable[..., App],
    slack: SlackSink,
    clock: FakeClock,
) -> None:
    slack.fail_first(2, status=500, body=b"rollup_error")
    app = make_app(make_store(kind), slack_url=slack.url)
    assert app.post(sms_failures(1))["alerted"] == 1

    assert app.deliver() == (1, 0)
    assert [r.status for r in slack.received] == [500, 500, 200]
    assert len(slack.accepted) == 1
    # The deliverer's back-off between attempts (at least; Slack's 1 s pace may add to it).
    first, second, third = (r.at for r in slack.received)
    assert second - first >= 0.5 and third - second >= 2.0


def test_an_outage_longer_than_the_in_process_retries_is_delivered_on_a_later_dequeue(
    make_store: Callable[[str], Any], make_app: Callable[..., App], slack: SlackSink
) -> None:
    slack.fail_first(4, status=503)
    app = make_app(make_store("memory"), slack_url=slack.url)
    app.post(sms_failures(1))

    assert app.deliver() == (1, 1)  # three posts fail, the message goes back, then gets through
    assert [r.status for r in slack.received] == [503, 503, 503, 503, 200]
    assert len(slack.accepted) == 1


def test_a_dropped_connection_is_retried_and_the_alert_delivered_once(
    make_store: Callable[[str], Any], make_app: Callable[..., App], slack: SlackSink
) -> None:
    slack.drop_first(1)
    app = make_app(make_store("memory"), slack_url=slack.url)
    app.post(sms_failures(1))

    assert app.deliver() == (1, 0)
    assert [r.status for r in slack.received] == [0, 200]  # 0: closed without an answer
    assert len(slack.accepted) == 1


def test_a_429_with_retry_after_makes_the_deliverer_wait_that_long_then_deliver(
    make_store: Callable[[str], Any], make_app: Callable[..., App], slack: SlackSink, clock: FakeClock
) -> None:
    slack.fail_first(1, status=429, body=b"rate_limited", headers={"Retry-After": "7"})
    app = make_app(make_store("memory"), slack_url=slack.url)
    app.post(sms_failures(1))

    assert app.deliver() == (1, 0)
    assert 7.0 in clock.sleeps
    assert 0.5 not in clock.sleeps  # Retry-After replaces the default backoff
    assert [r.status for r in slack.received] == [429, 200]


def test_a_teams_429_without_retry_after_backs_off_and_delivers(
    make_store: Callable[[str], Any], make_app: Callable[..., App], teams: TeamsSink, clock: FakeClock
) -> None:
    teams.fail_first(1, status=429)
    app = make_app(make_store("memory"), teams_url=teams.url)
    app.post(sms_failures(1))

    assert app.deliver() == (1, 0)
    assert waited_in_order(clock, [0.5])
    assert [r.status for r in teams.received] == [429, 202]


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_pacing_through_the_store_keeps_instances_under_a_one_per_second_limit(
    kind: str, make_store: Callable[[str], Any], clock: FakeClock
) -> None:
    # Two instances with their own store objects over the same state post to one webhook
    # that allows one post a second and no burst: the shared send slot keeps them apart.
    with SlackSink(clock=clock.time, rate_limit=RateLimit(1.0, burst=1)) as sink:
        config = Settings.from_env({"ACS_TRIAGE_SLACK_URL": sink.url})
        instances = [
            Deliverer(config, make_store(kind), sleep=clock.sleep, clock=clock.time) for _ in range(2)
        ]
        for n in range(6):
            instances[n % 2].deliver(OutboxMessage(f"m{n}", "slack", {"text": f"alert {n}"}))
        assert [r.status for r in sink.received] == [200] * 6
        times = [r.at for r in sink.received]
        assert all(later - earlier >= 1.0 for earlier, later in itertools.pairwise(times))


# -- status codes --------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", STORE_KINDS)
def test_teams_202_with_an_empty_body_counts_as_delivered(
    kind: str, make_store: Callable[[str], Any], make_app: Callable[..., App], teams: TeamsSink
) -> None:
    store = make_store(kind)
    app = make_app(store, teams_url=teams.url)
    app.post(sms_failures(1))

    assert app.deliver() == (1, 0)
    [received] = teams.received
    assert (received.status, received.answer) == (202, b"")
    assert received.json["type"] == "message"
    assert store.poll("acs-triage-outbox", 32) == []
    assert poisoned(store) == []


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_a_400_is_posted_once_and_goes_to_the_poison_queue_at_once(
    kind: str, make_store: Callable[[str], Any], make_app: Callable[..., App], slack: SlackSink
) -> None:
    slack.fail_first(100, status=400, body=b"invalid_payload")
    store = make_store(kind)
    app = make_app(store, slack_url=slack.url)
    app.post(sms_failures(1))

    # The queue function settles the message itself: posting a refused payload again cannot help.
    assert app.deliver() == (1, 0)
    assert len(slack.received) == 1
    [dead] = poisoned(store)
    assert dead.destination == "slack"
    assert dead.payload == slack.received[0].json
    assert store.poll("acs-triage-outbox", 32) == []


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_a_webhook_that_keeps_failing_with_500_ends_in_poison_after_max_dequeue_count(
    kind: str, make_store: Callable[[str], Any], make_app: Callable[..., App], slack: SlackSink
) -> None:
    slack.fail_first(1000, status=500, body=b"rollup_error")
    store = make_store(kind)
    app = make_app(store, slack_url=slack.url)
    app.post(sms_failures(1))

    assert app.deliver() == (0, MAX_DEQUEUE_COUNT)
    [dead] = poisoned(store)
    assert dead.destination == "slack"
    assert store.poll("acs-triage-outbox", 32) == []


def test_slack_refusing_the_blocks_still_gets_the_alert_as_text(
    make_store: Callable[[str], Any], make_app: Callable[..., App], slack: SlackSink
) -> None:
    slack.fail_first(1, status=400, body=b"invalid_blocks")
    app = make_app(make_store("memory"), slack_url=slack.url)
    app.post(sms_failures(1))

    assert app.deliver() == (1, 0)
    [text_only] = slack.accepted
    assert set(text_only) == {"text"}
    assert "4007" in text_only["text"]


# -- at-least-once input -------------------------------------------------------------------------
@pytest.mark.parametrize("kind", STORE_KINDS)
def test_a_redelivered_event_grid_batch_alerts_once(
    kind: str,
    make_store: Callable[[str], Any],
    make_app: Callable[..., App],
    slack: SlackSink,
    clock: FakeClock,
) -> None:
    batch = sample_bytes("eventgrid/sms-batch-mixed.json")  # one delivered, three failed SMS
    app = make_app(make_store(kind), slack_url=slack.url)
    first = app.post(batch)
    clock.advance(20)
    again = app.post(batch)

    assert (first["alerted"], first["successes"]) == (3, 1)
    assert (again["alerted"], again["grouped"], again["duplicates"]) == (0, 0, 3)
    app.deliver()
    clock.advance(WINDOW_SECONDS)
    app.flush()  # nothing was held back, so no digest either: only each burst's resolved notice
    app.deliver()
    posted = [p["text"] for p in slack.accepted]
    assert len([t for t in posted if not t.startswith("Resolved:")]) == 3
    assert len([t for t in posted if t.startswith("Resolved: ")]) == 3
    assert len(posted) == 6


# -- secrets -------------------------------------------------------------------------------------
def test_the_webhook_url_never_appears_in_logs_errors_or_answers(
    make_store: Callable[[str], Any],
    make_app: Callable[..., App],
    slack: SlackSink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="triage")
    token = slack.path.rsplit("/", 1)[-1]
    slack.script(
        [Fault(500), Fault(drop=True), Fault(429, headers={"Retry-After": "1"})]
        + [Fault(400, b"invalid_payload")] * MAX_DEQUEUE_COUNT
    )
    store = make_store("memory")
    app = make_app(store, slack_url=slack.url)
    app.post(sms_failures(1))
    app.deliver()
    errors: list[str] = []
    for fault in (Fault(500), Fault(drop=True), Fault(404, b"no_service")):
        slack.script([fault] * 3)
        try:
            app.service.deliver(OutboxMessage("m", "slack", {"text": "x"}))
        except DeliveryError as err:
            errors.append(f"{err!s} {err!r}")

    assert len(errors) == 3 and poisoned(store)
    texts = [
        caplog.text,
        *errors,
        *(a.decode() for a in app.answers),
        msgspec.json.encode(poisoned(store)).decode(),
    ]
    texts += [r.exc_text or "" for r in caplog.records]
    for text in texts:
        assert token not in text
        assert f"127.0.0.1:{slack.port}" not in text


# -- the sinks behave like the services --------------------------------------------------------
def text(kind: str, length: int) -> dict[str, str]:
    return {"type": kind, "text": "x" * length}


DIVIDER = {"type": "divider"}


@pytest.mark.parametrize(
    ("payload", "status", "answer"),
    [
        (b"{not json", 400, b"invalid_payload"),
        (b"[]", 400, b"invalid_payload"),
        (b"{}", 400, b"no_text"),
        ({"text": "ok"}, 200, b"ok"),
        ({"text": "t", "blocks": [DIVIDER] * 50}, 200, b"ok"),
        ({"text": "t", "blocks": [DIVIDER] * 51}, 400, b"invalid_blocks"),
        (
            {"text": "t", "blocks": [DIVIDER], "attachments": [{"blocks": [DIVIDER] * 50}]},
            400,
            b"invalid_blocks",
        ),
        ({"blocks": [{"type": "header", "text": text("plain_text", 151)}]}, 400, b"invalid_blocks"),
        ({"blocks": [{"type": "section", "text": text("mrkdwn", 3001)}]}, 400, b"invalid_blocks"),
        ({"blocks": [{"type": "section", "fields": [text("mrkdwn", 1)] * 11}]}, 400, b"invalid_blocks"),
        ({"blocks": [{"type": "section", "fields": [text("mrkdwn", 2001)]}]}, 400, b"invalid_blocks"),
        ({"blocks": [{"type": "section", "fields": [text("mrkdwn", 2000)] * 10}]}, 200, b"ok"),
    ],
)
def test_the_slack_sink_answers_as_slack_does(
    payload: bytes | dict[str, Any], status: int, answer: bytes
) -> None:
    if isinstance(payload, dict):
        payload = orjson.dumps(payload)
    with SlackSink(rate_limit=False) as sink:
        response = requests.post(sink.url, data=payload, timeout=5)
        assert (response.status_code, response.content) == (status, answer)
        wrong = requests.post(sink.base_url + "/services/T0/B0/other", data=payload, timeout=5)
        assert (wrong.status_code, wrong.content) == (404, b"no_service")


def test_the_slack_sink_answers_429_with_retry_after_above_one_post_a_second(clock: FakeClock) -> None:
    with SlackSink(clock=clock.time, rate_limit=RateLimit(1.0, burst=1)) as sink:
        body = orjson.dumps({"text": "hi"})
        assert requests.post(sink.url, data=body, timeout=5).status_code == 200
        clock.advance(0.25)
        throttled = requests.post(sink.url, data=body, timeout=5)
        assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "1")
        clock.advance(1.0)
        assert requests.post(sink.url, data=body, timeout=5).status_code == 200
        assert len(sink.accepted) == 2


@pytest.mark.parametrize("retry_after", [True, False])
def test_the_teams_sink_answers_as_workflows_do(clock: FakeClock, retry_after: bool) -> None:
    card = {"contentType": "application/vnd.microsoft.card.adaptive", "content": {"type": "AdaptiveCard"}}
    good = orjson.dumps({"type": "message", "attachments": [card]})
    with TeamsSink(clock=clock.time, rate_limit=RateLimit(4.0, burst=4, retry_after=retry_after)) as sink:
        for _ in range(4):
            accepted = requests.post(sink.url, data=good, timeout=5)
            assert (accepted.status_code, accepted.content) == (202, b"")
        throttled = requests.post(sink.url, data=good, timeout=5)
        assert throttled.status_code == 429
        assert ("Retry-After" in throttled.headers) is retry_after
        clock.advance(1.0)
        big = orjson.dumps({"type": "message", "attachments": [card], "pad": "x" * 28 * 1024})
        assert requests.post(sink.url, data=big, timeout=5).status_code == 413
        assert requests.post(sink.url, data=orjson.dumps({"type": "message"}), timeout=5).status_code == 400
        assert requests.post(sink.url, data=orjson.dumps(card), timeout=5).status_code == 400
        assert requests.post(sink.base_url + "/elsewhere", data=good, timeout=5).status_code == 404
        assert len(sink.accepted) == 4


def test_a_sink_stops_cleanly_and_frees_its_port() -> None:
    sink = SlackSink(rate_limit=False).start()
    url = sink.url
    with requests.Session() as session:  # a kept-alive connection must not hold stop() up
        assert session.post(url, data=b'{"text": "x"}', timeout=5).status_code == 200
        sink.stop()
        with pytest.raises(requests.ConnectionError):
            session.post(url, data=b'{"text": "x"}', timeout=5)
