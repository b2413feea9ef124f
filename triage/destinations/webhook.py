"""Alert → a documented, versioned JSON document for anything else (Opsgenie, ServiceNow, a Logic
App): `{"schema": "acs-triage.alert/v1", "status", "alert", "guidance", "counts", "ids", …}`.
Its JSON Schema is docs/webhook-alert.schema.json; docs/webhook.md says how to verify it.

With ACS_TRIAGE_WEBHOOK_SECRET set (one or more `whsec_` keys, space-separated, for rotation),
every POST is signed as Standard Webhooks asks: `webhook-id` (the outbox message's id, the same
on every retry), `webhook-timestamp` (Unix seconds) and `webhook-signature: v1,<base64>` per key,
HMAC-SHA256 over `<id>.<timestamp>.<exact body bytes>`. The id and timestamp are inside the MAC,
so a receiver that refuses old timestamps and ids it has seen refuses replays and retries alike.
A legacy key (not `whsec_`) signs the same way with its UTF-8 bytes and also sends the old
X-ACS-Triage-* headers, until LEGACY_UNTIL.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from datetime import datetime
from typing import Any

from ..model import Alert
from ..render import content
from . import Destination, Kind

__all__ = [
    "ID_HEADER",
    "KIND",
    "LEGACY_UNTIL",
    "MAX_SAMPLES",
    "SCHEMA",
    "SECRET_PREFIX",
    "SIGNATURE_HEADER",
    "STANDARD_SIGNATURE_HEADER",
    "STANDARD_TIMESTAMP_HEADER",
    "TIMESTAMP_HEADER",
    "check_secret",
    "legacy_signature",
    "render",
    "secret_keys",
    "sign",
    "signature",
]

SCHEMA = "acs-triage.alert/v1"
# Standard Webhooks (standardwebhooks.com): the headers and the key format.
ID_HEADER = "webhook-id"
STANDARD_TIMESTAMP_HEADER = "webhook-timestamp"
STANDARD_SIGNATURE_HEADER = "webhook-signature"
SECRET_PREFIX = "whsec_"  # noqa: S105 - the key format's prefix, not a secret
MIN_KEY_BYTES, MAX_KEY_BYTES = 24, 64
# The scheme before Standard Webhooks, still sent beside it for a legacy (non-whsec_) key until
# LEGACY_UNTIL (docs/webhook.md, "Migrating"); a legacy key is refused in the first release after.
SIGNATURE_HEADER = "X-ACS-Triage-Signature"
TIMESTAMP_HEADER = "X-ACS-Triage-Timestamp"
LEGACY_UNTIL = "2027-06-30"
MAX_SAMPLES = 5  # the schema's maxItems: what the store keeps per burst


def _time(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _type(alert: Alert) -> str:
    """The document's `type` word: alert, digest, reminder (all three firing), resolved, silenced."""
    if alert.status != "firing":
        return alert.status
    return "reminder" if alert.reminder else "digest" if alert.digest else "alert"


def render(alert: Alert) -> dict[str, Any]:
    """The acs-triage.alert/v1 document for `alert`. Values are as the event gave them (IDs
    masked as in chat), unescaped: the receiver decides how to show them."""
    inc, guide = alert.incident, alert.guidance
    document: dict[str, Any] = {
        "schema": SCHEMA,
        "status": alert.status,
        "type": _type(alert),
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
    if alert.reminder:
        document["counts"]["reminder"] = {
            "every_seconds": alert.reminder_seconds,
            "burst_count": alert.burst_count,
            "burst_first_seen": _time(alert.burst_started),
        }
    if inc.status:  # events that report a status word instead of a code (email)
        document["alert"]["event_status"] = inc.status
        document["alert"]["scope"] = inc.scope
    return document


def secret_keys(value: str) -> list[tuple[bytes, bool]]:
    """The signing keys a secret setting holds: space-separated; a `whsec_<base64>` key is its
    decoded bytes, anything else (a legacy key) its UTF-8 bytes, flagged True."""
    keys: list[tuple[bytes, bool]] = []
    for part in value.split():
        if part.startswith(SECRET_PREFIX):
            keys.append((base64.b64decode(part[len(SECRET_PREFIX) :], validate=True), False))
        else:
            keys.append((part.encode(), True))
    return keys


def check_secret(value: str) -> str | None:
    """What is wrong with ACS_TRIAGE_WEBHOOK_SECRET's value, or None. Several keys (rotation)
    must all be `whsec_` keys; each decodes to 24 to 64 bytes, as Standard Webhooks asks."""
    parts = value.split()
    if not parts:
        return "is empty: give one or more whsec_ keys, separated by spaces"
    if len(parts) > 1 and any(not p.startswith(SECRET_PREFIX) for p in parts):
        return "holds several keys: each must be a whsec_<base64> key (only one legacy key is read)"
    for number, part in enumerate(parts, 1):
        if not part.startswith(SECRET_PREFIX):
            continue
        try:
            key = base64.b64decode(part[len(SECRET_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            return f"key {number} is not whsec_ followed by base64"
        if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
            size = len(key)
            return (
                f"key {number} decodes to {size} bytes; use {MIN_KEY_BYTES} to {MAX_KEY_BYTES} random bytes"
            )
    return None


def signature(key: bytes, message_id: str, timestamp: str, body: bytes) -> str:
    """`v1,<base64>`: HMAC-SHA256 keyed with `key` over `<message id>.<timestamp>.<body>`."""
    mac = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def legacy_signature(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>` over `<timestamp>.<body>`: the X-ACS-Triage-Signature of a legacy key."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def sign(body: bytes, destination: Destination, now: float, message_id: str) -> dict[str, str]:
    """The Standard Webhooks headers for one POST of `body` at `now`, one signature per key (a
    receiver accepts any one); none when no secret is set. `message_id` is the outbox message's
    id, the same on every retry, so a receiver can drop what it has already taken."""
    if destination.secret is None:
        return {}
    value = destination.secret.get_secret_value()
    timestamp = str(int(now))
    keys = secret_keys(value)
    headers = {
        ID_HEADER: message_id,
        STANDARD_TIMESTAMP_HEADER: timestamp,
        STANDARD_SIGNATURE_HEADER: " ".join(signature(key, message_id, timestamp, body) for key, _ in keys),
    }
    if len(keys) == 1 and keys[0][1]:
        # Migration: receivers written for the old scheme keep verifying until LEGACY_UNTIL.
        headers[TIMESTAMP_HEADER] = timestamp
        headers[SIGNATURE_HEADER] = legacy_signature(value, timestamp, body)
    return headers


KIND = Kind(
    name="webhook",
    render=render,
    send_interval=0.0,  # the receiver is ours to size; a 429 with Retry-After still holds senders
    url_setting="ACS_TRIAGE_WEBHOOK_URL",
    secret_setting="ACS_TRIAGE_WEBHOOK_SECRET",  # noqa: S106 - the name of a setting, not a secret
    check_secret=check_secret,
    headers=sign,
)
