"""Cost per event as batches grow: 100, 1,000, 5,000 and 20,000 events through
`Service.handle_http`, each size timed on a warm Service whose groups are already open (the
first batch of a burst alerts and renders; this measures what every further event costs), each
next to json.loads of the same body. Flat means nothing in the path grows faster than the batch."""

from __future__ import annotations

import json
import time

import orjson

from triage.service import Service
from triage.store.memory import MemoryStore

from .corpus import _numbered, pipeline_settings, sample_items
from .figures import Baseline, Figure

__all__ = ["SIZES", "scaling_figures"]

SIZES = (100, 1_000, 5_000, 20_000)
_HEADERS = {"Content-Type": "application/json", "aeg-event-type": "Notification"}


def scaling_figures(sizes: tuple[int, ...] = SIZES, budget: int = 60_000) -> tuple[list[Figure], list[str]]:
    """µs per event at each size (best of as many runs as `budget` events allow, at least 3)."""
    stream = _numbered(sample_items())
    settings = pipeline_settings(max_body_bytes=64 << 20)
    warm = orjson.dumps([next(stream) for _ in range(1_000)])
    per_event: dict[int, tuple[float, float]] = {}
    for size in sizes:
        # A Service per size, so that no size inherits the dedup keys the others left in memory.
        service = Service(settings, MemoryStore())
        service.handle_http("eventgrid", "POST", _HEADERS, {}, warm)  # catalog loaded, groups open
        runs = max(3, budget // size)
        best = floor = float("inf")
        for _ in range(runs):
            body = orjson.dumps([next(stream) for _ in range(size)])  # fresh ids: no duplicates
            start = time.process_time()
            json.loads(body)
            floor = min(floor, time.process_time() - start)
            start = time.process_time()
            answer = service.handle_http("eventgrid", "POST", _HEADERS, {}, body)
            best = min(best, time.process_time() - start)
            if answer.status != 200:
                raise RuntimeError(f"the pipeline answered {answer.status}")
        per_event[size] = (best / size * 1e6, floor / size * 1e6)
    costs = [cost for cost, _ in per_event.values()]
    floors = [floor for _, floor in per_event.values()]
    spread, floor_spread = max(costs) / min(costs), max(floors) / min(floors)
    figures = [
        Figure(
            f"cost per event, batch of {size:,}",
            cost,
            "µs",
            (Baseline("json.loads", floor, cost / floor, "× json.loads time"),),
            target="flat within 1.5×" if size == sizes[-1] else "",
            met=spread <= 1.5 if size == sizes[-1] else None,
            how=f"process CPU, best of {max(3, budget // size)}; a warm Service per size, groups open"
            + (
                f"; largest / smallest cost per event: {spread:.2f}× (json.loads' own: {floor_spread:.2f}×)"
                if size == sizes[-1]
                else ""
            ),
        )
        for size, (cost, floor) in per_event.items()
    ]
    return figures, []
