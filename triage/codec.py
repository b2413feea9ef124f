"""Incidents and outbox messages as JSON-ready dicts, for the store and the queue."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .model import Incident

__all__ = ["incident_from_dict", "incident_to_dict"]


def incident_to_dict(incident: Incident) -> dict[str, Any]:
    """A JSON-ready dict; `incident_from_dict` reads it back."""
    out: dict[str, Any] = {
        "kind": incident.kind,
        "event_type": incident.event_type,
        "event_id": incident.event_id,
        "source": incident.source,
        "resource": incident.resource,
        "time": incident.time.isoformat() if incident.time else None,
        "context": incident.context,
        "code": incident.code,
        "subcode": incident.subcode,
        "message": incident.message,
        "ids": incident.ids,
        "details": incident.details,
        # Only when a condition chose the row: incidents stored before this key read as "".
        **({"row": incident.row} if incident.row else {}),
    }
    # Only status-reporting events (email) have these: other incidents are stored as before.
    if incident.status or incident.scope:
        out["status"], out["scope"] = incident.status, incident.scope
    return out


def incident_from_dict(data: dict[str, Any]) -> Incident:
    """The inverse of `incident_to_dict` (input is our own, already validated, data)."""
    when = data.get("time")
    return Incident(
        kind=data["kind"],
        event_type=data["event_type"],
        event_id=data["event_id"],
        source=data["source"],
        resource=data["resource"],
        time=datetime.fromisoformat(when) if when else None,
        context=data["context"],
        code=data["code"],
        subcode=data["subcode"],
        message=data["message"],
        ids=dict(data["ids"]),
        details=dict(data["details"]),
        row=data.get("row", ""),
        status=data.get("status", ""),
        scope=data.get("scope", ""),
    )
