"""Poisoned alerts do not wait for luck. The minute timer probes a destination whose alerts were
poisoned (one of them goes back to the outbox, after a back-off that grows with the outage); once
a post succeeds the rest follow at the destination's pace; /api/health shows how long the oldest
has waited; and before poisoned alerts leave the automatic re-drive window, every other
destination is told, once, that N alerts could not be delivered. On every store (SQLite and
Azurite among them), through function_app as the Functions host runs it.

The clock is a FakeClock starting now: the stores' poison records (Azurite's insertion times are
real) and the deliverer's clock agree about ages."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from azurite_server import STORE_KINDS
from test_delivery_faults import App, FakeClock, sms_failures

from tools.localhost import MAX_DEQUEUE_COUNT
from tools.sinks import PagerDutySink, SlackSink, TeamsSink, WebhookSink
from triage.store.memory import MemoryStore
from triage.store.sqlite import SqliteStore

ATTEMPTS = 3  # posts one dequeue makes (the deliverer's in-process retries)


@pytest.fixture(name="clock")
def clock_now() -> FakeClock:
    return FakeClock(datetime.now(UTC))


@pytest.fixture(name="store_of")
def store_of_fixture(
    request: pytest.FixtureRequest, tmp_path: Any, clock: FakeClock
) -> Iterator[Callable[[str], Any]]:
    opened: list[Any] = []

    def make(kind: str) -> Any:
        if kind == "memory":
            opened.append(MemoryStore(clock=clock.time))
        elif kind == "sqlite":
            opened.append(SqliteStore(tmp_path / "state.sqlite3", clock=clock.time))
        else:
            opened.append(request.getfixturevalue("azure_store")())
        return opened[-1]

    yield make
    for store in opened:
        store.close()


def poison_alerts(app: App, sink: Any, count: int) -> None:
    """`count` alerts (one per code) that every try fails: they end in the poison queue."""
    sink.fail_first(count * MAX_DEQUEUE_COUNT * ATTEMPTS, status=503)
    for n in range(count):
        app.post(sms_failures(1, code=4100 + n, start=n))
    assert app.deliver() == (0, count * MAX_DEQUEUE_COUNT)
    assert app.store.oldest_poisoned(app.clock.time()) is not None


def health(app: App) -> dict[str, Any]:
    status, _, body = app.host.http("GET", "/api/health", {}, b"")
    assert status == 200, body
    doc: dict[str, Any] = orjson.loads(body)
    return doc


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_a_destination_that_answers_again_gets_its_poisoned_alerts_without_a_new_failure(
    kind: str, store_of: Callable[[str], Any], make_app: Callable[..., App], clock: FakeClock
) -> None:
    with SlackSink(clock=clock.time, rate_limit=False) as slack:
        app = make_app(store_of(kind), slack_url=slack.url)
        poison_alerts(app, slack, 3)
        failed = len(slack.received)
        clock.advance(120)
        assert health(app)["poison_oldest_seconds"] >= 120  # how long the oldest has waited

        app.flush()  # the minute timer: digests, then the probe (no new alert comes in)
        assert app.deliver() == (3, 0)  # the probe, then the rest once it got through
        posted = slack.received[failed:]
        assert [r.status for r in posted] == [200] * 3
        assert len({r.body for r in posted}) == 3  # each poisoned alert once
        assert all(later.at - earlier.at >= 1.0 for earlier, later in itertools.pairwise(posted))
        assert health(app)["poison_oldest_seconds"] is None


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_a_destination_still_down_is_probed_again_only_after_a_back_off(
    kind: str, store_of: Callable[[str], Any], make_app: Callable[..., App], clock: FakeClock
) -> None:
    with SlackSink(clock=clock.time, rate_limit=False) as slack:
        app = make_app(store_of(kind), slack_url=slack.url)
        poison_alerts(app, slack, 1)
        slack.fail_first(10 * MAX_DEQUEUE_COUNT * ATTEMPTS, status=503)  # it stays down
        tried = len(slack.received)

        app.flush()
        assert app.deliver() == (0, MAX_DEQUEUE_COUNT)  # the probe failed: poisoned again
        probed = len(slack.received)
        assert probed == tried + MAX_DEQUEUE_COUNT * ATTEMPTS

        app.flush()  # within the back-off: no probe
        assert app.deliver() == (0, 0) and len(slack.received) == probed
        clock.advance(61)
        app.flush()
        assert app.deliver() == (0, MAX_DEQUEUE_COUNT)  # probed again


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_alerts_about_to_leave_the_redrive_window_are_announced_once_to_every_other_destination(
    kind: str, store_of: Callable[[str], Any], make_app: Callable[..., App], clock: FakeClock
) -> None:
    with (
        SlackSink(clock=clock.time, rate_limit=False) as slack,
        TeamsSink(clock=clock.time, rate_limit=False) as teams,
        PagerDutySink(clock=clock.time, rate_limit=False) as pd,
        WebhookSink(rate_limit=False) as hook,
    ):
        app = make_app(
            store_of(kind),
            slack_url=slack.url,
            teams_url=teams.url,
            pagerduty_url=pd.url,
            pagerduty_routing_key=pd.routing_key,
            webhook_url=hook.url,
            redrive_max_age_hours="1",  # announced 15 minutes before they leave it
            routes='[{"to": ["slack"]}]',  # the alerts themselves go to Slack only
        )
        poison_alerts(app, slack, 2)
        slack.fail_first(100 * MAX_DEQUEUE_COUNT * ATTEMPTS, status=503)  # it stays down

        clock.advance(30 * 60)
        app.flush()
        app.deliver()
        assert teams.received == [] and pd.received == [] and hook.received == []  # not yet

        clock.advance(16 * 60)  # 46 minutes: within the last quarter of the hour
        poisoned = next(r.poisoned for r in app.store.outbox_status(clock.time()) if r.destination == "slack")
        assert poisoned == 4
        app.flush()
        app.deliver()
        for sink in (teams, pd, hook):
            [notice] = sink.received
            assert 200 <= notice.status < 300, notice.answer  # each kind's own schema holds
            # The two alerts, and the resolved notices of their bursts (quiet for 5 minutes), poisoned too.
            told = re.search(rb"(\d+) alerts could not be delivered to slack", notice.body)
            assert told is not None and int(told.group(1)) == poisoned, notice.body[:300]
        assert b"could not be delivered" not in b"".join(r.body for r in slack.received)

        app.flush()  # told once
        app.deliver()
        assert [len(s.received) for s in (teams, pd, hook)] == [1, 1, 1]
