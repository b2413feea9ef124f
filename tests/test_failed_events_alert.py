"""A `*Failed` event is an alert whatever its code: only CallDisconnected and SMS delivery
reports may be successes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from samples import sample_bytes
from triage.catalog import lookup
from triage.events import NO_CODE, to_incident
from triage.ingest import parse_body
from triage.model import Incident, Severity
from triage.pipeline import Report, Triage
from triage.settings import Settings
from triage.store.memory import MemoryStore

PAYLOADS = Path(__file__).resolve().parent / "payloads"
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def handle(body: bytes) -> Report:
    """The pipeline's report for one request body."""
    settings = Settings.from_env({"ACS_TRIAGE_SLACK_URL": "https://hooks.slack.com/services/T/B/x"})
    return Triage(settings, MemoryStore()).handle(parse_body(body, None, 1 << 20).events, T0)


def test_send_dtmf_tones_failed_with_code_200_0_alerts_and_is_not_counted_as_a_success() -> None:
    report = handle((PAYLOADS / "send-dtmf-tones-failed-200-0.json").read_bytes())
    assert (report.successes, report.alerted) == (0, 1)
    [alert] = report.alerts
    assert alert.severity is Severity.WARNING
    assert "SendDtmfTonesFailed reports a failure although its code means success" in alert.guidance.flags


def test_a_failed_event_without_result_information_alerts_saying_no_code_given() -> None:
    body = (PAYLOADS / "hold-failed-without-result-information.json").read_bytes()
    (raw,) = parse_body(body, None, 1 << 20).events
    incident = to_incident(raw)
    assert isinstance(incident, Incident)
    assert (incident.code, incident.subcode, incident.message) == (None, None, NO_CODE)
    assert NO_CODE.startswith("no code given")
    report = handle(body)
    assert (report.successes, report.alerted) == (0, 1)
    assert report.alerts[0].incident.message == NO_CODE


def test_a_normal_call_end_is_still_a_success() -> None:
    report = handle(sample_bytes("callbacks/call-disconnected-normal-200-7000.json"))
    assert (report.successes, report.alerted) == (1, 0)


def test_only_call_disconnected_and_sms_reports_may_read_a_success_code_as_success() -> None:
    for event in ("CallDisconnected", "SMSDeliveryReportReceived"):
        assert lookup(200, 0, "call-automation", event).severity is Severity.NONE
    for event in ("PlayFailed", "SendDtmfTonesFailed", "HoldFailed", "SomeFutureThingFailed"):
        assert lookup(200, 0, "call-automation", event).severity is Severity.WARNING, event
