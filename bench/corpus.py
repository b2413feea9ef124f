"""The bodies the benchmarks post: built from `samples/`, every event with an id of its own.

Event Grid delivers at most 5,000 events or 1 MB per batch (whichever comes first); the
samples are realistic (about 0.9 KB an event), so a 5,000-event batch of them is over 4 MB.
The throughput bench times both shapes: 5,000 events (the count limit) and 1 MB (the size limit).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from triage.settings import Settings

from .endpoints import SLACK_URL, TEAMS_URL

__all__ = [
    "EVENT_GRID_MAX_BYTES",
    "EVENT_GRID_MAX_EVENTS",
    "ROOT",
    "STORM_SAMPLE",
    "batches",
    "copies",
    "first_brief_items",
    "mixed_events",
    "pipeline_settings",
    "sample_items",
    "up_to_bytes",
]

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
EVENT_GRID_MAX_EVENTS = 5_000
EVENT_GRID_MAX_BYTES = 1_048_576
STORM_SAMPLE = "callbacks/play-failed-400-8535.json"
_VALIDATION = "Microsoft.EventGrid.SubscriptionValidationEvent"


def _key(item: dict[str, Any], name: str) -> str:
    """The item's own spelling of an envelope key (samples use `id`, a few clients `Id`)."""
    return next((k for k in item if k.lower() == name), name)


def _type(item: dict[str, Any]) -> str:
    return str(item.get(_key(item, "type")) or item.get(_key(item, "eventtype")) or "")


def sample_items(name: str | None = None) -> list[dict[str, Any]]:
    """The events of one sample file, or of every sample but the subscription handshake
    (a batch that holds it is answered as a handshake, not run through the pipeline)."""
    paths = [SAMPLES / name] if name else sorted(SAMPLES.rglob("*.json"))
    items: list[dict[str, Any]] = []
    for path in paths:
        doc = orjson.loads(path.read_bytes())
        for item in doc if isinstance(doc, list) else [doc]:
            if isinstance(item, dict) and _type(item) != _VALIDATION:
                items.append(item)
    return items


# Kinds read since the third wave; the batch of the first brief had none of them.
_LATER_KINDS = (
    "CallEnded",
    "EmailDeliveryReportReceived",
    "AdvancedMessageDeliveryStatusUpdated",
    "RouterJob",
)


def first_brief_items() -> list[dict[str, Any]]:
    """The samples of the kinds the first brief named (Call Automation callbacks, SMS delivery
    reports, Event Grid's own events): a 1 MB batch of them is the one issue 25 timed, 1,155
    events, so the Azure rows stay comparable with its figures as samples of new kinds arrive."""
    later = tuple(f"Microsoft.Communication.{kind}" for kind in _LATER_KINDS)
    return [item for item in sample_items() if not _type(item).startswith(later)]


def _numbered(items: list[dict[str, Any]], start: int = 0) -> Iterator[dict[str, Any]]:
    """The items round-robin, forever, each copy with a new id (dedup must not drop them)."""
    n = start
    while True:
        item = dict(items[n % len(items)])
        key = _key(item, "id")
        item[key] = f"{item.get(key, 'event')}-{n:06d}"
        yield item
        n += 1


def mixed_events(count: int) -> list[dict[str, Any]]:
    """`count` events cycling through every sample type (failures, successes, other events)."""
    stream = _numbered(sample_items())
    return [next(stream) for _ in range(count)]


def copies(name: str, count: int) -> list[dict[str, Any]]:
    """`count` copies of the first event of one sample file, each with its own id."""
    stream = _numbered(sample_items(name)[:1])
    return [next(stream) for _ in range(count)]


def up_to_bytes(limit: int, items: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """As many events (cycling through `items`, default: every sample) as fit in a `limit`-byte JSON array."""
    stream = _numbered(items or sample_items())
    out: list[dict[str, Any]] = []
    size = 2  # the brackets
    while True:
        item = next(stream)
        grown = size + len(orjson.dumps(item)) + (1 if out else 0)
        if grown > limit:
            return out
        out.append(item)
        size = grown


def batches(
    items: list[dict[str, Any]],
    max_bytes: int = EVENT_GRID_MAX_BYTES,
    max_events: int = EVENT_GRID_MAX_EVENTS,
) -> list[bytes]:
    """Split events into JSON bodies within Event Grid's batch limits, in order."""
    bodies: list[bytes] = []
    current: list[bytes] = []
    size = 2
    for item in items:
        encoded = orjson.dumps(item)
        if current and (size + len(encoded) + 1 > max_bytes or len(current) >= max_events):
            bodies.append(b"[" + b",".join(current) + b"]")
            current, size = [], 2
        current.append(encoded)
        size += len(encoded) + (1 if len(current) > 1 else 0)
    if current:
        bodies.append(b"[" + b",".join(current) + b"]")
    return bodies


def pipeline_settings(
    group_window_seconds: int = 300, max_body_bytes: int = EVENT_GRID_MAX_BYTES
) -> Settings:
    """Settings as a real run has them: a Teams and a Slack destination, so every alert is rendered twice."""
    return Settings.from_env(
        {
            "ACS_TRIAGE_TEAMS_URL": TEAMS_URL,
            "ACS_TRIAGE_SLACK_URL": SLACK_URL,
            "ACS_TRIAGE_GROUP_WINDOW_SECONDS": str(group_window_seconds),
            "ACS_TRIAGE_MAX_BODY_BYTES": str(max_body_bytes),
        }
    )
