"""Noise control under a storm: 10,000 failures of one code within a grouping window reach
the channel as a handful of messages whose counts add up to exactly 10,000.

Through the whole shell: two Event Grid batches of 5,000 on LocalHost's /api/eventgrid, the
queue trigger delivering to the Slack-like sink, the timer posting the digest; on every store.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from azurite_server import STORE_KINDS
from test_delivery_faults import WINDOW_SECONDS, App, FakeClock, sms_failures

from tools.sinks import SlackSink

STORM = 10_000
BATCH = 5_000  # the most events Event Grid puts in one delivery
_COUNT = re.compile(r"(\d[\d,]*)× ")


def count_in(payload: dict[str, Any]) -> int:
    """How many occurrences a Slack message reports: a digest's text starts with 'Warning:
    9,999× …' (the renderer's headline); a single alert counts one."""
    match = _COUNT.search(payload["text"])
    return int(match.group(1).replace(",", "")) if match else 1


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_ten_thousand_same_code_failures_in_a_window_reach_slack_as_at_most_three_messages_counting_all(
    kind: str,
    make_store: Callable[[str], Any],
    make_app: Callable[..., App],
    slack: SlackSink,
    clock: FakeClock,
) -> None:
    app = make_app(make_store(kind), slack_url=slack.url, max_body_bytes=str(16 * 1024 * 1024))
    events = sms_failures(STORM)

    reports = []
    for start in range(0, STORM, BATCH):
        reports.append(app.post(events[start : start + BATCH]))
        clock.advance(20)
    app.deliver()
    clock.advance(WINDOW_SECONDS)
    app.flush()
    app.deliver()

    assert sum(r["alerted"] for r in reports) == 1  # the first occurrence, at once
    assert sum(r["grouped"] for r in reports) == STORM - 1  # the rest, held for the digest
    messages = slack.accepted
    assert 1 <= len(messages) <= 3
    assert [count_in(m) for m in messages] == [1, STORM - 1]
    assert sum(count_in(m) for m in messages) == STORM
    assert all(r.status == 200 for r in slack.received)  # paced: never throttled
