"""Route timing with Alertmanager's names: `group_by`, `group_interval`, and named time intervals
(ACS_TRIAGE_TIME_INTERVALS) used by `mute_time_intervals` / `active_time_intervals`; what a muted
route held back is summarised when the muted period ends. End to end through LocalHost's
/api/eventgrid, the digest timer and the queue trigger to the Slack-like, Teams-like and
PagerDuty-like sinks; time is a FakeClock starting Friday 2026-11-20 09:30 UTC.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from azurite_server import STORE_KINDS
from test_delivery_faults import App, FakeClock, sms_failures
from test_pagerduty import pagerduty_fixture  # noqa: F401 - a pytest fixture

from tools.sinks import PagerDutySink, SlackSink, TeamsSink
from triage.errors import ConfigurationError
from triage.intervals import muted_until, parse_time_intervals
from triage.settings import Settings

SLACK = "https://slack.example.invalid/services/T/B/x"
# 09:00-10:00 UTC on weekdays: the clock starts inside it (Friday 09:30).
MORNINGS = [
    {
        "name": "mornings",
        "time_intervals": [
            {"times": [{"start_time": "09:00", "end_time": "10:00"}], "weekdays": ["monday:friday"]}
        ],
    }
]


@pytest.fixture(name="make_chat")
def make_chat_fixture(
    make_store: Callable[[str], Any], make_app: Callable[..., App], slack: SlackSink, teams: TeamsSink
) -> Callable[..., App]:
    """make_chat(store kind, **settings) → an App posting to the Slack-like and Teams-like sinks."""

    def make(kind: str, **settings: str) -> App:
        return make_app(make_store(kind), slack_url=slack.url, teams_url=teams.url, **settings)

    return make


def texts(payloads: list[dict[str, Any]]) -> list[str]:
    return [p["text"] for p in payloads]


def card_texts(payloads: list[dict[str, Any]]) -> list[str]:
    return [orjson.dumps(p).decode() for p in payloads]


# -- group_by ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", STORE_KINDS)
def test_group_by_makes_one_burst_of_every_code_and_pagerduty_resolves_it_by_its_key(
    kind: str,
    make_store: Callable[[str], Any],
    make_app: Callable[..., App],
    pd: PagerDutySink,
    clock: FakeClock,
) -> None:
    routes = [{"kinds": ["SMSDeliveryReportReceived"], "group_by": ["kind", "resource"], "to": ["pagerduty"]}]
    app = make_app(
        make_store(kind),
        pagerduty_url=pd.url,
        pagerduty_routing_key=pd.routing_key,
        routes=json.dumps(routes),
    )
    report = app.post(sms_failures(3) + sms_failures(2, code=4006, start=3))
    for _ in range(3):  # the digest, a quiet window (resolved), nothing more
        clock.advance(300)
        app.flush()
    app.deliver()

    assert (report["alerted"], report["grouped"]) == (1, 4)  # one burst across both codes
    key = "route:1|SMSDeliveryReportReceived|contoso-acs-prod"
    assert [(e["event_action"], e["dedup_key"]) for e in pd.accepted] == [
        ("trigger", key),
        ("trigger", key),
        ("resolve", key),
    ]
    assert pd.accepted[1]["payload"]["custom_details"]["count"] == 4
    pd.assert_every_trigger_resolved()


# -- group_interval ------------------------------------------------------------------------------
def test_each_route_digests_on_its_own_group_interval(
    make_chat: Callable[..., App], slack: SlackSink, teams: TeamsSink, clock: FakeClock
) -> None:
    routes = [
        {"codes": [4007], "group_interval": "1m", "to": ["slack"]},
        {"codes": [4006], "group_interval": "10m", "to": ["teams"]},
    ]
    app = make_chat("sqlite", routes=json.dumps(routes))
    app.post(sms_failures(3) + sms_failures(3, code=4006, start=3))
    clock.advance(61)
    app.flush()
    app.deliver()
    assert [t.startswith("Error: 2× SMSDeliveryReportReceived 4007") for t in texts(slack.accepted)] == [
        False,
        True,
    ]
    assert len(teams.accepted) == 1  # 4006's window runs 10 minutes

    clock.advance(540)
    app.flush()
    app.deliver()
    [_, digest] = card_texts(teams.accepted)
    assert "2× SMSDeliveryReportReceived 4006" in digest


def test_a_route_with_group_interval_zero_alerts_each_failure_and_still_resolves(
    make_store: Callable[[str], Any], make_app: Callable[..., App], pd: PagerDutySink, clock: FakeClock
) -> None:
    routes = [{"group_interval": 0, "to": ["pagerduty"]}]
    app = make_app(
        make_store("memory"),
        pagerduty_url=pd.url,
        pagerduty_routing_key=pd.routing_key,
        routes=json.dumps(routes),
    )
    assert app.post(sms_failures(3))["alerted"] == 3
    clock.advance(300)  # the global window: the route's quiet period when it does not group
    app.flush()
    app.deliver()
    assert [e["event_action"] for e in pd.accepted] == ["trigger"] * 3 + ["resolve"]
    # Grouped by fingerprint (no group_by): PagerDuty keys it by the fingerprint, as without routes.
    assert {e["dedup_key"] for e in pd.accepted} == {"SMSDeliveryReportReceived|4007|None|contoso-acs-prod"}
    pd.assert_every_trigger_resolved()


# -- time intervals ------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", STORE_KINDS)
def test_a_muted_route_holds_back_and_summarises_when_the_interval_ends_while_others_alert(
    kind: str, make_chat: Callable[..., App], slack: SlackSink, teams: TeamsSink, clock: FakeClock
) -> None:
    routes = [
        {"name": "quiet-mornings", "mute_time_intervals": ["mornings"], "to": ["teams"], "continue": True},
        {"to": ["slack"]},
    ]
    app = make_chat(kind, routes=json.dumps(routes), time_intervals=json.dumps(MORNINGS))
    first = app.post(sms_failures(4))
    clock.advance(10 * 60)  # 09:40
    second = app.post(sms_failures(2, start=4))
    clock.advance(19 * 60)  # 09:59
    app.flush()
    app.deliver()
    assert (first["muted"], second["muted"]) == (4, 2)
    assert teams.accepted == [] and slack.accepted  # the other route alerts as usual

    clock.advance(2 * 60)  # 10:01: the muted period is over
    app.flush()
    app.flush()  # summarised once
    after = app.post(sms_failures(1, start=10))
    app.deliver()
    # The first alert may be posted ahead of the summary (first alerts go first): order aside.
    [summary], [alert] = (
        [t for t in card_texts(teams.accepted) if ("Silenced:" in t) == wanted] for wanted in (True, False)
    )
    assert "Silenced: 6 events, first SMSDeliveryReportReceived 4007" in summary
    assert "arrived between 2026-11-20 09:30:00 UTC and 2026-11-20 09:40:00 UTC" in summary
    assert "route quiet-mornings muted by its time intervals (mornings)" in summary
    assert after["muted"] == 0 and "SMSDeliveryReportReceived 4007" in alert
    assert not any(t.startswith("Silenced:") for t in texts(slack.accepted))  # the summary is the route's


def test_a_route_active_only_in_an_interval_is_muted_outside_it(
    make_store: Callable[[str], Any], make_app: Callable[..., App], slack: SlackSink, clock: FakeClock
) -> None:
    routes = [{"active_time_intervals": ["mornings"], "to": ["slack"]}]
    app = make_app(
        make_store("memory"),
        slack_url=slack.url,
        routes=json.dumps(routes),
        time_intervals=json.dumps(MORNINGS),
    )
    assert app.post(sms_failures(1))["alerted"] == 1  # 09:30: active
    clock.advance(3600)  # 10:30: outside
    assert app.post(sms_failures(1, code=4006, start=1))["muted"] == 1


def test_time_intervals_read_in_their_location_with_alertmanagers_ranges() -> None:
    nights = parse_time_intervals(
        json.dumps(
            [
                {
                    "name": "nights",
                    "time_intervals": [
                        {
                            "times": [{"start_time": "00:00", "end_time": "08:00"}],
                            "weekdays": ["monday:friday"],
                            "location": "Europe/Berlin",
                        }
                    ],
                }
            ]
        ),
        "ACS_TRIAGE_TIME_INTERVALS",
    )["nights"]
    friday_0630_berlin = datetime(2026, 11, 20, 5, 30, tzinfo=UTC)
    assert nights.holds(friday_0630_berlin)
    assert not nights.holds(datetime(2026, 11, 20, 7, 0, tzinfo=UTC))  # 08:00 in Berlin: the end is excluded
    assert not nights.holds(datetime(2026, 11, 21, 5, 30, tzinfo=UTC))  # Saturday
    assert muted_until(nights.holds, friday_0630_berlin) == datetime(2026, 11, 20, 7, 0, tzinfo=UTC)

    last_days = parse_time_intervals(
        '[{"name": "month-end", "time_intervals": [{"days_of_month": ["-2:-1"], "months": ["november"]}]}]',
        "X",
    )["month-end"]
    assert last_days.holds(datetime(2026, 11, 29, 12, tzinfo=UTC))
    assert not last_days.holds(datetime(2026, 11, 28, 12, tzinfo=UTC))
    assert not last_days.holds(datetime(2026, 12, 31, 12, tzinfo=UTC))
    always = parse_time_intervals('[{"name": "always", "time_intervals": [{}]}]', "X")["always"]
    start = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    assert muted_until(always.holds, start) == start + timedelta(days=31)  # reported as ending there


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"ROUTES": [{"mute_time_intervals": ["weekends"], "to": ["slack"]}]},
            "ACS_TRIAGE_ROUTES rule 1, 'mute_time_intervals': no time interval is named 'weekends'",
        ),
        ({"ROUTES": [{"group_interval": "soon", "to": ["slack"]}]}, "'soon' is not a duration"),
        ({"ROUTES": [{"group_by": ["colour"], "to": ["slack"]}]}, "ACS_TRIAGE_ROUTES rule 1, 'group_by'"),
        (
            {"ROUTES": [{"name": "a", "to": ["slack"], "continue": True}, {"name": "a", "to": ["slack"]}]},
            "ACS_TRIAGE_ROUTES rule 2: the name 'a' is given to another rule too",
        ),
        (
            {"TIME_INTERVALS": [{"name": "x", "time_intervals": [{"weekdays": ["funday"]}]}]},
            "ACS_TRIAGE_TIME_INTERVALS interval 'x': time_intervals.0.weekdays: 'funday'",
        ),
        (
            {"TIME_INTERVALS": [{"name": "x", "time_intervals": [{"location": "Mars/Base"}]}]},
            "'Mars/Base' is not an IANA time zone",
        ),
        (
            {
                "TIME_INTERVALS": [
                    {"name": "x", "time_intervals": [{"times": [{"start_time": "9", "end_time": "10"}]}]}
                ]
            },
            "'9' is not HH:MM",
        ),
    ],
)
def test_route_timing_that_cannot_work_is_an_error_naming_the_setting(
    env: dict[str, Any], message: str
) -> None:
    values = {"ACS_TRIAGE_SLACK_URL": SLACK, **{f"ACS_TRIAGE_{k}": json.dumps(v) for k, v in env.items()}}
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env(values)
    assert message in str(caught.value)
