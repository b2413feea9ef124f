"""Your Call Automation callback endpoint as an Azure Function (Python v2 model), with acs-triage
watching over it. Put this in your function_app.py, with forward.py next to it, and set
ACS_TRIAGE_FORWARD_URL in the app settings (a Key Vault reference: it holds acs-triage's key).
"""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func
from forward import forward

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.route(route="calls/events", methods=["POST"])
def call_events(req: func.HttpRequest) -> func.HttpResponse:
    """Call Automation's callback URI: hand the callback to acs-triage, then run call control."""
    body = req.get_body()
    forward(body, req.headers.get("Authorization"))  # returns at once
    try:
        payload = json.loads(body)
    except ValueError:
        return func.HttpResponse(
            '{"error": "body is not JSON"}', status_code=400, mimetype="application/json"
        )
    events = payload if isinstance(payload, list) else [payload]
    handled = [handle(event) for event in events if isinstance(event, dict)]
    return func.HttpResponse(json.dumps({"handled": handled}), mimetype="application/json")


def handle(event: dict[str, Any]) -> str:
    """Your call control goes here (answer, play, recognize, transfer …); this one names the event."""
    return str(event.get("type", ""))
