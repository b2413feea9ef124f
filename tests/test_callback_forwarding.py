"""The forwarding recipes (docs/recipes/): a user's own Call Automation callback handler forwards
each callback, with its Authorization header, to acs-triage, fire-and-forget.

Each recipe runs as a real handler (FastAPI under uvicorn and Express under node as processes; the
Azure Functions one through its function object, as the host cannot run here), forwarding to the
local acs-triage server, which checks the forwarded token against a local JWKS as it would ACS's.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import azure.functions as func
import pytest
import requests
from required import skip_or_fail
from test_jwt_auth import KEY as SIGNING_KEY
from test_jwt_auth import OTHER_KEY, JwksServer, jwk, settings_for, token

import function_app
from samples import sample_bytes
from tools.localhost import LocalServer
from tools.processes import stop
from triage.service import Service
from triage.store.memory import MemoryStore

ROOT = Path(__file__).resolve().parent.parent
RECIPES = ROOT / "docs" / "recipes"
CALLBACK = sample_bytes("callbacks/play-failed-400-8535.json")
ROUNDS = 15


class Triage:
    """The local acs-triage server with callback tokens required, and its store."""

    def __init__(self, url: str, store: MemoryStore) -> None:
        self.url = url
        self.store = store

    def wait_for_events(self, count: int, seconds: float = 10) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if len(self.store._seen) >= count:
                return True
            time.sleep(0.02)
        return False


@pytest.fixture
def triage() -> Iterator[Triage]:
    jwks = JwksServer([jwk(SIGNING_KEY, "key-1")])
    store = MemoryStore()
    function_app.configure(Service(settings_for(jwks.url), store))
    with LocalServer(port=0, tick_seconds=0.05) as server:
        yield Triage(f"{server.url}/api/callbacks", store)
    jwks.close()


@pytest.fixture
def hanging_url() -> Iterator[str]:
    """An acs-triage that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(256)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/api/callbacks"
    listener.close()


def down_url() -> str:
    """An acs-triage that is not there: a port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}/api/callbacks"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_handler(command: list[str], cwd: Path, forward_url: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start a recipe's handler process on a free loopback port; wait until it answers."""
    port = free_port()
    env = {
        **os.environ,
        "ACS_TRIAGE_FORWARD_URL": forward_url,
        "ACS_TRIAGE_FORWARD_TIMEOUT_SECONDS": "2",
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "NO_PROXY": "127.0.0.1",
    }
    process = subprocess.Popen(
        [part.replace("{port}", str(port)) for part in command],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, f"http://127.0.0.1:{port}/api/calls/events"
        except OSError:
            assert process.poll() is None, "the handler exited at start"
            time.sleep(0.05)
    process.kill()
    raise AssertionError("the handler did not start")


FASTAPI = [sys.executable, "-m", "uvicorn", "fastapi_app:app", "--host", "127.0.0.1", "--port", "{port}"]


def express_command() -> list[str]:
    node = shutil.which("node")
    if node is None or not (RECIPES / "express" / "node_modules" / "express").is_dir():
        skip_or_fail("node or the Express recipe's express (./dev test installs it) is missing")
    return [str(node), "server.js"]


HANDLERS: dict[str, tuple[Callable[[], list[str]], Path]] = {
    "fastapi": (lambda: FASTAPI, RECIPES / "python"),
    "express": (express_command, RECIPES / "express"),
}


@contextmanager
def running(recipe: str, forward_url: str) -> Iterator[str]:
    """A recipe's handler process forwarding to `forward_url`; yields its callback URL."""
    command, cwd = HANDLERS[recipe]
    process, url = start_handler(command(), cwd, forward_url)
    try:
        yield url
    finally:
        stop(process, grace=5)


def post(url: str, authorization: str | None) -> requests.Response:
    headers = {"Content-Type": "application/json"}
    if authorization:
        headers["Authorization"] = authorization
    return requests.post(url, data=CALLBACK, headers=headers, timeout=30)


@pytest.mark.parametrize("recipe", sorted(HANDLERS))
def test_the_handler_answers_and_acs_triage_receives_the_callback_with_its_verified_token(
    recipe: str, triage: Triage
) -> None:
    with running(recipe, triage.url) as url:
        answer = post(url, f"Bearer {token()}")
        assert answer.status_code == 200
        assert answer.json() == {"handled": ["Microsoft.Communication.PlayFailed"]}
        assert triage.wait_for_events(1), "acs-triage never received the forwarded callback"


@pytest.mark.parametrize("recipe", sorted(HANDLERS))
def test_a_forwarded_callback_with_a_foreign_token_is_refused_by_acs_triage_not_by_the_handler(
    recipe: str, triage: Triage
) -> None:
    with running(recipe, triage.url) as url:
        assert post(url, f"Bearer {token(OTHER_KEY)}").status_code == 200
        assert post(url, None).status_code == 200
        assert post(url, f"Bearer {token()}").status_code == 200
        assert triage.wait_for_events(1)
        time.sleep(0.3)  # forwards run concurrently: let the two refused ones land too
        assert len(triage.store._seen) == 1


def median_ms(url: str) -> float:
    times = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        assert post(url, f"Bearer {token()}").status_code == 200
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


@pytest.mark.parametrize("recipe", sorted(HANDLERS))
def test_a_hanging_or_down_acs_triage_does_not_delay_the_handlers_answer(
    recipe: str, triage: Triage, hanging_url: str
) -> None:
    """Each forward may wait 2 s; a handler that waited for it would answer over 100x slower."""
    medians: dict[str, float] = {}
    for name, target in (("up", triage.url), ("hanging", hanging_url), ("down", down_url())):
        with running(recipe, target) as url:
            post(url, None)  # warm-up: first request costs imports and connection setup
            medians[name] = median_ms(url)
    print(
        f"\n{recipe}: handler answer, median of {ROUNDS}: acs-triage up {medians['up']:.1f} ms, "
        f"hanging {medians['hanging']:.1f} ms ({medians['hanging'] / medians['up']:.2f}x), "
        f"down {medians['down']:.1f} ms ({medians['down'] / medians['up']:.2f}x)"
    )
    assert medians["hanging"] / medians["up"] < 20
    assert medians["down"] / medians["up"] < 20


def load_functions_recipe(
    forward_url: str, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., func.HttpResponse]:
    """The function of a fresh copy of the Azure Functions recipe (and its forward.py) reading
    `forward_url`, indexed as the host indexes it."""
    monkeypatch.setenv("ACS_TRIAGE_FORWARD_URL", forward_url)
    monkeypatch.syspath_prepend(str(RECIPES / "python"))
    sys.modules.pop("forward", None)
    spec = importlib.util.spec_from_file_location(
        "functions_recipe", RECIPES / "python" / "functions_handler.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (function,) = module.app.get_functions()
    user_function: Callable[..., func.HttpResponse] = function.get_user_function()
    return user_function


def call_functions_recipe(
    function: Callable[..., func.HttpResponse], authorization: str
) -> func.HttpResponse:
    request = func.HttpRequest(
        method="POST",
        url="http://localhost/api/calls/events",
        headers={"Authorization": authorization, "Content-Type": "application/json"},
        body=CALLBACK,
    )
    return function(request)


def test_the_azure_functions_recipe_forwards_through_its_function_object(
    triage: Triage, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = load_functions_recipe(triage.url, monkeypatch)
    response = call_functions_recipe(module, f"Bearer {token()}")
    assert response.status_code == 200
    assert json.loads(response.get_body()) == {"handled": ["Microsoft.Communication.PlayFailed"]}
    assert triage.wait_for_events(1)


def test_the_azure_functions_recipe_answers_as_fast_with_acs_triage_hanging(
    triage: Triage, hanging_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    medians = {}
    for name, target in (("up", triage.url), ("hanging", hanging_url)):
        module = load_functions_recipe(target, monkeypatch)
        call_functions_recipe(module, f"Bearer {token()}")
        times = []
        for _ in range(ROUNDS):
            started = time.perf_counter()
            assert call_functions_recipe(module, f"Bearer {token()}").status_code == 200
            times.append((time.perf_counter() - started) * 1000)
        medians[name] = statistics.median(times)
    print(
        f"\nfunctions: answer median of {ROUNDS}: up {medians['up']:.2f} ms, "
        f"hanging {medians['hanging']:.2f} ms ({medians['hanging'] / medians['up']:.2f}x)"
    )
    assert medians["hanging"] / medians["up"] < 20


def test_a_recipe_without_a_forward_url_refuses_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(RuntimeError, match="ACS_TRIAGE_FORWARD_URL"):
        load_functions_recipe("", monkeypatch)
