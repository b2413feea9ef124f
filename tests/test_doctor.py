"""`python -m triage doctor`, the start-up checks and GET /api/health: every setting that would
lose or misroute an alert is named with its fix, before it bites; in Azure nothing falls back
to the in-memory store."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest

import function_app
from samples import sample_bytes
from tools.localhost import LocalHost, resolve_binding
from triage.checks import check, storage_failure, unknown_names
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


# -- names nothing reads, stores that cannot work, settings that contradict each other ----------------
@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("ACS_TRIAGE_TEAMS_WEBHOOK_URL", "did you mean ACS_TRIAGE_TEAMS_URL?"),
        ("ACS_TRIAGE_GROUP_WINDOW", "did you mean ACS_TRIAGE_GROUP_WINDOW_SECONDS?"),
        ("ACS_TRIAGE_MASK_PIi", "did you mean ACS_TRIAGE_MASK_PII? (names are case-sensitive)"),
        ("ACS_TRIAGE_ZZZ", "remove it, or see local.settings.sample.json for every setting"),
    ],
)
def test_a_misspelt_setting_is_an_error_with_the_name_it_was_meant_to_be(name: str, suggestion: str) -> None:
    _, problems = check({"ACS_TRIAGE_SLACK_URL": SLACK_URL, name: "300"})
    [problem] = [p for p in problems if p.level == "error"]
    assert problem.setting == name
    assert problem.message == f"{name} is not a setting acs-triage reads: {suggestion}"


def test_a_custom_destinations_format_without_its_url_is_named() -> None:
    _, problems = check({"ACS_TRIAGE_SLACK_URL": SLACK_URL, "ACS_TRIAGE_DEST_ONCALL_FORMAT": "slack"})
    assert [p.message for p in problems if p.level == "error"] == [
        "ACS_TRIAGE_DEST_ONCALL_FORMAT is set but ACS_TRIAGE_DEST_ONCALL_URL is not: set "
        "ACS_TRIAGE_DEST_ONCALL_URL, or remove ACS_TRIAGE_DEST_ONCALL_FORMAT"
    ]


def test_every_acs_triage_name_the_repository_uses_is_known_to_doctor() -> None:
    # A setting read anywhere (the app, the tools, infra, the sample, the recipes) and not known
    # would make doctor call a correct setting unknown.
    root = SETTINGS.parent.parent
    files = [root / "function_app.py", root / "local.settings.sample.json"]
    for folder in ("triage", "tools", "infra", "scripts", "docs"):
        files += [
            p
            for p in (root / folder).rglob("*")
            if p.is_file() and p.suffix in {".py", ".json", ".bicep", ".sh", ".ps1"}
        ]
    used = {
        m
        for p in files
        for m in re.findall(
            r"\bACS_TRIAGE_[A-Z0-9_]*[A-Z0-9]\b", p.read_text(encoding="utf-8", errors="replace")
        )
    }
    assert len(used) > 20
    unknown = {
        n for n in unknown_names(dict.fromkeys(used, "x")) if not n.setting.startswith("ACS_TRIAGE_DEST_")
    }
    assert unknown == set()


@pytest.mark.parametrize(
    ("store", "message"),
    [
        ("bogus", "ACS_TRIAGE_STORE: must be auto, memory, azure or sqlite:PATH, not 'bogus'"),
        ("sqlite", "ACS_TRIAGE_STORE: sqlite needs a file path after 'sqlite:'"),
        ("sqlite:", "ACS_TRIAGE_STORE: sqlite needs a file path after 'sqlite:'"),
        ("memory:x", "ACS_TRIAGE_STORE: must be auto, memory, azure or sqlite:PATH, not 'memory:x'"),
        ("azure", "ACS_TRIAGE_STORE=azure needs storage: set AzureWebJobsStorage__accountName"),
    ],
)
def test_a_store_that_cannot_work_is_an_error_naming_the_setting(store: str, message: str) -> None:
    _, problems = check({"ACS_TRIAGE_SLACK_URL": SLACK_URL, "ACS_TRIAGE_STORE": store})
    errors = [p for p in problems if p.level == "error"]
    assert [p.setting for p in errors] == ["ACS_TRIAGE_STORE"]
    assert errors[0].message.startswith(message)


@pytest.mark.parametrize(
    ("env", "level", "setting", "words"),
    [
        (
            {"ACS_TRIAGE_ROUTES": '[{"to": ["slack"]}]', "ACS_TRIAGE_ROUTES_FILE": "routes.json"},
            "error",
            "ACS_TRIAGE_ROUTES",
            "both set, and only the file is read",
        ),
        (
            {"ACS_TRIAGE_PAGERDUTY_ROUTING_KEY": "k" * 32, "ACS_TRIAGE_REPORT_TO": "pagerduty"},
            "error",
            "ACS_TRIAGE_REPORT_TO",
            "names pagerduty, which takes alerts but not the daily report",
        ),
        (
            {"ACS_TRIAGE_STORE": "memory", "AzureWebJobsStorage__accountName": "contoso"},
            "warning",
            "ACS_TRIAGE_STORE",
            "the storage account is not used",
        ),
        (
            {"ACS_TRIAGE_CALLBACK_ISSUER": "https://issuer.example"},
            "warning",
            "ACS_TRIAGE_CALLBACK_AUDIENCE",
            "checked only when ACS_TRIAGE_CALLBACK_AUDIENCE is set too",
        ),
    ],
)
def test_settings_that_contradict_each_other_are_named(  # noqa: PLR0917 - the parameters of one case
    env: dict[str, str], level: str, setting: str, words: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "routes.json").write_text('[{"to": ["slack"]}]', encoding="utf-8")
    _, problems = check({"ACS_TRIAGE_SLACK_URL": SLACK_URL, **env})
    found = [p for p in problems if p.setting == setting and words in p.message]
    assert [p.level for p in found] == [level]


def test_in_azure_a_misspelt_setting_turns_health_to_503_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACS_TRIAGE_TEAMS_URL", TEAMS_URL)
    monkeypatch.setenv("ACS_TRIAGE_GROUP_WINDOW", "60")
    service = Service.from_env()
    answer = service.health()
    assert answer.status == 503
    assert "did you mean ACS_TRIAGE_GROUP_WINDOW_SECONDS?" in answer.body.decode()


def test_in_azure_no_destination_is_a_503_from_health_naming_every_destination_setting() -> None:
    settings = Settings.from_env(
        {"WEBSITE_INSTANCE_ID": "abc", "AzureWebJobsStorage__accountName": "contoso"}
    )
    answer = Service(settings, MemoryStore()).health()
    assert answer.status == 503
    [problem] = [p for p in json.loads(answer.body)["problems"] if p["level"] == "error"]
    for name in (
        "ACS_TRIAGE_TEAMS_URL",
        "ACS_TRIAGE_SLACK_URL",
        "ACS_TRIAGE_PAGERDUTY_ROUTING_KEY",
        "ACS_TRIAGE_WEBHOOK_URL",
        "ACS_TRIAGE_DEST_<NAME>_URL",
    ):
        assert name in problem["message"]
    assert "no destination is configured" in problem["message"]


# -- the storage probe only looks -------------------------------------------------------------------
@pytest.mark.azurite
def test_doctor_says_what_storage_lacks_and_creates_nothing(
    azurite: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from azure.data.tables import TableServiceClient
    from azure.storage.queue import QueueServiceClient

    queue, prefix = azurite.names()
    for name, value in {
        "AzureWebJobsStorage": azurite.connection,
        "ACS_TRIAGE_SLACK_URL": SLACK_URL,
        "ACS_TRIAGE_OUTBOX_QUEUE": queue,
        "ACS_TRIAGE_TABLE_PREFIX": prefix,
    }.items():
        monkeypatch.setenv(name, value)
    assert main(["doctor"]) == 0  # a warning: the app creates what is missing on first use
    out = capsys.readouterr().out
    assert (
        f"table {prefix}dedup, table {prefix}state, queue {queue}, queue {queue}-poison do(es) not exist yet"
        in out
    )
    tables = [t.name for t in TableServiceClient.from_connection_string(azurite.connection).list_tables()]
    queues = [q.name for q in QueueServiceClient.from_connection_string(azurite.connection).list_queues()]
    assert (
        not [t for t in tables if t.startswith(prefix)]
        and queue not in queues
        and f"{queue}-poison" not in queues
    )

    from triage.store.azure import AzureStore

    with AzureStore(azurite.connection, queue_name=queue, table_prefix=prefix) as store:
        store.probe()  # the app's own first use creates them
    assert main(["doctor"]) == 0
    assert "storage answers: outbox 0 message(s), poison 0" in capsys.readouterr().out


def test_development_storage_that_does_not_answer_says_to_start_azurite_or_empty_the_setting() -> None:
    from azure.core.exceptions import ServiceRequestError

    settings = Settings.from_env({"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    problem = storage_failure(ServiceRequestError("connection refused"), settings)
    assert problem is not None and problem.setting == "AzureWebJobsStorage"
    assert "start it (node_modules/.bin/azurite" in problem.message
    assert "empty AzureWebJobsStorage to keep state in memory" in problem.message
