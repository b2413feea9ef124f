"""Pipeline throughput: one Event Grid batch through the whole request path, against json.loads.

What is timed is `Service.handle_http` on a warm process, exactly as the Function App runs it:
parse → typed events → catalog → policy (dedup, suppress successes, group) → render for Teams
and Slack → outbox → the JSON answer. Every run gets a fresh in-memory store (else dedup would
drop the repeats); one untimed run first loads the catalog and the render modules, as the
first request of a worker does.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from msgspec.structs import replace

from triage.catalog import lookup
from triage.events import Skip, read
from triage.gcpause import paused
from triage.ingest import parse_body
from triage.model import Alert
from triage.pipeline import Triage
from triage.render import render
from triage.render.template import render_json
from triage.service import Service
from triage.settings import Settings
from triage.store.memory import MemoryStore

from .corpus import EVENT_GRID_MAX_BYTES, mixed_events, pipeline_settings, up_to_bytes
from .figures import Baseline, Figure, Samples
from .timing import Prepare, in_turns

__all__ = [
    "NOW",
    "TARGET_GROUPED",
    "TARGET_ONE_MB",
    "TARGET_UNGROUPED",
    "Throughput",
    "measure",
    "request_call",
    "throughput_figures",
]

# Issue 16's targets, × json.loads time of the same bytes, by row.
TARGET_GROUPED = 2.0
TARGET_ONE_MB = 2.5
TARGET_UNGROUPED = 8.0
_HEADERS = {"Content-Type": "application/json", "aeg-event-type": "Notification"}
NOW = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Throughput:
    """Seconds per batch of the pipeline and of the parsers, for one body."""

    label: str
    events: int
    body_bytes: int
    pipeline: Samples
    json_loads: Samples
    orjson_loads: Samples
    answer: dict[str, Any] = field(default_factory=dict)  # the route's answer (counts) to the batch

    def events_per_s(self, samples: Samples, how: str = "best") -> float:
        return self.events / (samples.best if how == "best" else samples.median)

    def paired_ratio(self) -> float:
        """Median of pipeline/json.loads within each round: steadier when the load drifts."""
        return statistics.median(
            p / j for p, j in zip(self.pipeline.values, self.json_loads.values, strict=True)
        )


def request_call(settings: Settings, body: bytes) -> Callable[[], dict[str, Any]]:
    """One POST of `body` to a Service of its own (fresh store); the call returns the answer's counts."""
    service = Service(settings, MemoryStore())

    def run() -> dict[str, Any]:
        answer = service.handle_http("eventgrid", "POST", _HEADERS, {}, body, now=NOW)
        if answer.status != 200:
            raise RuntimeError(f"the pipeline answered {answer.status}: {answer.body[:200]!r}")
        doc: dict[str, Any] = orjson.loads(answer.body)
        return doc

    return run


def _handle(settings: Settings, body: bytes) -> Prepare:
    return lambda: request_call(settings, body)


def _ingest(body: bytes) -> Prepare:
    def run() -> Any:
        with paused():  # as the request path runs it (triage.gcpause)
            return parse_body(body, "application/json", len(body))

    return lambda: run


def measure(
    label: str, items: list[dict[str, Any]], repeat: int, *, group_window_seconds: int = 300
) -> Throughput:
    """Time the request path on a batch of `items`, in turns with json.loads and orjson.loads."""
    body = orjson.dumps(items)
    settings = pipeline_settings(group_window_seconds, max_body_bytes=max(len(body), EVENT_GRID_MAX_BYTES))
    answer = request_call(settings, body)()  # warm-up, untimed: catalog, caches, lazy imports
    runs = in_turns(
        {
            "pipeline": _handle(settings, body),
            "json": lambda: lambda: json.loads(body),
            "orjson": lambda: lambda: orjson.loads(body),
        },
        repeat,
    )
    return Throughput(label, len(items), len(body), runs["pipeline"], runs["json"], runs["orjson"], answer)


def measure_ingest(items: list[dict[str, Any]], repeat: int) -> Throughput:
    """Time parse_body alone (envelopes → RawEvents), to see what share the envelope work takes."""
    body = orjson.dumps(items)
    runs = in_turns(
        {
            "ingest": _ingest(body),
            "json": lambda: lambda: json.loads(body),
            "orjson": lambda: lambda: orjson.loads(body),
        },
        repeat,
    )
    return Throughput("ingest", len(items), len(body), runs["ingest"], runs["json"], runs["orjson"])


def stages(items: list[dict[str, Any]], repeat: int) -> dict[str, Samples]:
    """Seconds of the request path cut after each stage (no profiler: real costs), same batch.
    Each entry includes the ones before it; the differences are what each stage costs."""
    body = orjson.dumps(items)
    settings = pipeline_settings(max_body_bytes=max(len(body), EVENT_GRID_MAX_BYTES))

    def read_facts() -> list[Any]:
        with paused():  # as the request path runs it (triage.gcpause)
            envelope = parse_body(body, "application/json", len(body))
            return [read(raw, resource=settings.resource, mask=settings.mask_pii) for raw in envelope.events]

    def looked_up() -> list[Any]:
        facts = [r.facts for r in read_facts() if not isinstance(r, Skip)]
        with paused():
            return [lookup(f.code, f.subcode, f.context, f.kind, f.row) for f in facts]

    request_call(settings, body)()  # warm-up
    return in_turns(
        {
            "json.loads": lambda: lambda: json.loads(body),
            "ingest (parse_body)": _ingest(body),
            "+ facts of each event (read)": lambda: read_facts,
            "+ catalog lookup": lambda: looked_up,
            "+ policy, render ×2, outbox, answer": _handle(settings, body),
        },
        repeat,
    )


def _figure(result: Throughput, name: str, repeat: int, target: float | None) -> Figure:
    rate = result.events_per_s(result.pipeline)
    ratio_json = result.pipeline.best / result.json_loads.best
    ratio_orjson = result.pipeline.best / result.orjson_loads.best
    return Figure(
        name=name,
        value=rate,
        unit="events/s",
        baselines=(
            Baseline("json.loads", result.events_per_s(result.json_loads), ratio_json, "× json.loads time"),
            Baseline(
                "orjson.loads", result.events_per_s(result.orjson_loads), ratio_orjson, "× orjson.loads time"
            ),
        ),
        target=f"≤ {target:g}× json.loads" if target is not None else "",
        met=ratio_json <= target if target is not None else None,
        how=(
            f"best of {repeat} (median {result.events_per_s(result.pipeline, 'median'):,.0f}/s, "
            f"median of the per-round ratios {result.paired_ratio():.2f}× json.loads); "
            f"{result.events:,} events, {result.body_bytes / 1e6:.2f} MB"
        ),
    )


def render_costs(items: list[dict[str, Any]], repeat: int) -> str:
    """A detail line: µs per render for Teams and for Slack, over the alerts the pipeline makes of
    `items` with grouping off (masked, as queued), each rendered once a round; and again with every
    ID made unique, as real events have them (the bench batch repeats each sample's IDs). Then both
    for each alert in turn: issue 16's target is for the two together. Last, both as the outbox
    queues them: JSON text, from the template of the alert's shape (triage.render.template)."""
    body = orjson.dumps(items)
    settings = pipeline_settings(0, max_body_bytes=max(len(body), EVENT_GRID_MAX_BYTES))
    envelope = parse_body(body, "application/json", len(body))
    triage = Triage(settings.model_copy(update={"destinations": {}}), MemoryStore())
    alerts = triage.handle(envelope.events, NOW).alerts
    unique = [
        replace(a, incident=a.incident._replace(ids={k: f"{v}-{n}" for k, v in a.incident.ids.items()}))
        for n, a in enumerate(alerts)
    ]

    def rendering(batch: list[Alert], formats: tuple[str, ...], how: Callable[[Alert, str], Any]) -> Prepare:
        def run() -> None:
            # Each payload is dropped as made: what keeping them costs (allocation, garbage
            # collector passes over everything alive) is the pipeline's, in its own rows.
            for alert in batch:
                for fmt in formats:
                    how(alert, fmt)

        return lambda: run

    both = ("teams", "slack")
    shown = {
        "teams": (("teams",), render),
        "slack": (("slack",), render),
        "both in turn": (both, render),
        "both as queued": (both, render_json),
    }
    runs = in_turns(
        {
            f"{name} {kind}": rendering(batch, formats, how)
            for name, (formats, how) in shown.items()
            for kind, batch in (("", alerts), ("unique", unique))
        },
        repeat,
    )
    per_alert = {name: samples.best * 1e6 / len(alerts) for name, samples in runs.items()}
    return (
        f"render, µs per alert, {len(alerts):,} alerts of the grouping-off batch (best of {repeat}; "
        "in brackets: every ID unique; both in turn: Teams then Slack for each alert; both as queued: "
        "the same as the outbox makes them, JSON text from each shape's template): "
        + "; ".join(
            f"{name} {per_alert[name + ' ']:.1f} ({per_alert[name + ' unique']:.1f})" for name in shown
        )
    )


def throughput_figures(sizes: dict[str, int], repeats: dict[str, int]) -> tuple[list[Figure], list[str]]:
    """Run the throughput benches: figures, and detail lines (what each batch did)."""
    figures: list[Figure] = []
    details: list[str] = []
    events = mixed_events(sizes["batch"])
    one_mb = up_to_bytes(sizes["bytes"])
    runs = [
        (f"pipeline, {len(events):,} mixed events (grouping on)", events, 300, "grouped", TARGET_GROUPED),
        (f"pipeline, 1 MB batch ({len(one_mb):,} mixed events)", one_mb, 300, "grouped", TARGET_ONE_MB),
        (
            f"pipeline, {len(events):,} mixed events, grouping off (every failure rendered ×2)",
            events,
            0,
            "ungrouped",
            TARGET_UNGROUPED,
        ),
    ]
    for name, items, window, repeat_key, target in runs:
        result = measure(name, items, repeats[repeat_key], group_window_seconds=window)
        figures.append(_figure(result, name, repeats[repeat_key], target))
        counts = {k: v for k, v in result.answer.items() if k != "rejected"}
        details.append(f"{name}: answer {counts}")
    cuts = stages(events, repeats["grouped"])
    previous = 0.0
    parts = []
    for stage, samples in cuts.items():
        if stage == "json.loads":
            continue
        parts.append(f"{stage} {max(0.0, samples.best - previous) * 1e6 / len(events):.1f}")
        previous = samples.best
    details.append(
        f"stage costs, µs per event, {len(events):,} mixed events, grouping on (best of {repeats['grouped']} "
        f"cut after each stage; json.loads {cuts['json.loads'].best * 1e6 / len(events):.1f}): "
        + "; ".join(parts)
    )
    details.append(render_costs(events, repeats["ungrouped"]))
    ingest = measure_ingest(events, repeats["grouped"])
    figures.append(
        _figure(ingest, f"ingest only (parse_body), {len(events):,} events", repeats["grouped"], None)
    )
    return figures, details
