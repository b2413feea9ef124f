"""CallEnded, email delivery reports and WhatsApp delivery statuses: each case from an event file
to the alert text `python -m triage replay` prints, and what the pipeline, the catalog, masking,
grouping, silences, routes and the daily report make of them.

The event files are the samples (spelled as ACS spells them) and, in tests/payloads, the other
spellings the documents show (`communicationidentifier`, PascalCase, `deliveryAttemptTimeStamp`,
`receivedTimeStamp`, strings for numbers)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from factories import make_alert
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_cli import run

from samples import SAMPLES
from triage import catalog, report
from triage.catalog import lookup, lookup_status
from triage.destinations import pagerduty, webhook
from triage.events import Reading, Skip, read, smtp_code, to_incident
from triage.ingest import RawEvent, parse_body
from triage.matchers import Matcher
from triage.model import Category, Incident, Match, Severity
from triage.pipeline import Report, Triage
from triage.policy import Route
from triage.settings import Settings
from triage.store import SilenceRule
from triage.store.memory import MemoryStore
from triage.store.sqlite import SqliteStore

PAYLOADS = Path(__file__).resolve().parent / "payloads"
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
ASSUMED = "assumed: Microsoft documents these codes for the Calling SDK's call.callEndReason"
META_PAGE = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes"
SLACK = "https://hooks.slack.com/services/T/B/x"


def replay(*files: Path) -> tuple[str, str]:
    """(alert text, per-file summary) of `python -m triage replay FILE…`."""
    result = run("replay", *(str(f) for f in files))
    assert result.returncode == 0, result.stderr
    return result.stdout, result.stderr


def events_of(path: Path) -> list[RawEvent]:
    return parse_body(path.read_bytes(), "application/json", 1 << 22).events


def handle(*paths: Path, store: Any = None, env: dict[str, str] | None = None, now: datetime = T0) -> Report:
    """The pipeline's report for the events of `paths`, as one batch."""
    settings = Settings.from_env({"ACS_TRIAGE_SLACK_URL": SLACK, **(env or {})})
    raws = [raw for path in paths for raw in events_of(path)]
    return Triage(settings, store or MemoryStore()).handle(raws, now)


# -- CallEnded -------------------------------------------------------------------------------------


def test_call_ended_490_4502_alerts_with_the_call_end_meaning_labelled_as_assumed() -> None:
    out, summary = replay(SAMPLES / "eventgrid/call-ended-490-4502.json")

    assert "alerted 1" in summary
    assert "ERROR  CallEnded 490/4502 on contoso-acs-prod" in out
    assert "What:       Call failed due to network connectivity problems, browser failed" in out
    assert "Category:   UnexpectedClientError" in out
    assert "Context:    calling-sdk" in out
    assert "Calling End call codes and subcodes · " + ASSUMED in out
    # Duration, who ended it (masked, no display name), correlation and server call ids.
    assert "Duration=1 min 14 s (74.5 s)" in out
    assert "Ended by=8:acs:…9d0e (Participant)" in out
    assert "correlationId=3f2a9c4e-7b1d-4e8a-9c5f-0d6e2b7a1c93" in out
    assert "serverCallId=aHR0cHM6Ly9hcGkuZmxpZ2h0cHJveHkuc2t5cGUuY29t" in out
    assert "Ana Agent" not in out
    assert "0000001c-4f1a-2b3c-8d4e-5f6a7b8c9d0e" not in out


def test_call_ended_as_a_cloud_event_tells_a_group_call_ended_by_microsoft() -> None:
    out, _ = replay(SAMPLES / "cloudevents/call-ended-408-10057.json")

    assert "WARNING  CallEnded 408/10057 on contoso-acs-prod" in out
    assert "Call failed, callee failed to finalize call setup" in out
    assert "Ended by=8:acs:…6666 (MicrosoftInternal)" in out
    assert "Call=group call a7f3e9c1-5b2d-4e8f-9a6c-3d1b7e5f9a2c" in out
    assert "Duration=31 s" in out


def test_a_call_that_ended_normally_is_counted_as_a_success_not_alerted() -> None:
    out, summary = replay(SAMPLES / "eventgrid/call-ended-normal-0-0.json")
    assert "200 successes 1\n" in summary and "alerted 0" in summary
    assert "CallEnded" not in out


def test_call_ended_in_other_spellings_reads_the_same_failure() -> None:
    out, _ = replay(PAYLOADS / "call-ended-other-spellings.json")

    # PascalCase keys, `communicationidentifier`/`rawid` in lower case, numbers as strings.
    assert "WARNING  CallEnded 410/3112 on contoso-acs-prod" in out
    assert "Duration=0.8 s" in out
    assert "Ended by=8:acs:…0000 (Participant)" in out
    assert "Started by=8:acs:…0000 (Attendee)" in out
    assert "correlationId=5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a" in out


def test_call_ended_without_a_reason_as_the_2021_sample_has_it_is_no_alert_and_not_invalid() -> None:
    (raw,) = events_of(PAYLOADS / "call-ended-2021-sample-without-reason.json")
    skip = read(raw)
    assert isinstance(skip, Skip)
    assert (skip.outcome, skip.reason) == ("success", "call ended without a reason code")


@pytest.mark.parametrize(
    "row",
    [r for r in catalog._catalog().rows if r.table.id == "call-end"],
    ids=lambda r: r.entry.message[:40],
)
def test_every_call_end_row_alerts_unless_its_category_is_success(row: Any) -> None:
    event = json.loads((SAMPLES / "eventgrid/call-ended-490-4502.json").read_text())[0]
    event["data"]["reason"] = {"code": row.entry.code, "subCode": row.entry.subcode, "phrase": "x"}
    raws = parse_body(json.dumps([event]).encode(), "application/json", 1 << 20).events
    result = Triage(Settings.from_env({"ACS_TRIAGE_SLACK_URL": SLACK}), MemoryStore()).handle(raws, T0)

    if row.entry.category == Category.SUCCESS:
        assert (result.successes, result.alerted) == (1, 0)
    else:
        assert (result.successes, result.alerted) == (0, 1)
        [alert] = result.alerts
        assert alert.guidance.table == "call-end" and ASSUMED in alert.guidance.source


def test_a_reason_the_call_end_table_lacks_still_alerts() -> None:
    found = lookup(7, 496, "calling-sdk", "CallEnded")
    assert found.severity is Severity.WARNING and found.match is Match.UNKNOWN


def test_participant_and_start_events_carry_no_failure_and_are_skipped() -> None:
    for kind in ("CallStarted", "CallParticipantAdded", "CallParticipantRemoved", "IncomingCall"):
        raw = RawEvent(
            "eventgrid", "e1", f"Microsoft.Communication.{kind}", "", "", None, {"serverCallId": "x"}
        )
        skip = read(raw)
        assert isinstance(skip, Skip) and skip.outcome == "skipped", kind


# -- EmailDeliveryReportReceived --------------------------------------------------------------------


def test_a_bounced_email_alerts_with_the_smtp_code_and_the_recipient_masked() -> None:
    out, _ = replay(SAMPLES / "eventgrid/email-bounced-550-5.1.1.json")

    assert "WARNING  EmailDeliveryReportReceived Bounced (@fabrikam.example) on contoso-acs-prod" in out
    assert "What:       Hard bounce detected while sending the email" in out
    assert "Event says: 550 5.1.1 <j•••@fabrikam.example>: Recipient address rejected" in out
    assert "SMTP=550 5.1.1" in out
    assert "Recipient=j•••@fabrikam.example" in out
    assert "jane.doe" not in out
    assert "messageId=5f1c2e3d-4b6a-4d8e-9f0a-1b2c3d4e5f60" in out
    assert "internetMessageId=<5f1c2e3d-4b6a-4d8e-9f0a-1b2c3d4e5f60@notify.contoso.example>" in out
    # The suppression list and its durations, from the sender reputation page.
    assert "24 hours after the first hard bounce" in out and "up to 14 days" in out
    assert (
        "Docs:       https://learn.microsoft.com/en-us/azure/communication-services/concepts/email/sender-reputation-managed-suppression-list"
        in out
    )
    assert "matched: the event's status" in out


def test_a_suppressed_email_says_not_to_retry_and_names_both_suppression_lists() -> None:
    out, _ = replay(SAMPLES / "cloudevents/email-suppressed.json")

    assert "WARNING  EmailDeliveryReportReceived Suppressed (@fabrikam.example)" in out
    assert "Event says: Recipient email address is on the suppression list." in out
    assert "the managed suppression list" in out and "your email domain's own suppression list" in out
    assert "Don't retry" in out
    assert "email-optout-management" in out


def test_a_bad_mailing_list_is_one_alert_and_one_digest_per_recipient_domain() -> None:
    out, summary = replay(SAMPLES / "eventgrid/email-batch-mailing-list.json")

    # 6 bounces to northwind, 1 to fabrikam, 1 delivered ("delivered"), 1 Expanded.
    assert "alerted 2, grouped 5, successes 1, skipped 1" in summary
    assert out.count("EmailDeliveryReportReceived Bounced (@northwind.example)") == 2  # first + digest
    assert "5× EmailDeliveryReportReceived Bounced (@northwind.example)" in out
    assert out.count("EmailDeliveryReportReceived Bounced (@fabrikam.example)") == 1
    assert "Expanded" not in out and "hana" not in out


def test_delivered_and_expanded_and_unknown_statuses_are_not_alerted_and_the_last_two_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    event = json.loads((SAMPLES / "eventgrid/email-bounced-550-5.1.1.json").read_text())[0]
    batch = [dict(event, id=f"e-{status}", data=dict(event["data"], status=status))
             for status in ("Delivered", "DELIVERED", "Expanded", "Deferred", "")]  # fmt: skip
    raws = parse_body(json.dumps(batch).encode(), "application/json", 1 << 20).events
    with caplog.at_level(logging.INFO, logger="triage"):
        result = Triage(Settings.from_env({"ACS_TRIAGE_SLACK_URL": SLACK}), MemoryStore()).handle(raws, T0)

    assert (result.alerted, result.successes, result.skipped) == (0, 2, 3)
    assert "email status 'Expanded' is not a documented failure: logged, not alerted" in caplog.text
    assert "email status 'Deferred' is not a documented failure" in caplog.text
    assert "no email status: logged, not alerted" in caplog.text


@pytest.mark.parametrize(
    "status", ["Bounced", "bounced", "FILTEREDSPAM", "Quarantined", "failed", "Suppressed"]
)
def test_every_failure_status_alerts_whatever_its_case(status: str) -> None:
    event = json.loads((SAMPLES / "eventgrid/email-bounced-550-5.1.1.json").read_text())[0]
    event["data"]["status"] = status
    raws = parse_body(json.dumps([event]).encode(), "application/json", 1 << 20).events
    result = Triage(Settings.from_env({"ACS_TRIAGE_SLACK_URL": SLACK}), MemoryStore()).handle(raws, T0)
    [alert] = result.alerts
    assert alert.incident.status.lower() == status.lower()
    assert alert.guidance.table == "email-delivery" and alert.guidance.match is Match.STATUS


def test_other_spellings_of_an_email_report_read_the_same_and_both_timestamps_are_accepted() -> None:
    out, _ = replay(PAYLOADS / "email-other-spellings.json")
    assert "WARNING  EmailDeliveryReportReceived FilteredSpam (@litware.example)" in out
    assert "SMTP=554 5.7.1" in out
    assert "Max.Mustermann" not in out

    event = json.loads((SAMPLES / "eventgrid/email-bounced-550-5.1.1.json").read_text())[0]["data"]
    times = []
    for key in ("deliveryAttemptTimestamp", "deliveryAttemptTimeStamp"):
        data = {k: v for k, v in event.items() if k != "deliveryAttemptTimestamp"} | {
            key: "2026-11-20T12:05:41Z"
        }
        raw = RawEvent(
            "eventgrid", "e1", "Microsoft.Communication.EmailDeliveryReportReceived", "", "", None, data
        )
        incident = to_incident(raw)
        assert isinstance(incident, Incident)
        times.append(incident.time)
    assert times == [datetime(2026, 11, 20, 12, 5, 41, tzinfo=UTC)] * 2


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("550 5.1.1 <a@b.example>: Recipient address rejected", "550 5.1.1"),
        ("Remote server returned '552-5.2.2 mailbox full'", "552 5.2.2"),
        ("421 Service not available, try later", "421"),
        ("smtp;554 5.7.1 rejected as spam", "554 5.7.1"),
        ("Recipient email address is on the suppression list.", ""),
        ("Message 5.1.1 without a reply code, id 12345", ""),
        (None, ""),
    ],
)
def test_the_smtp_code_is_read_out_of_the_status_message(message: str | None, code: str) -> None:
    assert smtp_code(message) == code


def test_every_email_status_row_answers_only_by_its_status_in_the_email_context() -> None:
    for status in ("Bounced", "Suppressed", "Failed", "FilteredSpam", "Quarantined"):
        found = lookup_status(status.upper(), "email", "EmailDeliveryReportReceived")
        assert (found.table, found.match) == ("email-delivery", Match.STATUS)
        assert found.source.startswith("Improve sender reputation in Azure Communication Services email")
    assert lookup_status("Bounced", "sms").match is Match.UNKNOWN  # another area has no such row
    assert lookup_status("Delivered", "email").match is Match.UNKNOWN
    assert lookup_status("Failed", "email").category is Category.UNKNOWN  # the catalog does not guess


def test_a_status_lookup_is_one_answer_object_per_status_so_its_alerts_share_a_template() -> None:
    """As `lookup` does: a pipeline started afresh gets the object alerts of that status were
    rendered with before (triage.render.template keys a shape by its Guidance object)."""
    first = lookup_status("Bounced", "email", "EmailDeliveryReportReceived")
    assert lookup_status("Bounced", "email", "EmailDeliveryReportReceived") is first
    assert lookup_status("Nonsense", "email") is lookup_status("Nonsense", "email")


# -- AdvancedMessageDeliveryStatusUpdated (WhatsApp) --------------------------------------------------


def test_a_failed_whatsapp_message_alerts_with_metas_code_and_the_number_masked() -> None:
    out, _ = replay(SAMPLES / "eventgrid/whatsapp-failed-131026.json")

    assert "WARNING  AdvancedMessageDeliveryStatusUpdated 131026 on contoso-acs-prod" in out
    assert "What:       Message Undeliverable." in out  # Learn's example; channelMessage says the same
    assert "To=+44 ••••••0123" in out and "447700900123" not in out
    assert "messageId=2a3b4c5d-6e7f-4a8b-9c0d-1e2f3a4b5c6d" in out
    assert META_PAGE in out
    assert "Context:    whatsapp" in out


def test_a_meta_code_the_catalog_lacks_is_named_as_metas_with_metas_page() -> None:
    out, _ = replay(SAMPLES / "cloudevents/whatsapp-failed-131047.json")

    assert "AdvancedMessageDeliveryStatusUpdated 131047" in out
    assert "What:       Meta code 131047: WhatsApp did not deliver the message." in out
    assert "Event says: Re-engagement message" in out
    assert META_PAGE in out
    assert "To=+1 ••••••1111" in out


def test_statuses_are_compared_without_case_and_warning_or_unknown_are_logged_not_alerted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    out, summary = replay(
        SAMPLES / "eventgrid/whatsapp-statuses.json", PAYLOADS / "whatsapp-other-spellings.json"
    )
    assert "successes 1, skipped 1" in summary  # Delivered, warning
    assert "AdvancedMessageDeliveryStatusUpdated 130429" in out  # "FAILED", receivedTimeStamp
    assert "What:       Rate limit hit" in out

    event = json.loads((SAMPLES / "eventgrid/whatsapp-failed-131026.json").read_text())[0]
    batch = [
        dict(event, id=f"w-{s}", data=dict(event["data"], status=s)) for s in ("Unknown", "READ", "Sent")
    ]
    raws = parse_body(json.dumps(batch).encode(), "application/json", 1 << 20).events
    with caplog.at_level(logging.INFO, logger="triage"):
        result = Triage(Settings.from_env({"ACS_TRIAGE_SLACK_URL": SLACK}), MemoryStore()).handle(raws, T0)
    assert (result.alerted, result.successes, result.skipped) == (0, 2, 1)
    assert "message status 'Unknown' is not a documented failure: logged, not alerted" in caplog.text


def test_a_channel_code_that_is_not_a_number_is_kept_in_the_message() -> None:
    event = json.loads((SAMPLES / "eventgrid/whatsapp-failed-131026.json").read_text())[0]
    event["data"]["error"] = {"channelCode": "ABC-1", "channelMessage": "odd"}
    (raw,) = parse_body(json.dumps([event]).encode(), "application/json", 1 << 20).events
    incident = to_incident(raw)
    assert isinstance(incident, Incident)
    assert (incident.code, incident.message) == (None, "channelCode ABC-1: odd")


def test_metas_numbers_never_reach_another_areas_tables_nor_acs_numbers_metas() -> None:
    assert lookup(131026, None, "call-automation", "PlayFailed").table != "whatsapp-meta"
    assert lookup(400, None, "whatsapp").message == "Meta code 400: WhatsApp did not deliver the message."
    assert lookup(131026, None, "whatsapp").table == "whatsapp-meta"


# -- routes, silences, the daily report, PagerDuty and the webhook document ----------------------------


NEW_SAMPLES = (
    SAMPLES / "eventgrid/call-ended-490-4502.json",
    SAMPLES / "eventgrid/email-bounced-550-5.1.1.json",
    SAMPLES / "eventgrid/whatsapp-failed-131026.json",
    SAMPLES / "eventgrid/router-job-scheduling-failed.json",
)


def test_routes_pick_the_new_events_by_their_kinds_and_contexts() -> None:
    routes = [
        {"kinds": ["EmailDeliveryReportReceived"], "to": ["emails"]},
        {"contexts": ["whatsapp"], "to": ["messaging"]},
        {"kinds": ["CallEnded"], "to": ["calling"]},
        {"kinds": ["RouterJobSchedulingFailed"], "to": ["calling", "messaging"]},
    ]
    settings = Settings.from_env(
        {
            **{f"ACS_TRIAGE_DEST_{name}_URL": SLACK for name in ("EMAILS", "MESSAGING", "CALLING")},
            **{f"ACS_TRIAGE_DEST_{name}_FORMAT": "slack" for name in ("EMAILS", "MESSAGING", "CALLING")},
            "ACS_TRIAGE_ROUTES": json.dumps(routes),
        }
    )
    alerts = handle(*NEW_SAMPLES).alerts
    chosen = {a.incident.kind: [d.name for d in Route(settings).destinations(a)] for a in alerts}
    assert chosen == {
        "CallEnded": ["calling"],
        "EmailDeliveryReportReceived": ["emails"],
        "AdvancedMessageDeliveryStatusUpdated": ["messaging"],
        "RouterJobSchedulingFailed": ["calling", "messaging"],
    }


def test_a_silence_by_kind_holds_back_email_reports_and_lets_the_others_alert(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "store.db")
    store.add_silence(
        SilenceRule(
            id="newsletter",
            matcher=Matcher.model_validate({"kinds": ["EmailDeliveryReportReceived"]}),
            starts=T0 - timedelta(minutes=1),
            ends=T0 + timedelta(hours=1),
            comment="list clean-up",
            created_by="ops",
        )
    )
    result = handle(*NEW_SAMPLES, SAMPLES / "eventgrid/email-batch-mailing-list.json", store=store)
    assert sorted(a.incident.kind for a in result.alerts) == [
        "AdvancedMessageDeliveryStatusUpdated",
        "CallEnded",
        "RouterJobSchedulingFailed",
    ]


def test_the_daily_report_counts_email_failures_by_status_across_recipient_domains() -> None:
    store = MemoryStore()
    handle(*NEW_SAMPLES, SAMPLES / "eventgrid/email-batch-mailing-list.json", store=store, now=T0)
    daily = report.build(store, T0 + timedelta(hours=1), timedelta(hours=24))

    counted = {f.label: f.count for f in daily.top}
    assert counted["EmailDeliveryReportReceived Bounced"] == 8  # 1 + 6 northwind + 1 fabrikam
    assert counted["CallEnded 490/4502"] == 1
    assert counted["AdvancedMessageDeliveryStatusUpdated 131026"] == 1
    assert counted["RouterJobSchedulingFailed no code"] == 1
    assert (daily.worst_resource, daily.resources) == ("contoso-acs-prod", 1)


def test_pagerduty_events_and_webhook_documents_of_the_new_events_pass_their_schemas() -> None:
    from test_pagerduty import pagerduty_errors
    from test_webhook import VALIDATOR

    key = "k" * 32
    destination = Settings.from_env({"ACS_TRIAGE_PAGERDUTY_ROUTING_KEY": key}).destinations["pagerduty"]
    for alert in handle(*NEW_SAMPLES).alerts:
        event = pagerduty.finish(pagerduty.render(alert), destination)
        assert pagerduty_errors(event) == [], alert.title
        document = webhook.render(alert)
        assert list(VALIDATOR.iter_errors(document)) == [], alert.title
    [email] = handle(NEW_SAMPLES[1]).alerts
    document = webhook.render(email)
    assert (document["alert"]["event_status"], document["alert"]["scope"]) == ("Bounced", "fabrikam.example")
    assert document["fingerprint"].endswith("|Bounced|fabrikam.example")
    assert "event_status" not in webhook.render(make_alert())["alert"]  # coded failures: as before


def test_a_reading_of_the_new_events_is_typed_when_acs_spells_them_and_the_same_either_way() -> None:
    for path in NEW_SAMPLES:
        (raw,) = events_of(path)
        typed = read(raw)
        assert isinstance(typed, Reading) and typed.event is None  # a record, no pydantic model
        as_values = read(raw._replace(payload=raw.data))
        assert isinstance(as_values, Reading)
        assert typed.incident() == as_values.incident() and typed.ids() == as_values.ids()


# -- catalog sync knows the pages the written tables come from -----------------------------------------


def written_page(title: str, phrases: list[str]) -> str:
    """A Learn page as a docs checkout has it: front matter with its title, then prose."""
    return f"---\ntitle: {title}\n---\n# {title}\n\n" + "\n\n".join(f"Some text: {p}." for p in phrases)


def evidence_pages(folder: Path, drop: str = "") -> Path:
    """Every page the written tables rest on, saying all their evidence but `drop`."""
    import tomllib

    pages = {p["seed"]: p for p in tomllib.loads((catalog.CATALOG_DIR / "pages.toml").read_text())["page"]}
    said: dict[str, list[str]] = {}
    for path in catalog.CATALOG_DIR.glob("*.toml"):
        for table in tomllib.loads(path.read_text()).get("table", ()):
            for evidence in table.get("evidence", ()):
                if evidence["says"] != drop:
                    said.setdefault(evidence["seed"], []).append(evidence["says"])
    folder.mkdir()
    for seed, phrases in said.items():
        (folder / f"{seed}.md").write_text(written_page(pages[seed]["title"], phrases), encoding="utf-8")
    return folder


def test_catalog_sync_reads_the_written_tables_pages_and_finds_their_evidence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from triage.cli.catalog import main

    pages = evidence_pages(tmp_path / "pages")
    assert len(list(pages.iterdir())) == 5  # four email pages, the Advanced Messaging events page
    assert main(["catalog", "sync", "--check", str(pages)]) == 0
    assert "the catalog matches every row of these pages" in capsys.readouterr().out


def test_catalog_sync_flags_a_phrase_a_written_table_rests_on_that_its_page_no_longer_says(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    from triage.cli.catalog import main

    pages = evidence_pages(tmp_path / "pages", drop="14 days")
    copy = tmp_path / "catalog"
    shutil.copytree(catalog.CATALOG_DIR, copy)
    for args in (["--check"], []):  # nothing to write: a person must look, so both fail
        assert main(["catalog", "sync", *args, "--catalog", str(copy), str(pages)]) == 1
        out = capsys.readouterr().out
        assert (
            "! email-delivery: 'Improve sender reputation in Azure Communication Services email'"
            " no longer says '14 days'" in out
        )
    assert (copy / "email.toml").read_text() == (catalog.CATALOG_DIR / "email.toml").read_text()


# -- Job Router -----------------------------------------------------------------------------------------


def test_a_job_router_classification_failure_alerts_with_its_errors_as_the_event_says() -> None:
    out, _ = replay(SAMPLES / "eventgrid/router-job-classification-failed.json")

    assert "WARNING  RouterJobClassificationFailed no code on contoso-acs-prod" in out
    assert "What:       Job Router failed to classify the job with its classification policy." in out
    assert "Event says: Classification failed: the prioritization rule could not read label 'Tier'" in out
    assert "Classification policy=support-triage" in out and "Error code=InvalidLabelValue" in out
    assert "jobId=4c1e9a7b-2d3f-4e5a-8b6c-7d8e9f0a1b2c" in out
    assert "+14255550123" not in out  # the application's channelReference embeds a number: masked
    assert "Context:    job-router" in out


def test_a_job_router_scheduling_failure_alerts_with_its_failure_reason() -> None:
    out, _ = replay(SAMPLES / "eventgrid/router-job-scheduling-failed.json")

    assert "WARNING  RouterJobSchedulingFailed no code on contoso-acs-prod" in out
    assert "Event says: Scheduled time is in the past" in out
    assert "Queue=callbacks-en" in out


def test_other_job_router_events_are_business_signals_and_skipped() -> None:
    for kind in (
        "RouterJobExceptionTriggered",
        "RouterJobCancelled",
        "RouterWorkerDeregistered",
        "RouterJobReceived",
    ):
        raw = RawEvent("eventgrid", "r1", f"Microsoft.Communication.{kind}", "", "", None, {"jobId": "j"})
        skip = read(raw)
        assert isinstance(skip, Skip) and skip.outcome == "skipped", kind


def test_job_router_errors_without_messages_still_say_something() -> None:
    event = json.loads((SAMPLES / "eventgrid/router-job-classification-failed.json").read_text())[0]
    event["data"]["errors"] = [{"code": "PolicyNotFound", "message": None}, {"code": None, "message": None}]
    (raw,) = parse_body(json.dumps([event]).encode(), "application/json", 1 << 20).events
    incident = to_incident(raw)
    assert isinstance(incident, Incident) and incident.message == "PolicyNotFound"
    event["data"]["errors"] = []
    (raw,) = parse_body(json.dumps([event]).encode(), "application/json", 1 << 20).events
    incident = to_incident(raw)
    assert isinstance(incident, Incident) and incident.message.startswith("no reason given")


# -- bad input: a logged skip or an alert, never an exception ------------------------------------------

_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
_KEYS = st.sampled_from(
    [
        "reason",
        "Reason",
        "code",
        "subCode",
        "endedBy",
        "communicationIdentifier",
        "rawId",
        "status",
        "recipient",
        "deliveryStatusDetails",
        "statusMessage",
        "error",
        "channelCode",
        "to",
        "errors",
        "failureReason",
        "callDurationInSeconds",
        "deliveryAttemptTimeStamp",
        "message",
        "jobId",
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(
        [
            "CallEnded",
            "EmailDeliveryReportReceived",
            "AdvancedMessageDeliveryStatusUpdated",
            "RouterJobClassificationFailed",
            "RouterJobSchedulingFailed",
        ]
    ),
    data=st.dictionaries(_KEYS, _VALUES, max_size=8),
)
def test_any_data_of_the_new_events_reads_as_a_skip_or_an_incident(kind: str, data: dict[str, Any]) -> None:
    raw = RawEvent("eventgrid", "f1", f"Microsoft.Communication.{kind}", "", "", None, data)
    reading = read(raw)
    if isinstance(reading, Reading):
        assert isinstance(reading.incident(), Incident) and isinstance(reading.ids(), dict)
    else:
        assert reading.outcome in ("success", "skipped", "invalid")


def test_a_recipient_without_a_domain_never_becomes_the_bursts_scope() -> None:
    event = json.loads((SAMPLES / "eventgrid/email-bounced-550-5.1.1.json").read_text())[0]
    event["data"]["recipient"] = "jane.doe"
    (raw,) = parse_body(json.dumps([event]).encode(), "application/json", 1 << 20).events
    reading = read(raw)
    assert isinstance(reading, Reading) and reading.facts.scope == ""
    assert "jane.doe" not in reading.facts.fingerprint and "jane" not in str(reading.incident().details)
