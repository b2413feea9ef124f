"""Alert → PagerDuty Events API v2 event (https://events.pagerduty.com/v2/enqueue).

A burst is one PagerDuty alert: `dedup_key` is the burst's fingerprint, so the first failure
triggers it, each digest (and each reminder, a digest of a burst still firing after its
repeat_interval) adds a log entry to the same open alert instead of paging again, and the
resolved notice (Alert status "resolved", sent when the burst went quiet for a whole window)
resolves it. Silenced summaries are chat news and are not sent here (`statuses`).

The routing key is the credential. It is a secret setting of its own
(ACS_TRIAGE_PAGERDUTY_ROUTING_KEY), never stored in the outbox: `finish` adds it to the body just
before the POST. PagerDuty answers 202 (accepted), 400 (invalid event, not retried) and 429
(throttled, retried as chat posts are, honouring Retry-After).
"""

from __future__ import annotations

import hashlib
from typing import Any

from ..model import Alert, Severity
from ..render import content
from ..render.escape import event_text
from . import Destination, Kind

__all__ = [
    "DEDUP_KEY_MAX",
    "EVENTS_URL",
    "KIND",
    "SEVERITY",
    "SUMMARY_MAX",
    "dedup_key",
    "finish",
    "render",
]

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
SUMMARY_MAX = 1024  # payload.summary, as the Events API v2 documents it
DEDUP_KEY_MAX = 255
_FIELD_MAX = 255  # source, component, group, class: short identifying strings
_VALUE_MAX = 1024  # one custom detail

# Ours → PagerDuty's (critical, error, warning, info). "critical" is left to PagerDuty's own
# event rules: the catalog has no category that means "the whole service is down".
SEVERITY: dict[Severity, str] = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.NONE: "info"}


def dedup_key(alert: Alert) -> str:
    """The burst's key (its fingerprint, or a route's group_by key): what ties trigger, digests
    and resolve together (hashed when a very long resource name would pass PagerDuty's 255
    characters)."""
    fingerprint = alert.group or alert.fingerprint
    if len(fingerprint) <= DEDUP_KEY_MAX:
        return fingerprint
    return "sha256:" + hashlib.sha256(fingerprint.encode()).hexdigest()


def render(alert: Alert) -> dict[str, Any]:
    """The Events API v2 event for `alert`, without the routing key (added by `finish`)."""
    if alert.status == "resolved":
        return {"event_action": "resolve", "dedup_key": dedup_key(alert)}
    inc, guide = alert.incident, alert.guidance
    label = content.SEVERITY_LABEL[alert.severity]
    summary = _text(f"{label}: {content.headline(alert)}. {event_text(guide.message)}", SUMMARY_MAX)
    payload: dict[str, Any] = {
        "summary": summary,
        "source": _text(inc.resource, _FIELD_MAX),
        "severity": SEVERITY[alert.severity],
        "component": _text(inc.kind, _FIELD_MAX),
        "group": inc.context,
        "class": _text(f"{inc.kind} {alert.code_text}", _FIELD_MAX),
        "custom_details": _details(alert),
    }
    seen = alert.last_seen or inc.time
    if seen is not None:
        payload["timestamp"] = seen.isoformat()
    event: dict[str, Any] = {
        "event_action": "trigger",
        "dedup_key": dedup_key(alert),
        "payload": payload,
        "client": "acs-triage",
    }
    url = content.docs_url(guide)
    if url:
        event["links"] = [{"href": url, "text": "Troubleshooting docs"}]
    return event


def _text(value: str, limit: int) -> str:
    # Plain text: PagerDuty shows it as such; event text is still kept to one clean line.
    return content.fit(event_text(value), limit, str)[0] or "–"


def _details(alert: Alert) -> dict[str, Any]:
    """What the responder needs on the incident page: the catalog's answer and the IDs support
    asks for (masked as in chat: the Incident carries them masked already)."""
    inc, guide = alert.incident, alert.guidance
    details: dict[str, Any] = {
        "what": guide.message,
        "code": alert.code_text,
        "category": guide.category.value,
        "resource": inc.resource,
        "context": inc.context,
        "event_type": inc.event_type,
        "count": alert.count,
        "first_seen": content.format_time(alert.first_seen or inc.time),
        "last_seen": content.format_time(alert.last_seen or inc.time),
        "times": content.clock_of(alert),  # the event's own time, or when it arrived here
    }
    said = content.event_message(alert)
    if said:
        details["event_says"] = _text(said, _VALUE_MAX)
    advice = [line.text for line in content.advice_lines(guide.advice)]
    if advice:
        details["what_to_do"] = advice
    details["ids"] = {_text(k, _FIELD_MAX): _text(v, _VALUE_MAX) for k, v in inc.ids.items()}
    if inc.details:
        details["details"] = {_text(k, _FIELD_MAX): _text(v, _VALUE_MAX) for k, v in inc.details.items()}
    if alert.reminder:  # same dedup_key: a log entry on the open alert saying it still fires
        details["reminder"] = content.digest_line(alert)
        details["burst_count"] = alert.burst_count
        details["burst_first_arrived"] = content.format_time(alert.burst_started)
    if alert.digest and alert.samples:
        details["samples"] = [dict(sample) for sample in content.sample_ids(alert, 5)]
    details["catalog"] = content.catalog_note(guide)
    return details


def finish(payload: dict[str, Any], destination: Destination) -> dict[str, Any]:
    """The event as posted: the stored event with the destination's routing key."""
    key = destination.secret.get_secret_value() if destination.secret is not None else ""
    return {"routing_key": key, **payload}


KIND = Kind(
    name="pagerduty",
    render=render,
    send_interval=0.0,  # PagerDuty throttles per service dynamically; its 429s hold every sender
    url_setting="ACS_TRIAGE_PAGERDUTY_URL",
    secret_setting="ACS_TRIAGE_PAGERDUTY_ROUTING_KEY",  # noqa: S106 - the name of a setting, not a secret
    secret_required=True,
    default_url=EVENTS_URL,
    finish=finish,
    statuses=frozenset({"firing", "resolved"}),
    keeps_incidents=True,
)
