"""The app in Microsoft's own Python worker, the one that runs it in Azure: the app deploys on
Python 3.13 (infra/app/function.bicep), where the worker is azure-functions-runtime, pinned in
requirements.txt. tests/worker_host.py drives that worker as the Functions host does (init and
indexing, function metadata, load, invocations) in .venv-worker, a Python 3.13 environment built
by ./dev from requirements.txt; storage is Azurite and the Teams webhook a local sink."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.storage.queue import QueueClient, TextBase64DecodePolicy
from azurite_server import Azurite
from required import skip_or_fail

from samples import sample_bytes
from tools.sinks import TeamsSink

REPO = Path(__file__).resolve().parent.parent
WORKER_PYTHON = REPO / ".venv-worker" / "bin" / "python"
HTTP_URL = "https://func-acstriage.azurewebsites.net/api/"


def pinned_worker_version() -> str:
    found = re.search(r"^azure-functions-runtime==([\d.]+);", (REPO / "requirements.txt").read_text(), re.M)
    assert found, "requirements.txt pins azure-functions-runtime for Python 3.13"
    return found.group(1)


class Worker:
    """One worker process behind the host stand-in: each call is one request of the host's."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.started: dict[str, Any] = {}  # the answers to init, metadata and the loads

    def send(self, **command: Any) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, f"the worker host exited ({self.process.poll()})"
        answer: dict[str, Any] = json.loads(line)
        assert answer.get("result") != "HostError", answer.get("exception")
        return answer

    def http(
        self, function: str, method: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Any:
        return self.send(
            op="http",
            function=function,
            method=method,
            url=HTTP_URL + function,
            headers=headers if headers is not None else {"content-type": "application/json"},
            body=base64.b64encode(body).decode(),
        )


@pytest.fixture(scope="module")
def sink() -> Iterator[TeamsSink]:
    with TeamsSink(rate_limit=False) as teams:
        yield teams


@pytest.fixture(scope="module")
def outbox(azurite: Azurite) -> str:
    return Azurite.names()[0]


@contextlib.contextmanager
def running_worker(settings: dict[str, str], log_dir: Path) -> Iterator[Worker]:
    """A worker process started with these app settings (and nothing of ours from the environment)."""
    if not WORKER_PYTHON.exists():
        skip_or_fail("the Python 3.13 worker environment is missing: run ./dev test (it builds .venv-worker)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACS_TRIAGE_", "AzureWebJobs"))}
    env |= settings | {"PYTHONDONTWRITEBYTECODE": "1"}
    with (log_dir / "worker.log").open("w") as log:
        process = subprocess.Popen(
            [str(WORKER_PYTHON), str(REPO / "tests" / "worker_host.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=env,
            cwd=REPO,
        )
        worker = Worker(process)
        try:
            worker.started = worker.send(op="start", directory=str(REPO))
            yield worker
        finally:
            assert process.stdin is not None
            process.stdin.close()
            process.wait(timeout=30)


@pytest.fixture(scope="module")
def worker(
    azurite: Azurite, sink: TeamsSink, outbox: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    settings = {
        "AzureWebJobsStorage": azurite.connection,
        "ACS_TRIAGE_OUTBOX_QUEUE": outbox,
        "ACS_TRIAGE_TABLE_PREFIX": Azurite.names()[1],
        "ACS_TRIAGE_TEAMS_URL": sink.url,
        "ACS_TRIAGE_GROUP_WINDOW_SECONDS": "1",
    }
    with running_worker(settings, tmp_path_factory.mktemp("worker")) as started:
        yield started


def outbox_messages(azurite: Azurite, outbox: str) -> list[tuple[Any, str]]:
    """What the host's queue extension would hand to the deliver function now (and takes it)."""
    queue = QueueClient.from_connection_string(
        azurite.connection, outbox, message_decode_policy=TextBase64DecodePolicy()
    )
    taken = []
    for message in queue.receive_messages(max_messages=32, visibility_timeout=60):
        taken.append((message, message.content))
        queue.delete_message(message)
    return taken


def test_the_worker_on_python_3_13_indexes_seven_functions_and_loads_each(worker: Worker) -> None:
    started = worker.started
    assert (started["init"], started["init_error"]) == ("Success", "")
    assert started["runtime_version"] == "3.13"
    assert started["worker_version"] == pinned_worker_version()
    assert started["metadata"] == "Success" and started["use_default_metadata_indexing"] is False
    functions = started["functions"]
    assert set(functions) == {"eventgrid", "callbacks", "silence", "health", "deliver", "flush", "report"}
    assert started["loads"] == dict.fromkeys(functions, "Success")
    eventgrid = functions["eventgrid"]["bindings"][0]
    assert (eventgrid["type"], eventgrid["authLevel"], sorted(eventgrid["methods"])) == (
        "httpTrigger",
        "FUNCTION",
        ["OPTIONS", "POST"],
    )
    deliver = functions["deliver"]["bindings"][0]
    assert (deliver["type"], deliver["queueName"]) == ("queueTrigger", "%ACS_TRIAGE_OUTBOX_QUEUE%")
    assert functions["health"]["bindings"][0]["authLevel"] == "ANONYMOUS"
    silence = functions["silence"]["bindings"][0]
    assert (silence["route"], silence["authLevel"]) == ("silence/{token}", "ANONYMOUS")
    assert functions["flush"]["directions"] == {"timer": "in"}


def test_the_event_grid_handshakes_are_answered_through_the_worker(worker: Worker) -> None:
    answer = worker.http("eventgrid", "POST", sample_bytes("eventgrid/subscription-validation.json"))
    assert (answer["result"], answer["status"]) == ("Success", 200)
    assert json.loads(answer["body"]) == {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}
    options = worker.http("eventgrid", "OPTIONS", headers={"webhook-request-origin": "eventgrid.azure.net"})
    assert options["status"] == 200
    assert options["headers"]["WebHook-Allowed-Origin"] == "eventgrid.azure.net"


def test_a_callbacks_batch_goes_to_the_outbox_and_the_queue_trigger_posts_it_to_teams(
    worker: Worker, azurite: Azurite, outbox: str, sink: TeamsSink
) -> None:
    sink.clear()
    answer = worker.http("callbacks", "POST", sample_bytes("callbacks/play-failed-400-8535.json"))
    assert (answer["status"], json.loads(answer["body"])["alerted"]) == (200, 1)
    [(message, body)] = outbox_messages(azurite, outbox)
    assert json.loads(body)["destination"] == "teams"
    delivered = worker.send(op="queue", function="deliver", id=message.id, body=body, dequeue_count=1)
    assert (delivered["result"], delivered["exception"]) == ("Success", "")
    [card] = sink.accepted
    assert card["attachments"][0]["contentType"] == "application/vnd.microsoft.card.adaptive"


def test_a_failed_post_fails_the_invocation_so_that_the_host_retries_it(
    worker: Worker, azurite: Azurite, outbox: str, sink: TeamsSink
) -> None:
    sink.clear()
    worker.http("callbacks", "POST", sample_bytes("callbacks/answer-failed-400-8501.json"))
    [(message, body)] = outbox_messages(azurite, outbox)
    sink.fail_first(50, status=503)  # more than the deliverer's own quick retries
    failed = worker.send(op="queue", function="deliver", id=message.id, body=body, dequeue_count=1)
    assert failed["result"] == "Failure" and "503" in failed["exception"]
    sink.clear()
    again = worker.send(op="queue", function="deliver", id=message.id, body=body, dequeue_count=2)
    assert again["result"] == "Success" and len(sink.accepted) == 1


def test_the_flush_timer_posts_a_burst_digest_through_the_worker(
    worker: Worker, azurite: Azurite, outbox: str
) -> None:
    first = json.loads(sample_bytes("eventgrid/sms-delivery-failed-4007-opt-out.json"))
    repeats = [dict(first[0], id=f"repeat-{n}") for n in range(3)]
    answer = worker.http("eventgrid", "POST", json.dumps(first + repeats).encode())
    assert answer["status"] == 200
    assert len(outbox_messages(azurite, outbox)) == 1  # the first alerts at once; repeats are counted
    time.sleep(1.2)  # the grouping window (1 s here) ends
    assert worker.send(op="timer", function="flush")["result"] == "Success"
    posted = {m["fingerprint"]: m for m in (json.loads(body) for _, body in outbox_messages(azurite, outbox))}
    digest = json.dumps(
        posted["SMSDeliveryReportReceived|4007|None|contoso-acs-prod"]["payload"], ensure_ascii=False
    )
    assert "3× SMSDeliveryReportReceived 4007" in digest  # the repeats, counted in one digest
    assert worker.send(op="timer", function="report")["result"] == "Success"


def test_health_reads_the_outbox_through_the_worker(worker: Worker) -> None:
    answer = worker.http("health", "GET", headers={})
    assert answer["status"] == 200
    assert json.loads(answer["body"])["outbox"] == {"depth": 0, "poison": 0}


def test_right_after_provisioning_an_unresolved_key_vault_reference_fails_nothing_but_the_events(
    azurite: Azurite, outbox: str, tmp_path: Path
) -> None:
    """The Teams URL arrives as the reference itself until the app's identity may read the vault:
    Event Grid's handshake is answered all the same (or the subscription is never made), events
    wait for a retry, and health names the reference."""
    reference = (
        "@Microsoft.KeyVault(SecretUri=https://kv-acstriage-x.vault.azure.net/secrets/teams-webhook-url)"
    )
    settings = {
        "AzureWebJobsStorage": azurite.connection,
        "ACS_TRIAGE_OUTBOX_QUEUE": outbox,
        "ACS_TRIAGE_TEAMS_URL": reference,
    }
    with running_worker(settings, tmp_path) as worker:
        assert worker.started["loads"] == dict.fromkeys(worker.started["functions"], "Success")
        handshake = worker.http("eventgrid", "POST", sample_bytes("eventgrid/subscription-validation.json"))
        assert (handshake["status"], json.loads(handshake["body"])) == (
            200,
            {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"},
        )
        events = worker.http(
            "eventgrid", "POST", sample_bytes("eventgrid/sms-delivery-failed-4007-opt-out.json")
        )
        assert events["status"] == 503
        health = worker.http("health", "GET", headers={})
        assert health["status"] == 503
        [problem] = [p for p in json.loads(health["body"])["problems"] if p["level"] == "error"]
        assert problem["setting"] == "ACS_TRIAGE_TEAMS_URL"
        assert problem["message"].startswith(
            "Key Vault reference for ACS_TRIAGE_TEAMS_URL is not resolved: check the app's identity has "
            "Key Vault Secrets User"
        )
