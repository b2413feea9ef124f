"""The command line, as a user runs it: `python -m triage …` in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from samples import ROOT, SAMPLES


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ACS_TRIAGE_")}
    return subprocess.run(
        [sys.executable, "-m", "triage", *args],
        cwd=ROOT,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


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
    event, closing = (json.loads(doc) for doc in result.stdout.strip().split("\n\n"))
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
    assert result.returncode == 0
    assert "a-bad.json: 400 refused: body is not valid JSON" in result.stderr
    assert "PlayFailed 400/8535" in result.stdout


@pytest.mark.parametrize("args", [("explain", "410", "3112"), ("catalog", "lint")])
def test_catalog_commands_are_wired_into_the_cli(args: tuple[str, ...]) -> None:
    result = run(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip()


def test_serve_starts_the_function_apps_routes_on_the_given_port() -> None:
    import socket
    import time

    import requests

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ACS_TRIAGE_")}
    server = subprocess.Popen(
        [sys.executable, "-m", "triage", "serve", "--port", str(port)],
        cwd=ROOT,
        env=clean,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = requests.post(
                    f"http://127.0.0.1:{port}/api/callbacks",
                    data=(SAMPLES / "callbacks" / "play-failed-400-8535.json").read_bytes(),
                    timeout=5,
                )
                break
            except requests.ConnectionError:
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                assert time.monotonic() < deadline, "serve did not start listening"
                time.sleep(0.2)
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
