"""Operator controls end to end: silences, Alertmanager-like routes and resolved notices.

Through the whole shell (LocalHost's /api/eventgrid, the digest timer, the queue trigger, the
real Deliverer) to the Slack-like and Teams-like sinks, on every store; time is a FakeClock.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from azurite_server import DURABLE_STORE_KINDS, STORE_KINDS
from factories import T0, make_alert, make_guidance, make_incident
from test_delivery_faults import WINDOW_SECONDS, App, FakeClock, sms_failures

from tools.sinks import SlackSink, TeamsSink
from triage.destinations import slack as slack_kind
from triage.destinations import teams as teams_kind
from triage.destinations import text as text_kind
from triage.errors import ConfigurationError
from triage.matchers import Matcher
from triage.model import Incident, Severity
from triage.policy import Route
from triage.settings import Settings
from triage.store import SilenceRule

REPO = Path(__file__).resolve().parent.parent
TEAMS = "https://teams.example.invalid/workflows/abc?sig=s3cret"
SLACK = "https://slack.example.invalid/services/T/B/x"
PAGER = "https://pager.example.invalid/hooks/x"


def firing(payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Slack alerts among the posts (notices start with 'Resolved:' or 'Silenced:')."""
    return [p for p in payloads if not p["text"].startswith(("Resolved:", "Silenced:"))]


def notices(payloads: list[dict[str, Any]], word: str) -> list[str]:
    return [p["text"] for p in payloads if p["text"].startswith(word)]


def silence_sms(app: App, minutes: int = 60, **conditions: Any) -> SilenceRule:
    now = app.clock.now()
    rule = SilenceRule(
        id="quiet4007",
        matcher=Matcher.model_validate(conditions or {"kinds": ["SMSDeliveryReportReceived"]}),
        starts=now,
        ends=now + timedelta(minutes=minutes),
        comment="carrier outage <!channel>",
        created_by="alice",
    )
    app.store.add_silence(rule)
    return rule


# -- resolved notices ----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", STORE_KINDS)
def test_a_burst_quiet_for_a_whole_window_posts_one_resolved_notice_with_its_total(
    kind: str,
    make_store: Callable[[str], Any],
    make_app: Callable[..., App],
    slack: SlackSink,
    clock: FakeClock,
) -> None:
    app = make_app(make_store(kind), slack_url=slack.url)
    first = app.post(sms_failures(5))
    clock.advance(60)
    app.post(sms_failures(7, start=5))
    clock.advance(WINDOW_SECONDS)
    app.flush()  # the digest of the 11 held
    clock.advance(WINDOW_SECONDS)
    app.flush()  # a quiet window: resolved
    clock.advance(WINDOW_SECONDS)
    app.flush()  # nothing more
    app.deliver()

    assert first["alerted"] == 1
    [resolved] = notices(slack.accepted, "Resolved:")
    start = "2026-11-20 09:30:00 UTC"
    assert resolved.startswith("Resolved: SMSDeliveryReportReceived 4007 on ")
    assert (
        f"12 events, first arrived {start}, last arrived 2026-11-20 09:31:00 UTC; quiet for 5 min since"
        in resolved
    )
    assert [p["text"].split(":")[0] for p in slack.accepted] == ["Error", "Error", "Resolved"]


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_a_lone_failure_is_resolved_after_one_quiet_window(
    kind: str,
    make_store: Callable[[str], Any],
    make_app: Callable[..., App],
    teams: TeamsSink,
    clock: FakeClock,
) -> None:
    app = make_app(make_store(kind), teams_url=teams.url)
    app.post(sms_failures(1))
    clock.advance(WINDOW_SECONDS)
    app.flush()
    app.deliver()

    alert, notice = teams.accepted
    assert teams_kind.lint(notice) == []
    card = notice["attachments"][0]["content"]
    assert [block["text"] for block in card["body"]] == [
        "Resolved: SMSDeliveryReportReceived 4007 on contoso-acs-prod",
        "1 event, arrived at 2026-11-20 09:30:00 UTC; quiet for 5 min since",
    ]
    assert alert["attachments"][0]["content"]["body"] != card["body"]


def test_with_send_resolved_off_a_quiet_burst_closes_without_a_notice(
    make_store: Callable[[str], Any], make_app: Callable[..., App], slack: SlackSink, clock: FakeClock
) -> None:
    app = make_app(make_store("memory"), slack_url=slack.url, send_resolved="false")
    app.post(sms_failures(3))
    clock.advance(WINDOW_SECONDS)
    app.flush()
    clock.advance(WINDOW_SECONDS)
    app.flush()
    app.deliver()
    assert len(slack.accepted) == 2 and notices(slack.accepted, "Resolved:") == []
    assert app.post(sms_failures(1, start=50))["alerted"] == 1  # the group did close


@pytest.mark.parametrize("kind", DURABLE_STORE_KINDS)
def test_two_instances_flushing_together_post_each_resolved_notice_once(
    kind: str,
    make_store: Callable[[str], Any],
    make_app: Callable[..., App],
    slack: SlackSink,
    clock: FakeClock,
) -> None:
    first = make_app(make_store(kind), slack_url=slack.url)
    first.post(sms_failures(1) + sms_failures(1, code=4006, start=1))
    second = make_app(make_store(kind), slack_url=slack.url)  # another instance, the same store
    clock.advance(WINDOW_SECONDS)
    second.flush()
    first.flush()
    second.deliver()
    assert sorted(t.split(" on ")[0] for t in notices(slack.accepted, "Resolved:")) == [
        "Resolved: SMSDeliveryReportReceived 4006",
        "Resolved: SMSDeliveryReportReceived 4007",
    ]


# -- silences ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", STORE_KINDS)
def test_silenced_failures_are_counted_not_alerted_and_summarized_once_when_it_ends(
    kind: str,
    make_store: Callable[[str], Any],
    make_app: Callable[..., App],
    slack: SlackSink,
    clock: FakeClock,
) -> None:
    app = make_app(make_store(kind), slack_url=slack.url)
    silence_sms(app, minutes=60, kinds=["SMSDeliveryReportReceived"], codes=[4007])
    report = app.post(sms_failures(300) + sms_failures(2, code=4006, start=300))
    clock.advance(60)
    assert app.post(sms_failures(12, start=400))["silenced"] == 12
    clock.advance(60 * 60)
    app.flush()
    app.flush()  # the summary is claimed once
    app.deliver()

    assert (report["silenced"], report["alerted"], report["grouped"]) == (300, 1, 1)  # 4006 is not silenced
    [summary] = notices(slack.accepted, "Silenced:")
    assert summary.startswith("Silenced: 312 events, first SMSDeliveryReportReceived 4007 on contoso-acs")
    assert "arrived between 2026-11-20 09:30:00 UTC and 2026-11-20 09:31:00 UTC" in summary
    assert "silence quiet4007: kinds=SMSDeliveryReportReceived codes=4007 · by alice" in summary
    assert "<!channel>" not in json.dumps(slack.accepted)  # the operator's comment is escaped too
    assert [count for count in (p["text"] for p in firing(slack.accepted))] and all(
        "4006" in p["text"] for p in firing(slack.accepted)
    )


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_a_silence_expired_by_hand_lets_failures_alert_at_once_even_from_a_cached_list(
    kind: str,
    make_store: Callable[[str], Any],
    make_app: Callable[..., App],
    slack: SlackSink,
    clock: FakeClock,
) -> None:
    app = make_app(make_store(kind), slack_url=slack.url)
    silence_sms(app)
    assert app.post(sms_failures(4))["silenced"] == 4  # the stage now holds the list for a few seconds
    app.store.expire_silence("quiet4007", clock.now())
    after = app.post(sms_failures(2, start=10))
    app.flush()
    app.deliver()

    assert (after["silenced"], after["alerted"], after["grouped"]) == (0, 1, 1)
    [summary] = notices(slack.accepted, "Silenced:")
    assert summary.startswith("Silenced: 4 events")
    assert len(firing(slack.accepted)) == 1


def test_a_silence_with_negative_matchers_spares_what_they_exclude(
    make_store: Callable[[str], Any], make_app: Callable[..., App], slack: SlackSink
) -> None:
    app = make_app(make_store("memory"), slack_url=slack.url)
    silence_sms(app, kinds=["SMSDeliveryReportReceived"], not_codes=[4006])
    report = app.post(sms_failures(3) + sms_failures(1, code=4006, start=3))
    assert (report["silenced"], report["alerted"]) == (3, 1)


def test_the_silence_list_is_read_from_the_store_at_most_once_per_cache_period() -> None:
    from triage.policy import Silence
    from triage.store.memory import MemoryStore

    class CountingStore(MemoryStore):
        reads = 0

        def list_silences(self, now: Any, include_ended: bool = False) -> list[SilenceRule]:
            self.reads += 1
            return super().list_silences(now, include_ended)

    store, moment = CountingStore(), [0.0]
    stage = Silence(store, cache_seconds=5.0, clock=lambda: moment[0])
    for step in range(10):
        moment[0] = step * 1.0
        stage.active(T0)
    assert store.reads == 2  # at 0 s and at 5 s


# -- the silence command -------------------------------------------------------------------------
def triage_cli(*args: str, store: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACS_TRIAGE_")}
    env["ACS_TRIAGE_LOCAL_SETTINGS"] = ""  # never a developer's local.settings.json
    env["ACS_TRIAGE_STORE"] = store
    return subprocess.run(
        [sys.executable, "-m", "triage", *args],
        check=False,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_silence_add_list_and_expire_through_the_command_line(tmp_path: Path) -> None:
    store = f"sqlite:{tmp_path / 'state.db'}"
    added = triage_cli(
        "silence", "add", "--match", "kinds=PlayFailed", "codes=400", "subcodes=8535,8536",
        "--for", "1h30m", "--comment", "new prompts", "--by", "alice", store=store,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    silence_id = added.stdout.split()[0]
    assert "kinds=PlayFailed codes=400 subcodes=8535,8536" in added.stdout
    assert "by alice: new prompts" in added.stdout

    listed = triage_cli("silence", "list", store=store)
    assert listed.stdout.startswith(silence_id) and "until " in listed.stdout
    expired = triage_cli("silence", "expire", silence_id, store=store)
    assert expired.returncode == 0 and "ended " in expired.stdout
    assert triage_cli("silence", "list", store=store).stdout.strip() == "no silence in force"
    assert silence_id in triage_cli("silence", "list", "--all", store=store).stdout
    unknown = triage_cli("silence", "expire", "nope", store=store)
    assert unknown.returncode == 2 and "no silence with id 'nope'" in unknown.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--match", "kinde=PlayFailed"], "unknown key 'kinde'"),
        (["--match", "codes=four"], "codes: Input should be a valid integer"),
        (["--match", "kinds"], "write KEY=VALUE"),
        (["--match", "kinds=PlayFailed", "--for", "forever"], "--for 'forever'"),
    ],
)
def test_a_bad_silence_is_refused_naming_what_to_fix(tmp_path: Path, args: list[str], message: str) -> None:
    argv = ["silence", "add", "--for", "4h", "--comment", "c", "--by", "b", *args]
    result = triage_cli(*argv, store=f"sqlite:{tmp_path / 'state.db'}")
    assert result.returncode == 2 and message in result.stderr


def test_silences_in_the_in_memory_store_are_refused_with_the_settings_to_use() -> None:
    result = triage_cli(
        "silence", "add", "--match", "kinds=PlayFailed", "--for", "4h", "--comment", "c", "--by", "b",
        store="memory",
    )  # fmt: skip
    assert result.returncode == 2
    assert "ACS_TRIAGE_STORE=sqlite:PATH" in result.stderr and "AzureWebJobsStorage" in result.stderr


# -- routes like Alertmanager's ------------------------------------------------------------------
def routed(
    routes: list[dict[str, Any]], incident: Incident, severity: Severity = Severity.ERROR
) -> list[str]:
    settings = Settings.from_env(
        {
            "ACS_TRIAGE_TEAMS_URL": TEAMS,
            "ACS_TRIAGE_SLACK_URL": SLACK,
            "ACS_TRIAGE_DEST_PAGER_URL": PAGER,
            "ACS_TRIAGE_DEST_PAGER_FORMAT": "slack",
            "ACS_TRIAGE_ROUTES": json.dumps(routes),
        }
    )
    alert = make_alert(incident, make_guidance(incident.code, incident.subcode, severity=severity))
    return [d.name for d in Route(settings).destinations(alert)]


def test_the_first_matching_route_wins() -> None:
    routes = [{"kinds": ["PlayFailed"], "to": ["teams"]}, {"to": ["slack"]}]
    assert routed(routes, make_incident("PlayFailed")) == ["teams"]
    assert routed(routes, make_incident("RecognizeFailed")) == ["slack"]


def test_a_route_with_continue_lets_later_routes_match_too() -> None:
    routes = [
        {"kinds": ["PlayFailed"], "to": ["pager"], "continue": True},
        {"codes": [400], "to": ["teams"]},
        {"to": ["slack"]},
    ]
    assert routed(routes, make_incident("PlayFailed")) == ["pager", "teams"]
    assert routed(routes, make_incident("RecognizeFailed", code=400)) == ["teams"]


def test_negative_matchers_and_resources_select_what_a_route_takes() -> None:
    routes = [
        {
            "resources": ["prod-acs"],
            "not_kinds": ["RecognizeFailed"],
            "not_subcodes": [8536],
            "to": ["pager"],
        },
        {"not_contexts": ["sms"], "not_codes": [500], "not_resources": ["test-acs"], "to": ["teams"]},
    ]
    assert routed(routes, make_incident("PlayFailed", resource="prod-acs")) == ["pager"]
    assert routed(routes, make_incident("PlayFailed", resource="prod-acs", subcode=8536)) == ["teams"]
    assert routed(routes, make_incident("RecognizeFailed", resource="prod-acs")) == ["teams"]
    # What no rule takes goes to the default route (every destination): never nowhere.
    everywhere = ["teams", "slack", "pager"]
    assert routed(routes, make_incident("PlayFailed", resource="test-acs")) == everywhere
    assert routed(routes, make_incident("PlayFailed", code=500)) == everywhere
    sms = make_incident("SMSDeliveryReportReceived", context="sms", code=4007, subcode=None)
    assert routed(routes, sms) == everywhere


def test_a_route_too_quiet_for_an_alerts_severity_does_not_stop_the_search() -> None:
    routes = [{"min_severity": "error", "to": ["pager"]}, {"to": ["slack"]}]
    assert routed(routes, make_incident("PlayFailed"), Severity.WARNING) == ["slack"]
    assert routed(routes, make_incident("PlayFailed"), Severity.ERROR) == ["pager"]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"kind": ["PlayFailed"], "to": ["teams"]}, "ACS_TRIAGE_ROUTES rule 1: unknown key 'kind'"),
        ({"not_subcode": [1], "to": ["teams"]}, "ACS_TRIAGE_ROUTES rule 1: unknown key 'not_subcode'"),
        ({"codes": ["x"], "to": ["teams"]}, "ACS_TRIAGE_ROUTES rule 1, 'codes'"),
    ],
)
def test_a_route_with_an_unknown_key_is_a_configuration_error_naming_it(
    rule: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(")):
        Settings.from_env({"ACS_TRIAGE_TEAMS_URL": TEAMS, "ACS_TRIAGE_ROUTES": json.dumps([rule])})


# -- rendering of notices --------------------------------------------------------------------------
def test_notices_render_as_short_messages_in_every_format() -> None:
    last = T0 + timedelta(minutes=9)
    resolved = make_alert(count=312, status="resolved", window_seconds=300, first_seen=T0, last_seen=last)
    silenced = make_alert(
        count=4,
        status="silenced",
        first_seen=T0,
        last_seen=last,
        note="silence ab12: kinds=PlayFailed · by bob · [docs](https://x.example)",
    )
    for alert in (resolved, silenced):
        slack_payload = slack_kind.render(alert)
        assert slack_kind.lint(slack_payload) == []
        assert len(slack_payload["blocks"]) == 1
        assert teams_kind.lint(teams_kind.render(alert)) == []
        assert len(text_kind.render(alert).splitlines()) == 2
    assert text_kind.render(resolved).splitlines()[0] == "Resolved: PlayFailed 400/8535 on contoso-acs"
    assert (
        "312 events, first arrived 2026-09-15 11:36:13 UTC, last arrived 2026-09-15 11:45:13 UTC"
        in text_kind.render(resolved)
    )
    assert text_kind.render(silenced).startswith(
        "Silenced: 4 events, first PlayFailed 400/8535 on contoso-acs"
    )
    shown = teams_kind.render(silenced)["attachments"][0]["content"]["body"][1]["text"]
    assert "by bob" in shown and "[docs](" not in shown and "https://" not in shown  # no link from a comment
