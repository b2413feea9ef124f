"""`repeat_interval`, Alertmanager's reminder adapted to bursts: a burst still firing (its group
open, events still arriving) `repeat_interval` after its first alert, and each interval after
that, has the digest of the flush in which that moment passes sent as a reminder: the whole
alert again, marked "Still failing", with the digest's own count (every event is counted in
exactly one alert). End to end through LocalHost's /api/eventgrid, the digest timer and the
queue trigger to the webhook receiver (its documents checked against the schema and signature),
Slack-, Teams- and PagerDuty-like sinks; time is a FakeClock (09:30 UTC), the window 5 minutes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from azurite_server import STORE_KINDS
from test_delivery_faults import START, WINDOW_SECONDS, App, FakeClock, sms_failures
from test_pagerduty import pagerduty_fixture  # noqa: F401 - a pytest fixture
from test_webhook import SECRET, library_clock_fixture, receiver_fixture  # noqa: F401 - fixtures

from tools.sinks import PagerDutySink, SlackSink, TeamsSink, WebhookSink
from triage.cli import main
from triage.errors import ConfigurationError
from triage.policy import reminder_due
from triage.settings import Settings

SLACK = "https://slack.example.invalid/services/T/B/x"


def run_burst(
    app: App, clock: FakeClock, windows: int, *, per_window: int = 2, quiet: int = 1, first_id: int = 0
) -> int:
    """One burst: `per_window` failures in each of `windows` windows (the flush at each window's
    end), then `quiet` quiet windows (the burst resolves). Returns how many events were posted."""
    posted = 0
    for _ in range(windows):
        app.post(sms_failures(per_window, start=first_id + posted))
        posted += per_window
        clock.advance(WINDOW_SECONDS)
        app.flush()
        app.deliver()
    for _ in range(quiet):
        clock.advance(WINDOW_SECONDS)
        app.flush()
        app.deliver()
    return posted


def types(documents: list[dict[str, Any]]) -> list[str]:
    return [d["type"] for d in documents]


def with_webhook(make_app: Callable[..., App], store: Any, receiver: WebhookSink, **settings: str) -> App:
    return make_app(store, webhook_url=receiver.url, webhook_secret=SECRET, **settings)


# -- when reminders come ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", STORE_KINDS)
def test_a_route_reminds_of_a_burst_still_firing_every_repeat_interval_and_counts_stay_exact(
    kind: str,
    make_store: Callable[[str], Any],
    make_app: Callable[..., App],
    receiver: WebhookSink,
    clock: FakeClock,
) -> None:
    routes = [{"kinds": ["SMSDeliveryReportReceived"], "repeat_interval": "20m", "to": ["webhook"]}]
    app = with_webhook(make_app, make_store(kind), receiver, routes=json.dumps(routes))
    posted = run_burst(app, clock, windows=9)

    documents = receiver.accepted
    # The first alert, a digest at each window's end, and the reminders at 20 and 40 minutes
    # (the 4th and 8th flush), then the resolved notice once a window passed quietly.
    assert types(documents) == [
        "alert",
        "digest",
        "digest",
        "digest",
        "reminder",
        "digest",
        "digest",
        "digest",
        "reminder",
        "digest",
        "resolved",
    ]
    firing = [d for d in documents if d["status"] == "firing"]
    assert sum(d["counts"]["count"] for d in firing) == posted  # every event in exactly one alert
    first_reminder, second_reminder = (d for d in documents if d["type"] == "reminder")
    assert first_reminder["counts"]["count"] == 2  # what that window held, as its digest would say
    assert first_reminder["counts"]["reminder"] == {
        "every_seconds": 1200,
        "burst_count": 8,  # the first window's two events and three more windows of two
        "burst_first_seen": START.isoformat(),
    }
    assert second_reminder["counts"]["reminder"]["burst_count"] == 16
    # The whole alert again: guidance, the example's IDs and the samples of the window.
    assert first_reminder["guidance"]["advice"] and first_reminder["ids"]
    assert first_reminder["title"].startswith("Reminder: 2× SMSDeliveryReportReceived 4007")
    assert all("reminder" not in d["counts"] for d in documents if d["type"] != "reminder")
    assert documents[-1]["counts"]["count"] == posted  # the resolve counts the whole burst


def test_the_global_setting_reminds_in_every_route_without_its_own_and_a_route_can_turn_it_off(
    make_store: Callable[[str], Any], make_app: Callable[..., App], receiver: WebhookSink, clock: FakeClock
) -> None:
    routes = [
        {"codes": [4006], "repeat_interval": 0, "to": ["webhook"]},
        {"to": ["webhook"]},
    ]
    app = with_webhook(
        make_app, make_store("sqlite"), receiver, routes=json.dumps(routes), repeat_interval_seconds="900"
    )
    posted = 0
    for _ in range(6):
        app.post(sms_failures(2, start=posted) + sms_failures(2, code=4006, start=posted))
        posted += 2
        clock.advance(WINDOW_SECONDS)
        app.flush()
    app.deliver()

    by_code: dict[int, list[str]] = {}
    for document in receiver.accepted:
        by_code.setdefault(document["alert"]["code"], []).append(document["type"])
    # 15 minutes: the 3rd and 6th flush remind of 4007; 4006's route says 0, never.
    assert by_code[4007] == ["alert", "digest", "digest", "reminder", "digest", "digest", "reminder"]
    assert by_code[4006] == ["alert", *["digest"] * 6]


def test_unset_reminds_after_alertmanagers_four_hours(
    make_store: Callable[[str], Any], make_app: Callable[..., App], receiver: WebhookSink, clock: FakeClock
) -> None:
    routes = [{"group_interval": "1h", "to": ["webhook"]}]
    app = with_webhook(make_app, make_store("memory"), receiver, routes=json.dumps(routes))
    for hour in range(6):
        app.post(sms_failures(3, start=3 * hour))
        clock.advance(3600)
        app.flush()
    app.deliver()

    assert types(receiver.accepted) == ["alert", "digest", "digest", "digest", "reminder", "digest", "digest"]
    [reminder] = [d for d in receiver.accepted if d["type"] == "reminder"]
    assert reminder["counts"]["reminder"]["every_seconds"] == 4 * 3600


@pytest.mark.parametrize(
    "settings",
    [
        {"repeat_interval_seconds": "0"},
        {"routes": json.dumps([{"repeat_interval": 0, "to": ["webhook"]}]), "repeat_interval_seconds": "600"},
    ],
    ids=["global-0", "route-0"],
)
def test_zero_turns_reminders_off(
    settings: dict[str, str],
    make_store: Callable[[str], Any],
    make_app: Callable[..., App],
    receiver: WebhookSink,
    clock: FakeClock,
) -> None:
    app = with_webhook(make_app, make_store("memory"), receiver, **settings)
    posted = run_burst(app, clock, windows=6)

    assert types(receiver.accepted) == ["alert", *["digest"] * 6, "resolved"]
    assert sum(d["counts"]["count"] for d in receiver.accepted[:-1]) == posted


def test_a_burst_that_ends_before_its_repeat_interval_is_never_reminded_of(
    make_store: Callable[[str], Any], make_app: Callable[..., App], receiver: WebhookSink, clock: FakeClock
) -> None:
    app = with_webhook(make_app, make_store("memory"), receiver, repeat_interval_seconds="900")
    run_burst(app, clock, windows=2, quiet=1)  # 10 minutes of failures, then quiet
    run_burst(app, clock, windows=2, quiet=1, first_id=100)  # a new burst: its own 15 minutes

    assert types(receiver.accepted) == ["alert", "digest", "digest", "resolved"] * 2


# -- how it looks ----------------------------------------------------------------------------------
def test_slack_teams_and_pagerduty_show_the_reminder_and_pagerduty_keeps_one_incident(  # noqa: PLR0917 - fixtures
    make_store: Callable[[str], Any],
    make_app: Callable[..., App],
    slack: SlackSink,
    teams: TeamsSink,
    pd: PagerDutySink,
    clock: FakeClock,
) -> None:
    app = make_app(
        make_store("memory"),
        slack_url=slack.url,
        teams_url=teams.url,
        pagerduty_url=pd.url,
        pagerduty_routing_key=pd.routing_key,
        repeat_interval_seconds="600",
    )
    run_burst(app, clock, windows=2)

    still = (
        "Still failing: 4 events since 2026-11-20 09:30:00 UTC, 2 in the last 5 min; reminder every 10 min"
    )
    # The sinks took every payload (Slack's Block Kit limits, Teams' card shape); the reminder
    # is the second flush's digest.
    [_, _, reminder, _] = [p["text"] for p in slack.accepted]
    assert reminder.startswith("Error: Reminder: 2× SMSDeliveryReportReceived 4007 on ")
    assert still in reminder
    cards = [orjson.dumps(p).decode() for p in teams.accepted]
    assert len(cards) == 4
    assert still in cards[2] and "Reminder: 2× SMSDeliveryReportReceived 4007" in cards[2]
    assert "Still failing" not in cards[1]

    # One PagerDuty alert: the reminder is a trigger with the same dedup_key (a log entry on the
    # open alert, no new page), and the resolve closes it.
    assert [e["event_action"] for e in pd.accepted] == ["trigger", "trigger", "trigger", "resolve"]
    assert len({e["dedup_key"] for e in pd.accepted}) == 1
    details = pd.accepted[2]["payload"]["custom_details"]
    assert (details["reminder"], details["count"], details["burst_count"]) == (still, 2, 4)
    assert pd.accepted[2]["payload"]["summary"].startswith("Error: Reminder: 2× SMSDeliveryReportReceived")
    pd.assert_every_trigger_resolved()


# -- the store keeps what a reminder needs ----------------------------------------------------------
@pytest.mark.parametrize("kind", STORE_KINDS)
def test_a_reminder_whose_outbox_write_failed_is_a_reminder_again_at_the_next_flush(
    kind: str, make_store: Callable[[str], Any]
) -> None:
    from factories import make_incident

    store = make_store(kind)
    window, repeat = timedelta(minutes=5), timedelta(minutes=10)
    first = [make_incident(event_id="e1")]
    more = [make_incident(event_id="e2")]
    store.hit("burst", 1, first, START, window)
    store.hit("burst", 1, more, START + timedelta(minutes=1), window)
    [digest] = store.take_due(START + window)
    assert (digest.burst_count, digest.burst_started) == (2, START)
    assert (digest.window_start, digest.window_end) == (START, START + window)
    assert not reminder_due(digest, repeat)

    store.hit("burst", 1, more, START + timedelta(minutes=6), window)
    [reminder] = store.take_due(START + 2 * window)
    assert reminder_due(reminder, repeat)
    assert reminder.burst_count == 3
    # Its digest could not be written: given back, the next flush tells the same window again.
    store.restore(reminder, START + 2 * window + timedelta(seconds=30))
    [again] = store.take_due(START + 2 * window + timedelta(minutes=1))
    assert again.count == 1 and again.window_start == START + window
    assert reminder_due(again, repeat)


# -- settings ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"REPEAT_INTERVAL_SECONDS": "120"},
            "ACS_TRIAGE_REPEAT_INTERVAL_SECONDS (120) is shorter than ACS_TRIAGE_GROUP_WINDOW_SECONDS (300)",
        ),
        (
            {"ROUTES": json.dumps([{"repeat_interval": "2m", "to": ["slack"]}])},
            "ACS_TRIAGE_ROUTES rule 1 (1), 'repeat_interval' (120) is shorter than its group_interval (300)",
        ),
        (
            {
                "ROUTES": json.dumps([{"group_interval": "1h", "to": ["slack"]}]),
                "REPEAT_INTERVAL_SECONDS": "1800",
            },
            "ACS_TRIAGE_ROUTES rule 1 (1): ACS_TRIAGE_REPEAT_INTERVAL_SECONDS (1800) is shorter than "
            "the rule's group_interval (3600)",
        ),
        (
            {"ROUTES": json.dumps([{"group_interval": 0, "repeat_interval": "1h", "to": ["slack"]}])},
            "there is no digest to make a reminder of",
        ),
        (
            {"GROUP_WINDOW_SECONDS": "0", "REPEAT_INTERVAL_SECONDS": "3600"},
            "ACS_TRIAGE_REPEAT_INTERVAL_SECONDS (3600) has nothing to remind of: grouping is off",
        ),
        ({"ROUTES": json.dumps([{"repeat_interval": "4 hours", "to": ["slack"]}])}, "is not a duration"),
        ({"REPEAT_INTERVAL_SECONDS": "4h"}, "ACS_TRIAGE_REPEAT_INTERVAL_SECONDS"),
    ],
)
def test_a_repeat_interval_that_cannot_work_is_an_error_naming_the_setting_and_the_fix(
    env: dict[str, str], message: str
) -> None:
    values = {"ACS_TRIAGE_SLACK_URL": SLACK, **{f"ACS_TRIAGE_{k}": v for k, v in env.items()}}
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env(values)
    assert message in str(caught.value)


def test_repeat_intervals_as_durations_and_the_defaults_each_lane_gets() -> None:
    from triage.routing import Routing

    routes = [
        {"name": "fast", "repeat_interval": "1h30m", "to": ["slack"]},
        {"name": "slow", "group_interval": "6h", "to": ["slack"]},
        {"name": "plain", "to": ["slack"]},
    ]
    settings = Settings.from_env({"ACS_TRIAGE_SLACK_URL": SLACK, "ACS_TRIAGE_ROUTES": json.dumps(routes)})
    routing = Routing(settings)
    assert routing.lanes["fast"].repeat == timedelta(hours=1, minutes=30)
    assert routing.lanes["slow"].repeat == timedelta(hours=6)  # unset: never shorter than its window
    assert routing.lanes["plain"].repeat == timedelta(hours=4)
    assert routing.default.repeat == timedelta(hours=4)


# -- doctor ----------------------------------------------------------------------------------------
def test_doctor_accepts_repeat_intervals_and_says_how_each_route_times_its_bursts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    routes = [
        {"name": "oncall", "group_interval": "10m", "repeat_interval": "1h", "to": ["slack"]},
        {"name": "quiet", "repeat_interval": 0, "to": ["slack"]},
        {"name": "each", "group_interval": 0, "to": ["slack"]},
    ]
    values = {"ACS_TRIAGE_SLACK_URL": SLACK, "ACS_TRIAGE_ROUTES": json.dumps(routes)}
    settings = tmp_path / "local.settings.json"
    settings.write_text(json.dumps({"IsEncrypted": False, "Values": values}))

    assert main(["doctor", "--settings", str(settings), "--offline"]) == 0
    timing = [line for line in capsys.readouterr().out.splitlines() if line.startswith("timing: ")]
    assert timing == [
        "timing: route oncall: digests every 10 min, a reminder every 1 h while a burst still fires",
        "timing: route quiet: digests every 5 min, no reminders (repeat_interval 0)",
        "timing: route each: every failure alerts on its own (no digests, no reminders)",
        "timing: default route (alerts no route matches): digests every 5 min, a reminder every 4 h "
        "while a burst still fires",
    ]


def test_doctor_names_a_repeat_interval_that_cannot_work_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    values = {"ACS_TRIAGE_SLACK_URL": SLACK, "ACS_TRIAGE_REPEAT_INTERVAL_SECONDS": "60"}
    settings = tmp_path / "local.settings.json"
    settings.write_text(json.dumps({"IsEncrypted": False, "Values": values}))

    assert main(["doctor", "--settings", str(settings), "--offline", "--json"]) == 1
    [problem] = [p for p in json.loads(capsys.readouterr().out)["problems"] if p["level"] == "error"]
    assert problem["setting"] == "ACS_TRIAGE_REPEAT_INTERVAL_SECONDS"
    assert "set it to 300 or more, or 0 for no reminders" in problem["message"]
