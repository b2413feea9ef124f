"""Your Call Automation callback endpoint in FastAPI, with acs-triage watching over it.

Run: ACS_TRIAGE_FORWARD_URL=… uvicorn fastapi_app:app --port 8080 (forward.py next to this file).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from forward import forward

app = FastAPI()


@app.post("/api/calls/events")
async def call_events(request: Request) -> JSONResponse:
    """Call Automation's callback URI: hand the callback to acs-triage, then run call control."""
    body = await request.body()
    forward(body, request.headers.get("authorization"))  # returns at once
    try:
        payload = json.loads(body)
    except ValueError:
        return JSONResponse({"error": "body is not JSON"}, status_code=400)
    events = payload if isinstance(payload, list) else [payload]
    return JSONResponse({"handled": [handle(event) for event in events if isinstance(event, dict)]})


def handle(event: dict[str, Any]) -> str:
    """Your call control goes here (answer, play, recognize, transfer …); this one names the event."""
    return str(event.get("type", ""))
