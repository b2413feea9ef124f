"""Issue: advice that is never wrong. Each case replays a sample event through the real pipeline
(`tools.replay.alerts_from_files`: ingest → events → catalog → policy) and reads the alert as
Teams, Slack and the terminal show it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tools.replay import SAMPLES, alerts_from_files
from triage.destinations import slack, teams, text
from triage.model import Alert, Category, Incident, Match, Severity

CALL_AGENT = "createCallAgent"
TEAMS_PHONE_PAGE = "https://learn.microsoft.com/en-us/azure/communication-services/concepts/interop/tpe/teams-phone-extensibility-troubleshooting"
SEED_NAME = ".txt"  # every seed file is NNN_<hex>.txt: no alert may name one


def _alert(name: str) -> Alert:
    alerts = alerts_from_files([str(SAMPLES / name)])
    assert len(alerts) == 1
    return alerts[0]


def _everywhere(alert: Alert) -> list[str]:
    """The alert as the terminal, Teams and Slack get it (JSON bodies as text)."""
    bodies: list[Any] = [teams.render(alert), slack.render(alert)]
    return [text.render(alert), *(json.dumps(b, ensure_ascii=False) for b in bodies)]


# -- 1. fallbacks fit the context --------------------------------------------------------------------


def test_sms_code_the_catalog_lacks_gets_sms_advice_by_code_class_never_call_agent_advice() -> None:
    alert = _alert("eventgrid/sms-delivery-failed-4999-unlisted.json")
    g = alert.guidance
    assert (alert.incident.context, g.match, g.category) == ("sms", Match.CODE_CLASS, Category.EXPECTED)
    out = text.render(alert)
    assert "What:       The message was rejected or could not be delivered to this number" in out
    assert "Resending the same message unchanged will not help." in out
    assert 'exposed through the "DeliveryStatusDetails" field in the SMS delivery report' in out
    assert "The SMS message ID (messageId, shown under IDs)" in out
    assert "Catalog:    Troubleshooting in Azure Communication Services · SMS error codes" in out
    for body in _everywhere(alert):
        assert CALL_AGENT not in body and "call agent" not in body.lower()


def test_sms_5xxx_code_the_catalog_lacks_is_a_service_error_to_resend_later() -> None:
    from triage.catalog import lookup

    g = lookup(5999, None, "sms", "SMSDeliveryReportReceived")
    assert (g.match, g.severity) == (Match.CODE_CLASS, Severity.ERROR)
    assert g.advice.startswith("Try resending the message at a later time.")


@pytest.mark.parametrize(
    ("sample", "action"),
    [
        ("callbacks/remove-participant-failed-no-result.json", "Removing a participant from the call"),
        ("callbacks/cancel-add-participant-failed-no-result.json", "Cancelling a pending AddParticipant"),
    ],
)
def test_call_automation_event_without_result_says_which_action_failed_and_which_ids_to_give(
    sample: str, action: str
) -> None:
    alert = _alert(sample)
    assert (alert.incident.context, alert.guidance.match) == ("call-automation", Match.UNKNOWN)
    out = text.render(alert)
    assert f"What:       {action}" in out and "The event carried no result code." in out
    assert "correlationID from the callback events (shown under IDs)" in out
    for body in _everywhere(alert):
        assert CALL_AGENT not in body


def test_call_automation_code_class_fallbacks_name_client_and_service_errors() -> None:
    from triage.catalog import lookup

    client = lookup(499, 1, "call-automation", "PlayFailed")
    assert client.message.startswith("Client error (400-499)")
    assert client.advice.startswith("Playing audio into the call (Play) failed.")
    assert "Look at the error message to determine which input is incorrect." in client.advice
    server = lookup(599, 1, "call-automation", "PlayFailed")
    assert (server.severity, server.match) == (Severity.ERROR, Match.CODE_CLASS)
    assert "Retry after a delay. If it persists, raise a support ticket." in server.advice
    for context in ("call-automation", "pstn", "teams-phone", "chat", "sms"):
        for code in (None, 499, 599, 699, 4999, 7999):
            assert CALL_AGENT not in lookup(code, None, context).advice, (context, code)  # type: ignore[arg-type]


def test_the_calling_sdk_keeps_the_call_agent_advice_for_codes_it_lacks() -> None:
    from triage.catalog import lookup

    assert CALL_AGENT in lookup(799, None, "calling-sdk").advice


# -- 2. the dual-persona case --------------------------------------------------------------------------


def test_add_participant_408_10057_for_an_8_acs_participant_is_teams_phones_dual_persona_case() -> None:
    alert = _alert("callbacks/add-participant-failed-408-10057.json")
    assert alert.incident.context == "teams-phone"
    g = alert.guidance
    assert (g.table, g.match) == ("teams-phone", Match.EXACT_IN_CONTEXT)
    out = text.render(alert)
    assert "What:       addParticipants failed for participant 8:acs" in out
    assert "Custom Teams Endpoint (CTE) token" in out
    assert f"Docs:       {TEAMS_PHONE_PAGE}" in out


def test_408_10057_for_a_phone_number_stays_a_call_end_failure() -> None:
    from triage.events import to_incident
    from triage.ingest import parse_body

    body = json.loads((SAMPLES / "callbacks/add-participant-failed-408-10057.json").read_text())
    data = body[0]["data"]
    data["participant"] = {
        "rawId": "4:+14255550123",
        "kind": "phoneNumber",
        "phoneNumber": {"value": "+14255550123"},
    }
    data["resultInformation"]["message"] = "addParticipants failed. DiagCode: 408#10057.@"
    raw = parse_body(json.dumps(body).encode(), "application/json", 1 << 20).events[0]
    incident = to_incident(raw)
    assert isinstance(incident, Incident) and incident.context == "call-automation"


# -- 3. every documented meaning -------------------------------------------------------------------------


def test_dual_persona_alert_also_shows_the_call_end_meaning_in_text_teams_and_slack() -> None:
    alert = _alert("callbacks/add-participant-failed-408-10057.json")
    other = "Call failed, callee failed to finalize call setup"
    plain, teams_body, slack_body = _everywhere(alert)
    assert f"  Also documented as: {other}" in plain
    assert "(Calling End call codes and subcodes, 408/10057)" in plain
    assert "**Also documented as**" in teams_body and other in teams_body
    assert "*Also documented as*" in slack_body and other in slack_body
    assert teams.lint(teams.render(alert)) == [] and slack.lint(slack.render(alert)) == []


def test_other_meanings_come_only_from_the_contexts_own_area() -> None:
    from triage.catalog import lookup

    automation = lookup(408, 10057, "call-automation")
    assert [g.table for g in automation.related] == ["teams-phone"]
    assert automation.also == ()  # Teams Phone's advice is not Call Automation's
    pstn = lookup(403, 510403, "pstn")
    assert [g.table for g in pstn.also] == ["call-end"]


# -- 4. the docs' words, not our files ------------------------------------------------------------------


@pytest.mark.parametrize(
    "sample",
    [
        "callbacks/call-disconnected-410-3112.json",
        "callbacks/add-participant-failed-408-10057.json",
        "eventgrid/sms-delivery-failed-4999-unlisted.json",
        "eventgrid/sms-delivery-failed-4007-opt-out.json",
    ],
)
def test_alerts_name_the_source_page_by_title_and_never_a_seed_file(sample: str) -> None:
    alert = _alert(sample)
    for body in _everywhere(alert):
        assert SEED_NAME not in body
    assert alert.guidance.docs_url.startswith(
        "https://learn.microsoft.com/en-us/azure/communication-services/"
    )


def test_a_sentence_pointing_here_at_a_lost_link_gets_the_pages_url() -> None:
    out = text.render(_alert("callbacks/call-disconnected-410-3112.json"))
    assert (
        "Learn more details about a call ending with a subcode of 3112 here: "
        "https://learn.microsoft.com/en-us/azure/communication-services/resources/troubleshooting/"
        "voice-video-calling/troubleshooting-codes" in out
    )
    assert "3112 here." not in out


def test_explain_names_the_page_title_not_the_seed_file(capsys: pytest.CaptureFixture[str]) -> None:
    from triage.cli.catalog import main

    for argv in (["explain", "4999", "--context", "sms"], ["explain", "408", "10057", "--json"]):
        assert main(argv) == 0
        assert SEED_NAME not in capsys.readouterr().out
