"""The Teams Workflows body: an Adaptive Card 1.4 in the message envelope, always under 26 KB."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from factories import make_alert, make_digest, make_guidance, make_huge_alert, make_incident

from triage.destinations import teams
from triage.destinations.teams import TEAMS_MAX_BYTES
from triage.model import Category, Match, Severity
from triage.render import payload_bytes, render


def card_of(payload: dict[str, Any]) -> dict[str, Any]:
    card: dict[str, Any] = payload["attachments"][0]["content"]
    return card


def texts(node: object) -> list[str]:
    """Every string the card shows: TextBlock texts, fact titles and values."""
    found: list[str] = []
    if isinstance(node, list):
        for item in node:
            found += texts(item)
    elif isinstance(node, dict):
        if node.get("type") == "TextBlock":
            found.append(node["text"])
        if "title" in node and "value" in node:
            found += [node["title"], node["value"]]
        for key, value in node.items():
            if key not in ("text", "title", "value"):
                found += texts(value)
    return found


def facts(payload: dict[str, Any]) -> dict[str, str]:
    for element in card_of(payload)["body"]:
        if element["type"] == "FactSet":
            return {f["title"]: f["value"] for f in element["facts"]}
    raise AssertionError("no FactSet")


# --- envelope and card --------------------------------------------------------------------------


def test_body_is_the_workflows_message_envelope_around_one_adaptive_card() -> None:
    payload = teams.render(make_alert())
    assert payload["type"] == "message"
    assert payload["attachments"] == [
        {
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": None,
            "content": card_of(payload),
        }
    ]


def test_card_is_version_1_4_full_width_with_schema() -> None:
    card = card_of(teams.render(make_alert()))
    assert card["type"] == "AdaptiveCard"
    assert card["version"] == "1.4"
    assert card["msteams"] == {"width": "Full"}
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"


@pytest.mark.parametrize(
    ("category", "colour"),
    [(Category.UNEXPECTED_SERVER, "Attention"), (Category.EXPECTED, "Warning")],
)
def test_headline_colour_follows_severity(category: Category, colour: str) -> None:
    alert = make_alert(guidance=make_guidance(category=category))
    banner = card_of(teams.render(alert))["body"][0]
    assert banner["items"][0]["color"] == colour
    assert banner["items"][1]["text"] == "PlayFailed 400/8535 on contoso-acs"
    assert banner["items"][1]["size"] == "Large"


def test_says_what_failed_in_the_catalogs_words() -> None:
    alert = make_alert(guidance=make_guidance(message="Action failed, file format is invalid."))
    body = card_of(teams.render(alert))["body"]
    assert body[1]["text"] == "Action failed, file format is invalid."
    assert "{" not in json.dumps(texts(body))  # no raw JSON anywhere


def test_factset_names_event_code_category_severity_resource_and_the_events_own_time() -> None:
    shown = facts(teams.render(make_alert()))
    assert shown["Event"] == "PlayFailed"
    assert shown["Code"] == "400/8535"
    assert shown["Category"] == "UnexpectedClientError"
    assert shown["Severity"] == "Error"
    assert shown["Resource"] == "contoso-acs"
    assert shown["Event time"] == "2026-09-15 11:36:13 UTC"


def test_factset_lists_every_id_in_the_incidents_order_then_the_details() -> None:
    ids = {
        "correlationId": "c-1",
        "callConnectionId": "cc-2",
        "serverCallId": "s-3",
        "operationContext": "op",
    }
    alert = make_alert(make_incident(ids=ids, details={"failedPlaySourceIndex": "0"}))
    titles = list(facts(teams.render(alert)))
    assert titles[-5:] == [*ids, "failedPlaySourceIndex"]


def test_event_message_is_shown_only_when_it_adds_something() -> None:
    same = make_alert(make_incident(message="Action failed, file format is invalid."))
    assert "Event says" not in facts(teams.render(same))
    other = make_alert(make_incident(message="Play failed. DiagCode: 400#8535.@"))
    assert facts(teams.render(other))["Event says"] == "Play failed. DiagCode: 400#8535.@"


def test_advice_bullets_stay_a_readable_markdown_list() -> None:
    guidance = make_guidance(advice="Play only supports WAV:\n* mono\n• 16-bit\n- 16 kHz\nThen retry.")
    body = card_of(teams.render(make_alert(guidance=guidance)))["body"]
    advice = next(b["text"] for i, b in enumerate(body) if i and body[i - 1].get("text") == "**What to do**")
    assert advice == "Play only supports WAV:\n\n- mono\n- 16-bit\n- 16 kHz\n\nThen retry."


def test_catalog_source_and_lookup_level_are_small_and_subtle() -> None:
    guidance = make_guidance(source="001_x.txt · Call Automation most common codes", match=Match.SUBCODE)
    footer = card_of(teams.render(make_alert(guidance=guidance)))["body"][-1]
    assert footer["text"] == "Catalog: 001_x.txt · Call Automation most common codes · matched: subcode only"
    assert footer["size"] == "Small" and footer["isSubtle"] is True


def test_docs_link_is_an_open_url_action() -> None:
    card = card_of(teams.render(make_alert(guidance=make_guidance(docs_url="https://learn.microsoft.com/x"))))
    assert card["actions"] == [
        {"type": "Action.OpenUrl", "title": "Troubleshooting docs", "url": "https://learn.microsoft.com/x"}
    ]


@pytest.mark.parametrize("url", ["", "javascript:alert(1)", "http://plain.example", "https://a b"])
def test_no_button_without_a_plain_https_docs_url(url: str) -> None:
    card = card_of(teams.render(make_alert(guidance=make_guidance(docs_url=url))))
    assert "actions" not in card


# --- digests ------------------------------------------------------------------------------------


def test_digest_shows_count_and_window_prominently() -> None:
    banner = card_of(teams.render(make_digest(count=9_999, window_seconds=300)))["body"][0]
    assert banner["items"][1]["text"].startswith("9,999× PlayFailed 400/8535")
    assert banner["items"][2]["text"] == "**9,999 occurrences in 5 min**"
    assert banner["items"][2]["size"] == "Medium"


def test_digest_shows_when_its_first_and_last_occurrences_arrived_and_a_few_sample_ids() -> None:
    alert = make_digest(count=42, samples=8)
    payload = teams.render(alert)
    shown = facts(payload)
    assert shown["First arrived"] == "2026-09-15 11:36:13 UTC"
    assert shown["Last arrived"] == "2026-09-15 11:41:12 UTC"
    body = texts(card_of(payload)["body"])
    assert "**Sample occurrences** (5 of 42)" in body
    sample_lines = next(t for t in body if t.startswith("- correlationId")).split("\n")
    assert len(sample_lines) == 5
    assert alert.samples[0]["correlationId"] in sample_lines[0]


# --- size ---------------------------------------------------------------------------------------


def test_byte_limit_is_26_kib_of_the_whole_compact_utf8_request() -> None:
    payload = teams.render(make_alert())
    assert TEAMS_MAX_BYTES == 26 * 1024
    assert payload_bytes(payload) == json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def test_huge_alert_stays_under_the_limit_and_keeps_every_id() -> None:
    alert = make_huge_alert()
    payload = teams.render(alert)
    assert len(payload_bytes(payload)) < TEAMS_MAX_BYTES
    shown = facts(payload)
    for key, value in alert.incident.ids.items():
        assert shown[key] == value
    assert any(t.startswith("Shortened to fit the Teams message size limit") for t in texts(card_of(payload)))
    assert teams.lint(payload) == []


def test_long_ids_are_shortened_visibly_but_never_dropped() -> None:
    ids = {f"id{i}": "z" * 5_000 for i in range(12)}
    payload = teams.render(make_alert(make_incident(ids=ids)))
    assert len(payload_bytes(payload)) < TEAMS_MAX_BYTES
    shown = facts(payload)
    assert all(shown[key].startswith("zzz") and shown[key].endswith("…") for key in ids)


def test_hundreds_of_ids_keep_as_many_as_fit_and_say_how_many_were_left_out() -> None:
    ids = {f"id{i:04d}": f"{i:04d}-" + "z" * 100 for i in range(1_000)}
    payload = teams.render(make_alert(make_incident(ids=ids)))
    assert len(payload_bytes(payload)) < TEAMS_MAX_BYTES
    shown = [key for key in facts(payload) if key.startswith("id")]
    assert len(shown) > 100 and shown == list(ids)[: len(shown)]
    note = next(t for t in texts(card_of(payload)) if t.startswith("Shortened"))
    assert f"{1_000 - len(shown)} IDs not shown" in note


def test_multibyte_text_is_measured_in_bytes_not_characters() -> None:
    alert = make_alert(guidance=make_guidance(advice="通話" * 20_000, message="失敗" * 5_000))
    assert len(payload_bytes(teams.render(alert))) < TEAMS_MAX_BYTES


# --- escaping -----------------------------------------------------------------------------------


def test_event_text_cannot_create_links_mentions_or_headings_in_teams() -> None:
    incident = make_incident(
        message="[Open the fix](http://evil.example) <at>Adele</at>\n# Urgent",
        resource="contoso-acs [x](http://evil)",
        ids={"operationContext": "[click](https://evil.example)"},
        details={"<at>k</at>": "- item"},
    )
    shown = texts(card_of(teams.render(make_alert(incident))))
    event_strings = [t for t in shown if "evil" in t or "Adele" in t or "item" in t]
    assert event_strings
    for text in event_strings:
        assert not set(text) & set("<>[]"), text
        assert "://" not in text and "\n" not in text, text


# --- our Teams rules ----------------------------------------------------------------------------


def test_lint_accepts_every_card_we_render() -> None:
    alerts = [
        make_alert(),
        make_digest(),
        make_huge_alert(),
        make_alert(guidance=make_guidance(category=Category.SUCCESS, severity=Severity.NONE, docs_url="")),
        make_alert(make_incident(ids={}, details={}, message="")),
    ]
    for alert in alerts:
        assert teams.lint(teams.render(alert)) == []


def test_lint_flags_what_teams_webhooks_reject_and_the_renderer_lets_through() -> None:
    payload = teams.render(make_alert())
    card = card_of(payload)
    card["version"] = "1.5"
    card["body"].append({"type": "Table", "columns": []})
    card["body"].append({"type": "TextBlock", "text": "no wrap"})
    card["actions"] = [{"type": "Action.Submit"}, {"type": "Action.Execute"}]
    card["body"].append({"type": "TextBlock", "text": "x" * TEAMS_MAX_BYTES, "wrap": True})
    problems = " | ".join(teams.lint(payload))
    for expected in (
        'version must be "1.4"',
        "Table",
        "wrap: true",
        "Action.Submit",
        "Action.Execute",
        "limit",
    ):
        assert expected in problems


def test_lint_flags_a_body_without_the_envelope() -> None:
    assert teams.lint(card_of(teams.render(make_alert()))) != []


def test_rendering_is_cheap_enough_to_run_per_alert() -> None:
    alert = make_digest()
    start = time.perf_counter()
    for _ in range(200):
        render(alert, "teams")
    assert (time.perf_counter() - start) / 200 < 0.01  # typical cost is well under a millisecond


# --- the "Silence…" link --------------------------------------------------------------------------
def test_a_silence_link_is_an_open_url_action_after_the_docs_and_survives_shortening() -> None:
    from msgspec.structs import replace
    from render_golden import SILENCE_URL

    card = card_of(teams.render(replace(make_alert(), silence_url=SILENCE_URL)))
    assert [(a["type"], a["title"]) for a in card["actions"]] == [
        ("Action.OpenUrl", "Troubleshooting docs"),
        ("Action.OpenUrl", "Silence…"),
    ]
    assert card["actions"][1]["url"] == SILENCE_URL
    alone = card_of(
        teams.render(replace(make_alert(guidance=make_guidance(docs_url="")), silence_url=SILENCE_URL))
    )
    assert alone["actions"] == [{"type": "Action.OpenUrl", "title": "Silence…", "url": SILENCE_URL}]
    huge = teams.render(replace(make_huge_alert(), silence_url=SILENCE_URL))
    assert len(payload_bytes(huge)) < TEAMS_MAX_BYTES
    assert card_of(huge)["actions"][-1]["url"] == SILENCE_URL
    assert "actions" not in card_of(teams.render(make_alert(guidance=make_guidance(docs_url=""))))
