"""The domain objects that flow through the pipeline: Incident → Guidance → Alert.

They are frozen msgspec Structs (or NamedTuples where one is built per event): built once from
validated input, then only read. A Struct is a dataclass whose class and instances are made in C:
defining one costs about 1/50 of a frozen dataclass (27 of them were 19 ms of a cold start), and
building one about 1/7.
Pydantic lives at the edges (event parsing, settings, catalog files), not here,
so the hot path pays for no validation it has already done.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from functools import partial
from typing import Any, Literal, NamedTuple, TypeVar

from msgspec import Struct

__all__ = [
    "CONTEXTS",
    "Alert",
    "Category",
    "Context",
    "Facts",
    "Guidance",
    "Incident",
    "Match",
    "Severity",
]

Context = Literal[
    "call-automation", "calling-sdk", "pstn", "sms", "chat", "teams-phone", "email", "whatsapp", "job-router"
]
CONTEXTS: tuple[Context, ...] = (
    "call-automation",
    "calling-sdk",
    "pstn",
    "sms",
    "chat",
    "teams-phone",
    "email",
    "whatsapp",
    "job-router",
)


class Category(StrEnum):
    """ACS result category, as the troubleshooting tables name it."""

    SUCCESS = "Success"
    EXPECTED = "ExpectedError"
    UNEXPECTED_CLIENT = "UnexpectedClientError"
    UNEXPECTED_SERVER = "UnexpectedServerError"
    UNKNOWN = "Unknown"


class Severity(StrEnum):
    """How loud an alert is. NONE means: do not alert at all."""

    NONE = "none"
    WARNING = "warning"
    ERROR = "error"

    @classmethod
    def of(cls, category: Category) -> Severity:
        """Success → none; ExpectedError and unknown → warning; Unexpected*Error → error."""
        if category is Category.SUCCESS:
            return cls.NONE
        if category in (Category.UNEXPECTED_CLIENT, Category.UNEXPECTED_SERVER):
            return cls.ERROR
        return cls.WARNING


class Match(StrEnum):
    """Which precedence level of the catalog lookup answered."""

    EXACT_IN_CONTEXT = "exact-in-context"
    STATUS = "status"  # a status word (email) named by a row of the context's table
    EXACT = "exact"
    SUBCODE = "subcode"
    CODE = "code"
    CODE_CLASS = "code-class"
    UNKNOWN = "unknown"


class Guidance(Struct, frozen=True):
    """What the catalog knows about a (code, subcode) in a context."""

    code: int | None
    subcode: int | None
    message: str
    category: Category
    severity: Severity
    advice: str
    source: str  # page title + table title: "Troubleshooting in Azure … · Chat SDK error codes"
    match: Match
    table: str = ""  # catalog table id, e.g. "call-end"
    docs_url: str = ""
    flags: tuple[str, ...] = ()  # e.g. ("source typo: category spelled 'UnxpectedClientError'",)
    related: tuple[Guidance, ...] = ()  # same pair documented in other tables, best first
    seeds: tuple[str, ...] = ()  # the seed documents the answer comes from (provenance, not shown)
    # The related meanings an alert shows under "Also documented as": those in the context's
    # product area whose message differs from this one's, best first.
    also: tuple[Guidance, ...] = ()

    def as_dict(self) -> dict[str, object]:
        """JSON-ready view (used by `explain --json` and by tests)."""
        return {
            "code": self.code,
            "subcode": self.subcode,
            "message": self.message,
            "category": self.category.value,
            "severity": self.severity.value,
            "advice": self.advice,
            "source": self.source,
            "match": self.match.value,
            "table": self.table,
            "docs_url": self.docs_url,
            "flags": list(self.flags),
            "related": [{"table": g.table, "message": g.message, "source": g.source} for g in self.related],
            "also": [{"table": g.table, "message": g.message, "source": g.source} for g in self.also],
        }


def fingerprint(kind: str, code: int | None, subcode: int | None, resource: str, *extra: str) -> str:
    """Failures with the same fingerprint are one problem: grouped, counted, digested. A status
    and scope (`extra`: an email's `Bounced` to one recipient domain) are added only when given,
    so the fingerprints of coded failures stay what they were (stored groups and counts)."""
    base = f"{kind}|{code}|{subcode}|{resource}"
    return "|".join((base, *extra)) if extra and any(extra) else base


def code_text(code: int | None, subcode: int | None, status: str = "", scope: str = "") -> str:
    """'410/3112', '4007', 'no code', or for a status word 'Bounced (@fabrikam.example)'."""
    if status:
        return f"{status} (@{scope})" if scope else status
    if code is None and subcode is None:
        return "no code"
    if subcode is None:
        return str(code)
    if code is None:
        return f"?/{subcode}"
    return f"{code}/{subcode}"


_Tuple = TypeVar("_Tuple", bound=tuple[Any, ...])


def packed(cls: type[_Tuple]) -> Callable[[tuple[Any, ...]], _Tuple]:
    """`cls`'s constructor taking all its values as one tuple, in field order, for the few
    NamedTuples built once per event: about twice as fast as calling the class, whose own
    __new__ is a Python function that packs its arguments and hands them to tuple.__new__
    (called here directly). It checks no arity: spell the values out where it is called."""
    return partial(tuple.__new__, cls)


class Facts(NamedTuple):
    """What matching, counting and grouping read of a failure, known before the Incident is
    built (an Incident has the same fields, so either serves where only these are read).
    One is built per event: see `new_facts`."""

    kind: str
    context: Context
    code: int | None
    subcode: int | None
    resource: str
    # The catalog row the source's conditions chose for this event ("teams-phone:408/10057"), or
    # "" when no row's conditions held: see `catalog.documented_row`.
    row: str = ""
    # Events that report a status word instead of a code (an email's `Bounced`) carry it here,
    # with what their bursts are told apart by (the recipient's domain); "" for coded failures.
    status: str = ""
    scope: str = ""

    @property
    def fingerprint(self) -> str:
        """See `fingerprint`."""
        if self.status or self.scope:
            return fingerprint(self.kind, self.code, self.subcode, self.resource, self.status, self.scope)
        return fingerprint(self.kind, self.code, self.subcode, self.resource)  # most: no extras to join


# Facts((kind, context, code, subcode, resource, row, status, scope)): all eight, always
new_facts = packed(Facts)


class Incident(NamedTuple):
    """One failure reported by ACS, normalised from whichever event carried it.

    `ids` holds the identifiers support asks for (correlationId, callConnectionId,
    serverCallId, operationContext, messageId, …) in display order; `details` holds
    other facts worth showing (participant, failedPlaySourceIndex, SIP details).
    Personal data in `details` is already masked when the Incident is built.
    A NamedTuple: immutable, and one is built per event, 3× faster than a frozen dataclass.
    """

    kind: str  # short event name: "PlayFailed", "SMSDeliveryReportReceived"
    event_type: str  # full type: "Microsoft.Communication.PlayFailed"
    event_id: str
    source: str  # CloudEvents source / Event Grid topic
    resource: str  # ACS resource name, or the configured default for callbacks
    time: datetime | None
    context: Context
    code: int | None
    subcode: int | None
    message: str  # the event's own text (resultInformation.message, deliveryStatusDetails)
    ids: dict[str, str]
    details: dict[str, str]
    row: str = ""  # as Facts.row: the catalog row the source's conditions chose, if any
    status: str = ""  # see Facts.status
    scope: str = ""

    @property
    def fingerprint(self) -> str:
        """See `fingerprint`."""
        if self.status or self.scope:
            return fingerprint(self.kind, self.code, self.subcode, self.resource, self.status, self.scope)
        return fingerprint(self.kind, self.code, self.subcode, self.resource)  # most: no extras to join


class Alert(Struct, frozen=True):
    """What a person is told: one incident (count 1) or a digest of a burst (count > 1)."""

    incident: Incident  # the first occurrence (a digest shows it as the example)
    guidance: Guidance
    count: int = 1
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    samples: tuple[dict[str, str], ...] = ()  # ids of a few more occurrences (digests)
    digest: bool = False
    window_seconds: int = 0
    # firing: a failure to act on. resolved: its burst went quiet for a whole window (count is then
    # the burst's total). silenced: what a silence held back, told once when the silence ends.
    status: Literal["firing", "resolved", "silenced"] = "firing"
    note: str = ""  # for a silenced notice: which silence (id, matchers, by whom, why)
    # The burst's key when a route groups it otherwise than by fingerprint (`route:<name>|…`):
    # what ties its first alert, digests and resolve together at an incident tracker.
    group: str = ""
    # A firing alert's "Silence…" link (triage.silence_link), when the app has a public address.
    silence_url: str = ""
    # A reminder: a digest of a burst still firing after its route's repeat_interval (seconds,
    # here; 0: not a reminder), shown in full with the burst's events so far and when the first
    # arrived. Its `count` is still only what the digest reports (every event in one alert).
    reminder_seconds: int = 0
    burst_count: int = 0
    burst_started: datetime | None = None

    @property
    def reminder(self) -> bool:
        """A digest sent as a reminder that its burst is still firing (repeat_interval)."""
        return self.digest and self.reminder_seconds > 0

    @property
    def severity(self) -> Severity:
        return self.guidance.severity

    @property
    def fingerprint(self) -> str:
        return self.incident.fingerprint

    @property
    def code_text(self) -> str:
        """'410/3112', '4007', 'no code' or 'Bounced (@fabrikam.example)' (see `code_text`)."""
        inc = self.incident
        return code_text(inc.code, inc.subcode, inc.status, inc.scope)

    @property
    def title(self) -> str:
        """One line: what failed and with which code, e.g. 'PlayFailed 400/8535 on contoso-acs'."""
        prefix = f"{self.count:,}× " if self.digest else ""
        if self.reminder:
            prefix = "Reminder: " + prefix
        return f"{prefix}{self.incident.kind} {self.code_text} on {self.incident.resource}"
