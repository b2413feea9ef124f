"""Alert → a documented, versioned JSON document for anything else (Opsgenie, ServiceNow, a Logic
App): `{"schema": "acs-triage.alert/v1", "status", "alert", "guidance", "counts", "ids", …}`.
Its JSON Schema is docs/webhook-alert.schema.json; docs/webhook.md says how to verify it.

With ACS_TRIAGE_WEBHOOK_SECRET set, every POST is signed: HMAC-SHA256 with that key over
`<timestamp>.<exact body bytes>`, sent as `X-ACS-Triage-Signature: sha256=<hex>` beside
`X-ACS-Triage-Timestamp: <unix seconds>`. The timestamp is inside the MAC, so a receiver that
refuses old timestamps also refuses a captured request played again later.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Any

from ..model import Alert
from ..render import content
from . import Destination, Kind

__all__ = [
    "KIND",
    "MAX_SAMPLES",
    "SCHEMA",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "render",
    "sign",
    "signature",
]

SCHEMA = "acs-triage.alert/v1"
SIGNATURE_HEADER = "X-ACS-Triage-Signature"
TIMESTAMP_HEADER = "X-ACS-Triage-Timestamp"
MAX_SAMPLES = 5  # the schema's maxItems: what the store keeps per burst


def _time(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def render(alert: Alert) -> dict[str, Any]:
    """The acs-triage.alert/v1 document for `alert`. Values are as the event gave them (IDs
    masked as in chat), unescaped: the receiver decides how to show them."""
    inc, guide = alert.incident, alert.guidance
    return {
        "schema": SCHEMA,
        "status": alert.status,
        "title": content.headline(alert),
        "fingerprint": alert.fingerprint,
        "alert": {
            "kind": inc.kind,
            "event_type": inc.event_type,
            "event_id": inc.event_id,
            "source": inc.source,
            "resource": inc.resource,
            "context": inc.context,
            "code": inc.code,
            "subcode": inc.subcode,
            "code_text": alert.code_text,
            "time": _time(inc.time),
            "message": inc.message,
        },
        "guidance": {
            "message": guide.message,
            "category": guide.category.value,
            "severity": guide.severity.value,
            "advice": [line.text for line in content.advice_lines(guide.advice)],
            "docs_url": content.docs_url(guide) or None,
            "catalog": content.catalog_note(guide),
            "flags": list(guide.flags),
        },
        "counts": {
            "count": alert.count,
            "digest": alert.digest,
            "window_seconds": alert.window_seconds,
            "first_seen": _time(alert.first_seen),
            "last_seen": _time(alert.last_seen),
        },
        "ids": dict(inc.ids),
        "details": dict(inc.details),
        "samples": [dict(sample) for sample in alert.samples[:MAX_SAMPLES]],
    }


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>`: HMAC-SHA256 keyed with `secret` over `<timestamp>.<body>`."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def sign(body: bytes, destination: Destination, now: float, *, message_id: str = "") -> dict[str, str]:
    """The signature headers for one POST of `body` at `now`; none when no secret is set.
    (`message_id`, the stable id of the outbox message, is not part of this scheme.)"""
    if destination.secret is None:
        return {}
    timestamp = str(int(now))
    return {
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: signature(destination.secret.get_secret_value(), timestamp, body),
    }


KIND = Kind(
    name="webhook",
    render=render,
    send_interval=0.0,  # the receiver is ours to size; a 429 with Retry-After still holds senders
    url_setting="ACS_TRIAGE_WEBHOOK_URL",
    secret_setting="ACS_TRIAGE_WEBHOOK_SECRET",  # noqa: S106 - the name of a setting, not a secret
    headers=sign,
)
