"""Signed "Silence…" link tokens (triage.silence_link): what they carry, how long they work, and
that nothing but an unchanged token made with the same key is ever read."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from triage.model import Facts
from triage.silence_link import LINK_LIFETIME, SilenceLinks

KEY = "a-link-key-for-the-token-tests-0123456789"
NOW = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
FACTS = Facts("PlayFailed", "call-automation", 400, 8535, "contoso-acs")
LINKS = SilenceLinks("https://acs-triage.example/", KEY)


def test_a_token_carries_its_alert_s_facts_and_works_for_24_hours() -> None:
    token = LINKS.token(FACTS, NOW)
    assert LINKS.read(token, NOW) == (FACTS, NOW + LINK_LIFETIME)
    assert LINKS.read(token, NOW + LINK_LIFETIME - timedelta(seconds=1)) is not None
    assert LINKS.read(token, NOW + LINK_LIFETIME) is None


def test_the_link_is_the_public_address_the_route_and_a_url_safe_token() -> None:
    url = LINKS.url(FACTS, NOW)
    assert url.startswith("https://acs-triage.example/api/silence/")
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", url.rsplit("/", 1)[1])
    assert len(url) < 300


def test_a_code_less_alert_keeps_its_none_values() -> None:
    facts = Facts("CallDisconnected", "call-automation", None, None, "acs")
    assert LINKS.read(LINKS.token(facts, NOW), NOW) == (facts, NOW + LINK_LIFETIME)


def test_another_key_an_altered_payload_or_a_token_of_another_purpose_is_not_read() -> None:
    token = LINKS.token(FACTS, NOW)
    other = SilenceLinks("https://acs-triage.example", KEY + "x")
    assert other.read(token, NOW) is None
    mac = token.split(".")[1]
    bound_elsewhere = LINKS.token(FACTS._replace(resource="contoso-acs-2"), NOW).split(".")[0]
    assert LINKS.read(f"{bound_elsewhere}.{mac}", NOW) is None  # the MAC binds the fingerprint
    form = LINKS.form_token(token, NOW)
    assert LINKS.read(form, NOW) is None  # a form token never opens a page
    assert LINKS.read_form(token, token, NOW + LINK_LIFETIME) is None  # nor a link token send a form


def test_a_form_token_is_read_only_with_the_link_it_was_made_for() -> None:
    token = LINKS.token(FACTS, NOW)
    form = LINKS.form_token(token, NOW)
    nonce = LINKS.read_form(form, token, NOW + LINK_LIFETIME)
    assert nonce is not None and len(nonce) == 32
    assert LINKS.read_form(form, LINKS.token(FACTS, NOW + timedelta(seconds=1)), NOW + LINK_LIFETIME) is None
    assert LINKS.form_token(token, NOW) != form  # a fresh nonce for every form


@given(st.text(max_size=200))
def test_no_text_but_a_token_this_key_made_is_read(text: str) -> None:
    assert LINKS.read(text, NOW) is None


@pytest.mark.parametrize("extra", ["=", "==", "!", " ", "\n", "%3D", "+"])
def test_a_token_spelled_otherwise_is_refused_though_base64_would_decode_it(extra: str) -> None:
    token = LINKS.token(FACTS, NOW)
    payload, mac = token.split(".")
    for variant in (f"{payload}{extra}.{mac}", f"{payload}.{mac}{extra}", f"{extra}{token}"):
        assert LINKS.read(variant, NOW) is None
