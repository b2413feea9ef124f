"""Inhibition, as Alertmanager's `inhibit_rules` (ACS_TRIAGE_INHIBIT_RULES): while a source burst
fires, the alerts a rule's target matchers take with the same `equal` labels are held back,
counted (the answer's and /api/health's `inhibited`) and summarised when the source's burst
resolves, so nothing vanishes. End to end through LocalHost's /api/eventgrid, the digest timer
and the queue trigger to the Slack-like sink; time is a FakeClock (09:30 UTC), the window 5 min.

In these tests SMS delivery failure 4004 is the source and 4007 the target, on one ACS resource.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from azurite_server import STORE_KINDS
from test_delivery_faults import WINDOW_SECONDS, App, FakeClock, sms_failures

from tools.sinks import SlackSink
from triage.cli import main
from triage.errors import ConfigurationError
from triage.inhibit import INHIBIT_SPAN
from triage.settings import Settings

SLACK = "https://slack.example.invalid/services/T/B/x"
RULE = {
    "source_matchers": ["kind=SMSDeliveryReportReceived", "code=4004"],
    "target_matchers": ["code=4007"],
    "equal": ["resource"],
}


def on(resource: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same events from another ACS resource (its topic names it)."""
    for event in events:
        event["topic"] = event["topic"].replace("contoso-acs-prod", resource)
        event["id"] += resource
    return events


def make_inhibiting(
    make_app: Callable[..., App], store: Any, slack: SlackSink, *rules: dict[str, Any]
) -> App:
    return make_app(store, slack_url=slack.url, inhibit_rules=json.dumps(list(rules) or [RULE]))


def texts(slack: SlackSink) -> list[str]:
    return [p["text"] for p in slack.accepted]


def health(app: App) -> dict[str, Any]:
    status, _, body = app.host.http("GET", "/api/health", {}, b"")
    assert status == 200, body
    answer: dict[str, Any] = orjson.loads(body)
    return answer


def count_in(text: str) -> int:
    """Events a Slack text reports: a digest's 'N×', a summary's 'N events', else one."""
    found = re.search(r"(\d[\d,]*)× |Silenced: (\d[\d,]*) events?", text)
    return int((found.group(1) or found.group(2)).replace(",", "")) if found else 1


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_targets_on_the_sources_resource_are_held_back_while_it_fires_and_summarised_when_it_resolves(
    kind: str,
    make_store: Callable[[str], Any],
    make_app: Callable[..., App],
    slack: SlackSink,
    clock: FakeClock,
) -> None:
    app = make_inhibiting(make_app, make_store(kind), slack)
    app.post(sms_failures(2, code=4004))  # the source burst opens: its first alert goes out
    held = app.post(sms_failures(3))
    elsewhere = app.post(on("contoso-acs-test", sms_failures(1)))  # another resource: not equal
    clock.advance(WINDOW_SECONDS)
    app.post(sms_failures(1, code=4004, start=2))  # the source still fires
    app.flush()
    more = app.post(sms_failures(2, start=3))
    assert (held["inhibited"], held["alerted"], more["inhibited"]) == (3, 0, 2)
    assert (elsewhere["inhibited"], elsewhere["alerted"]) == (0, 1)
    assert health(app)["inhibited"] == 5
    app.deliver()
    assert not [t for t in texts(slack) if "4007 on contoso-acs-prod" in t]  # nothing of 4007 yet

    clock.advance(WINDOW_SECONDS)
    app.flush()  # the source's last digest
    clock.advance(WINDOW_SECONDS)
    app.flush()  # quiet for a window: the source resolves, and the inhibition ends with it
    app.deliver()
    # The resolved notice and the summary come from one flush, in either order.
    [summary] = [t for t in texts(slack) if t.startswith("Silenced:")]
    assert summary.startswith("Silenced: 5 events, first SMSDeliveryReportReceived 4007 on contoso-acs-prod")
    assert "inhibited while SMSDeliveryReportReceived 4004 fired on contoso-acs-prod" in summary
    assert "by inhibit rule 1" in summary

    after = app.post(sms_failures(1, start=5))  # the source is over: targets alert again
    app.deliver()
    assert (after["inhibited"], after["alerted"]) == (0, 1)
    target_texts = [t for t in texts(slack) if "4007 on contoso-acs-prod" in t]
    assert sum(count_in(t) for t in target_texts) == 6  # every target event: summary + alert


def test_a_source_is_not_held_back_by_its_own_rule_and_targets_in_its_first_batch_alert(
    make_store: Callable[[str], Any], make_app: Callable[..., App], slack: SlackSink
) -> None:
    every_sms = {"source_matchers": ["code=4004"], "target_matchers": ["kind=SMSDeliveryReportReceived"]}
    app = make_inhibiting(make_app, make_store("memory"), slack, every_sms)
    # One batch: the inhibition starts after it was read, so its 4007 still alerts.
    first = app.post(sms_failures(1, code=4004) + sms_failures(1))
    later = app.post(sms_failures(2, code=4004, start=1) + sms_failures(2, start=1))
    assert (first["alerted"], first["inhibited"]) == (2, 0)
    # The source's repeats are its burst's (held for the digest); the target's are held back.
    assert (later["grouped"], later["inhibited"]) == (2, 2)


def test_an_inhibition_runs_at_most_its_span_then_a_source_still_firing_starts_the_next(
    make_store: Callable[[str], Any], make_app: Callable[..., App], slack: SlackSink, clock: FakeClock
) -> None:
    app = make_inhibiting(make_app, make_store("sqlite"), slack)
    posted = inhibited = 0
    half = WINDOW_SECONDS // 2
    windows = int(INHIBIT_SPAN.total_seconds()) // WINDOW_SECONDS + 2
    for _ in range(windows):  # the source and then a target every 2.5 minutes, past the span
        for _ in range(2):
            app.post(sms_failures(1, code=4004, start=posted))
            inhibited += app.post(sms_failures(1, start=posted))["inhibited"]
            posted += 1
            clock.advance(half)
        app.flush()
    app.deliver()

    assert inhibited == posted  # every target, across both inhibitions
    [summary] = [t for t in texts(slack) if t.startswith("Silenced:")]
    # The first ended after an hour, having held back that hour's 24 targets; the next runs on.
    assert count_in(summary) == int(INHIBIT_SPAN.total_seconds()) // half
    assert health(app)["inhibited"] == posted


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        (
            [{"source_matchers": ["kind=CallDisconected"], "target_matchers": ["kind=~Play.*"]}],
            "ACS_TRIAGE_INHIBIT_RULES rule 1: source_matchers can never match: kind 'CallDisconected'",
        ),
        (
            [RULE, {"source_matchers": ["kind=CallDisconnected"], "target_matchers": ["kind=~Play.*("]}],
            "ACS_TRIAGE_INHIBIT_RULES rule 2: target_matchers: 'kind=~Play.*(': not a valid regular "
            "expression",
        ),
        (
            [{"source_matchers": ["kind=CallDisconnected"], "target_matchers": []}],
            "ACS_TRIAGE_INHIBIT_RULES rule 1: target_matchers: List should have at least 1 item",
        ),
        (
            [{"source": ["kind=CallDisconnected"], "target_matchers": ["kind=PlayFailed"]}],
            "source: unknown key (known keys: source_matchers, target_matchers, equal)",
        ),
        (
            [{**RULE, "equal": ["resources"]}],
            "ACS_TRIAGE_INHIBIT_RULES rule 1: equal.0: Input should be 'kind', 'code'",
        ),
        (
            [
                {
                    "source_matchers": ["kind=SMSDeliveryReportReceived", "subcode=4007"],
                    "target_matchers": ["code=1"],
                }
            ],
            "ACS_TRIAGE_INHIBIT_RULES rule 1: source_matchers can never match",
        ),
    ],
)
def test_an_inhibit_rule_that_cannot_work_is_an_error_naming_the_rule(rules: list[Any], message: str) -> None:
    values = {"ACS_TRIAGE_SLACK_URL": SLACK, "ACS_TRIAGE_INHIBIT_RULES": json.dumps(rules)}
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env(values)
    assert message in str(caught.value)


def test_doctor_lists_each_inhibit_rule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rule = {
        "source_matchers": ["kind=CallDisconnected"],
        "target_matchers": ["kind=~Play.*"],
        "equal": ["resource"],
    }
    values = {"ACS_TRIAGE_SLACK_URL": SLACK, "ACS_TRIAGE_INHIBIT_RULES": json.dumps([rule])}
    settings = tmp_path / "local.settings.json"
    settings.write_text(json.dumps({"IsEncrypted": False, "Values": values}))

    assert main(["doctor", "--settings", str(settings), "--offline"]) == 0
    assert (
        "inhibit: rule 1: while kind=CallDisconnected fires, kind=~Play.* with the same resource is "
        "held back (counted, summarised when it ends)"
    ) in capsys.readouterr().out.splitlines()
