"""Storm: thousands of the same failure posted through the local server (the Function App's own
routes on a socket, with its queue trigger and digest timer run by a background loop) to a
Slack-like webhook that allows about one message a second (`tools.sinks.SlackSink`: 429 with
Retry-After above that).

What must hold: few messages, no 429 from the sink, and every event counted exactly once in
what the sink accepted (the count is read from the posted payloads: a digest's headline says
"N× PlayFailed 400/8535 on …", a single alert counts 1).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
import requests

import function_app
from tools.localhost import LocalServer
from tools.sinks import SlackSink
from triage.service import Service
from triage.settings import Settings
from triage.store.memory import MemoryStore

from .corpus import EVENT_GRID_MAX_BYTES, STORM_SAMPLE, batches, copies
from .figures import Baseline, Figure
from .throughput import NOW

__all__ = ["Storm", "count_of", "run", "storm_figures"]

_COUNT = re.compile(r"(\d[\d,]*)× ")


@dataclass(frozen=True, slots=True)
class Storm:
    """What the sink saw and how long it took."""

    events: int
    batches: int
    group_window_seconds: int
    messages: int  # posts the sink accepted (2xx)
    throttled: int  # posts the sink answered 429
    refused: int  # posts the sink answered with another error
    counted: int  # the sum of the counts in the accepted posts
    answered: int  # events the HTTP answers say were alerted or grouped
    ingest_seconds: float  # first POST sent → last POST answered
    wall_seconds: float  # first POST sent → the accepted post that completed the count
    in_process_seconds: float  # the same batches through a Service in this process, no HTTP

    @property
    def uncounted(self) -> int:
        """Events in no message (negative: counted twice)."""
        return self.events - self.counted


def count_of(payload: Any) -> int:
    """How many events a posted Slack payload stands for: its headline's "N× " or 1 (0 for a
    resolved or silenced notice)."""
    text = payload.get("text", "") if isinstance(payload, dict) else ""
    if isinstance(text, str) and text.startswith(("Resolved:", "Silenced:")):
        return 0  # a notice about events already counted by the alerts before it
    match = _COUNT.search(text if isinstance(text, str) else "")
    return int(match.group(1).replace(",", "")) if match else 1


@contextmanager
def _configured(service: Service) -> Iterator[None]:
    """function_app serves `service` for the duration, then what it served before."""
    previous = function_app._service
    function_app.configure(service)
    try:
        yield
    finally:
        function_app._service = previous


def _post_all(url: str, bodies: list[bytes], concurrency: int) -> int:
    """POST every body (Event Grid delivers batches in parallel too); the events the answers took in."""
    local = threading.local()

    def post(body: bytes) -> int:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        response = session.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=60)
        if response.status_code != 200:
            raise RuntimeError(f"the local server answered {response.status_code}: {response.text[:200]}")
        answer = response.json()
        return int(answer["alerted"]) + int(answer["grouped"])

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return sum(pool.map(post, bodies))


def _in_process(settings: Settings, bodies: list[bytes]) -> float:
    service = Service(settings, MemoryStore())
    start = time.perf_counter()
    for body in bodies:
        service.handle_http("callbacks", "POST", {"Content-Type": "application/json"}, {}, body, now=NOW)
    return time.perf_counter() - start


def run(
    events: int = 10_000,
    *,
    group_window_seconds: int = 2,
    tick_seconds: float = 0.05,
    timer_seconds: float = 0.25,
    concurrency: int = 2,
    timeout: float = 60.0,
    max_bytes: int = EVENT_GRID_MAX_BYTES,
) -> Storm:
    """Post `events` copies of one failure in Event Grid-sized batches and wait until the sink
    has received all of them (counted), plus one more window to catch a count sent twice."""
    bodies = batches(copies(STORM_SAMPLE, events), max_bytes=max_bytes)
    with SlackSink() as sink:
        settings = Settings.from_env(
            {
                "ACS_TRIAGE_SLACK_URL": sink.url,
                "ACS_TRIAGE_GROUP_WINDOW_SECONDS": str(group_window_seconds),
                "ACS_TRIAGE_MAX_BODY_BYTES": str(max_bytes),
            }
        )
        in_process = _in_process(settings, bodies)
        with (
            _configured(Service(settings, MemoryStore())),
            LocalServer(port=0, tick_seconds=tick_seconds, timer_seconds=timer_seconds) as server,
        ):
            start = time.monotonic()
            answered = _post_all(f"{server.url}/api/callbacks", bodies, concurrency)
            ingested = time.monotonic()
            deadline = ingested + timeout
            done_at: float | None = None
            while time.monotonic() < deadline:
                received = sink.received
                total = 0
                for message in received:
                    if 200 <= message.status < 300:
                        total += count_of(orjson.loads(message.body))
                        if total >= events and done_at is None:
                            done_at = message.at
                if done_at is not None:
                    break
                time.sleep(0.05)
            if done_at is not None:
                # A second digest of the same events would arrive within a window: wait one out.
                time.sleep(group_window_seconds + 4 * tick_seconds + timer_seconds)
        received = sink.received
    accepted = [orjson.loads(r.body) for r in received if 200 <= r.status < 300]
    return Storm(
        events=events,
        batches=len(bodies),
        group_window_seconds=group_window_seconds,
        messages=len(accepted),
        throttled=sum(1 for r in received if r.status == 429),
        refused=sum(1 for r in received if r.status >= 300 and r.status != 429),
        counted=sum(count_of(p) for p in accepted),
        answered=answered,
        ingest_seconds=ingested - start,
        wall_seconds=(done_at if done_at is not None else time.monotonic()) - start,
        in_process_seconds=in_process,
    )


def storm_figures(events: int, group_window_seconds: int = 2) -> tuple[list[Figure], list[str]]:
    """Messages, 429s, uncounted events, wall time and HTTP ingest rate, each with its baseline."""
    s = run(events, group_window_seconds=group_window_seconds)
    how = f"{s.events:,} events in {s.batches} batches ≤ 1 MB, window {s.group_window_seconds} s"
    figures = [
        Figure(
            "storm: messages the Slack sink accepted",
            s.messages,
            "",
            (Baseline("events posted", s.events, s.messages / s.events, " per event"),),
            how=how,
        ),
        Figure(
            "storm: sink 429s",
            s.throttled,
            "",
            (Baseline("messages sent", s.messages, s.throttled / max(1, s.messages), " per message"),),
            target="0",
            met=s.throttled == 0,
            how="SlackSink's own limit: 1/s, burst 2, 429 + Retry-After",
        ),
        Figure(
            "storm: events uncounted",
            s.uncounted,
            "",
            (Baseline("events posted", s.events, s.uncounted / s.events, " of posted"),),
            target="0",
            met=s.uncounted == 0,
            how=f"sum of the counts in the accepted payloads = {s.counted:,}",
        ),
        Figure(
            "storm: wall time, first POST → count complete at the sink",
            s.wall_seconds,
            "s",
            (Baseline("ingest (all POSTs answered)", s.ingest_seconds, s.wall_seconds / s.ingest_seconds),),
            how=f"includes the {s.group_window_seconds} s window and Slack's 1 s spacing",
        ),
        Figure(
            "storm: ingest over HTTP (local server)",
            s.events / s.ingest_seconds,
            "events/s",
            (
                Baseline(
                    "same batches in process",
                    s.events / s.in_process_seconds,
                    s.ingest_seconds / s.in_process_seconds,
                    "× in-process time",
                ),
            ),
            how="2 concurrent posters; the delivery loop runs meanwhile",
        ),
    ]
    details = [
        f"storm: {s.messages} message(s) accepted, {s.throttled} 429, {s.refused} other refusals; counted "
        f"{s.counted:,} of {s.events:,}; the HTTP answers took in {s.answered:,}"
    ]
    return figures, details
