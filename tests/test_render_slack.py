"""The Slack webhook body: Block Kit within every limit, a colour bar, and a notification line."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from factories import make_alert, make_digest, make_guidance, make_huge_alert, make_incident, make_reminder
from msgspec.structs import replace
from render_golden import SILENCE_URL
from slack_sdk.models.attachments import BlockAttachment
from slack_sdk.models.blocks import Block, SectionBlock

from tools.replay import SAMPLES, alerts_from_files
from triage.destinations import slack
from triage.destinations.slack import FIELD_TEXT_MAX, HEADER_TEXT_MAX, MAX_BLOCKS, SECTION_TEXT_MAX
from triage.model import Alert, Category, Severity


def all_blocks(payload: dict[str, Any]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = list(payload["blocks"])
    for attachment in payload["attachments"]:
        blocks += attachment["blocks"]
    return blocks


def validate_with_slack_sdk(payload: dict[str, Any]) -> None:
    """Build every block through slack_sdk's models; to_dict() raises SlackObjectFormationError."""
    for block in payload["blocks"]:
        parsed = Block.parse(block)
        assert parsed is not None, block
        parsed.to_dict()
    for attachment in payload["attachments"]:
        parsed_blocks = [Block.parse(b) for b in attachment["blocks"]]
        assert all(b is not None for b in parsed_blocks)
        BlockAttachment(
            blocks=[b for b in parsed_blocks if b is not None],
            color=attachment["color"],
            fallback=attachment["fallback"],
        ).to_dict()
    for block in all_blocks(payload):
        if block["type"] == "section":
            # The constructor path too, as a caller building blocks by hand would use it.
            SectionBlock(**{k: v for k, v in block.items() if k != "type"}).to_dict()


def field_map(payload: dict[str, Any]) -> dict[str, str]:
    shown: dict[str, str] = {}
    for block in all_blocks(payload):
        for field in block.get("fields", []):
            title, _, value = field["text"].partition("\n")
            shown[title.strip("*")] = value
    return shown


def huge_alert() -> Alert:
    """The factory's worst case, with more IDs, flags and resource name than Slack can show."""
    return make_huge_alert(
        ids={f"id{i}": "z" * 3_000 for i in range(40)},
        resource="r" * 500,
        flags=tuple(f"flag {i}" for i in range(30)),
    )


ALERTS = {
    "error": make_alert(),
    "warning": make_alert(guidance=make_guidance(category=Category.EXPECTED)),
    "digest": make_digest(count=9_999),
    "reminder": make_reminder(make_digest(count=9_999)),
    "reminder-huge": make_reminder(make_digest(huge_alert().incident, huge_alert().guidance, samples=5)),
    "sms": make_alert(make_incident("SMSDeliveryReportReceived", context="sms", code=4007, subcode=None)),
    "bare": make_alert(make_incident(ids={}, details={}, message=""), make_guidance(advice="", docs_url="")),
    "huge": huge_alert(),
    # The events read since: a call that ended badly, a bounced email, WhatsApp, Job Router.
    **{
        name: alerts_from_files([str(SAMPLES / name)])[0]
        for name in (
            "eventgrid/call-ended-490-4502.json",
            "eventgrid/email-bounced-550-5.1.1.json",
            "eventgrid/whatsapp-failed-131026.json",
            "eventgrid/router-job-scheduling-failed.json",
        )
    },
    "silence-link": replace(make_alert(), silence_url=SILENCE_URL),
    "silence-link-no-docs": replace(make_alert(guidance=make_guidance(docs_url="")), silence_url=SILENCE_URL),
    "silence-link-huge": replace(huge_alert(), silence_url=SILENCE_URL),
}


@pytest.mark.parametrize("name", ALERTS)
def test_every_payload_builds_through_slack_sdk_models(name: str) -> None:
    validate_with_slack_sdk(slack.render(ALERTS[name]))


@pytest.mark.parametrize("name", ALERTS)
def test_every_payload_keeps_the_limits_slack_sdk_does_not_check(name: str) -> None:
    payload = slack.render(ALERTS[name])
    assert slack.lint(payload) == []
    assert len(all_blocks(payload)) <= MAX_BLOCKS
    for block in all_blocks(payload):
        assert all(len(f["text"]) <= FIELD_TEXT_MAX for f in block.get("fields", []))


def test_notification_text_leads_with_severity_kind_code_and_resource() -> None:
    payload = slack.render(make_alert())
    assert payload["text"].startswith("Error: PlayFailed 400/8535 on contoso-acs. ")


def test_digest_notification_text_leads_with_the_count_and_window() -> None:
    payload = slack.render(make_digest(count=9_999, window_seconds=300))
    assert payload["text"].startswith("Error: 9,999× PlayFailed 400/8535 on contoso-acs in 5 min. ")


def test_a_reminder_says_still_failing_with_the_burst_so_far_in_its_notification_and_blocks() -> None:
    alert = make_reminder(make_digest(count=9_999, window_seconds=300), burst_count=123_456)
    payload = slack.render(alert)
    still = (
        "Still failing: 123,456 events since 2026-09-15 07:36:13 UTC, 9,999 in the last 5 min; "
        "reminder every 4 h"
    )
    assert payload["text"].startswith(
        f"Error: Reminder: 9,999× PlayFailed 400/8535 on contoso-acs. {still}. "
    )
    assert payload["blocks"][0]["text"]["text"].endswith(
        "Error: Reminder: 9,999× PlayFailed 400/8535 on contoso-acs"
    )
    assert f"*{still}*" in orjson.dumps(payload).decode()


def test_header_is_plain_text_with_the_severity_and_headline() -> None:
    header = slack.render(make_alert())["blocks"][0]
    assert header == {
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": ":red_circle: Error: PlayFailed 400/8535 on contoso-acs",
            "emoji": True,
        },
    }


def test_header_is_shortened_to_150_characters() -> None:
    header = slack.render(make_alert(make_incident(resource="r" * 400)))["blocks"][0]
    assert len(header["text"]["text"]) == HEADER_TEXT_MAX
    assert header["text"]["text"].endswith("…")


@pytest.mark.parametrize(
    ("severity", "colour"),
    [(Severity.ERROR, "#E01E5A"), (Severity.WARNING, "#ECB22E"), (Severity.NONE, "#2EB67D")],
)
def test_colour_bar_follows_severity(severity: Severity, colour: str) -> None:
    payload = slack.render(make_alert(guidance=make_guidance(severity=severity)))
    assert payload["attachments"][0]["color"] == colour


def test_facts_ids_and_details_are_fields() -> None:
    alert = make_alert()
    shown = field_map(slack.render(alert))
    assert shown["Event"] == "PlayFailed" and shown["Code"] == "400/8535"
    assert shown["Resource"] == "contoso-acs" and shown["Event time"] == "2026-09-15 11:36:13 UTC"
    for key, value in alert.incident.ids.items():
        assert shown[key] == f"`{value}`"
    assert shown["failedPlaySourceIndex"] == "0"


def test_more_than_ten_ids_are_split_into_sections_of_ten() -> None:
    payload = slack.render(make_alert(make_incident(ids={f"id{i}": f"v{i}" for i in range(25)})))
    counts = [
        len(b["fields"]) for b in all_blocks(payload) if b.get("fields") and "id0" in b["fields"][0]["text"]
    ]
    assert counts == [10]
    id_fields = [f for b in all_blocks(payload) for f in b.get("fields", []) if f["text"].startswith("*id")]
    assert len(id_fields) == 25


def test_digest_shows_the_count_window_and_sample_ids() -> None:
    alert = make_digest(count=9_999, window_seconds=300, samples=3)
    sections = [
        b["text"]["text"] for b in all_blocks(slack.render(alert)) if "text" in b and b["type"] == "section"
    ]
    assert "*9,999 occurrences in 5 min*" in sections
    samples = next(s for s in sections if s.startswith("*Sample occurrences* (3 of 9,999)"))
    assert alert.samples[2]["correlationId"] in samples


def test_huge_alert_is_shortened_with_a_note_instead_of_failing() -> None:
    payload = slack.render(huge_alert())
    context = [b for b in all_blocks(payload) if b["type"] == "context"][-1]
    assert any("Shortened to fit Slack's limits" in e["text"] for e in context["elements"])
    assert all(len(b["text"]["text"]) <= SECTION_TEXT_MAX for b in all_blocks(payload) if "text" in b)


def test_docs_link_is_a_button() -> None:
    actions = [b for b in all_blocks(slack.render(make_alert())) if b["type"] == "actions"]
    assert actions[0]["elements"][0]["url"].startswith("https://learn.microsoft.com/")
    assert actions[0]["elements"][0]["text"]["text"] == "Troubleshooting docs"


def test_a_silence_link_is_a_button_after_the_docs_and_alone_without_docs() -> None:
    [actions] = [b for b in all_blocks(slack.render(ALERTS["silence-link"])) if b["type"] == "actions"]
    assert [(e["text"]["text"], e["url"]) for e in actions["elements"]][1] == ("Silence…", SILENCE_URL)
    [alone] = [b for b in all_blocks(slack.render(ALERTS["silence-link-no-docs"])) if b["type"] == "actions"]
    assert [e["url"] for e in alone["elements"]] == [SILENCE_URL]
    assert "Silence…" not in str(slack.render(make_alert()))


def test_links_from_events_are_not_unfurled() -> None:
    payload = slack.render(make_alert())
    assert payload["unfurl_links"] is False and payload["unfurl_media"] is False


# --- escaping -----------------------------------------------------------------------------------


def test_channel_ping_in_an_event_message_does_not_reach_slack_as_a_ping() -> None:
    alert = make_alert(make_incident(message="<!channel> <!here> call <@U024BE7LH> now"))
    raw = json.dumps(slack.render(alert))
    assert "<!channel>" not in raw and "<!here>" not in raw and "<@U024BE7LH>" not in raw
    assert "&lt;!channel&gt;" in raw


def test_masked_links_from_any_event_field_are_escaped() -> None:
    evil = "<http://evil.example|Open the runbook>"
    incident = make_incident(
        message=evil, resource=evil, ids={"operationContext": evil}, details={evil: evil}
    )
    payload = slack.render(make_alert(incident))
    raw = json.dumps(payload)
    assert "<http" not in raw
    assert "http://evil" not in raw  # defanged too, so nothing auto-links
