"""Masking of personal data shown in alerts: phone numbers and raw communication identifiers.

A phone number keeps its country calling code and last four digits: "+1 ••••••0123".
E.164 country codes are prefix-free, so the short list of one- and two-digit codes below
is enough to know where the country code ends (every other code has three digits).
"""

from __future__ import annotations

import re

__all__ = ["mask_email", "mask_emails_in", "mask_identifier", "mask_phone", "mask_text"]

_ONE_DIGIT = {"1", "7"}
_TWO_DIGIT = {
    "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46",
    "47", "48", "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63",
    "64", "65", "66", "81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98",
}  # fmt: skip
_DOT = "•"
# In free text a phone number is a run of digits, maybe after '+', maybe cut by single spaces or
# dashes, not glued to letters or digits. A run of 7 to 15 digits (E.164's longest) is taken for
# a number; shorter runs are codes (subcodes have at most six digits), longer ones ids. UUIDs are
# matched first and kept whole, so that a group of digits inside one is never taken for a number.
# '_' separates words in ids ("callback_14255550123"): a number after it is still masked.
_HEX = "[0-9A-Fa-f]"
_UUID_PATTERN = rf"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}"
_PHONE_IN_TEXT = re.compile(
    rf"(?P<uuid>{_UUID_PATTERN})"
    r"|(?<![A-Za-z0-9+])\+?\d+(?:[ -]\d+)*(?![A-Za-z0-9])(?!:\d)"
)
# What every phone number in text contains: 7+ digits with at most single spaces or dashes between.
# A text without it has no number to mask, and skips the substitution (most ids and messages).
_MAYBE_PHONE = re.compile(r"\d[\d -]{5,}\d")
# The pre-check's regex walks a text character by character (≈ 3 µs on a 200-character base64
# serverCallId); the two commonest shapes of ids are answered exactly, and faster, without it.
_UUID = re.compile(_UUID_PATTERN)
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_SEVEN_DIGITS = b"0" * 7
_NOT_ASCII_DIGITS = bytes(b for b in range(128) if not chr(b).isdigit())
# Texts masking left as they were: they hold no personal data. A burst repeats its message, SIP
# reason and operationContext, checked once here; ids are unique per event, so the set is bounded
# (cleared when full) and a hostile stream cannot grow it.
_CLEAN: dict[str, None] = {}
_MAX_CLEAN = 4096
# 2026-11-20: a calendar date (years 1900-2099), not a phone number; other digits in that shape
# (0176-12-34) are masked as numbers.
_DATE = re.compile(r"(?:19|20)\d\d-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])")
_RAW_ID_IN_TEXT = re.compile(r"\b(8:[a-z]+:)([\w\-:.]+)")


def _digits(text: str) -> str:
    """The characters of `text` that str.isdigit takes for digits, in order."""
    if text.isascii():  # in ASCII only 0-9 are digits: deleted around in C, not tested one by one
        return text.encode().translate(None, _NOT_ASCII_DIGITS).decode()
    return "".join(c for c in text if c.isdigit())


def _country_code(digits: str) -> str:
    if digits[:1] in _ONE_DIGIT:
        return digits[:1]
    if digits[:2] in _TWO_DIGIT:
        return digits[:2]
    return digits[:3]


def mask_phone(number: str) -> str:
    """'+14255550123' → '+1 ••••••0123'; a number without '+' is read as E.164 digits too."""
    digits = _digits(number)
    if len(digits) < 7:
        return _DOT * len(digits) if digits else number
    cc = _country_code(digits)
    hidden = len(digits) - len(cc) - 4
    if hidden < 3:  # a short number would show almost every digit: keep only the last four
        return f"+{_DOT * (len(digits) - 4)}{digits[-4:]}"
    return f"+{cc} {_DOT * hidden}{digits[-4:]}"


def mask_identifier(raw_id: str) -> str:
    """Mask a raw ACS identifier: '4:+1425…' (phone) or '8:acs:<resource>_<guid>' style user ids."""
    if raw_id.startswith("4:"):
        return "4:" + mask_phone(raw_id[2:])
    if raw_id.startswith("+") or raw_id.isdigit():
        return mask_phone(raw_id)
    match = re.match(r"^(\d+:[a-z]+:)(.+)$", raw_id)
    if match:
        prefix, rest = match.groups()
        return f"{prefix}…{rest[-4:]}" if len(rest) > 4 else prefix + _DOT * len(rest)
    return f"…{raw_id[-4:]}" if len(raw_id) > 4 else _DOT * len(raw_id)


# An email address in free text (an SMTP reply quoting the recipient): local part, '@', domain.
_EMAIL_IN_TEXT = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@(?=[\w-]+\.)([\w.-]*\w)")


def mask_email(address: str) -> str:
    """'john.doe@fabrikam.example' → 'j•••@fabrikam.example': the local part names the person, the
    domain is what support and grouping need."""
    local, at, domain = address.strip().rpartition("@")
    if not at:
        return f"{address[:1]}{_DOT * 3}" if address else address
    return f"{local[:1]}{_DOT * 3}@{domain}"


def mask_emails_in(text: str) -> str:
    """Every email address inside free text masked as `mask_email` does."""
    if "@" not in text:
        return text
    return _EMAIL_IN_TEXT.sub(lambda m: mask_email(m.group(0)), text)


def _mask_run(match: re.Match[str]) -> str:
    run = match.group(0)
    if match.group("uuid"):
        return run
    digits = _digits(run)
    if not 7 <= len(digits) <= 15 or _DATE.fullmatch(run):
        return run
    if run.startswith("+"):
        return mask_phone(run)
    # Without '+' the country code is unknown: only the last four digits are shown.
    return _DOT * (len(digits) - 4) + digits[-4:]


def mask_text(text: str) -> str:
    """Mask phone numbers (with or without '+', spaces, dashes) and raw user identifiers inside
    free text: event messages, operationContext, ids. The last four digits stay."""
    if text in _CLEAN:
        return text
    masked = text
    if "8:" in masked:
        masked = _RAW_ID_IN_TEXT.sub(lambda m: mask_identifier(m.group(1) + m.group(2)), masked)
    if _may_hold_phone(masked):
        masked = _PHONE_IN_TEXT.sub(_mask_run, masked)
    if masked == text:
        if len(_CLEAN) >= _MAX_CLEAN:
            _CLEAN.clear()
        _CLEAN[text] = None
    return masked


def _may_hold_phone(text: str) -> bool:
    """False only when `text` holds no run of digits that `_PHONE_IN_TEXT` would mask."""
    if text.isascii() and " " not in text and "-" not in text:
        # No separators: the pre-check reduces to seven ASCII digits in a row (no other digits
        # can occur), which the byte translation finds in C (base64 ids, opaque tokens).
        return _SEVEN_DIGITS in text.encode().translate(_DIGITS_AS_ZERO)
    if _UUID.fullmatch(text):
        return False  # the substitution keeps a UUID whole (correlation and connection ids)
    return _MAYBE_PHONE.search(text) is not None
