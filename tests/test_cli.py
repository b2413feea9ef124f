"""The command line, as a user runs it: `python -m triage …` in a fresh process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from samples import ROOT, SAMPLES


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment without any ACS_TRIAGE_* setting or local.settings.json, plus `extra`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ACS_TRIAGE_")}
    clean["ACS_TRIAGE_LOCAL_SETTINGS"] = ""  # never a developer's local.settings.json
    return {**clean, **(extra or {})}


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "triage", *args],
        cwd=ROOT,
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def serve(port: int, stdout: int) -> subprocess.Popen[str]:
    """`python -m triage serve` on `port`, as a user starts it."""
    return subprocess.Popen(
        [sys.executable, "-m", "triage", "serve", "--port", str(port)],
        cwd=ROOT,
        env=clean_env(),
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
    )


def post_sample_once_listening(server: subprocess.Popen[str], port: int) -> requests.Response:
    """POST the PlayFailed sample to /api/callbacks as soon as the server listens."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return requests.post(
                f"http://127.0.0.1:{port}/api/callbacks",
                data=(SAMPLES / "callbacks" / "play-failed-400-8535.json").read_bytes(),
                headers={"Content-Type": "application/json"},
                timeout=5,
            )
        except requests.ConnectionError:
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            assert time.monotonic() < deadline, "serve did not start listening"
            time.sleep(0.2)


def test_replay_with_no_arguments_replays_every_sample_and_prints_readable_alerts() -> None:
    result = run("replay")
    assert result.returncode == 0, result.stderr
    files = len(list(SAMPLES.rglob("*.json")))
    assert f"replayed {files} file(s)" in result.stderr
    assert "subscription validation answered" in result.stderr
    # One alert per failing sample: the text form names the event, the code and the advice.
    assert "PlayFailed 400/8535" in result.stdout
    assert "SMSDeliveryReportReceived 4007" in result.stdout
    assert "CallDisconnected 200/7000" not in result.stdout  # a normal end is not an alert
    assert "+14255550123" not in result.stdout  # phone numbers are masked


def test_replay_prints_teams_payloads_that_are_workflows_envelopes() -> None:
    result = run(
        "replay", "--quiet", "--format", "teams", str(SAMPLES / "callbacks" / "play-failed-400-8535.json")
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["type"] == "message"
    assert payload["attachments"][0]["contentType"] == "application/vnd.microsoft.card.adaptive"


def test_replay_prints_slack_payloads_with_text_and_blocks() -> None:
    result = run(
        "replay",
        "--quiet",
        "--format",
        "slack",
        str(SAMPLES / "eventgrid" / "sms-delivery-failed-4007-opt-out.json"),
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert "4007" in payload["text"] and payload["blocks"]


def test_replay_prints_pagerduty_events_without_a_routing_key() -> None:
    result = run(
        "replay", "--quiet", "--format", "pagerduty", str(SAMPLES / "callbacks" / "play-failed-400-8535.json")
    )
    assert result.returncode == 0, result.stderr
    event, closing = (json.loads(line) for line in result.stdout.splitlines())  # JSON Lines
    assert event["event_action"] == "trigger"
    assert event["dedup_key"].startswith("PlayFailed|400|8535|")
    assert "routing_key" not in event  # added only when posting, from ACS_TRIAGE_PAGERDUTY_ROUTING_KEY
    # The end of the replay is a quiet window: a pager's incident is resolved even without
    # --resolved (chat notices need it), since an incident left open pages for nothing.
    assert closing == {"event_action": "resolve", "dedup_key": event["dedup_key"]}


@pytest.mark.parametrize("window", ["0", "300"])
def test_replay_resolved_resolves_every_alert_whatever_the_window(window: str) -> None:
    sample = str(SAMPLES / "eventgrid" / "sms-delivery-failed-4007-opt-out.json")
    result = run("replay", "--resolved", "--window", window, sample)
    assert result.returncode == 0, result.stderr
    alerts = result.stdout.count("SMSDeliveryReportReceived 4007 on ")
    [notice] = [line for line in result.stdout.splitlines() if line.startswith("Resolved:")]
    assert alerts == 2 and notice.startswith("Resolved: SMSDeliveryReportReceived 4007 on ")
    assert "resolved 1" in result.stderr


def test_replay_prints_versioned_webhook_documents() -> None:
    result = run(
        "replay",
        "--quiet",
        "--format",
        "webhook",
        str(SAMPLES / "eventgrid" / "sms-delivery-failed-4007-opt-out.json"),
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["schema"] == "acs-triage.alert/v1"
    assert doc["alert"]["kind"] == "SMSDeliveryReportReceived"


def test_replay_to_pagerduty_without_its_routing_key_is_a_clear_error() -> None:
    result = run("replay", "--format", "pagerduty", "--to", "http://127.0.0.1:9/v2/enqueue")
    assert result.returncode == 2
    assert "ACS_TRIAGE_PAGERDUTY_ROUTING_KEY" in result.stderr


def test_replay_groups_a_burst_into_one_alert_and_one_digest(tmp_path: Path) -> None:
    event = json.loads((SAMPLES / "callbacks" / "play-failed-400-8535.json").read_text())[0]
    (tmp_path / "burst.json").write_text(json.dumps([dict(event, id=f"b-{i}") for i in range(50)]))
    result = run("replay", "--quiet", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "alerted 1" in result.stderr and "grouped 49" in result.stderr and "digests 1" in result.stderr
    assert "49×" in result.stdout


def test_replay_of_a_missing_path_is_a_clear_error() -> None:
    result = run("replay", "no/such/file.json")
    assert result.returncode == 2
    assert "no such file or directory" in result.stderr


def test_replay_of_malformed_files_reports_them_and_goes_on(tmp_path: Path) -> None:
    (tmp_path / "a-bad.json").write_text("{not json")
    (tmp_path / "b-good.json").write_text((SAMPLES / "callbacks" / "play-failed-400-8535.json").read_text())
    result = run("replay", str(tmp_path))
    assert result.returncode == 1  # the good file is still replayed, but a refusal is not success
    assert "a-bad.json: 400 refused: body is not valid JSON" in result.stderr
    assert "PlayFailed 400/8535" in result.stdout
    assert result.stderr.splitlines()[-1].startswith("error: 1 file(s) refused and 0 invalid event(s)")


def test_replay_of_an_invalid_event_exits_1(tmp_path: Path) -> None:
    [event] = json.loads((SAMPLES / "callbacks" / "play-failed-400-8535.json").read_text())
    (tmp_path / "invalid.json").write_text(json.dumps([dict(event, data="not an object")]))
    result = run("replay", "--quiet", str(tmp_path))
    assert result.returncode == 1
    assert "invalid 1" in result.stderr and "1 invalid event(s)" in result.stderr


def test_replay_prints_payloads_as_json_lines_one_document_per_alert() -> None:
    result = run("replay", "--quiet", "--format", "slack", str(SAMPLES / "eventgrid"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) > 3
    assert all("blocks" in json.loads(line) for line in lines)


@pytest.mark.parametrize("args", [("explain", "410", "3112"), ("catalog", "lint")])
def test_catalog_commands_are_wired_into_the_cli(args: tuple[str, ...]) -> None:
    result = run(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip()


def test_serve_starts_the_function_apps_routes_on_the_given_port() -> None:
    port = free_port()
    server = serve(port, subprocess.DEVNULL)
    try:
        answer = post_sample_once_listening(server, port)
        assert answer.status_code == 200 and answer.json()["alerted"] == 1
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_outbox_status_and_redrive_work_on_the_store_serve_uses(tmp_path: Path) -> None:
    from triage.store import OutboxMessage
    from triage.store.sqlite import SqliteStore

    path = tmp_path / "acs-triage.sqlite3"
    with SqliteStore(path) as store:
        for n, destination in enumerate(("slack", "slack", "teams")):
            store.enqueue([OutboxMessage(f"m{n}", destination, {"text": f"alert {n}"})])
            [lease] = store.poll("acs-triage-outbox", 1)
            lease.fail(poison=True)
        store.dead_letter(OutboxMessage("m9", "slack", {"text": "refused"}), "slack: rejected with 400")
    env = {"ACS_TRIAGE_STORE": f"sqlite:{path}"}

    status = run("outbox", "status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    rows = {row["destination"]: row for row in json.loads(status.stdout)}
    assert (rows["slack"]["poisoned"], rows["slack"]["refused"], rows["teams"]["poisoned"]) == (3, 1, 1)

    redrive = run("outbox", "redrive", "--destination", "slack", env=env)
    assert (redrive.returncode, redrive.stdout.strip()) == (0, "re-queued 2 poisoned message(s)")
    again = run("outbox", "redrive", "--include-refused", "--older-than", "0s", env=env)
    assert again.stdout.strip() == "re-queued 2 poisoned message(s)"  # teams, and the refused one
    with SqliteStore(path) as store:
        assert sorted(lease.id for lease in store.poll("acs-triage-outbox", 32)) == ["m0", "m1", "m2", "m9"]
        assert store.poisoned() == []


def test_outbox_commands_refuse_the_in_memory_store_naming_the_settings_to_set() -> None:
    result = run("outbox", "status", env={"ACS_TRIAGE_STORE": "memory"})
    assert result.returncode == 2
    assert "AzureWebJobsStorage" in result.stderr and "ACS_TRIAGE_STORE=sqlite:PATH" in result.stderr


def test_outbox_redrive_refuses_an_age_it_cannot_read() -> None:
    result = run("outbox", "redrive", "--older-than", "yesterday", env={"ACS_TRIAGE_STORE": "memory"})
    assert result.returncode == 2 and "not a duration such as 90s, 15m, 6h or 2d" in result.stderr


# -- serve: what it prints, what it refuses --------------------------------------------------------
def test_serve_without_a_destination_prints_each_alert_and_says_so_at_start() -> None:
    port = free_port()
    server = serve(port, subprocess.PIPE)
    try:
        answer = post_sample_once_listening(server, port)
        assert answer.status_code == 200 and answer.json()["messages"] == 1
        assert server.stdout is not None
        assert server.stdout.readline().startswith("WARNING  PlayFailed 400/8535 on acs")
    finally:
        server.terminate()
        _, err = server.communicate(timeout=10)
    assert "no destination is configured (ACS_TRIAGE_TEAMS_URL, ACS_TRIAGE_SLACK_URL" in err
    assert "each alert is printed here instead of posted" in err


def test_serve_refuses_to_start_on_settings_doctor_calls_errors() -> None:
    result = run(
        "serve",
        "--port",
        str(free_port()),
        env={"ACS_TRIAGE_STORE": "bogus", "ACS_TRIAGE_TEAMS_WEBHOOK_URL": "x"},
    )
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert "error: ACS_TRIAGE_STORE: must be auto, memory, azure or sqlite:PATH, not 'bogus'" in lines
    assert any("did you mean ACS_TRIAGE_TEAMS_URL?" in line for line in lines)
    assert lines[-1].startswith("error: serve did not start: 2 setting(s) above cannot work")
    assert "Traceback" not in result.stderr


def test_serve_on_a_port_in_use_says_so_in_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("serve", "--port", str(port))
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        f"error: port {port} is already in use (another `serve`?): stop that one or choose --port N"
    )
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("port", ["70710", "0", "http"])
def test_serve_on_an_invalid_port_says_so_in_one_line(port: str) -> None:
    result = run("serve", "--port", port)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert "is not a port number; use 1-65535" in line and "python -m triage serve --help" in line


# -- one line for each mistake -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("bogus",), "invalid choice: 'bogus'"),
        (("replay", "--bogus"), "unrecognized arguments: --bogus"),
        (("report", "--format", "pagerduty"), "invalid choice: 'pagerduty'"),
    ],
)
def test_an_unknown_command_or_option_is_one_line_naming_the_help(args: tuple[str, ...], words: str) -> None:
    result = run(*args)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ") and words in line and "--help`" in line


def test_dev_with_an_unknown_command_names_the_ones_it_has() -> None:
    result = subprocess.run(
        [str(ROOT / "dev"), "bogus"], cwd=ROOT, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "dev: unknown command 'bogus'; use one of: replay, test, lint, checkov, bench, triage (./dev help)"
    ]


def test_a_reader_that_stops_early_gets_one_line_and_no_traceback() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "triage", "replay", "--quiet", "--format", "teams"],
        cwd=ROOT,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.readline()
    process.stdout.close()  # as `| head -1` does
    err = process.stderr.read()
    assert process.wait(timeout=60) == 141
    assert err.splitlines()[-1] == "error: the output was closed before the command finished"
    assert "Traceback" not in err and "BrokenPipeError" not in err


def test_report_refuses_the_in_memory_store_as_outbox_and_silence_do() -> None:
    result = run("report")
    assert result.returncode == 2
    assert "report (it reads the app's hourly counters) needs the app's durable store" in result.stderr
    assert "ACS_TRIAGE_STORE=sqlite:PATH" in result.stderr


def test_a_store_that_cannot_open_is_an_error_not_an_empty_outbox(tmp_path: Path) -> None:
    result = run("outbox", "status", env={"ACS_TRIAGE_STORE": "sqlite"})
    assert result.returncode == 2
    assert "ACS_TRIAGE_STORE: sqlite needs a file path after 'sqlite:'" in result.stderr


def test_render_says_how_far_it_is(tmp_path: Path) -> None:
    from tools.preview import find_chromium

    sample = str(SAMPLES / "callbacks" / "play-failed-400-8535.json")
    result = run("render", sample, "--formats", "slack", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "render: 1 card(s) written as JSON and HTML" in result.stderr
    pictures = sorted(p.name for p in tmp_path.glob("*.png"))
    if find_chromium() is None:  # no browser here: the cards are written, and no picture claimed
        assert pictures == [] and "render: picture" not in result.stderr
    else:
        assert f"render: picture 1/1: {pictures[0]}" in result.stderr


def test_dev_names_each_package_pip_takes_instead_of_installing_in_silence() -> None:
    # The filter ./dev puts pip's output through, fed what pip prints.
    script = (
        'eval "$(sed -n "/^pip_progress()/,/^}/p" dev)"; '
        'printf "Collecting orjson<4,>=3.10\\n  Downloading orjson.whl (130 kB)\\n'
        'Requirement already satisfied: pip\\nCollecting pydantic\\n" | pip_progress'
    )
    result = subprocess.run(
        ["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=30, check=True
    )
    assert result.stderr.splitlines() == ["dev:   orjson<4,>=3.10", "dev:   pydantic"]
    assert "pip install --quiet" not in (ROOT / "dev").read_text(encoding="utf-8")


def test_serve_refuses_to_start_when_its_storage_does_not_answer() -> None:
    # Every request would be a 503: said before listening, with the setting to fix.
    closed = free_port()
    account = "devstoreaccount1"
    connection = (
        f"DefaultEndpointsProtocol=http;AccountName={account};AccountKey=a2V5;"
        f"QueueEndpoint=http://127.0.0.1:{closed}/{account};TableEndpoint=http://127.0.0.1:{closed}/{account}"
    )
    result = run("serve", "--port", str(free_port()), env={"AzureWebJobsStorage": connection})
    assert result.returncode == 2
    assert "error: AzureWebJobsStorage: storage is unusable: storage could not be reached" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("error: serve did not start: 1 setting(s) above")


def test_a_local_webhook_on_a_port_in_use_says_so_in_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "tools.sinks", "--kind", "slack", "--port", str(port)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"error: cannot listen on port {port} (Address already in use): choose another --port"
    ]
