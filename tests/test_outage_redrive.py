"""A webhook down for 24 hours loses nothing: every alert of the outage runs out of retries into
the poison queue, and once a post to that webhook succeeds again they are all re-queued, oldest
first, and posted at the webhook's pace. End to end: Event Grid batches on LocalHost's
/api/eventgrid, the queue trigger run by LocalHost's queue runner, the Slack-like sink; the
clock is fake, so the 24 hours take a few seconds.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from azurite_server import poisoned
from test_delivery_faults import App, FakeClock, sms_failures

from tools.localhost import MAX_DEQUEUE_COUNT
from tools.sinks import SlackSink
from triage.store.memory import MemoryStore
from triage.store.sqlite import SqliteStore

HOUR = 3600.0
_MESSAGE_ID = re.compile(r"Outgoing_\d+")


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, clock: FakeClock, tmp_path: Path) -> Any:
    """A store on the test's fake clock (it stamps when messages were queued and poisoned)."""
    if request.param == "memory":
        return MemoryStore(clock=clock.time)
    return SqliteStore(tmp_path / "outbox.sqlite3", clock=clock.time)


def message_ids(payloads: list[Any]) -> list[str]:
    """The SMS message id each Slack payload names, in the order they were posted."""
    return [match.group() for payload in payloads if (match := _MESSAGE_ID.search(json.dumps(payload)))]


def test_after_a_24_hour_webhook_outage_every_alert_arrives_once_oldest_first_and_paced(
    store: Any, make_app: Callable[..., App], slack: SlackSink, clock: FakeClock
) -> None:
    app = make_app(store, slack_url=slack.url, group_window_seconds="0")  # every failure alerts
    slack.fail_first(10**6, status=503, body=b"service_unavailable")  # down for the whole outage
    sent: list[str] = []
    outage_start = clock.time()
    for hour in range(24):
        events = sms_failures(2, start=2 * hour)
        sent += [event["id"] for event in events]
        assert app.post(events)["alerted"] == 2
        delivered, failed = app.deliver()
        assert (delivered, failed) == (0, 2 * MAX_DEQUEUE_COUNT)  # each one ran out of retries
        clock.advance(outage_start + (hour + 1) * HOUR - clock.time())  # on to the next hour
    assert len(poisoned(store)) == 48 and not slack.accepted

    assert clock.time() - outage_start == 24 * HOUR
    slack.clear()  # the webhook is back, 24 hours after the first alert of the outage
    recovery = sms_failures(1, start=1000)
    assert app.post(recovery)["alerted"] == 1
    assert app.deliver() == (49, 0)

    assert poisoned(store) == []
    arrived = message_ids(slack.accepted)
    assert arrived == [recovery[0]["id"], *sent]  # the first success, then the outage oldest first
    assert [r.status for r in slack.received] == [200] * 49  # paced: not one 429
    times = [r.at for r in slack.received]
    assert all(later - earlier >= 1.0 for earlier, later in itertools.pairwise(times))


def test_a_refused_payload_stays_in_the_poison_queue_when_the_webhook_takes_posts_again(
    store: Any, make_app: Callable[..., App], slack: SlackSink, clock: FakeClock
) -> None:
    app = make_app(store, slack_url=slack.url, group_window_seconds="0")
    slack.fail_first(1, status=400, body=b"invalid_payload")
    app.post(sms_failures(1))
    assert app.deliver() == (1, 0)  # settled: dead-lettered at once
    clock.advance(HOUR)
    app.post(sms_failures(1, start=1))
    assert app.deliver() == (1, 0)
    assert len(slack.accepted) == 1 and len(poisoned(store)) == 1


def test_messages_poisoned_longer_ago_than_the_redrive_age_wait_for_a_person(
    store: Any, make_app: Callable[..., App], slack: SlackSink, clock: FakeClock
) -> None:
    app = make_app(store, slack_url=slack.url, group_window_seconds="0", redrive_max_age_hours="2")
    slack.fail_first(3 * MAX_DEQUEUE_COUNT, status=500)
    app.post(sms_failures(1))
    assert app.deliver() == (0, MAX_DEQUEUE_COUNT)
    clock.advance(3 * HOUR)
    app.post(sms_failures(1, start=1))
    assert app.deliver() == (1, 0)
    assert len(poisoned(store)) == 1  # three hours in the poison queue: older than 2 h
