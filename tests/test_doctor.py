"""`python -m triage doctor`, the start-up checks and GET /api/health: every setting that would
lose or misroute an alert is named with its fix, before it bites; in Azure nothing falls back
to the in-memory store."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

import function_app
from samples import sample_bytes
from tools.localhost import LocalHost, resolve_binding
from triage.checks import check
from triage.cli import main
from triage.errors import ConfigurationError
from triage.service import Service
from triage.settings import Settings, app_names
from triage.store.memory import MemoryStore

SETTINGS = Path(__file__).parent / "settings"
TEAMS_URL = "https://prod-12.westeurope.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?sig=SECRET"
SLACK_URL = "https://hooks.slack.com/services/T000/B000/SECRET"


def test_doctor_passes_an_identity_based_azure_app_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    settings = str(SETTINGS / "azure-identity.local.settings.json")
    assert main(["doctor", "--settings", settings, "--offline"]) == 0
    assert "ok: no problems found" in capsys.readouterr().out


def test_doctor_lists_every_problem_with_its_setting_and_fix_and_exits_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["doctor", "--settings", str(SETTINGS / "broken.local.settings.json"), "--json"]) == 1
    problems = json.loads(capsys.readouterr().out)["problems"]
    by_setting = {p["setting"]: p for p in problems}
    assert "put it in ACS_TRIAGE_SLACK_URL" in by_setting["ACS_TRIAGE_TEAMS_URL"]["message"]
    assert "https://" in by_setting["ACS_TRIAGE_SLACK_URL"]["message"]
    assert "unknown key 'kind'" in by_setting["ACS_TRIAGE_ROUTES"]["message"]
    assert "GUID" in by_setting["ACS_TRIAGE_CALLBACK_AUDIENCE"]["message"]
    assert "AzureWebJobsStorage__accountName" in by_setting["AzureWebJobsStorage"]["message"]
    assert "host cannot index" in by_setting["ACS_TRIAGE_OUTBOX_QUEUE"]["message"]
    assert {p["level"] for p in problems if p["setting"] != "ACS_TRIAGE_MASK_PII"} == {"error"}
    assert by_setting["ACS_TRIAGE_MASK_PII"]["level"] == "warning"
    assert "SECRET" not in json.dumps(problems)  # webhook URLs are credentials


def test_locally_the_in_memory_store_is_a_warning_and_no_destination_an_error() -> None:
    _, problems = check({})
    assert [(p.level, p.setting) for p in problems] == [
        ("error", "ACS_TRIAGE_TEAMS_URL"),
        ("warning", "AzureWebJobsStorage"),
    ]


def test_a_route_with_an_unknown_key_is_refused_instead_of_matching_everything() -> None:
    with pytest.raises(ConfigurationError, match=r"ROUTES rule 1: unknown key 'kind'.*kinds"):
        Settings.from_env(
            {"ACS_TRIAGE_TEAMS_URL": TEAMS_URL, "ACS_TRIAGE_ROUTES": '[{"kind": ["x"], "to": ["teams"]}]'}
        )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ACS_TRIAGE_TEAMS_URL": SLACK_URL}, "TEAMS_URL.*Slack incoming webhook URL"),
        ({"ACS_TRIAGE_SLACK_URL": TEAMS_URL}, "SLACK_URL.*Teams webhook URL"),
        ({"ACS_TRIAGE_SLACK_URL": "http://hooks.example.invalid/x"}, "SLACK_URL.*https://"),
        ({"ACS_TRIAGE_CALLBACK_AUDIENCE": "contoso-acs"}, "CALLBACK_AUDIENCE.*GUID"),
    ],
)
def test_settings_that_would_misroute_or_reject_alerts_are_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Settings.from_env(env)


def test_http_webhooks_are_allowed_on_loopback_only() -> None:
    settings = Settings.from_env({"ACS_TRIAGE_SLACK_URL": "http://127.0.0.1:9000/hook"})
    assert set(settings.destinations) == {"slack"}


def test_queue_and_tables_are_named_per_app_from_the_site_name() -> None:
    assert app_names({}) == ("acs-triage-outbox", "acstriage")
    assert app_names({"WEBSITE_SITE_NAME": "Contoso-Triage"}) == (
        "acs-triage-contosotriage-outbox",
        "acstriagecontosotriage",
    )
    long_a, long_b = (app_names({"WEBSITE_SITE_NAME": "x" * 50 + tail}) for tail in ("a", "b"))
    assert long_a != long_b and all(len(name) <= 56 for name in (long_a[0], long_b[0]))
    settings = Settings.from_env({"WEBSITE_SITE_NAME": "contoso", "ACS_TRIAGE_OUTBOX_QUEUE": "alerts-out"})
    assert (settings.outbox_queue, settings.table_prefix) == ("alerts-out", "acstriagecontoso")


def test_in_azure_without_storage_requests_answer_503_with_the_reason_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings.from_env({"ACS_TRIAGE_TEAMS_URL": TEAMS_URL, "WEBSITE_INSTANCE_ID": "abc"})
    caplog.set_level(logging.ERROR, logger="triage")
    service = Service(settings)
    body = sample_bytes("callbacks/play-failed-400-8535.json")
    answers = [
        service.handle_http("callbacks", "POST", {"Content-Type": "application/json"}, {}, body)
        for _ in range(3)
    ]
    assert {a.status for a in answers} == {503}
    assert b"AzureWebJobsStorage__accountName" in answers[0].body
    assert len([r for r in caplog.records if "AzureWebJobsStorage is not set" in r.getMessage()]) <= 1
    health = service.health()
    assert health.status == 503 and json.loads(health.body)["status"] == "error"


def test_an_explicit_memory_store_is_refused_in_azure_too() -> None:
    settings = Settings.from_env(
        {"ACS_TRIAGE_TEAMS_URL": TEAMS_URL, "WEBSITE_INSTANCE_ID": "abc", "ACS_TRIAGE_STORE": "memory"}
    )
    answer = Service(settings).handle_http("eventgrid", "POST", {}, {}, b"[]")
    assert answer.status == 503 and b"ACS_TRIAGE_STORE=memory is refused" in answer.body


def test_health_is_ok_with_valid_settings_and_lists_warnings() -> None:
    service = Service(Settings.from_env({"ACS_TRIAGE_TEAMS_URL": TEAMS_URL}), MemoryStore())
    answer = service.health()
    doc = json.loads(answer.body)
    assert answer.status == 200 and doc["status"] == "ok"
    assert [p["setting"] for p in doc["problems"]] == ["AzureWebJobsStorage"]


def test_health_route_is_anonymous_get_and_503_when_settings_cannot_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = LocalHost(function_app.app)
    function_app.configure(Service(Settings.from_env({"ACS_TRIAGE_TEAMS_URL": TEAMS_URL}), MemoryStore()))
    status, _, body = host.http("GET", "/api/health", {}, b"")
    assert status == 200 and json.loads(body)["status"] == "ok"
    monkeypatch.setenv("ACS_TRIAGE_ROUTES", '[{"kind": ["x"], "to": ["teams"]}]')
    monkeypatch.setattr(function_app, "_service", None)
    status, _, body = host.http("GET", "/api/health", {}, b"")
    assert status == 503 and "unknown key 'kind'" in body.decode()
    status, _, body = host.http("POST", "/api/eventgrid", {"Content-Type": "application/json"}, b"[]")
    assert status == 503 and b"unknown key" in body
    function_app.configure(Service(Settings.from_env({}), MemoryStore()))


def test_the_local_host_resolves_binding_expressions_from_the_app_settings() -> None:
    assert (
        resolve_binding("%ACS_TRIAGE_OUTBOX_QUEUE%", {"ACS_TRIAGE_OUTBOX_QUEUE": "q-1"}, "deliver") == "q-1"
    )
    host = LocalHost(function_app.app, app_settings={"ACS_TRIAGE_OUTBOX_QUEUE": "contoso-out"})
    assert set(host.queue_functions) == {"contoso-out"}
    with pytest.raises(ConfigurationError, match=r"ACS_TRIAGE_OUTBOX_QUEUE is not set.*'deliver'"):
        LocalHost(function_app.app, app_settings={})
