"""The optional shared secret in the query string, on every route and both handshakes."""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterator
from typing import Any

import pytest

import function_app
import triage.auth
from samples import sample_bytes
from tools.localhost import LocalHost
from triage.service import Service
from triage.settings import Settings
from triage.store.memory import MemoryStore

SECRET = "k7Qp-2vX9_rT4mWz8sLb"
HOST = LocalHost(function_app.app)
ORIGIN = {"WebHook-Request-Origin": "eventgrid.azure.net"}

REQUESTS: dict[str, tuple[str, str, dict[str, str], bytes]] = {
    "event grid events": ("POST", "/api/eventgrid", {}, sample_bytes("eventgrid/sms-batch-mixed.json")),
    "event grid validation": (
        "POST",
        "/api/eventgrid",
        {"aeg-event-type": "SubscriptionValidation"},
        sample_bytes("eventgrid/subscription-validation.json"),
    ),
    "cloudevents OPTIONS handshake": ("OPTIONS", "/api/eventgrid", ORIGIN, b""),
    "call automation callback": (
        "POST",
        "/api/callbacks",
        {},
        sample_bytes("callbacks/play-failed-400-8535.json"),
    ),
}


@pytest.fixture
def app() -> Iterator[MemoryStore]:
    store = MemoryStore()
    settings = Settings.from_env(
        {"ACS_TRIAGE_SHARED_SECRET": SECRET, "ACS_TRIAGE_TEAMS_URL": "https://teams.example.invalid/wf?sig=x"}
    )
    function_app.configure(Service(settings, store))
    yield store
    function_app.configure(Service(Settings.from_env({}), MemoryStore()))


def send(case: str, query: str) -> tuple[int, dict[str, str], bytes]:
    method, path, headers, body = REQUESTS[case]
    return HOST.http(method, path, dict(headers), body, query)


WRONG_QUERIES = {
    "no query": "",
    "empty secret": "secret=",
    "wrong secret": "secret=letmein",
    "right length, wrong value": "secret=" + "x" * len(SECRET),
    "right prefix only": "secret=" + SECRET[:-1],
    "secret plus a suffix": "secret=" + SECRET + "x",
    "different case": "secret=" + SECRET.upper(),
    "right value under another name": "code=" + SECRET,
    "non-ASCII value": "secret=%C3%A9t%C3%A9",
}


@pytest.mark.parametrize("case", list(REQUESTS))
@pytest.mark.parametrize("query", list(WRONG_QUERIES))
def test_a_request_without_the_right_secret_is_401(app: MemoryStore, case: str, query: str) -> None:
    status, _, body = send(case, WRONG_QUERIES[query])
    assert status == 401
    assert json.loads(body)["error"] == "missing or wrong 'secret' query parameter"
    assert not app.outbox


@pytest.mark.parametrize("case", list(REQUESTS))
def test_a_request_with_the_right_secret_is_answered(app: MemoryStore, case: str) -> None:
    status, _, _ = send(case, f"secret={SECRET}")
    assert status == 200


def test_the_handshakes_reveal_nothing_without_the_secret(app: MemoryStore) -> None:
    status, headers, body = send("event grid validation", "")
    assert status == 401 and b"validationResponse" not in body
    status, headers, _ = send("cloudevents OPTIONS handshake", "")
    assert status == 401 and "WebHook-Allowed-Origin" not in headers


def test_the_secret_is_checked_before_the_body_is_read(app: MemoryStore) -> None:
    status, _, _ = HOST.http("POST", "/api/eventgrid", {}, b"{not json", "")
    assert status == 401


def test_the_401_does_not_echo_what_was_sent(app: MemoryStore) -> None:
    _, _, body = send("event grid events", "secret=guess-number-one")
    assert b"guess-number-one" not in body and SECRET.encode() not in body


def test_the_secret_parameter_name_is_configurable() -> None:
    settings = Settings.from_env({"ACS_TRIAGE_SHARED_SECRET": SECRET, "ACS_TRIAGE_SECRET_PARAM": "token"})
    function_app.configure(Service(settings, MemoryStore()))
    try:
        assert send("call automation callback", f"secret={SECRET}")[0] == 401
        assert send("call automation callback", f"token={SECRET}")[0] == 200
    finally:
        function_app.configure(Service(Settings.from_env({}), MemoryStore()))


def test_without_a_configured_secret_no_query_parameter_is_needed() -> None:
    function_app.configure(Service(Settings.from_env({}), MemoryStore()))
    assert send("call automation callback", "")[0] == 200


def test_the_comparison_is_constant_time_hmac_compare_digest(
    app: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[Any, Any]] = []
    original = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return original(a, b)

    monkeypatch.setattr(triage.auth.hmac, "compare_digest", spy)
    assert send("call automation callback", "secret=nope")[0] == 401
    assert send("call automation callback", f"secret={SECRET}")[0] == 200
    # Every decision went through compare_digest, with the given value and the configured one.
    assert [sorted(map(bytes, c)) for c in calls] == [
        sorted([b"nope", SECRET.encode()]),
        sorted([SECRET.encode(), SECRET.encode()]),
    ]
