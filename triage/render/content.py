"""What every format says about an alert, before any format-specific markup.

Teams, Slack and the terminal show the same facts in the same order with the same wording; this
module decides the wording once. Values here are raw (unescaped): each renderer escapes them for
its own target.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import UTC, datetime

import orjson
from msgspec import Struct

from ..model import Alert, Guidance, Match, Severity
from .escape import ELLIPSIS, MEMO_ENTRIES, memo

__all__ = [
    "ALSO_TITLE",
    "IDENTITY_TITLES",
    "REMINDER_PREFIX",
    "SEVERITY_LABEL",
    "SILENCE_TITLE",
    "AdviceLine",
    "advice_lines",
    "also_documented",
    "catalog_note",
    "clock_of",
    "digest_line",
    "docs_url",
    "event_message",
    "fit",
    "format_count",
    "format_time",
    "format_window",
    "headline",
    "identity",
    "notice",
    "payload_bytes",
    "sample_ids",
    "summary_facts",
    "time_facts",
]

REMINDER_PREFIX = "Reminder: "  # a reminder's headline (repeat_interval)

SEVERITY_LABEL: dict[Severity, str] = {
    Severity.ERROR: "Error",
    Severity.WARNING: "Warning",
    Severity.NONE: "Info",
}

_MATCH_LABEL: dict[Match, str] = {
    Match.EXACT_IN_CONTEXT: "exact code and subcode for this context",
    Match.STATUS: "the event's status",
    Match.EXACT: "exact code and subcode",
    Match.SUBCODE: "subcode only",
    Match.CODE: "code only",
    Match.CODE_CLASS: "code class only",
    Match.UNKNOWN: "no catalog entry",
}

_BULLET = re.compile(r"^[-*•·]\s+")  # numbered steps keep their numbers as text


def payload_bytes(payload: object) -> bytes:
    """The exact bytes that are POSTed: compact JSON, UTF-8, non-ASCII kept as is (smaller)."""
    return orjson.dumps(payload)


def format_count(count: int) -> str:
    """9999 → '9,999': counts are read at a glance."""
    return f"{count:,}"


@functools.lru_cache(maxsize=MEMO_ENTRIES)  # each alert's times are shown in every format it is rendered for
def format_time(moment: datetime | None) -> str:
    """'2026-09-20 10:02:11 UTC'; a naive time is taken as UTC (the pipeline only makes UTC)."""
    if moment is None:
        return "unknown"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_window(seconds: int) -> str:
    """300 → '5 min', 5400 → '1 h 30 min', 45 → '45 s'."""
    if seconds <= 0:
        return "0 s"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours} h" if hours else "", f"{minutes} min" if minutes else "", f"{secs} s" if secs else ""]
    return " ".join(p for p in parts if p)


def headline(alert: Alert) -> str:
    """'PlayFailed 400/8535 on contoso-acs', '9,999× CallDisconnected 408/10057 on contoso-acs', or
    for a reminder 'Reminder: 9,999× CallDisconnected 408/10057 on contoso-acs' (a digest still)."""
    inc = alert.incident
    prefix = f"{format_count(alert.count)}× " if alert.digest else ""
    if alert.reminder:
        prefix = REMINDER_PREFIX + prefix
    return f"{prefix}{inc.kind} {alert.code_text} on {inc.resource}"


def notice(alert: Alert) -> tuple[str, str]:
    """A resolved or silenced notice in two short lines (headline, details), raw: for example
    ('Resolved: PlayFailed 400/8535 on contoso-acs', '312 events, first … last …')."""
    inc = alert.incident
    what = f"{inc.kind} {alert.code_text} on {inc.resource}"
    events = f"{format_count(alert.count)} {'event' if alert.count == 1 else 'events'}"
    # A store counts occurrences as they arrive: a notice's times are arrival times, and say so.
    first, last = format_time(alert.first_seen), format_time(alert.last_seen)
    if alert.status == "silenced":
        details = f"arrived between {first} and {last}"
        return f"Silenced: {events}, first {what}", f"{details} · {alert.note}" if alert.note else details
    quiet = f"; quiet for {format_window(alert.window_seconds)} since" if alert.window_seconds else ""
    when = f", arrived at {first}" if first == last else f", first arrived {first}, last arrived {last}"
    return f"Resolved: {what}", f"{events}{when}{quiet}"


def digest_line(alert: Alert) -> str:
    """'9,999 occurrences in 5 min' for a digest; for a reminder 'Still failing: 12,400 events
    since 2026-09-20 06:02:11 UTC, 9,999 in the last 5 min; reminder every 4 h'; '' otherwise."""
    if not alert.digest:
        return ""
    window = alert.window_seconds
    if not window and alert.first_seen and alert.last_seen:
        window = int((alert.last_seen - alert.first_seen).total_seconds())
    if alert.reminder:
        total = alert.burst_count
        events = f"{format_count(total)} {'event' if total == 1 else 'events'}"
        return (
            f"Still failing: {events} since {format_time(alert.burst_started)}, "
            f"{format_count(alert.count)} in the last {format_window(window)}; "
            f"reminder every {format_window(alert.reminder_seconds)}"
        )
    noun = "occurrence" if alert.count == 1 else "occurrences"
    return f"{format_count(alert.count)} {noun} in {format_window(window)}"


def event_message(alert: Alert) -> str:
    """The event's own text, or '' when it only repeats the catalog message (no need to read it twice)."""
    return _unless_repeated(alert.incident.message, alert.guidance.message)


@memo
def _unless_repeated(said: str, catalog_message: str) -> str:
    # Remembered: the same failure says the same words on every event, and comparing them is a
    # regex pass over both texts.
    said = said.strip()
    return "" if _words(said) == _words(catalog_message) else said


def _words(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


# The facts that say which failure this is; `identity` gives their values, in this order.
IDENTITY_TITLES: tuple[str, ...] = ("Event", "Code", "Category", "Severity", "Resource", "Context")


def identity(alert: Alert) -> tuple[str, ...]:
    """The values of IDENTITY_TITLES: the same for every alert of a fingerprint and catalog answer,
    so a renderer can escape them once for all those alerts."""
    inc, guide = alert.incident, alert.guidance
    return (
        inc.kind,
        alert.code_text,
        guide.category.value,
        SEVERITY_LABEL[guide.severity],
        inc.resource,
        inc.context,
    )


def time_facts(alert: Alert) -> list[tuple[str, str]]:
    """When, naming its clock: a first alert shows the time the event itself gives (when ACS saw
    the failure); a digest the times its occurrences arrived here (what the burst counted by).
    The two can differ by Event Grid's delivery delay and retries, so neither is left unnamed."""
    if alert.digest:
        return [
            ("First arrived", format_time(alert.first_seen or alert.incident.time)),
            ("Last arrived", format_time(alert.last_seen)),
        ]
    return [("Event time", format_time(alert.incident.time))]


def clock_of(alert: Alert) -> str:
    """Which clock an alert's times are on: 'event time' (a first alert) or 'arrival time'
    (digests, resolved and silenced notices: what a store counted as it arrived)."""
    return "event time" if alert.status == "firing" and not alert.digest else "arrival time"


def summary_facts(alert: Alert) -> list[tuple[str, str]]:
    """The facts that identify the failure, in display order (IDs and details come after)."""
    return [*zip(IDENTITY_TITLES, identity(alert), strict=True), *time_facts(alert)]


def sample_ids(alert: Alert, limit: int) -> list[list[tuple[str, str]]]:
    """The first `limit` samples of a digest, each cut to its first two IDs (correlationId first).

    Samples point at more occurrences to look up; the full ID set is in the example above them.
    """
    return [list(sample.items())[:2] for sample in alert.samples[:limit]]


class AdviceLine(Struct, frozen=True):
    """One line of catalog advice: a bullet or a paragraph."""

    text: str
    bullet: bool


def advice_lines(advice: str) -> list[AdviceLine]:
    """Split catalog advice into paragraphs and bullets, whatever bullet style the catalog used."""
    lines: list[AdviceLine] = []
    for raw in advice.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if not line:
            continue
        stripped = _BULLET.sub("", line)
        lines.append(AdviceLine(stripped, bullet=stripped != line))
    return lines


ALSO_TITLE = "Also documented as"
SILENCE_TITLE = "Silence…"  # the link to the page that silences alerts like this one


def also_documented(guidance: Guidance, limit: int = 5) -> list[str]:
    """The other documented meanings of the code in its context, briefly: 'message (table, code)'."""
    lines = []
    for other in guidance.also[:limit]:
        table = other.source.rsplit(" · ", 1)[-1]
        code = f"{other.code}/{other.subcode}" if other.subcode is not None else str(other.code)
        lines.append(f"{other.message} ({table}, {code})")
    return lines


def catalog_note(guidance: Guidance) -> str:
    """'<page title> · Calling End call codes · matched: exact code and subcode' (source + lookup level)."""
    source = guidance.source or "no source"
    return f"{source} · matched: {_MATCH_LABEL[guidance.match]}"


def docs_url(guidance: Guidance) -> str:
    """The docs link if it is a plain https URL; anything else (javascript:, data:, http:) is dropped."""
    url = guidance.docs_url.strip()
    if url.startswith("https://") and len(url.split()) == 1 and len(url) <= 2000:
        return url
    return ""


@memo
def fit(text: str, limit: int, escape: Callable[[str], str]) -> tuple[str, bool]:
    """Escape `text` and shorten it (before escaping, so no entity is cut) until it is ≤ `limit`.

    Returns the escaped text and whether it was shortened; shortened text ends with '…'.
    """
    escaped = escape(text)
    if len(escaped) <= limit:
        return escaped, False
    # Binary search for the longest raw prefix whose escaped form, plus "…", still fits.
    best, low, high = "", 0, min(len(text), limit)
    while low <= high:
        keep = (low + high) // 2
        candidate = escape(text[:keep].rstrip()) + ELLIPSIS
        if len(candidate) <= limit:
            best, low = candidate, keep + 1
        else:
            high = keep - 1
    return best, True
