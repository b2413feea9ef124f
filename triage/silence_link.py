"""Signed "Silence…" links: each Teams and Slack alert carries `<public url>/api/silence/<token>`
when ACS_TRIAGE_PUBLIC_URL and ACS_TRIAGE_SILENCE_LINK_KEY are set (triage.silence_page serves it).

A token is `<payload>.<mac>`, both base64url without padding: the payload is the alert's facts
(kind, context, code, subcode, resource: what its fingerprint is made of, plus the context the
silences in force are matched on) and the second the link stops working (24 h after the alert);
the MAC is HMAC-SHA256 over the payload with a key derived from the link key for this one use.
`read` answers None for anything it did not sign, or signed for a time now past, after a
constant-time comparison: the route then reveals nothing (404).

The form on the page carries its own token (`form_token`): bound to the link's token, single use
(its nonce is claimed in the store when the form is taken) and signed with another derived key,
so a link token cannot stand in for it or the reverse.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime, timedelta

import orjson

from .model import Facts, Incident

__all__ = ["LINK_LIFETIME", "LINK_PATH", "SilenceLinks"]

LINK_LIFETIME = timedelta(hours=24)
LINK_PATH = "/api/silence/"  # the route function_app.py and the local server serve it on
_MAX_TOKEN_CHARS = 2048  # a longer path segment is not one of ours: refused before any decoding
_CONTEXTS = ("link", "form")
# Exactly what `token` writes: base64 decoding would skip other characters, giving one token
# many spellings.
_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SilenceLinks:
    """Makes and reads the tokens of one link key. Thread-safe (no state but the keys)."""

    def __init__(self, public_url: str, key: str) -> None:
        self.public_url = public_url.rstrip("/")
        # One key per purpose, derived from the setting: a token of one kind never verifies as the other.
        self._keys = {
            purpose: hmac.new(key.encode(), f"acs-triage silence {purpose}".encode(), hashlib.sha256).digest()
            for purpose in _CONTEXTS
        }

    def _mac(self, purpose: str, data: bytes) -> bytes:
        return hmac.new(self._keys[purpose], data, hashlib.sha256).digest()

    def token(self, facts: Facts | Incident, now: datetime) -> str:
        """The token for the alert with these facts, valid until `now` + 24 h."""
        expires = int((now + LINK_LIFETIME).timestamp())
        payload = orjson.dumps(
            [facts.kind, facts.context, facts.code, facts.subcode, facts.resource, expires]
        )
        return f"{_b64(payload)}.{_b64(self._mac('link', payload))}"

    def url(self, facts: Facts | Incident, now: datetime) -> str:
        """The link an alert carries."""
        return f"{self.public_url}{LINK_PATH}{self.token(facts, now)}"

    def read(self, token: str, now: datetime) -> tuple[Facts, datetime] | None:
        """The facts a token was made for and when it expires; None for a token this key did not
        make, a damaged one, or one whose time has passed."""
        payload = self._verified("link", token)
        if payload is None:
            return None
        try:
            kind, context, code, subcode, resource, expires = orjson.loads(payload)
            ends = datetime.fromtimestamp(expires, UTC)
        except (ValueError, TypeError, OverflowError, OSError):
            return None  # signed by us, so never expected: still, nothing but a 404 comes of it
        if now >= ends:
            return None
        return Facts(kind, context, code, subcode, resource), ends

    def form_token(self, link_token: str, now: datetime) -> str:
        """A single-use token for one form of the page opened with `link_token`: a fresh nonce
        and its time, signed together with the link token."""
        payload = orjson.dumps([secrets.token_hex(16), int(now.timestamp())])
        return f"{_b64(payload)}.{_b64(self._mac('form', payload + b'|' + link_token.encode()))}"

    def read_form(self, form_token: str, link_token: str, ends: datetime) -> str | None:
        """The nonce of a form token made for `link_token` (claim it once to use it), or None.
        A form token works as long as its link does (`ends`)."""
        payload = self._verified("form", form_token, b"|" + link_token.encode())
        if payload is None:
            return None
        try:
            nonce, issued = orjson.loads(payload)
        except (ValueError, TypeError):
            return None
        if not isinstance(nonce, str) or not isinstance(issued, int) or issued > ends.timestamp():
            return None
        return nonce

    def _verified(self, purpose: str, token: str, bound: bytes = b"") -> bytes | None:
        """The payload of a token signed for `purpose` (and `bound`), compared in constant time."""
        if len(token) > _MAX_TOKEN_CHARS or not _SHAPE.fullmatch(token):
            return None
        payload_text, mac_text = token.split(".")
        try:
            payload, given = _unb64(payload_text), _unb64(mac_text)
        except (binascii.Error, ValueError):
            return None
        if not hmac.compare_digest(given, self._mac(purpose, payload + bound)):
            return None
        return payload
