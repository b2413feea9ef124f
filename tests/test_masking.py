"""Phone numbers and raw identifiers are personal data: alerts show the country code and the last
four digits (or the last four characters of a user id) unless ACS_TRIAGE_MASK_PII=false."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from factories import make_alert, make_guidance

import function_app
from samples import sample, sample_bytes
from tools.localhost import LocalHost
from triage.events import to_incident
from triage.ingest import parse_body
from triage.model import Incident
from triage.render import render
from triage.service import Service
from triage.settings import Settings
from triage.store.memory import MemoryStore

ACS_USER = "8:acs:6c0d1f2a-4b3e-4c5d-8e9f-0a1b2c3d4e5f_0000001a-2b3c-4d5e-6f70-8192a3b4c5d6"

# sample → (what must never be shown when masked, what the masked form shows instead)
CASES: dict[str, tuple[list[str], list[str]]] = {
    # participant rawId, phoneNumber.value and the same number inside the event message
    "callbacks/add-participant-failed-pstn-480-560480.json": (["4255550123"], ["4:+1 ••••••0123"]),
    # an ACS user id in the participant and in the message
    "callbacks/add-participant-failed-408-10057.json": (
        ["6c0d1f2a-4b3e", "0000001a-2b3c", "8192a3b4"],
        ["8:acs:…c5d6"],
    ),
    "callbacks/move-participant-failed-404-8522.json": (["612345678"], ["4:+33 •••••5678"]),
    "callbacks/remove-participant-failed-404-8522.json": (["7700900123"], ["4:+44 ••••••0123"]),
    # SMS to and from, Event Grid schema and CloudEvents (PascalCase keys)
    "eventgrid/sms-delivery-failed-4007-opt-out.json": (
        ["4255550123", "8005550199"],
        ["+1 ••••••0123", "+1 ••••••0199"],
    ),
    "cloudevents/sms-delivery-failed-4004.json": (["412345678"], ["+61 •••••5678"]),
}
FULL = {
    "callbacks/add-participant-failed-pstn-480-560480.json": "+14255550123",
    "callbacks/add-participant-failed-408-10057.json": ACS_USER,
    "callbacks/move-participant-failed-404-8522.json": "+33612345678",
    "callbacks/remove-participant-failed-404-8522.json": "+447700900123",
    "eventgrid/sms-delivery-failed-4007-opt-out.json": "+14255550123",
    "cloudevents/sms-delivery-failed-4004.json": "+61412345678",
}


def incident_from(body: bytes, mask: bool) -> Incident:
    (raw,) = parse_body(body, None, 1 << 20).events
    incident = to_incident(raw, resource="contoso-acs", mask=mask)
    assert isinstance(incident, Incident)
    return incident


def incident_text(incident: Incident) -> str:
    return json.dumps([incident.message, incident.ids, incident.details], ensure_ascii=False)


def renderings(incident: Incident) -> dict[str, str]:
    alert = make_alert(incident, make_guidance(incident.code, incident.subcode))
    return {fmt: json.dumps(render(alert, fmt), ensure_ascii=False) for fmt in ("teams", "slack", "text")}


@pytest.mark.parametrize("name", list(CASES))
def test_personal_data_is_masked_in_the_incident_by_default(name: str) -> None:
    hidden, shown = CASES[name]
    text = incident_text(incident_from(sample_bytes(name), mask=True))
    for secret in hidden:
        assert secret not in text
    for masked in shown:
        assert masked in text


@pytest.mark.parametrize("name", list(CASES))
def test_personal_data_is_masked_in_teams_slack_and_text_alerts_by_default(name: str) -> None:
    hidden, shown = CASES[name]
    for fmt, text in renderings(incident_from(sample_bytes(name), mask=True)).items():
        for secret in hidden:
            assert secret not in text, fmt
        # Country code and last four survive every format's escaping.
        assert any(masked in text for masked in shown), fmt


@pytest.mark.parametrize("name", list(CASES))
def test_with_masking_off_numbers_and_ids_are_shown_in_full(name: str) -> None:
    incident = incident_from(sample_bytes(name), mask=False)
    assert FULL[name] in incident_text(incident)
    for fmt, text in renderings(incident).items():
        assert FULL[name] in text, fmt


def test_a_number_in_a_call_automation_message_is_masked_wherever_it_stands() -> None:
    doc = sample("callbacks/play-failed-400-8535.json")
    doc[0]["data"]["resultInformation"]["message"] = (
        "Transfer to +4915112345678 failed; caller 4:+14255550188 and user " + ACS_USER + " hung up."
    )
    text = incident_text(incident_from(json.dumps(doc).encode(), mask=True))
    for secret in ("15112345678", "4255550188", "6c0d1f2a"):
        assert secret not in text
    assert "+49 •••••••5678" in text and "4:+1 ••••••0188" in text and "8:acs:…c5d6" in text


def test_a_number_in_an_sms_delivery_message_is_masked() -> None:
    doc = sample("eventgrid/sms-delivery-failed-4007-opt-out.json")
    doc[0]["data"]["deliveryStatusDetails"] = (
        "ErrorCode: 4006. ErrorMessage: The Destination/To number +447700900456 isn't reachable"
    )
    incident = incident_from(json.dumps(doc).encode(), mask=True)
    assert "7700900456" not in incident_text(incident)
    assert "+44 ••••••0456" in incident.message


def test_masking_keeps_what_support_needs_ids_codes_and_the_message() -> None:
    incident = incident_from(sample_bytes("callbacks/add-participant-failed-pstn-480-560480.json"), mask=True)
    assert (incident.code, incident.subcode) == (480, 560480)
    assert incident.ids["correlationId"] == "8ca81811-66d2-4876-b2fd-f2022a96fb1a"
    assert "Underlying reason: Temporarily Unavailable. DiagCode: 480#560480" in incident.message


@pytest.fixture
def two_destinations() -> Iterator[tuple[MemoryStore, dict[str, str]]]:
    env = {
        "ACS_TRIAGE_TEAMS_URL": "https://teams.example.invalid/workflows/x?sig=y",
        "ACS_TRIAGE_SLACK_URL": "https://slack.example.invalid/services/T/B/z",
    }
    yield MemoryStore(), env
    function_app.configure(Service(Settings.from_env({}), MemoryStore()))


@pytest.mark.parametrize(("mask_setting", "masked"), [(None, True), ("true", True), ("false", False)])
def test_the_alerts_the_app_posts_follow_acs_triage_mask_pii(
    two_destinations: tuple[MemoryStore, dict[str, str]], mask_setting: str | None, masked: bool
) -> None:
    store, env = two_destinations
    if mask_setting is not None:
        env["ACS_TRIAGE_MASK_PII"] = mask_setting
    function_app.configure(Service(Settings.from_env(env), store))
    host = LocalHost(function_app.app)
    for name in (
        "callbacks/add-participant-failed-pstn-480-560480.json",
        "eventgrid/sms-delivery-failed-4007-opt-out.json",
    ):
        route = "/api/callbacks" if name.startswith("callbacks/") else "/api/eventgrid"
        assert host.http("POST", route, {}, sample_bytes(name))[0] == 200
    payloads = {m.destination: json.dumps(m.payload, ensure_ascii=False) for m in store.outbox}
    assert len(store.outbox) == 4 and set(payloads) == {"teams", "slack"}
    for message in store.outbox:
        text = json.dumps(message.payload, ensure_ascii=False)
        assert ("4255550123" not in text) is masked, message.destination
        assert ("+1 ••••••0123" in text) is masked, message.destination
