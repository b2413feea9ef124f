"""The terminal form (`replay --format text`) and the `render` entry point."""

from __future__ import annotations

import pytest
from factories import make_alert, make_digest, make_incident

from triage.destinations import pagerduty, slack, teams, text, webhook
from triage.render import FORMATS, render


def test_first_line_is_severity_and_headline() -> None:
    assert text.render(make_alert()).split("\n")[0] == "ERROR  PlayFailed 400/8535 on contoso-acs"


def test_lists_ids_one_per_line_with_advice_and_docs() -> None:
    alert = make_alert()
    out = text.render(alert)
    for key, value in alert.incident.ids.items():
        assert f"{key}={value}" in out
    assert "  Advice:     Play only supports WAV files:\n" in out
    assert "- mono (single channel)" in out
    assert "  Docs:       https://learn.microsoft.com/" in out


def test_digest_says_how_many_in_which_window() -> None:
    lines = text.render(make_digest(count=9_999, window_seconds=300)).split("\n")
    assert lines[0] == "ERROR  9,999× PlayFailed 400/8535 on contoso-acs"
    assert lines[1] == "  9,999 occurrences in 5 min"


def test_event_text_cannot_drive_the_terminal_or_add_lines() -> None:
    out = text.render(make_alert(make_incident(message="boom\x1b[2J\nSeverity: none")))
    assert "\x1b" not in out
    assert "boom\\x1b[2J Severity: none" in out


def test_render_dispatches_on_format() -> None:
    alert = make_alert()
    assert FORMATS == ("teams", "slack", "text", "pagerduty", "webhook")
    assert render(alert, "teams") == teams.render(alert)
    assert render(alert, "slack") == slack.render(alert)
    assert render(alert, "text") == text.render(alert)
    assert render(alert, "pagerduty") == pagerduty.render(alert)
    assert render(alert, "webhook") == webhook.render(alert)


def test_unknown_format_names_the_choices() -> None:
    with pytest.raises(ValueError, match="teams, slack, text"):
        render(make_alert(), "discord")  # type: ignore[call-overload]
