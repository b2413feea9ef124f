"""Call Automation callback tokens, checked through the real /api/callbacks route.

A local RSA key pair signs the tokens; a stdlib HTTP server on 127.0.0.1 serves the JWKS and
counts how often it is asked.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import function_app
import triage.jwt_auth
from samples import sample_bytes
from tools.localhost import LocalHost
from triage.errors import ConfigurationError, Unauthorized
from triage.jwt_auth import validate_callback_token
from triage.service import Service
from triage.settings import Settings
from triage.store.memory import MemoryStore

ISSUER = "https://acscallautomation.communication.azure.com"
AUDIENCE = "5f1e2d3c-4b5a-4978-8a6b-1c2d3e4f5a6b"  # an ACS resource's immutable id
CALLBACK = sample_bytes("callbacks/play-failed-400-8535.json")

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
HOST = LocalHost(function_app.app)


def jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {**public, "kid": kid, "use": "sig", "alg": "RS256"}


class JwksServer:
    """Serves {"keys": [...]} on loopback; `hits` counts the requests, `status` can be set."""

    def __init__(self, keys: list[dict[str, Any]]) -> None:
        self.keys = keys
        self.status = 200
        self.hits = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.hits += 1
                body = json.dumps({"keys": owner.keys}).encode()
                self.send_response(owner.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/calling/keys"
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    server = JwksServer([jwk(KEY, "key-1")])
    yield server
    server.close()


def settings_for(jwks_url: str) -> Settings:
    return Settings.from_env(
        {"ACS_TRIAGE_CALLBACK_AUDIENCE": AUDIENCE, "ACS_TRIAGE_CALLBACK_JWKS_URL": jwks_url}
    )


@pytest.fixture
def app(jwks: JwksServer) -> Iterator[MemoryStore]:
    store = MemoryStore()
    function_app.configure(Service(settings_for(jwks.url), store))
    yield store
    function_app.configure(Service(Settings.from_env({}), MemoryStore()))


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    out: dict[str, Any] = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "nbf": now, "exp": now + 300}
    out.update(changes)
    return {k: v for k, v in out.items() if v is not None}


def token(key: rsa.RSAPrivateKey = KEY, kid: str | None = "key-1", **changes: Any) -> str:
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(claims(**changes), key, algorithm="RS256", headers=headers)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(header: dict[str, Any], signature: Any = None) -> str:
    """A token assembled by hand, as an attacker would: PyJWT refuses to sign these."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims()).encode())}"
    sig = b"" if signature is None else signature(signing_input.encode())
    return f"{signing_input}.{b64(sig)}"


def post(authorization: str | None) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    status, _, body = HOST.http("POST", "/api/callbacks", headers, CALLBACK)
    return status, json.loads(body)


def test_a_callback_with_a_valid_call_automation_token_is_accepted(app: MemoryStore) -> None:
    status, answer = post(f"Bearer {token()}")
    assert status == 200
    assert answer["received"] == 1
    assert len(app.outbox) == 0  # no destination configured; the event was still triaged


def test_the_scheme_word_bearer_is_case_insensitive(app: MemoryStore) -> None:
    assert post(f"bearer {token()}")[0] == 200


public_pem = KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)

REJECTED = {
    "wrong audience": lambda: f"Bearer {token(aud='00000000-0000-0000-0000-000000000000')}",
    "ARM path instead of the immutable id": lambda: (
        "Bearer "
        + token(
            aud="/subscriptions/x/resourceGroups/y/providers/Microsoft.Communication/communicationServices/z"
        )
    ),
    "wrong issuer": lambda: f"Bearer {token(iss='https://evil.example')}",
    "expired beyond the leeway": lambda: f"Bearer {token(exp=int(time.time()) - 120)}",
    "not valid yet beyond the leeway": lambda: f"Bearer {token(nbf=int(time.time()) + 600)}",
    "no exp claim": lambda: f"Bearer {token(exp=None)}",
    "no aud claim": lambda: f"Bearer {token(aud=None)}",
    "bad signature (another key, same kid)": lambda: f"Bearer {token(OTHER_KEY)}",
    "unknown kid": lambda: f"Bearer {token(OTHER_KEY, kid='key-2')}",
    "no kid": lambda: f"Bearer {token(kid=None)}",
    "alg none": lambda: "Bearer " + forged({"alg": "none", "typ": "JWT", "kid": "key-1"}),
    "alg None spelled differently": lambda: "Bearer " + forged({"alg": "NONE", "kid": "key-1"}),
    "HS256 signed with the public key": lambda: (
        "Bearer "
        + forged(
            {"alg": "HS256", "typ": "JWT", "kid": "key-1"},
            lambda data: hmac.new(public_pem, data, hashlib.sha256).digest(),
        )
    ),
    "RS384 instead of RS256": lambda: (
        "Bearer " + jwt.encode(claims(), KEY, algorithm="RS384", headers={"kid": "key-1"})
    ),
    "truncated signature": lambda: f"Bearer {token()[:-10]}",
    "not a JWT": lambda: "Bearer not-a-token",
    "missing header": lambda: None,
    "empty header": lambda: "",
    "Basic instead of Bearer": lambda: "Basic dXNlcjpwYXNz",
    "token without a scheme": token,
    "Bearer without a token": lambda: "Bearer ",
    "absurdly long token": lambda: "Bearer " + "a" * 100_000,
}


@pytest.mark.parametrize("case", list(REJECTED))
def test_a_callback_without_a_valid_token_is_401_with_a_reason(app: MemoryStore, case: str) -> None:
    authorization = REJECTED[case]()
    status, answer = post(authorization)
    assert status == 401, answer
    assert answer["error"].startswith("callback")
    assert not app.outbox


def test_each_rejection_names_what_is_wrong(app: MemoryStore) -> None:
    reasons = {
        "wrong audience": "audience",
        "wrong issuer": "issued",
        "expired beyond the leeway": "expired",
        "no exp claim": "'exp'",
        "bad signature (another key, same kid)": "signature",
        "unknown kid": "key",
        "alg none": "RS256",
        "HS256 signed with the public key": "RS256",
        "missing header": "no Authorization header",
        "Basic instead of Bearer": "Bearer",
    }
    for case, word in reasons.items():
        assert word in post(REJECTED[case]())[1]["error"], case


def test_the_401_reason_and_the_log_never_echo_the_token(
    app: MemoryStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for bad in (token(aud="someone-else"), token(exp=int(time.time()) - 3600), token(OTHER_KEY)):
        status, answer = post(f"Bearer {bad}")
        assert status == 401
        signature = bad.rsplit(".", 1)[1]
        assert bad not in answer["error"] and signature not in answer["error"]
        assert signature not in caplog.text


def test_clock_skew_within_the_leeway_is_tolerated(app: MemoryStore) -> None:
    assert post(f"Bearer {token(exp=int(time.time()) - 30)}")[0] == 200
    assert post(f"Bearer {token(nbf=int(time.time()) + 30, iat=int(time.time()) + 30)}")[0] == 200


@pytest.fixture
def now(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The key cache's clock, as a cell the test moves forward."""
    cell = [1000.0]
    monkeypatch.setattr(triage.jwt_auth, "_clock", lambda: cell[0])
    return cell


def test_the_jwks_is_fetched_once_for_many_callbacks(app: MemoryStore, jwks: JwksServer) -> None:
    for _ in range(25):
        assert post(f"Bearer {token()}")[0] == 200
    assert jwks.hits == 1


def test_forged_kids_do_not_make_the_app_fetch_the_jwks_per_request(
    app: MemoryStore, jwks: JwksServer
) -> None:
    assert post(f"Bearer {token()}")[0] == 200
    for i in range(20):
        assert post(f"Bearer {token(OTHER_KEY, kid=f'forged-{i}')}")[0] == 401
    assert jwks.hits == 1


def test_a_rotated_key_is_picked_up_by_one_refresh_on_its_unknown_kid(
    app: MemoryStore, jwks: JwksServer, now: list[float]
) -> None:
    assert post(f"Bearer {token()}")[0] == 200
    jwks.keys = [jwk(KEY, "key-1"), jwk(OTHER_KEY, "key-2")]  # Call Automation rotates
    rotated = f"Bearer {token(OTHER_KEY, kid='key-2')}"
    assert post(rotated)[0] == 401  # the set was fetched a moment ago: no refresh yet
    assert jwks.hits == 1
    now[0] += triage.jwt_auth.MIN_REFRESH_SECONDS
    assert post(rotated)[0] == 200
    assert post(rotated)[0] == 200
    assert jwks.hits == 2


def test_the_key_set_is_refetched_when_its_cache_expires(
    app: MemoryStore, jwks: JwksServer, now: list[float]
) -> None:
    assert post(f"Bearer {token()}")[0] == 200
    now[0] += triage.jwt_auth.JWKS_TTL_SECONDS - 1
    assert post(f"Bearer {token()}")[0] == 200
    assert jwks.hits == 1
    now[0] += 1
    assert post(f"Bearer {token()}")[0] == 200
    assert jwks.hits == 2


def test_cached_keys_keep_working_while_the_jwks_endpoint_is_down(
    app: MemoryStore, jwks: JwksServer, now: list[float]
) -> None:
    assert post(f"Bearer {token()}")[0] == 200
    jwks.status = 500
    now[0] += triage.jwt_auth.JWKS_TTL_SECONDS
    assert post(f"Bearer {token()}")[0] == 200
    assert jwks.hits == 2


def test_no_reachable_jwks_and_no_cached_key_is_a_503_so_the_sender_may_retry(
    app: MemoryStore, jwks: JwksServer
) -> None:
    jwks.status = 500
    status, answer = post(f"Bearer {token()}")
    assert status == 503
    assert "JWKS answered 500" in answer["error"]


def test_the_jwks_fetch_times_out_instead_of_hanging(monkeypatch: pytest.MonkeyPatch) -> None:
    silent = socket.socket()  # accepts connections (backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    try:
        monkeypatch.setattr(triage.jwt_auth, "_FETCH_TIMEOUT", (0.2, 0.2))
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/calling/keys"
        started = time.monotonic()
        with pytest.raises(triage.jwt_auth.KeysUnavailable, match="ReadTimeout"):
            validate_callback_token(settings_for(url), f"Bearer {token()}")
        assert time.monotonic() - started < 2
    finally:
        silent.close()


def test_a_jwks_over_plain_http_is_refused_unless_it_is_loopback() -> None:
    with pytest.raises(ConfigurationError, match="https"):
        validate_callback_token(settings_for("http://keys.example/calling/keys"), f"Bearer {token()}")


def test_the_claims_of_a_valid_token_are_returned(jwks: JwksServer) -> None:
    found = validate_callback_token(settings_for(jwks.url), f"Bearer {token(sub='acs')}")
    assert (found["iss"], found["aud"], found["sub"]) == (ISSUER, AUDIENCE, "acs")


def test_a_token_for_the_callbacks_is_not_required_until_the_audience_is_configured() -> None:
    function_app.configure(Service(Settings.from_env({}), MemoryStore()))
    status, _, _ = HOST.http("POST", "/api/callbacks", {}, CALLBACK)
    assert status == 200


def test_the_event_grid_route_does_not_ask_for_a_callback_token(app: MemoryStore) -> None:
    status, _, _ = HOST.http("POST", "/api/eventgrid", {}, sample_bytes("eventgrid/sms-delivered.json"))
    assert status == 200


@pytest.fixture(scope="module")
def module_jwks() -> Iterator[JwksServer]:
    server = JwksServer([jwk(KEY, "key-1")])
    yield server
    server.close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
headers = st.dictionaries(st.sampled_from(["alg", "kid", "typ", "jku", "x5u", "crit"]), json_values)
headers |= st.fixed_dictionaries(
    {
        "alg": st.sampled_from(["RS256", "none", "HS256", "ES256", "PS256"]),
        "kid": st.sampled_from(["key-1", "key-2"]),
    }
)
payloads = st.dictionaries(st.sampled_from(["iss", "aud", "exp", "nbf", "iat"]), json_values)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=headers, payload=payloads, signature=st.binary(max_size=300), raw=st.text(max_size=200))
def test_any_forged_token_or_header_value_is_unauthorized_and_nothing_else(
    module_jwks: JwksServer, header: dict[str, Any], payload: dict[str, Any], signature: bytes, raw: str
) -> None:
    parts = [json.dumps(header).encode(), json.dumps(payload).encode(), signature]
    forged_token = ".".join(b64(part) for part in parts)
    for authorization in (f"Bearer {forged_token}", raw, f"Bearer {raw}"):
        with pytest.raises(Unauthorized):
            validate_callback_token(settings_for(module_jwks.url), authorization)
    assert module_jwks.hits <= 1  # the keys are fetched once, whatever the attacker sends
