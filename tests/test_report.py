"""The daily report: hourly counters written by the real pipeline (one store write per batch),
read back into a report, drawn for Teams and Slack, and posted by the report timer once per
scheduled time across instances, through the outbox to the local sinks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azurite_server import STORE_KINDS
from factories import make_daily_report
from slack_sdk.models.blocks import Block
from test_cli import run
from test_delivery_faults import App, FakeClock, sms_failures

import function_app
from tools.sinks import SlackSink, TeamsSink
from triage import report, schedule
from triage.destinations import slack, teams
from triage.errors import ConfigurationError
from triage.settings import Settings
from triage.store.memory import MemoryStore

DAY = timedelta(hours=24)
EIGHT = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


def at(clock: FakeClock, moment: datetime) -> None:
    clock.advance(moment.timestamp() - clock.time())


# -- counting in the pipeline --------------------------------------------------------------------
@pytest.mark.parametrize("kind", STORE_KINDS)
def test_failures_are_counted_per_hour_and_the_report_ranks_them_with_the_change(
    kind: str, make_store: Callable[[str], Any], make_app: Callable[..., App], clock: FakeClock
) -> None:
    store = make_store(kind)
    app = make_app(store)
    at(clock, EIGHT - DAY - timedelta(hours=3))  # the period before: 4 of 4007
    app.post(sms_failures(4, code=4007))
    at(clock, EIGHT - timedelta(hours=5))  # this period: 10 of 4007, 3 of 4001, 1 of 4004
    app.post(sms_failures(6, code=4007, start=100) + sms_failures(3, code=4001))
    at(clock, EIGHT - timedelta(hours=1, minutes=1))
    app.post(sms_failures(4, code=4007, start=200) + sms_failures(1, code=4004))
    app.post(sms_failures(4, code=4007, start=200))  # Event Grid's redelivery: not counted twice

    daily = app.service.report(EIGHT, DAY)
    assert (daily.total, daily.previous_total) == (14, 4)
    assert [(f.label, f.count, f.previous) for f in daily.top] == [
        ("SMSDeliveryReportReceived 4007", 10, 4),
        ("SMSDeliveryReportReceived 4001", 3, 0),
        ("SMSDeliveryReportReceived 4004", 1, 0),
    ]
    assert (daily.worst_resource, daily.worst_resource_count, daily.resources) == ("contoso-acs-prod", 14, 1)
    assert report.change(10, 4) == "▲ 150 %"
    assert "14 (▲ 250 %, 4 in the 24 h before)" in report.text(daily)


class CountingStore(MemoryStore):
    """The embedded store, noting every hourly write (how many calls, how many counters)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[int] = []

    def add_hourly(
        self, hour: datetime, counts: Mapping[str, int], recovered: Mapping[str, Sequence[str]] | None = None
    ) -> None:
        self.writes.append(len(counts))
        super().add_hourly(hour, counts, recovered)


def test_a_batch_costs_one_hourly_write_with_one_counter_per_fingerprint(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    store = CountingStore()
    app = make_app(store)
    app.post(sms_failures(500, code=4007) + sms_failures(300, code=4001))
    app.post(sms_failures(1, code=4007))  # a duplicate only: nothing to count, no write
    assert store.writes == [2]
    assert sorted(n for _, _, n in store.hourly(EIGHT - 2 * DAY, EIGHT + DAY)) == [300, 500]


# -- the report timer ----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", STORE_KINDS)
def test_the_timer_posts_the_report_once_per_scheduled_time_across_instances(
    kind: str,
    make_store: Callable[[str], Any],
    make_app: Callable[..., App],
    clock: FakeClock,
    slack: SlackSink,
) -> None:
    store = make_store(kind)
    settings = {"slack_url": slack.url, "report_schedule": "0 8 * * *"}
    at(clock, EIGHT - timedelta(hours=2))
    first = make_app(store, **settings)
    first.post(sms_failures(3, code=4007))
    at(clock, EIGHT - timedelta(minutes=1))
    assert first.service.report_tick() is None  # not yet
    at(clock, EIGHT + timedelta(minutes=5))
    second = make_app(store, **settings)  # another instance, sharing the store
    function_app.configure(first.service)  # the host runs the first instance's timers
    first.flush()  # every timer fires, the report's included
    assert second.service.report_tick() is None  # claimed already
    first.flush()  # a later tick of the same instance
    first.deliver()

    reports = [p for p in slack.accepted if p["text"].startswith("ACS failures")]
    assert len(reports) == 1
    assert "3 (new, 0 in the 24 h before)" in reports[0]["text"]
    at(clock, EIGHT + timedelta(hours=1, minutes=5))  # past the hour in which a late tick still posts
    assert second.service.report_tick() is None


def test_without_a_schedule_the_timer_posts_nothing(make_app: Callable[..., App], clock: FakeClock) -> None:
    with TeamsSink(clock=clock.time) as sink:
        app = make_app(MemoryStore(), teams_url=sink.url)
        at(clock, EIGHT)
        app.flush()
        app.deliver()
        assert sink.received == []


def test_the_report_goes_only_to_report_to_and_never_to_pagerduty_or_the_webhook(
    make_app: Callable[..., App], clock: FakeClock, slack: SlackSink
) -> None:
    with TeamsSink(clock=clock.time) as teams_sink:
        app = make_app(
            MemoryStore(),
            slack_url=slack.url,
            teams_url=teams_sink.url,
            pagerduty_routing_key="k" * 32,
            webhook_url="http://127.0.0.1:9/hook",
            report_schedule="0 8 * * *",
            report_to="teams",
        )
        assert [d.name for d in app.service.settings.report_destinations()] == ["teams"]
        at(clock, EIGHT)
        assert app.service.report_tick() is not None
        app.deliver()
        assert len(teams_sink.accepted) == 1
    assert slack.received == []


@pytest.mark.parametrize(
    ("schedule", "problem"),
    [
        ("every morning", "not a 5-field cron expression"),
        ("0 8 * *", "not a 5-field cron expression"),
        ("*/15 * * * *", "the minute field must be one number"),
        ("0,30 8 * * *", "the minute field must be one number"),
    ],
)
def test_a_schedule_that_cannot_work_is_an_error_naming_the_setting(schedule: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=f"ACS_TRIAGE_REPORT_SCHEDULE.*{problem}"):
        Settings.from_env({"ACS_TRIAGE_REPORT_SCHEDULE": schedule})


def test_report_to_naming_an_unconfigured_destination_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match="ACS_TRIAGE_REPORT_TO names destinations"):
        Settings.from_env({"ACS_TRIAGE_REPORT_TO": "teams"})


def test_a_report_is_due_within_the_hour_after_its_scheduled_time() -> None:
    assert schedule.due("0 8 * * *", EIGHT) == EIGHT
    assert schedule.due("0 8 * * *", EIGHT + timedelta(minutes=59)) == EIGHT
    assert schedule.due("0 8 * * *", EIGHT + timedelta(minutes=61)) is None
    assert schedule.due("0 8 * * 1-5", datetime(2026, 11, 22, 8, 3, tzinfo=UTC)) is None  # a Sunday


# -- drawing -------------------------------------------------------------------------------------
def test_the_teams_card_draws_one_bar_per_failure_proportional_to_its_count() -> None:
    daily = make_daily_report()
    card = report.teams_card(daily)["attachments"][0]["content"]
    bars = [b for b in card["body"] if b["type"] == "ColumnSet" and b.get("spacing") == "None"]
    assert len(bars) == len(daily.top)
    widths = [b["columns"][0]["width"] for b in bars]
    assert widths[0] == 1000 and len(bars[0]["columns"]) == 1  # the largest fills the row
    assert widths[1] == round(604 * 1000 / 1312)
    assert teams.lint(report.teams_card(daily)) == []


@pytest.mark.parametrize("failures", [0, 1, 5])
def test_the_slack_report_builds_through_slack_sdk_and_keeps_block_kit_limits(failures: int) -> None:
    payload = report.slack_message(make_daily_report(failures=failures, hostile=failures == 5))
    for block in payload["blocks"]:
        parsed = Block.parse(block)
        assert parsed is not None
        parsed.validate_json()
    assert slack.lint(payload) == []


def test_slack_bars_are_text_of_block_characters_in_a_code_block() -> None:
    text = report.slack_message(make_daily_report())["blocks"][-1]["text"]["text"]
    assert "```" in text
    assert "█" * 20 in text  # the largest fills the 20 cells
    assert "▲ 49 %" in text and "new" in text  # 1,312 against 881; 219 against nothing


def test_hostile_event_names_cannot_ping_or_link_in_the_report() -> None:
    daily = make_daily_report(hostile=True)
    slack_text = json.dumps(report.slack_message(daily))
    assert "<!channel>" not in slack_text
    teams_text = json.dumps(report.teams_card(daily))
    assert "](http://evil)" not in teams_text


# -- command line --------------------------------------------------------------------------------
def test_report_command_reads_the_counters_of_a_sqlite_store(tmp_path: Any) -> None:
    from triage.clock import utcnow
    from triage.store import hour_of
    from triage.store.sqlite import SqliteStore

    path = tmp_path / "triage.db"
    with SqliteStore(path) as store:
        store.add_hourly(hour_of(utcnow()), {"PlayFailed|400|8535|contoso-acs": 42})
        store.add_hourly(hour_of(utcnow()) - timedelta(hours=30), {"PlayFailed|400|8535|contoso-acs": 21})
    result = run("report", "--since", "24h", env={"ACS_TRIAGE_STORE": f"sqlite:{path}"})
    assert result.returncode == 0, result.stderr
    assert "PlayFailed 400/8535" in result.stdout
    assert "42 (▲ 100 %, 21 in the 24 h before)" in result.stdout
    bad = run("report", "--since", "yesterday")
    assert bad.returncode == 2 and "--since must be hours or days" in bad.stderr


def test_report_post_says_posted_only_for_what_was_posted_and_queues_the_rest(tmp_path: Any) -> None:
    from triage.clock import utcnow
    from triage.store import hour_of
    from triage.store.sqlite import SqliteStore

    path = tmp_path / "triage.db"
    with SqliteStore(path) as store:
        store.add_hourly(hour_of(utcnow()), {"PlayFailed|400|8535|contoso-acs": 42})
        # Slack answered 429 with an hour's Retry-After a moment ago (longer than a worker waits).
        store.hold_send("slack", time.time() + 3600)
    with SlackSink() as slack, TeamsSink() as teams:
        env = {"ACS_TRIAGE_STORE": f"sqlite:{path}", "ACS_TRIAGE_SLACK_URL": slack.url,
               "ACS_TRIAGE_TEAMS_URL": teams.url}  # fmt: skip
        result = run("report", "--post", env=env)
        assert result.returncode == 0, result.stderr
        assert "report posted to teams" in result.stderr
        assert "report queued in the app's outbox for slack" in result.stderr
        assert "posted to slack" not in result.stderr.replace("posted to teams", "")
        assert len(teams.received) == 1 and slack.received == []
    with SqliteStore(path) as store:
        waiting = {b.destination: b.queued for b in store.outbox_status(time.time())}
    assert waiting.get("slack") == 1 and not waiting.get("teams")


def test_the_preview_tool_writes_the_report_for_teams_and_slack(tmp_path: Any) -> None:
    from tools import preview

    written = preview.write_report_previews(preview.demo_report(), tmp_path, png=False)
    names = {p.name for p in written}
    assert {"report.teams.json", "report.teams.html", "report.slack.json", "report.slack.html"} <= names
    assert '<pre class="block">' in (tmp_path / "report.slack.html").read_text(encoding="utf-8")
    assert json.loads((tmp_path / "report.teams.json").read_text(encoding="utf-8"))["type"] == "message"
