"""Settings: read once from the environment, clear errors, secrets kept out of sight."""

from __future__ import annotations

import pytest

from triage.errors import ConfigurationError
from triage.settings import Settings

URL = "https://prod-12.westeurope.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?sig=TOPSECRET"


def test_defaults_are_sensible_without_any_setting() -> None:
    s = Settings.from_env({})
    assert (s.group_window_seconds, s.dedup_ttl_hours, s.max_body_bytes, s.mask_pii) == (
        300,
        48,
        1048576,
        True,
    )
    assert s.destinations == {} and s.routes == []


def test_named_destinations_and_formats_are_read() -> None:
    s = Settings.from_env(
        {
            "ACS_TRIAGE_TEAMS_URL": URL,
            "ACS_TRIAGE_DEST_ONCALL_URL": "https://hooks.slack.com/services/T/B/C",
            "ACS_TRIAGE_DEST_ONCALL_FORMAT": "slack",
        }
    )
    assert {n: d.format for n, d in s.destinations.items()} == {"teams": "teams", "oncall": "slack"}


def test_webhook_urls_never_show_in_repr_or_str() -> None:
    s = Settings.from_env({"ACS_TRIAGE_TEAMS_URL": URL, "ACS_TRIAGE_SHARED_SECRET": "hunter2"})
    for text in (repr(s), str(s), repr(s.destinations["teams"]), str(s.destinations["teams"])):
        assert "TOPSECRET" not in text and "hunter2" not in text


def test_a_retired_office_365_connector_url_is_refused_with_what_to_do() -> None:
    with pytest.raises(ConfigurationError, match="Workflows"):
        Settings.from_env({"ACS_TRIAGE_TEAMS_URL": "https://contoso.webhook.office.com/webhookb2/x"})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ACS_TRIAGE_GROUP_WINDOW_SECONDS": "soon"}, "GROUP_WINDOW_SECONDS"),
        ({"ACS_TRIAGE_DEDUP_TTL_HOURS": "1"}, "DEDUP_TTL_HOURS"),
        (
            {"ACS_TRIAGE_CLAIM_LEASE_SECONDS": "0"},
            "CLAIM_LEASE_SECONDS: Input should be greater than or equal to 1",
        ),
        ({"ACS_TRIAGE_CLAIM_LEASE_SECONDS": "5m"}, "CLAIM_LEASE_SECONDS"),
        ({"ACS_TRIAGE_ROUTES": "[{"}, "ROUTES is not valid JSON"),
        ({"ACS_TRIAGE_ROUTES": '{"to": []}'}, "must be a JSON list"),
        ({"ACS_TRIAGE_DEST_X_URL": "https://x.invalid/", "ACS_TRIAGE_DEST_X_FORMAT": "email"}, "FORMAT"),
        ({"ACS_TRIAGE_SLACK_URL": "ftp://nope"}, "https://"),
    ],
)
def test_bad_settings_name_the_setting_to_fix(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Settings.from_env(env)


def test_routes_can_come_from_a_file(tmp_path: pytest.TempPathFactory) -> None:
    path = tmp_path / "routes.json"  # type: ignore[operator]
    path.write_text('[{"kinds": ["PlayFailed"], "to": ["teams"]}]')
    s = Settings.from_env({"ACS_TRIAGE_TEAMS_URL": URL, "ACS_TRIAGE_ROUTES_FILE": str(path)})
    assert s.routes[0].kinds == ["PlayFailed"]
