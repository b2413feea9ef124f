"""Validation of the JWT that Call Automation puts on every callback (`Authorization: Bearer …`).

RS256 only, issuer and audience (the ACS resource's immutable id) checked, `exp` required.
Signing keys come from the configured JWKS URL and are cached per process: fetched on first use,
refreshed when the cache expires, and refreshed early at most once a minute when a token names a
key we do not have (key rotation), so that a stream of forged `kid`s cannot make us fetch per
request. PyJWT and cryptography are imported on first use: a cold start that never sees a
callback does not pay for them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigurationError, TriageError, Unauthorized
from .settings import Settings

__all__ = ["LEEWAY_SECONDS", "KeysUnavailable", "validate_callback_token"]

ALGORITHM = "RS256"
LEEWAY_SECONDS = 60  # clock skew between Call Automation and us; its tokens live five minutes
JWKS_TTL_SECONDS = 3600.0
MIN_REFRESH_SECONDS = 60.0  # an unknown kid refreshes the key set at most this often
_FETCH_TIMEOUT = (3.05, 5.0)  # connect, read
_MAX_JWKS_BYTES = 256 * 1024
_MAX_TOKEN_CHARS = 8192
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}

_clock: Callable[[], float] = time.monotonic


class KeysUnavailable(TriageError):
    """The JWKS could not be fetched and no key is cached: our problem, not the caller's."""

    status = 503


class _KeySet:
    """The signing keys of one JWKS URL, by kid, with the time they were fetched."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.keys: dict[str, Any] = {}
        self.fetched_at: float | None = None
        self.lock = threading.Lock()

    def key(self, kid: str) -> Any:
        """The public key for `kid`, fetching or refreshing the set when that is due."""
        now = _clock()
        if self._stale(now) or (kid not in self.keys and self._may_refresh(now)):
            with self.lock:  # one fetch at a time; the others use its result
                now = _clock()
                if self._stale(now) or (kid not in self.keys and self._may_refresh(now)):
                    self._refresh(now)
        key = self.keys.get(kid)
        if key is None:
            raise Unauthorized("callback token is signed with a key that is not in the JWKS")
        return key

    def _stale(self, now: float) -> bool:
        return self.fetched_at is None or now - self.fetched_at >= JWKS_TTL_SECONDS

    def _may_refresh(self, now: float) -> bool:
        return self.fetched_at is None or now - self.fetched_at >= MIN_REFRESH_SECONDS

    def _refresh(self, now: float) -> None:
        try:
            self.keys = _fetch_keys(self.url)
        except KeysUnavailable:
            if not self.keys:
                raise
            # Serve the keys we have: a JWKS hiccup must not reject every callback.
        self.fetched_at = now


_key_sets: dict[str, _KeySet] = {}
_key_sets_lock = threading.Lock()


def _key_set(url: str) -> _KeySet:
    with _key_sets_lock:
        found = _key_sets.get(url)
        if found is None:
            found = _key_sets[url] = _KeySet(url)
        return found


def _check_jwks_url(url: str) -> None:
    parts = urlsplit(url)
    # Keys fetched over plain HTTP could be swapped on the way; loopback is for tests.
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK):
        return
    raise ConfigurationError("ACS_TRIAGE_CALLBACK_JWKS_URL must be an https:// URL")


def _fetch_keys(url: str) -> dict[str, Any]:
    """GET the JWKS and keep its RS256 signing keys, by kid. Raises KeysUnavailable."""
    import jwt
    import requests

    try:
        # No redirects: they could lead to plain HTTP; a 3xx is reported and the URL fixed.
        with requests.get(
            url,
            timeout=_FETCH_TIMEOUT,
            stream=True,
            allow_redirects=False,
            headers={"Accept": "application/json"},
        ) as response:
            if response.status_code != 200:
                raise KeysUnavailable(f"callback signing keys: JWKS answered {response.status_code}")
            body = response.raw.read(_MAX_JWKS_BYTES + 1, decode_content=True)
    except requests.RequestException as exc:
        raise KeysUnavailable(f"callback signing keys: JWKS fetch failed ({type(exc).__name__})") from None
    if len(body) > _MAX_JWKS_BYTES:
        raise KeysUnavailable("callback signing keys: JWKS is larger than expected")
    try:
        document = json.loads(body)
        if not isinstance(document, dict):
            raise ValueError("not an object")
        jwks = jwt.PyJWKSet.from_dict(document)
    except (jwt.PyJWKSetError, ValueError):
        raise KeysUnavailable("callback signing keys: JWKS is not a usable key set") from None
    keys: dict[str, Any] = {}
    for jwk in jwks:
        usable = jwk.key_type == "RSA" and jwk.public_key_use in (None, "sig")
        if usable and isinstance(jwk.key_id, str) and jwk.algorithm_name == ALGORITHM:
            # A JWK with private parts yields a private key; only its public half verifies.
            keys[jwk.key_id] = jwk.key.public_key() if hasattr(jwk.key, "public_key") else jwk.key
    if not keys:
        raise KeysUnavailable("callback signing keys: JWKS holds no RS256 key with a kid")
    return keys


def _bearer_token(authorization: str | None) -> str:
    if not authorization or not authorization.strip():
        raise Unauthorized("callback has no Authorization header; Call Automation sends a Bearer token")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("callback Authorization header is not 'Bearer <token>'")
    if len(token) > _MAX_TOKEN_CHARS:
        raise Unauthorized("callback token is too long to be a Call Automation token")
    return token


def _rejection(exc: Exception) -> str:
    """What is wrong with a token PyJWT refused, in words that help fix the configuration."""
    import jwt

    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"callback token has no '{exc.claim}' claim"
    reasons: tuple[tuple[type[Exception], str], ...] = (
        (jwt.ExpiredSignatureError, "has expired"),
        (jwt.ImmatureSignatureError, "is not valid yet (nbf/iat in the future)"),
        (
            jwt.InvalidAudienceError,
            "is for another audience; ACS_TRIAGE_CALLBACK_AUDIENCE must be the ACS resource's immutable id",
        ),
        (jwt.InvalidIssuerError, "was not issued by Call Automation"),
        (jwt.InvalidSignatureError, "signature does not verify"),
    )
    for kind, reason in reasons:
        if isinstance(exc, kind):
            return f"callback token {reason}"
    return f"callback token is invalid ({type(exc).__name__})"


def validate_callback_token(settings: Settings, authorization: str | None) -> dict[str, Any]:
    """Check the callback's bearer token; return its claims or raise Unauthorized (never echoing it)."""
    token = _bearer_token(authorization)
    _check_jwks_url(settings.callback_jwks_url)
    import jwt

    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:  # not base64, not JSON, or a header PyJWT refuses (kid not a string)
        raise Unauthorized("callback token is not a well-formed JWT") from None
    # Checked before any key is used: 'none' and HS256-with-the-public-key never get further.
    if header.get("alg") != ALGORITHM:
        raise Unauthorized(f"callback token must be signed with {ALGORITHM}")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > 256:
        raise Unauthorized("callback token names no signing key (kid)")
    key = _key_set(settings.callback_jwks_url).key(kid)
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key=key,
            algorithms=[ALGORITHM],
            audience=settings.callback_audience,
            issuer=settings.callback_issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "iss", "aud"]},
        )
    except jwt.InvalidTokenError as exc:
        raise Unauthorized(_rejection(exc)) from None
    return claims
