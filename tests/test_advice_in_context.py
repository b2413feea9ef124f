"""Issue: advice that is never wrong. Each case replays a sample event through the real pipeline
(`tools.replay.alerts_from_files`: ingest → events → catalog → policy) and reads the alert as
Teams, Slack and the terminal show it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tools.replay import SAMPLES, alerts_from_files
from triage.destinations import slack, teams, text
from triage.model import CONTEXTS, Alert, Category, Guidance, Incident, Match, Severity

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


# -- 5. the whole event picks the row (issue 26) ---------------------------------------------------------

ADVICE = Path(__file__).resolve().parent / "payloads" / "advice"
DUAL_PERSONA = "Custom Teams Endpoint (CTE) token"
CALLEE_SETUP = "Call failed, callee failed to finalize call setup"


def _replayed(path: Path) -> Alert:
    alerts = alerts_from_files([str(path)])
    assert len(alerts) == 1
    return alerts[0]


def _changed(tmp_path: Path, name: str, **data: Any) -> Path:
    """A copy of an event file of tests/payloads/advice with some of its data's keys replaced."""
    body = json.loads((ADVICE / name).read_text())
    body[0]["data"].update(data)
    path = tmp_path / name
    path.write_text(json.dumps(body))
    return path


def test_add_participant_408_10057_for_a_teams_user_gets_the_calling_sdk_meaning_not_dual_persona() -> None:
    alert = _replayed(ADVICE / "add-participant-failed-408-10057-teams-user.json")
    g = alert.guidance
    assert (g.table, g.match) == ("call-end", Match.EXACT)
    out = text.render(alert)
    assert f"What:       {CALLEE_SETUP}" in out
    assert "Also documented as" not in out  # the dual-persona row's condition does not hold
    for body in _everywhere(alert):
        assert DUAL_PERSONA not in body and "addParticipants failed for participant 8:acs" not in body


@pytest.mark.parametrize(
    ("participant", "dual_persona"),
    [
        ({"rawId": "8:acs:6c0d1f2a_0000001a", "kind": "communicationUser"}, True),
        ({"rawId": "8:orgid:2f9c1a7e", "kind": "microsoftTeamsUser"}, False),
        ({"rawId": "28:orgid:9da5fbd9", "kind": "microsoftTeamsApp"}, False),
        ({"rawId": "8:orgid:2f9c1a7e", "kind": "teamsExtensionUser"}, False),
        ({"rawId": "4:+14255550123", "kind": "phoneNumber", "phoneNumber": {"value": "+14255550123"}}, False),
    ],
    ids=["8:acs", "teams-user", "teams-app", "teams-extension", "phone"],
)
def test_408_10057_is_dual_persona_only_for_an_8_acs_participant_whatever_the_context(
    tmp_path: Path, participant: dict[str, Any], dual_persona: bool
) -> None:
    path = _changed(tmp_path, "add-participant-failed-408-10057-teams-user.json", participant=participant)
    alert = _replayed(path)
    assert (alert.guidance.table == "teams-phone") is dual_persona
    assert (DUAL_PERSONA in text.render(alert)) is dual_persona
    if not dual_persona:
        assert alert.guidance.message.startswith(CALLEE_SETUP)


def test_add_participant_400_8523_with_the_documented_message_gets_the_teams_phone_caller_id_fix() -> None:
    alert = _replayed(ADVICE / "add-participant-failed-400-8523-caller-id-not-supported.json")
    assert (alert.incident.context, alert.guidance.table) == ("teams-phone", "teams-phone")
    out = text.render(alert)
    assert "What:       Invalid request: SourceCallerIdNumber and SourceDisplayName aren't supported" in out
    assert "You need to set the second parameter in the CallInvite object to null" in out
    assert 'AddParticipantAsync(new CallInvite(new PhoneNumberIdentifier("+133333333"),null))' in out
    assert "chosen by the source's condition: message containing 'Invalid request, SourceCaller" in out
    assert f"Docs:       {TEAMS_PHONE_PAGE}" in out


def test_add_participant_400_8523_with_another_message_is_call_automations_invalid_request(
    tmp_path: Path,
) -> None:
    said = {"code": 400, "subCode": 8523, "message": "Invalid request body: 'targets' is missing."}
    name = "add-participant-failed-400-8523-caller-id-not-supported.json"
    path = _changed(tmp_path, name, resultInformation=said)
    alert = _replayed(path)
    assert (alert.incident.context, alert.guidance.table) == ("call-automation", "call-automation")
    assert alert.guidance.message.startswith(
        "A generic error code that indicates that something in the request"
    )
    assert "CallInvite object to null" not in text.render(alert)


# -- 6. no advice from another product area (issue 26) ---------------------------------------------------


def test_create_call_failed_422_0_gets_call_automations_fallback_not_teams_phones_obo_snippet() -> None:
    alert = _replayed(ADVICE / "create-call-failed-422-0.json")
    g = alert.guidance
    assert (alert.incident.context, g.table, g.match) == ("call-automation", "", Match.CODE_CLASS)
    out = text.render(alert)
    assert "What:       Client error (400-499): Call Automation did not accept the request." in out
    assert "Creating an outbound call (CreateCall) failed." in out
    for body in _everywhere(alert):
        assert "onBehalfOfOptions" not in body and "Invalid CommunicationUser identifier" not in body


def test_explain_422_in_the_pstn_context_gives_the_pstn_fallback(capsys: pytest.CaptureFixture[str]) -> None:
    from triage.cli.catalog import main

    assert main(["explain", "422", "--context", "pstn"]) == 0
    out = capsys.readouterr().out
    assert "Client error (400-499) on the PSTN leg: the call didn't connect." in out
    assert "onBehalfOfOptions" not in out and "teams-phone" not in out


def test_call_disconnected_410_3199_gets_call_automations_fallback_not_the_calling_sdk_line() -> None:
    alert = _replayed(ADVICE / "call-disconnected-410-3199.json")
    assert (alert.incident.context, alert.guidance.match) == ("call-automation", Match.CODE_CLASS)
    assert "The call was disconnected." in text.render(alert)
    for body in _everywhere(alert):
        assert "latest SDK" not in body and "Local media stack" not in body


def test_send_dtmf_tones_failed_200_0_lists_no_meanings_of_other_codes() -> None:
    alert = _replayed(Path(__file__).resolve().parent / "payloads" / "send-dtmf-tones-failed-200-0.json")
    assert alert.guidance.also == ()
    for body in _everywhere(alert):
        assert "Also documented as" not in body


# -- 7. the smaller findings (issue 26) ------------------------------------------------------------------


def test_a_callback_whose_time_is_only_in_its_data_shows_that_time() -> None:
    alert = _replayed(ADVICE / "add-participant-failed-time-in-data-only.json")
    assert "Event time: 2026-11-20 09:14:10 UTC" in text.render(alert)


def test_an_event_grid_call_automation_event_shows_the_topics_resource_name() -> None:
    alert = _replayed(ADVICE / "eventgrid-add-participant-failed-408-10057.json")
    assert alert.incident.resource == "contoso-acs"
    assert text.render(alert).startswith("WARNING  AddParticipantFailed 408/10057 on contoso-acs")


def test_a_busy_pstn_callee_alerts_a_failed_action_and_says_so_but_not_an_ended_call(tmp_path: Path) -> None:
    alert = _replayed(ADVICE / "add-participant-failed-486-560486-busy.json")
    assert (alert.guidance.category, alert.severity) == (Category.SUCCESS, Severity.WARNING)
    out = text.render(alert)
    assert "an action that failed on it (AddParticipantFailed, CreateCallFailed, …) still alerts" in out
    for body in _everywhere(alert):
        assert "no alert" not in body.replace("is not alerted", "")
    body = json.loads((ADVICE / "add-participant-failed-486-560486-busy.json").read_text())
    body[0]["type"] = "Microsoft.Communication.CallDisconnected"
    path = tmp_path / "call-disconnected-486-560486.json"
    path.write_text(json.dumps(body))
    assert alerts_from_files([str(path)]) == []  # the call ended on a busy callee: Success, no alert


# -- 8. every condition, every code, every context (issue 26) --------------------------------------------

ANY_EVENT = "AddParticipantFailed"
# One participant raw id of each kind: the first that a row's prefixes do not name breaks its condition.
KINDS = ("8:acs:6c0d1f2a", "8:orgid:2f9c1a7e", "28:orgid:9da5fbd9", "4:+14255550123")


def _conditional_rows() -> list[Any]:
    from triage import catalog

    return [r for r in catalog._catalog().rows if r.entry.when is not None]


def _heads(g: Guidance, row: Any) -> bool:
    return g.table == row.table.id and g.message == " ".join(row.entry.message.split())


@pytest.mark.parametrize("row", _conditional_rows(), ids=lambda r: r.key)
def test_each_documented_condition_picks_its_row_and_its_row_heads_nothing_else(row: Any) -> None:
    from triage.catalog import documented_row, lookup

    e, when = row.entry, row.entry.when
    event = when.events[0] if when.events else ANY_EVENT
    participant = f"{when.participants[0]}0000-1111" if when.participants else ""
    message = f"Action failed: {when.message.upper()} DiagCode: {e.code}#{e.subcode}." if when.message else ""
    chosen = documented_row(event, e.code, e.subcode, participant, message)
    assert chosen == (row.table.context, row.key)
    g = lookup(e.code, e.subcode, chosen[0], event, chosen[1])
    assert _heads(g, row) and g.match is Match.EXACT_IN_CONTEXT
    broken = []
    if when.events:
        other_event = next(k for k in ("PlayFailed", "CallDisconnected") if k not in when.events)
        broken.append((other_event, participant, message))
    if when.participants:
        other = next(k for k in KINDS if not any(k.startswith(p) for p in when.participants))
        broken.append((event, other, message))
    if when.message:
        broken.append((event, participant, "Action failed. DiagCode: 0#0.@"))
    for kind, who, said in broken:
        assert documented_row(kind, e.code, e.subcode, who, said) is None, (kind, who, said)
        for context in (None, *CONTEXTS):
            assert not _heads(lookup(e.code, e.subcode, context, kind), row), (context, kind, who, said)


def _every_key() -> list[tuple[int | None, int | None]]:
    """Every code and (code, subcode) of every table, with a subcode no table lists, 0 and none."""
    from triage import catalog

    rows = [r for r in catalog._catalog().rows if r.indexed]
    keys = {(r.entry.code, r.entry.subcode) for r in rows}
    keys |= {(r.entry.code, s) for r in rows for s in (None, 0, 3199, 99_999)}
    return sorted(keys, key=repr)


@pytest.mark.parametrize(
    ("context", "event"),
    [("call-automation", "CallDisconnected"), ("call-automation", "CreateCallFailed"), ("pstn", ANY_EVENT),
     ("sms", "SMSDeliveryReportReceived"), ("teams-phone", ANY_EVENT)],
)  # fmt: skip
def test_no_client_line_heads_an_alert_of_another_area_for_any_code_of_any_table(
    context: str, event: str
) -> None:
    """A code-only line of the Calling SDK's or Teams Phone's tables never answers a Call Automation,
    PSTN or SMS event; an SMS event gets only SMS rows or the SMS fallback; no row with conditions
    answers an event that did not meet them; "Also documented as" shows only the answer's own pair."""
    from triage import catalog

    loaded = catalog._catalog()
    area_of = {t.id: t.context for t in loaded.files.tables}
    conditional = _conditional_rows()
    for code, subcode in _every_key():
        g = catalog.lookup(code, subcode, context, event)  # type: ignore[arg-type]
        where = (code, subcode, g.table, g.match.value)
        exact = g.match in (Match.EXACT, Match.EXACT_IN_CONTEXT)
        code_only = g.match is Match.CODE or (exact and subcode is None)
        if code_only and context != "teams-phone":
            assert area_of[g.table] not in ("calling-sdk", "teams-phone"), where
        if context == "sms" and subcode is None:  # an SMS report carries an error code, never a subcode
            assert g.table in ("", "sms"), where
        assert not any(_heads(g, row) for row in conditional), where
        assert len({(a.code, a.subcode) for a in g.also}) <= 1, where
        for also in g.also:
            if exact:
                assert (also.code, also.subcode) == (code, subcode), where
            elif g.match is Match.CODE:
                assert (also.code, also.subcode) == (code, None), where
            else:
                assert also.subcode == subcode, where


# -- 9. explain --event FILE (issue 26) ------------------------------------------------------------------


def test_explain_event_file_says_which_condition_chose_the_row(capsys: pytest.CaptureFixture[str]) -> None:
    from triage.cli.catalog import main

    assert main(["explain", "--event", str(SAMPLES / "callbacks/add-participant-failed-408-10057.json")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("AddParticipantFailed 408/10057 (id 5affb229-7631-4992-b0ce-583505c6af07)")
    assert " · context teams-phone\nChosen by: the source's condition for row teams-phone:408/10057: " in out
    assert "teams-phone:408/10057: AddParticipantFailed, participant 8:acs:…" in out
    assert "addParticipants failed for participant 8:acs" in out and DUAL_PERSONA in out


def test_explain_event_file_says_when_no_condition_holds_and_lists_the_row_with_its_condition(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from triage.cli.catalog import main

    teams_user = str(ADVICE / "add-participant-failed-408-10057-teams-user.json")
    assert main(["explain", "--event", teams_user]) == 0
    out = capsys.readouterr().out
    assert "Chosen by: no documented condition holds: the event's own context and the usual order" in out
    assert CALLEE_SETUP in out
    assert (
        "  - teams-phone: 408/10057 addParticipants failed for participant 8:acs"
        " (only when: AddParticipantFailed, participant 8:acs:…)" in out
    )
    assert main(["explain", "--event", teams_user, "--json"]) == 0
    (found,) = json.loads(capsys.readouterr().out)
    assert (found["row"], found["chosen_by"], found["guidance"]["table"]) == ("", None, "call-end")


def test_explain_event_file_reads_every_event_of_a_batch_and_says_why_one_is_not_alerted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from triage.cli.catalog import main

    assert main(["explain", "--event", str(SAMPLES / "eventgrid/sms-batch-mixed.json"), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert any(f.get("skipped") == "SMS delivered" for f in found)
    assert any(f.get("guidance", {}).get("table") == "sms" for f in found)


def test_explain_event_still_takes_an_event_kind(capsys: pytest.CaptureFixture[str]) -> None:
    from triage.cli.catalog import main

    assert main(["explain", "400", "8535", "--context", "call-automation", "--event", "PlayFailed"]) == 0
    assert "advice for PlayFailed added from" in capsys.readouterr().out


# -- 10. the chosen row outlives the store (issue 26) ----------------------------------------------------


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_a_digest_of_dual_persona_failures_keeps_the_row_their_condition_chose(
    tmp_path: Path, backend: str
) -> None:
    """A digest is looked up again from the stored first incident: the row the event's condition
    chose is stored with it, so the digest says what the first alert said."""
    from datetime import UTC, datetime, timedelta

    from triage.ingest import parse_body
    from triage.pipeline import Triage
    from triage.settings import Settings
    from triage.store.memory import MemoryStore
    from triage.store.sqlite import SqliteStore

    body = json.loads((SAMPLES / "callbacks/add-participant-failed-408-10057.json").read_text())
    items = [{**body[0], "id": f"dual-persona-{n}"} for n in range(3)]
    raws = parse_body(json.dumps(items).encode(), None, 1 << 20).events
    store = MemoryStore() if backend == "memory" else SqliteStore(tmp_path / "state.db")
    triage = Triage(Settings.from_env({}), store)
    t0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    (first,) = triage.handle(raws, t0).alerts
    (digest,) = triage.flush(t0 + timedelta(minutes=5)).alerts
    assert digest.digest and digest.count == 2
    assert first.incident.row == digest.incident.row == "teams-phone:408/10057"
    assert first.guidance.table == digest.guidance.table == "teams-phone"
    assert DUAL_PERSONA in text.render(digest)


def test_an_incident_stored_before_rows_were_chosen_reads_as_chosen_by_no_condition() -> None:
    from triage.codec import incident_from_dict, incident_to_dict

    alert = _alert("callbacks/add-participant-failed-408-10057.json")
    stored = incident_to_dict(alert.incident)
    assert stored["row"] == "teams-phone:408/10057" and incident_from_dict(stored) == alert.incident
    del stored["row"]
    assert incident_from_dict(stored).row == ""
    plain = incident_to_dict(_alert("callbacks/play-failed-400-8535.json").incident)
    assert "row" not in plain  # stored as before when no condition chose the row
