"""Phone numbers inside free text (operationContext, ids, SMS message ids, messages) are masked
wherever they stand, keeping the last four digits; UUIDs and codes are never touched."""

from __future__ import annotations

import base64
import json
import re
import uuid
from pathlib import Path

from hypothesis import assume, given
from hypothesis import strategies as st

from triage.events import to_incident
from triage.ingest import parse_body
from triage.mask import (
    _CLEAN,
    _MAX_CLEAN,
    _PHONE_IN_TEXT,
    _digits,
    _mask_run,
    _may_hold_phone,
    mask_text,
)
from triage.model import Incident

PAYLOADS = Path(__file__).resolve().parent / "payloads"
# Text around a number: no digits or letters touching it, so the number stands on its own.
WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz:;/_ ()=", max_size=20)
SEPARATOR = st.sampled_from([" ", ":", "=", "_", "/", "(", "; "])


@st.composite
def phone_numbers(draw: st.DrawFn) -> tuple[str, str]:
    """(how it is written, its digits): 7-15 digits, maybe '+', maybe cut by spaces or dashes."""
    digits = draw(st.text(alphabet="0123456789", min_size=7, max_size=15))
    written, rest = "", digits
    while rest:
        size = draw(st.integers(1, 4))
        written += rest[:size] + (draw(st.sampled_from(["", " ", "-"])) if len(rest) > size else "")
        rest = rest[size:]
    return (draw(st.sampled_from(["", "+"])) + written, digits)


def digits_of(text: str) -> str:
    return re.sub(r"\D", "", text)


CALENDAR_DATE = re.compile(r"(19|20)\d\d-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])")


@given(phone_numbers(), WORDS, SEPARATOR, SEPARATOR, WORDS)
def test_a_phone_number_in_free_text_keeps_only_its_last_four_digits(
    number: tuple[str, str], before: str, left: str, right: str, after: str
) -> None:
    written, digits = number
    assume(not CALENDAR_DATE.fullmatch(written))  # a calendar date is kept: see the test below
    masked = mask_text(before + left + written + right + after)
    shown = digits_of(masked)
    assert digits not in shown
    assert shown.endswith(digits[-4:]) and len(shown) <= 4 + 3  # the last four, and a country code at most
    assert masked.startswith(before + left) and masked.endswith(right + after)


def test_calendar_dates_are_kept_and_other_digits_of_that_shape_are_masked() -> None:
    assert mask_text("since 2026-11-20 at 09:30") == "since 2026-11-20 at 09:30"
    assert mask_text("dated 1999-12-31") == "dated 1999-12-31"
    # A phone number written in a date's shape is not a date: no year 0000, month 00, day 34.
    for written in ("0000-00-00", "0176-12-34", "2026-13-01"):
        masked = mask_text(f"call {written} now")
        assert digits_of(masked) == digits_of(written)[-4:], masked


@given(st.uuids(), WORDS, SEPARATOR)
def test_uuids_are_never_masked(value: uuid.UUID, before: str, left: str) -> None:
    for form in (str(value), str(value).upper()):
        text = before + left + form + " " + form
        assert mask_text(text) == text


@given(st.integers(0, 999_999), st.integers(0, 999_999), WORDS)
def test_codes_and_subcodes_are_never_masked(code: int, subcode: int, words: str) -> None:
    for text in (f"{words} {code}/{subcode}", f"DiagCode: {code}#{subcode}.", f"ErrorCode: {code}. {words}"):
        assert mask_text(text) == text


@given(phone_numbers())
def test_masking_twice_changes_nothing_more(number: tuple[str, str]) -> None:
    once = mask_text(f"call {number[0]} failed")
    assert mask_text(once) == once


# Ids and texts as they come: base64 (letters, digits, '+/='), UUIDs, words, digit runs cut by
# spaces or dashes, and digits of other scripts (a regex's \\d reads them as digits too).
ANY_TEXT = st.one_of(
    st.text(alphabet="0123456789 -+/=_:aAzZfF\u0663\u0969\u2026", max_size=40),
    st.builds(str, st.uuids()),
    st.builds(lambda u, tail: str(u) + tail, st.uuids(), st.text(alphabet="0123456789 -x", max_size=9)),
    st.binary(max_size=120).map(lambda b: base64.b64encode(b).decode()),
)


@given(ANY_TEXT)
def test_the_quick_precheck_lets_through_every_text_with_a_number_to_mask(text: str) -> None:
    if not _may_hold_phone(text):
        assert _PHONE_IN_TEXT.sub(_mask_run, text) == text


def test_a_number_in_an_id_without_separators_or_after_a_uuid_is_still_masked() -> None:
    assert mask_text("aGVs/14255550123==") == "aGVs/•••••••0123=="
    assert mask_text("opaque_token_4255550123") == "opaque_token_••••••0123"
    uuid_then_number = "0f1c2d3e-4455-6677-8899-aabbccddeeff 4255550123"
    assert mask_text(uuid_then_number) == "0f1c2d3e-4455-6677-8899-aabbccddeeff ••••••0123"


@given(st.one_of(ANY_TEXT, st.text(max_size=30)))
def test_the_digits_masking_counts_are_those_str_isdigit_takes_in_ascii_and_other_scripts(text: str) -> None:
    assert _digits(text) == "".join(c for c in text if c.isdigit())


def test_only_texts_without_personal_data_are_remembered_and_the_memory_is_bounded() -> None:
    texts = [f"call +1425555{n:04d} failed" for n in range(20)] + ["8:acs:resource_0000001a-aaaa"]
    for text in texts:
        assert mask_text(text) != text and mask_text(text) == mask_text(text)
        assert text not in _CLEAN  # a text with a number or a raw id in it is never kept
    assert mask_text("Call forbidden. DiagCode: 403#560403.@") in _CLEAN
    for n in range(3 * _MAX_CLEAN):
        mask_text(f"opaque-{n:x}")
    assert len(_CLEAN) <= _MAX_CLEAN


def incident(name: str) -> Incident:
    (raw,) = parse_body((PAYLOADS / name).read_bytes(), None, 1 << 20).events
    found = to_incident(raw, resource="contoso-acs", mask=True)
    assert isinstance(found, Incident)
    return found


def test_numbers_in_operation_context_and_call_ids_are_masked_and_uuids_kept() -> None:
    found = incident("play-failed-numbers-in-ids.json")
    text = json.dumps([found.message, found.ids, found.details], ensure_ascii=False)
    for secret in ("4255550123", "425-555-0177", "7700 900456"):
        assert secret not in text
    assert found.ids["callConnectionId"] == "callback_•••••••0123"
    assert found.ids["operationContext"] == "prompt for ••••••0177 (alt: ••••••••0456)"
    assert found.ids["correlationId"] == "0f1c2d3e-4455-6677-8899-aabbccddeeff"
    assert (found.code, found.subcode) == (400, 8535) and "DiagCode: 400#8535" in found.message


def test_numbers_in_sms_message_ids_tags_and_status_text_are_masked() -> None:
    found = incident("sms-failed-number-in-message-id.json")
    text = json.dumps([found.message, found.ids, found.details], ensure_ascii=False)
    assert "4255550123" not in digits_of(text.replace("•", "x"))
    assert "425-555-0123" not in text and "425 555 0123" not in text
    assert found.ids["messageId"].startswith("Outgoing_to-•••••••0123_")
    assert found.details["Tag"] == "reminder for +1 ••••••0123"
    assert found.code == 4006


def test_every_incident_a_burst_shows_or_stores_is_masked_though_events_are_read_unmasked() -> None:
    """The pipeline masks only what it shows (the alert, the digest's example and samples), so
    each of those must be masked, whatever the store holds them as."""
    from datetime import UTC, datetime, timedelta

    from triage.pipeline import Triage
    from triage.settings import Settings
    from triage.store.memory import MemoryStore

    doc = json.loads((PAYLOADS / "play-failed-numbers-in-ids.json").read_text(encoding="utf-8"))
    first = doc[0] if isinstance(doc, list) else doc
    burst = [{**first, "id": f"evt-{n}"} for n in range(12)]
    events = parse_body(json.dumps(burst).encode(), None, 1 << 20).events
    triage = Triage(Settings.from_env({}), MemoryStore())
    now = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    alerted = triage.handle(events, now).alerts
    digests = triage.flush(now + timedelta(days=1)).alerts
    assert len(alerted) == 1 and digests[0].count == 11
    shown = [(a.incident.message, a.incident.ids, a.incident.details, a.samples) for a in alerted + digests]
    text = json.dumps(shown, ensure_ascii=False)
    for secret in ("4255550123", "425-555-0177", "7700 900456"):
        assert secret not in text
    assert len(digests[0].samples) >= 5 and all("•" in s["operationContext"] for s in digests[0].samples)
