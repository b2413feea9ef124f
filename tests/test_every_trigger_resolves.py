"""Every alert that fires is resolved, grouping on or off: end to end through LocalHost's
/api/eventgrid, the digest timer and the queue trigger to the PagerDuty-like and Slack-like
sinks, on every store; time is a FakeClock. The PagerDuty stand-in checks that no incident it
was told about is left open.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from azurite_server import STORE_KINDS
from test_delivery_faults import WINDOW_SECONDS, App, FakeClock, sms_failures
from test_pagerduty import pagerduty_fixture  # noqa: F401 - a pytest fixture

from tools.sinks import PagerDutySink, SlackSink
from triage.errors import ConfigurationError
from triage.settings import DEFAULT_QUIET_SECONDS, Settings


@pytest.fixture(name="make_resolving")
def make_resolving_fixture(
    make_store: Callable[[str], Any], make_app: Callable[..., App], pd: PagerDutySink, slack: SlackSink
) -> Callable[..., App]:
    """make_resolving(store kind, **settings) → an App posting to PagerDuty and Slack."""

    def make(kind: str, **settings: str) -> App:
        return make_app(
            make_store(kind),
            pagerduty_url=pd.url,
            pagerduty_routing_key=pd.routing_key,
            slack_url=slack.url,
            **settings,
        )

    return make


def resolved_notices(slack: SlackSink) -> list[str]:
    return [p["text"] for p in slack.accepted if p["text"].startswith("Resolved:")]


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_with_grouping_off_every_alert_is_resolved_after_the_default_quiet_period(
    kind: str,
    make_resolving: Callable[..., App],
    pd: PagerDutySink,
    slack: SlackSink,
    clock: FakeClock,
) -> None:
    app = make_resolving(kind, group_window_seconds="0")
    report = app.post(sms_failures(3) + sms_failures(1, code=4006, start=3))
    clock.advance(DEFAULT_QUIET_SECONDS - 1)
    app.flush()  # not quiet long enough yet
    app.deliver()
    assert report["alerted"] == 4 and len(pd.open_incidents()) == 2 and resolved_notices(slack) == []

    clock.advance(1)
    app.flush()
    app.flush()  # resolved once
    app.deliver()
    pd.assert_every_trigger_resolved()
    [(first, *_), (second, *_)] = sorted(n.split(";") for n in resolved_notices(slack))
    assert first.startswith("Resolved: SMSDeliveryReportReceived 4006 on ")
    assert second.startswith("Resolved: SMSDeliveryReportReceived 4007 on ")
    assert "3 events, arrived at 2026-11-20 09:30:00 UTC" in second
    actions = [e["event_action"] for e in pd.accepted]
    assert actions.count("trigger") == 4 and actions.count("resolve") == 2


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_with_grouping_off_each_new_alert_starts_the_quiet_period_again(
    kind: str,
    make_resolving: Callable[..., App],
    pd: PagerDutySink,
    slack: SlackSink,
    clock: FakeClock,
) -> None:
    app = make_resolving(kind, group_window_seconds="0", resolve_after_seconds="60")
    app.post(sms_failures(1))
    clock.advance(45)
    app.post(sms_failures(1, start=1))
    clock.advance(45)  # 90 s after the first, 45 s after the last: still going on
    app.flush()
    app.deliver()
    assert pd.open_incidents() and resolved_notices(slack) == []

    clock.advance(15)
    app.flush()
    app.deliver()
    pd.assert_every_trigger_resolved()
    [notice] = resolved_notices(slack)
    assert (
        "2 events, first arrived 2026-11-20 09:30:00 UTC, last arrived 2026-11-20 09:30:45 UTC; "
        "quiet for 1 min since" in notice
    )


@pytest.mark.parametrize("window", ["0", str(WINDOW_SECONDS)])
def test_with_resolved_notices_off_pagerduty_is_still_resolved_and_chat_hears_nothing(
    window: str,
    make_resolving: Callable[..., App],
    pd: PagerDutySink,
    slack: SlackSink,
    clock: FakeClock,
) -> None:
    app = make_resolving("sqlite", group_window_seconds=window, send_resolved="false")
    app.post(sms_failures(4))
    for _ in range(3):  # the digest (grouping on), then a quiet period
        clock.advance(max(int(window), DEFAULT_QUIET_SECONDS))
        app.flush()
    app.deliver()
    pd.assert_every_trigger_resolved()
    assert resolved_notices(slack) == [] and slack.accepted


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_with_grouping_on_the_first_alert_and_every_digest_are_resolved_by_the_flush(
    kind: str,
    make_resolving: Callable[..., App],
    pd: PagerDutySink,
    slack: SlackSink,
    clock: FakeClock,
) -> None:
    app = make_resolving(kind)
    app.post(sms_failures(5) + sms_failures(1, code=4006, start=5))
    clock.advance(60)
    app.post(sms_failures(3, start=10))
    for _ in range(3):  # digest, quiet window (resolved), nothing
        clock.advance(WINDOW_SECONDS)
        app.flush()
    app.deliver()
    pd.assert_every_trigger_resolved()
    assert [e["event_action"] for e in pd.accepted].count("resolve") == 2
    assert len(resolved_notices(slack)) == 2


def test_a_resolve_period_other_than_the_group_window_is_an_error_naming_both_settings() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env(
            {"ACS_TRIAGE_GROUP_WINDOW_SECONDS": "300", "ACS_TRIAGE_RESOLVE_AFTER_SECONDS": "60"}
        )
    assert "ACS_TRIAGE_RESOLVE_AFTER_SECONDS" in str(caught.value)
    assert "ACS_TRIAGE_GROUP_WINDOW_SECONDS=300" in str(caught.value)
    assert Settings.from_env({"ACS_TRIAGE_GROUP_WINDOW_SECONDS": "0"}).quiet_seconds == DEFAULT_QUIET_SECONDS
    assert Settings.from_env({"ACS_TRIAGE_GROUP_WINDOW_SECONDS": "120"}).quiet_seconds == 120


def test_the_pagerduty_stand_in_names_an_incident_left_open(
    make_resolving: Callable[..., App],
    pd: PagerDutySink,
    slack: SlackSink,
    clock: FakeClock,
) -> None:
    app = make_resolving("memory", group_window_seconds="0")
    app.post(sms_failures(1))
    app.deliver()
    with pytest.raises(AssertionError, match=r"still open: \['SMSDeliveryReportReceived\|4007\|None\|"):
        pd.assert_every_trigger_resolved()
