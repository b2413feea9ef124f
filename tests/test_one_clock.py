"""One clock in each message, and each message names it: a first alert shows the event's own
time (when ACS saw the failure), its digests and its resolved notice the times the occurrences
arrived here. End to end: LocalHost's /api/eventgrid, the digest timer and the queue trigger to
the Teams-like and Slack-like sinks; the events say 09:20:43, they arrive from 09:30 on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from test_delivery_faults import WINDOW_SECONDS, App, FakeClock, sms_failures

from tools.sinks import PagerDutySink, SlackSink, TeamsSink

EVENT_TIME = "2026-11-20 09:20:43 UTC"  # eventTime of every sms_failures(…) event


def card_facts(payload: dict[str, Any]) -> dict[str, str]:
    for element in payload["attachments"][0]["content"]["body"]:
        if element["type"] == "FactSet":
            return {f["title"]: f["value"] for f in element["facts"]}
    return {}


def card_text(payload: dict[str, Any]) -> str:
    return " ".join(e.get("text", "") for e in payload["attachments"][0]["content"]["body"])


def slack_fields(payload: dict[str, Any]) -> dict[str, str]:
    fields: dict[str, str] = {}
    blocks = [*payload["blocks"], *(b for a in payload.get("attachments", []) for b in a["blocks"])]
    for block in blocks:
        for field in block.get("fields", []):
            title, _, value = field["text"].partition("\n")
            fields[title.strip("*")] = value
    return fields


def test_the_first_alert_shows_the_event_time_and_its_digest_and_notice_the_arrival_times(
    make_store: Callable[[str], Any],
    make_app: Callable[..., App],
    teams: TeamsSink,
    slack: SlackSink,
    clock: FakeClock,
) -> None:
    app = make_app(make_store("sqlite"), teams_url=teams.url, slack_url=slack.url)
    app.post(sms_failures(3))
    clock.advance(90)
    app.post(sms_failures(2, start=3))
    for _ in range(2):  # the digest, then a quiet window
        clock.advance(WINDOW_SECONDS)
        app.flush()
    app.deliver()

    first, digest, resolved = teams.accepted
    assert card_facts(first)["Event time"] == EVENT_TIME
    assert not {"First arrived", "Last arrived", "Time"} & set(card_facts(first))
    assert card_facts(digest)["First arrived"] == "2026-11-20 09:30:00 UTC"
    assert card_facts(digest)["Last arrived"] == "2026-11-20 09:31:30 UTC"
    assert "Event time" not in card_facts(digest)
    assert (
        "5 events, first arrived 2026-11-20 09:30:00 UTC, last arrived 2026-11-20 09:31:30 UTC"
        in card_text(resolved)
    )
    assert EVENT_TIME not in card_text(resolved)

    slack_first, slack_digest, slack_resolved = slack.accepted
    assert slack_fields(slack_first)["Event time"] == EVENT_TIME
    assert slack_fields(slack_digest)["First arrived"] == "2026-11-20 09:30:00 UTC"
    assert "first arrived 2026-11-20 09:30:00 UTC" in slack_resolved["text"]


def test_pagerduty_details_say_which_clock_their_times_are_on(
    make_store: Callable[[str], Any], make_app: Callable[..., App], clock: FakeClock
) -> None:
    with PagerDutySink(clock=clock.time) as pd:
        app = make_app(make_store("memory"), pagerduty_url=pd.url, pagerduty_routing_key=pd.routing_key)
        app.post(sms_failures(2))
        clock.advance(WINDOW_SECONDS)
        app.flush()
        app.deliver()
        trigger, digest = (e["payload"]["custom_details"] for e in pd.accepted[:2])
    assert (trigger["times"], trigger["first_seen"]) == ("event time", EVENT_TIME)
    assert (digest["times"], digest["first_seen"]) == ("arrival time", "2026-11-20 09:30:00 UTC")
