"""Builders for realistic domain objects, for any test that needs an Incident, Guidance or Alert.

Every argument has a realistic default (a Call Automation PlayFailed 400/8535 on "contoso-acs"),
so a test names only what it is about:

    make_alert(make_incident(message="<!channel>"))
    make_alert(make_incident("CallDisconnected", code=410, subcode=3112), count=42, digest=True)
    make_alert(make_incident("SMSDeliveryReportReceived", context="sms", code=4007, subcode=None))
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from msgspec.structs import replace

from triage.model import Alert, Category, Context, Guidance, Incident, Match, Severity

__all__ = [
    "T0",
    "ids_for",
    "make_alert",
    "make_digest",
    "make_guidance",
    "make_huge_alert",
    "make_incident",
    "make_reminder",
]

T0 = datetime(2026, 9, 15, 11, 36, 13, tzinfo=UTC)
_RESOURCE_ID = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-comms"
    "/providers/Microsoft.Communication/CommunicationServices/contoso-acs"
)


def _guid(seed: str) -> str:
    # Deterministic, so a failing assertion shows the same IDs on every run.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, seed))


def ids_for(context: Context, seed: str = "1") -> dict[str, str]:
    """The IDs an event of `context` carries, in the order support asks for them."""
    if context == "sms":
        return {"messageId": f"Outgoing_20260915113613{_guid('msg' + seed)[:8]}"}
    if context in ("email", "whatsapp"):  # both name a message by a GUID
        return {"messageId": _guid("msg" + seed)}
    return {
        "correlationId": _guid("corr" + seed),
        "callConnectionId": _guid("conn" + seed),
        "serverCallId": "aHR0cHM6Ly9hcGkuZmxpZ2h0cHJveHkuc2t5cGUuY29tL2FwaS92Mi9jcC9jb252LW1hc28tMDM" + seed,
        "operationContext": f"welcome-prompt-{seed}",
    }


def make_incident(
    kind: str = "PlayFailed",
    *,
    code: int | None = 400,
    subcode: int | None = 8535,
    context: Context = "call-automation",
    message: str = "Action failed, file format is invalid.",
    resource: str = "contoso-acs",
    time: datetime | None = T0,
    ids: dict[str, str] | None = None,
    details: dict[str, str] | None = None,
    **fields: Any,
) -> Incident:
    """An Incident as the event parser would build it; `fields` sets event_type, event_id, source."""
    event_id = fields.pop("event_id", _guid(f"event-{kind}-{code}-{subcode}"))
    source = fields.pop(
        "source",
        _RESOURCE_ID if context == "sms" else f"calling/callConnections/{_guid('conn1')}",
    )
    return Incident(
        kind=kind,
        event_type=fields.pop("event_type", f"Microsoft.Communication.{kind}"),
        event_id=event_id,
        source=source,
        resource=resource,
        time=time,
        context=context,
        code=code,
        subcode=subcode,
        message=message,
        ids=ids_for(context) if ids is None else ids,
        details={"failedPlaySourceIndex": "0"} if details is None and kind == "PlayFailed" else details or {},
        **fields,
    )


def make_guidance(
    code: int | None = 400,
    subcode: int | None = 8535,
    *,
    message: str = "Action failed, file format is invalid.",
    category: Category = Category.UNEXPECTED_CLIENT,
    severity: Severity | None = None,
    advice: str = (
        "Play only supports WAV files:\n"
        "- mono (single channel)\n- 16-bit samples\n- 16,000 Hz sampling rate\n"
        "Check the file at the URL in the play source."
    ),
    source: str = "Troubleshooting call end response codes · Most common Call Automation error codes",
    match: Match = Match.EXACT_IN_CONTEXT,
    docs_url: str = (
        "https://learn.microsoft.com/en-us/azure/communication-services/resources/"
        "troubleshooting/voice-video-calling/troubleshooting-codes"
    ),
    **fields: Any,
) -> Guidance:
    """Guidance as the catalog would answer; severity follows the category unless given."""
    return Guidance(
        code=code,
        subcode=subcode,
        message=message,
        category=category,
        severity=Severity.of(category) if severity is None else severity,
        advice=advice,
        source=source,
        match=match,
        docs_url=docs_url,
        table=fields.pop("table", "call-automation"),
        **fields,
    )


def make_alert(incident: Incident | None = None, guidance: Guidance | None = None, **fields: Any) -> Alert:
    """An Alert for `incident` (default: make_incident()); guidance defaults to the incident's codes."""
    incident = incident or make_incident()
    guidance = guidance or make_guidance(incident.code, incident.subcode)
    return Alert(incident=incident, guidance=guidance, **fields)


def make_digest(
    incident: Incident | None = None,
    guidance: Guidance | None = None,
    *,
    count: int = 42,
    window_seconds: int = 300,
    samples: int = 3,
) -> Alert:
    """A digest of `count` occurrences over `window_seconds`, with `samples` sample ID sets."""
    alert = make_alert(incident, guidance)
    first = alert.incident.time or T0
    return replace(
        alert,
        count=count,
        digest=True,
        window_seconds=window_seconds,
        first_seen=first,
        last_seen=first + timedelta(seconds=max(window_seconds - 1, 0)),
        samples=tuple(ids_for(alert.incident.context, str(i + 2)) for i in range(samples)),
    )


def make_reminder(
    alert: Alert | None = None, *, burst_count: int = 123_456, every_seconds: int = 4 * 3600
) -> Alert:
    """A digest (default: `make_digest()`) sent as a reminder: its burst has fired for hours."""
    digest = alert or make_digest()
    started = (digest.first_seen or T0) - timedelta(hours=4)
    return replace(digest, reminder_seconds=every_seconds, burst_count=burst_count, burst_started=started)


def make_huge_alert(
    *, ids: dict[str, str] | None = None, resource: str = "contoso-acs", flags: tuple[str, ...] = ()
) -> Alert:
    """The worst case a renderer must survive: ~100 KB of advice in 300 bullets, 200 details,
    500 samples, a 50 KB event message, a 20 KB catalog message and 40 other documented
    meanings of 5 KB each, in a digest."""
    incident = make_incident(
        message="x" * 50_000,
        resource=resource,
        ids=ids,
        details={f"detail{i}": "v" * 300 for i in range(200)},
    )
    guidance = make_guidance(
        message="m" * 20_000,
        advice="\n".join(f"- step {i}: " + "advice " * 50 for i in range(300)),
        flags=flags,
        also=tuple(make_guidance(message=f"meaning {i} " + "o" * 5_000) for i in range(40)),
    )
    return make_digest(incident, guidance, count=123_456, samples=500)


def make_daily_report(*, failures: int = 5, hostile: bool = False) -> Any:
    """A DailyReport as `triage.report.build` makes one: `failures` kinds of failure over 24 h,
    the largest first, each with a count the day before (the third is new today)."""
    from triage.report import DailyReport, Failure

    kinds = [
        ("PlayFailed", "400/8535"),
        ("SMSDeliveryReportReceived", "4007"),
        ("AddParticipantFailed", "408/10057"),
        ("CallDisconnected", "410/3112"),
        ("RecognizeFailed", "400/8510"),
        ("CreateCallFailed", "403/7507"),
    ][:failures]
    if hostile and kinds:
        kinds[0] = ("[x](http://evil) <!channel> `tick` # H", "400/8535")
    counts = [1_312, 604, 219, 87, 12, 3][: len(kinds)]
    before = [881, 640, 0, 90, 30, 1][: len(kinds)]
    top = tuple(Failure(k, c, n, b) for (k, c), n, b in zip(kinds, counts, before, strict=True))
    end = T0.replace(hour=8, minute=0, second=0, microsecond=0)
    return DailyReport(
        start=end - timedelta(hours=24),
        end=end,
        total=sum(counts),
        previous_total=sum(before),
        top=top,
        distinct=len(top),
        worst_resource="contoso-acs-prod" if top else None,
        worst_resource_count=int(sum(counts) * 0.8),
        resources=2 if top else 0,
    )
