"""Matchers like Alertmanager's (=, !=, =~, !~, anchored regexes) in routes and silences; a
condition that can never match is a configuration error naming its rule or silence; an alert no
route matches goes to the default route and is counted. End to end where it matters: LocalHost's
/api/eventgrid, the queue trigger and the Slack-like and Teams-like sinks.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from azurite_server import STORE_KINDS
from factories import T0, make_incident
from test_delivery_faults import App, FakeClock, sms_failures

from samples import SAMPLES
from tools.sinks import SlackSink, TeamsSink
from triage.cli.silence import parse_matcher
from triage.clock import utcnow
from triage.errors import ConfigurationError, TriageError
from triage.matchers import Matcher
from triage.model import Incident
from triage.settings import Settings
from triage.store import SilenceRule
from triage.store.sqlite import SqliteStore

REPO = Path(__file__).resolve().parent.parent
SLACK = "https://slack.example.invalid/services/T/B/x"
PLAY = make_incident("PlayFailed", code=400, subcode=8535, resource="prod-acs")
SMS_4007 = make_incident("SMSDeliveryReportReceived", context="sms", code=4007, subcode=None)


def matches(incident: Incident, *matchers: str) -> bool:
    return Matcher(matchers=list(matchers)).matches(incident)


# -- the operators -------------------------------------------------------------------------------
def test_regexes_are_anchored_at_both_ends_as_alertmanagers_are() -> None:
    assert matches(PLAY, "kind=~Play.*")
    assert not matches(make_incident("ReplayFailed"), "kind=~Play.*")  # not a search
    assert not matches(PLAY, "resource=~prod")  # the whole value, not a prefix
    assert matches(PLAY, "resource=~prod-.*", "code=~4..")
    assert not matches(SMS_4007, "code=~4..")  # 4007 has four digits


def test_negative_operators_and_the_empty_value_of_a_missing_code() -> None:
    assert matches(PLAY, "kind!=RecognizeFailed", "resource!~test-.*")
    assert not matches(PLAY, "subcode!=8535")
    assert matches(SMS_4007, 'subcode=""')  # SMS reports have no subcode: the empty value
    assert not matches(SMS_4007, 'subcode!=""')
    assert matches(PLAY, 'subcode!=""', "code = 400")  # spaces around the operator, as in Alertmanager
    assert matches(PLAY, 'kind=~"Play.*|Recognize.*"')  # a quoted value


@pytest.mark.parametrize(
    "kind",
    ["SMSDeliveryReportReceived", "EmailDeliveryReportReceived", "AdvancedMessageDeliveryStatusUpdated",
     "RouterJobSchedulingFailed", "CallEnded", "PlayFailed", "SomeFutureActionFailed"],
)  # fmt: skip
def test_every_event_kind_the_app_reads_is_a_kind_a_route_may_name(kind: str) -> None:
    routes = json.dumps([{"kinds": [kind], "to": ["slack"]}, {"matchers": [f"kind={kind}"], "to": ["slack"]}])
    assert Settings.read({"ACS_TRIAGE_SLACK_URL": SLACK, "ACS_TRIAGE_ROUTES": routes})[1] == []


def test_lists_and_matchers_combine_every_condition_must_hold() -> None:
    matcher = Matcher(kinds=["PlayFailed", "RecognizeFailed"], matchers=["resource=~prod-.*"])
    assert matcher.matches(PLAY)
    assert not matcher.matches(make_incident("PlayFailed", resource="test-acs"))
    assert matcher.describe() == "kinds=PlayFailed,RecognizeFailed resource=~prod-.*"


# -- conditions that can never match -------------------------------------------------------------
NEVER = [
    (
        {"kinds": ["~Play.*"]},
        "starts with an operator and would be compared literally: write a matcher such as kind=~Play.*",
    ),
    ({"matchers": ["kind==PlayFailed"]}, "starts with an operator"),
    ({"kinds": ["PlayFail"]}, "kind 'PlayFail' is not an event acs-triage alerts on"),
    ({"matchers": ["kind=~Foo.*"]}, "kind=~Foo.*: no event kind acs-triage alerts on meets these conditions"),
    ({"kinds": ["PlayFailed"], "not_kinds": ["PlayFailed"]}, "no event kind acs-triage alerts on meets"),
    ({"contexts": ["voice"]}, "context 'voice' is not one of call-automation"),
    (
        {"kinds": ["SMSDeliveryReportReceived"], "subcodes": [4007]},
        "SMS delivery reports carry a code and no subcode",
    ),
    ({"matchers": ["context=sms", "subcode=~40.."]}, "SMS delivery reports carry a code and no subcode"),
    (
        {"matchers": ["kind=SMSDeliveryReportReceived", "subcode=4007"]},
        "use codes (e.g. codes=4007 or code=4007)",
    ),
]


@pytest.mark.parametrize(("conditions", "message"), NEVER)
def test_a_route_that_can_never_match_is_an_error_naming_its_rule(
    conditions: dict[str, Any], message: str
) -> None:
    routes = [{"to": ["slack"], "continue": True}, {**conditions, "to": ["slack"]}]
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({"ACS_TRIAGE_SLACK_URL": SLACK, "ACS_TRIAGE_ROUTES": json.dumps(routes)})
    assert "ACS_TRIAGE_ROUTES rule 2: " in str(caught.value)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        (["kinds=PlayFail"], "kind 'PlayFail' is not an event"),
        (["kinds=SMSDeliveryReportReceived", "subcodes=4007"], "carry a code and no subcode"),
        (["kind=~Foo.*"], "--match kind=~Foo.*: this silence could never match"),
        (["kind=~Play("], "not a valid regular expression"),
        (["code=~4.."], ""),  # fine: a regex on a code
        (["codes=abc"], "codes: Input should be a valid integer"),
        (["colour=red"], "unknown key 'colour'"),
    ],
)
def test_a_silence_that_can_never_match_is_refused_naming_why(pairs: list[str], message: str) -> None:
    if not message:
        assert parse_matcher(pairs).matches(PLAY)
        return
    with pytest.raises(TriageError, match=re.escape(message)):
        parse_matcher(pairs)


def test_the_command_line_reads_kinds_tilde_as_a_regex_not_a_literal_kind() -> None:
    matcher = parse_matcher(["kinds=~Play.*", "resources!=test-acs,dev-acs", "code=400,408"])
    assert matcher.conditions() == {
        "codes": [400, 408],
        "not_resources": ["test-acs", "dev-acs"],
        "matchers": ["kind=~Play.*"],
    }
    assert matcher.matches(PLAY) and not matcher.matches(make_incident("RecognizeFailed"))


def triage_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ACS_TRIAGE_")}
    return subprocess.run(
        [sys.executable, "-m", "triage", *args],
        check=False,
        cwd=REPO,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_regex_silence_added_on_the_command_line_silences_what_it_matches_end_to_end(
    tmp_path: Path, make_app: Callable[..., App], slack: SlackSink, clock: FakeClock
) -> None:
    path = tmp_path / "state.db"
    added = triage_cli(
        "silence", "add", "--match", "kinds=~SMS.*", "codes!=4006", "--for", "1h", "--comment", "carrier",
        "--by", "alice", env={"ACS_TRIAGE_STORE": f"sqlite:{path}"},
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "not_codes=4006 kind=~SMS.*" in added.stdout

    clock.advance((utcnow() - clock.now()).total_seconds() + 1)  # the command started it now
    store = SqliteStore(str(path))
    app = make_app(store, slack_url=slack.url)
    report = app.post(sms_failures(3) + sms_failures(1, code=4006, start=3))
    assert (report["silenced"], report["alerted"]) == (3, 1)


def test_doctor_names_a_stored_silence_that_can_never_match(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = SqliteStore(str(path))
    # As `silence add --match kinds=~Play.*` stored it before: the literal kind '~Play.*'.
    literal = Matcher(kinds=["~Play.*"])
    store.add_silence(SilenceRule("3f2a9c1e", literal, T0, T0.replace(year=2099), "prompts", "alice"))
    store.close()
    result = triage_cli("doctor", env={"ACS_TRIAGE_STORE": f"sqlite:{path}", "ACS_TRIAGE_SLACK_URL": SLACK})
    [line] = [line for line in result.stdout.splitlines() if "3f2a9c1e" in line]
    assert line.startswith("warning: silence 3f2a9c1e (kinds=~Play.*) can never match: ")
    assert "python -m triage silence expire 3f2a9c1e" in line
    listed = triage_cli("silence", "list", env={"ACS_TRIAGE_STORE": f"sqlite:{path}"})
    assert "CAN NEVER MATCH" in listed.stdout


# -- the default route ---------------------------------------------------------------------------
ROUTES = json.dumps([{"matchers": ["kind=~SMS.*", "code=~400[0-7]"], "to": ["slack"]}])


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_an_alert_no_route_matches_goes_everywhere_and_is_counted_in_health(
    kind: str,
    make_store: Callable[[str], Any],
    make_app: Callable[..., App],
    slack: SlackSink,
    teams: TeamsSink,
) -> None:
    app = make_app(make_store(kind), slack_url=slack.url, teams_url=teams.url, routes=ROUTES)
    routed = app.post(sms_failures(1, code=4007))
    unrouted = app.post(sms_failures(1, code=4010, start=1))
    app.deliver()

    assert (routed["unrouted"], routed["messages"]) == (0, 1)
    assert (unrouted["alerted"], unrouted["unrouted"], unrouted["messages"]) == (1, 1, 2)
    assert ["4007" in p["text"] for p in slack.accepted] == [True, False]
    [card] = teams.accepted
    assert "4010" in orjson.dumps(card).decode()
    status, _, answer = app.host.http("GET", "/api/health", {}, b"")
    assert orjson.loads(answer)["unrouted"] == 1, (status, answer)


def test_the_default_route_setting_picks_where_unmatched_alerts_go(
    make_store: Callable[[str], Any], make_app: Callable[..., App], slack: SlackSink, teams: TeamsSink
) -> None:
    app = make_app(
        make_store("memory"), slack_url=slack.url, teams_url=teams.url, routes=ROUTES, default_route="teams"
    )
    assert app.post(sms_failures(1, code=4010))["unrouted"] == 1
    app.deliver()
    assert slack.accepted == [] and len(teams.accepted) == 1


def test_a_default_route_naming_no_configured_destination_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match=r"ACS_TRIAGE_DEFAULT_ROUTE names destinations that are not"):
        Settings.from_env({"ACS_TRIAGE_SLACK_URL": SLACK, "ACS_TRIAGE_DEFAULT_ROUTE": "pager"})


# -- docs/webhook.md -----------------------------------------------------------------------------
def test_the_webhook_documents_example_has_the_codes_the_pipeline_gives_an_sms_report() -> None:
    text = (REPO / "docs" / "webhook.md").read_text(encoding="utf-8")
    example = json.loads(re.search(r"## Example\s+```json\n(.*?)```", text, re.DOTALL).group(1))  # type: ignore[union-attr]
    sample = str(SAMPLES / "eventgrid" / "sms-delivery-failed-4007-opt-out.json")
    result = triage_cli("replay", "--quiet", "--format", "webhook", sample, env={})
    produced = json.loads(result.stdout)
    for key in ("title", "fingerprint"):
        assert example[key] == produced[key]
    for key in ("kind", "code", "subcode", "code_text", "resource", "context"):
        assert example["alert"][key] == produced["alert"][key]
    assert (example["alert"]["code"], example["alert"]["subcode"]) == (4007, None)  # SMS codes are codes
