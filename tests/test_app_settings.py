"""local.settings.json is where Functions users keep settings: every command that reads settings
reads its `Values` as `func start` does (the environment wins), and says which file it read."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import requests

import function_app
from samples import SAMPLES
from tools.localhost import start_checked
from tools.sinks import TeamsSink
from triage.cli import READS_SETTINGS, build_parser, main
from triage.cli import app_settings as app_settings_module
from triage.cli.app_settings import applied, read_values
from triage.errors import ConfigurationError
from triage.service import Service
from triage.settings import Settings
from triage.store.memory import MemoryStore

PLAY_FAILED = SAMPLES / "callbacks" / "play-failed-400-8535.json"


def write_settings(folder: Path, values: dict[str, object]) -> Path:
    path = folder / "local.settings.json"
    path.write_text(json.dumps({"IsEncrypted": False, "Values": values}), encoding="utf-8")
    return path


@pytest.fixture(name="app_folder")
def app_folder_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An app folder of the test's own: a developer's local.settings.json never takes part."""
    monkeypatch.setattr(app_settings_module, "APP_FOLDER", tmp_path)
    monkeypatch.delenv("ACS_TRIAGE_LOCAL_SETTINGS")  # the tests' "read none"
    return tmp_path


@pytest.mark.parametrize(
    "argv",
    [
        ["replay"],
        ["serve"],
        ["render", "--out", "x"],
        ["doctor"],
        ["report"],
        ["outbox", "status"],
        ["silence", "list"],
    ],
)
def test_every_command_that_reads_settings_reads_local_settings_json(argv: list[str]) -> None:
    assert build_parser().parse_args(argv).reads_settings
    assert argv[0] in READS_SETTINGS


def test_explain_reads_no_settings_and_so_no_file() -> None:
    assert not getattr(build_parser().parse_args(["explain", "410", "3112"]), "reads_settings", False)


def test_report_uses_the_store_local_settings_json_names_and_says_it_read_the_file(
    app_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_settings(app_folder, {"ACS_TRIAGE_STORE": f"sqlite:{tmp_path / 'app.sqlite3'}"})
    assert main(["report"]) == 0
    captured = capsys.readouterr()
    assert "No failures in this period" in captured.out
    assert (
        captured.err.splitlines()[0]
        == f"settings: {app_folder / 'local.settings.json'} (1 value(s)) and the environment"
    )


def test_the_environment_wins_over_local_settings_json(
    app_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_settings(app_folder, {"ACS_TRIAGE_STORE": "memory"})  # report would refuse this one
    monkeypatch.setenv("ACS_TRIAGE_STORE", f"sqlite:{tmp_path / 'env.sqlite3'}")
    assert main(["report"]) == 0
    assert "1 of them overridden by the environment" in capsys.readouterr().err


def test_doctor_reads_local_settings_json_and_names_a_misspelt_setting_in_it(
    app_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_settings(
        app_folder,
        {
            "ACS_TRIAGE_SLACK_URL": "https://hooks.slack.com/services/T000/B000/XXXX",
            "ACS_TRIAGE_TEAMS_WEBHOOK_URL": "https://example.invalid/x",
        },
    )
    assert main(["doctor", "--offline"]) == 1
    out = capsys.readouterr().out
    assert (
        "ACS_TRIAGE_TEAMS_WEBHOOK_URL is not a setting acs-triage reads: did you mean ACS_TRIAGE_TEAMS_URL?"
        in out
    )


def test_without_the_file_a_command_says_it_read_the_environment_only(
    app_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["doctor", "--offline"]) == 1  # no destination
    assert "settings: the environment only (no local.settings.json in " in capsys.readouterr().err


def test_the_values_are_taken_out_of_the_environment_after_the_command(
    app_folder: Path, tmp_path: Path
) -> None:
    write_settings(app_folder, {"ACS_TRIAGE_STORE": f"sqlite:{tmp_path / 'x.sqlite3'}"})
    assert main(["report"]) == 0
    assert "ACS_TRIAGE_STORE" not in os.environ


def test_acs_triage_local_settings_names_another_file_or_none(
    app_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_settings(app_folder, {"ACS_TRIAGE_STORE": "memory"})
    (tmp_path / "other").mkdir()
    other = write_settings(tmp_path / "other", {"ACS_TRIAGE_STORE": f"sqlite:{tmp_path / 'o.sqlite3'}"})
    monkeypatch.setenv("ACS_TRIAGE_LOCAL_SETTINGS", str(other))
    assert main(["report"]) == 0
    assert f"settings: {other} (1 value(s)) and the environment" in capsys.readouterr().err
    monkeypatch.setenv("ACS_TRIAGE_LOCAL_SETTINGS", "")
    assert main(["report"]) == 2  # the memory store of the environment's default: refused
    assert "ACS_TRIAGE_LOCAL_SETTINGS is empty: no local.settings.json is read" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("{not json", "is not valid JSON"),
        ('{"IsEncrypted": true, "Values": {}}', "func settings decrypt"),
        (
            '{"Values": {"ACS_TRIAGE_ROUTES": [{"to": ["teams"]}]}}',
            "Values.ACS_TRIAGE_ROUTES must be a string",
        ),
        ('{"Values": ["ACS_TRIAGE_TEAMS_URL"]}', "Values must be an object"),
    ],
)
def test_a_file_the_host_would_ignore_silently_is_an_error_naming_it(
    tmp_path: Path, document: str, message: str
) -> None:
    path = tmp_path / "local.settings.json"
    path.write_text(document, encoding="utf-8")
    with pytest.raises(ConfigurationError, match=message):
        read_values(path)


def test_a_broken_file_stops_the_command_with_one_line(
    app_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (app_folder / "local.settings.json").write_text("{", encoding="utf-8")
    assert main(["replay", "--quiet", str(PLAY_FAILED)]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("error: ") and "local.settings.json: is not valid JSON" in line


def test_numbers_and_booleans_are_read_as_the_strings_an_app_setting_holds(tmp_path: Path) -> None:
    path = write_settings(tmp_path, {"ACS_TRIAGE_MASK_PII": False, "ACS_TRIAGE_GROUP_WINDOW_SECONDS": 60})
    assert read_values(path) == {"ACS_TRIAGE_MASK_PII": "false", "ACS_TRIAGE_GROUP_WINDOW_SECONDS": "60"}


def test_serve_posts_to_the_teams_url_kept_in_local_settings_json(app_folder: Path) -> None:
    # The first-hour failure: the URL was in the file, serve ignored it, and alerts went nowhere.
    with TeamsSink(rate_limit=False) as teams:
        write_settings(app_folder, {"ACS_TRIAGE_TEAMS_URL": teams.url})
        try:
            with applied(os.environ):
                server = start_checked("127.0.0.1", 0)
                try:
                    answer = requests.post(
                        f"{server.url}/api/callbacks",
                        data=PLAY_FAILED.read_bytes(),
                        headers={"Content-Type": "application/json"},
                        timeout=10,
                    )
                    assert answer.status_code == 200 and answer.json()["messages"] == 1
                    deadline = time.monotonic() + 30
                    while not teams.accepted and time.monotonic() < deadline:
                        time.sleep(0.1)
                finally:
                    server.stop()
        finally:
            function_app.configure(Service(Settings.from_env({}), MemoryStore()))
        assert len(teams.accepted) == 1
