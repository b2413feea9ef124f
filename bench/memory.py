"""Peak memory of one 1 MB batch through the request path, against json.loads of the same body.

tracemalloc counts what Python allocates during the call (the parsed events, typed models,
incidents, rendered payloads, the outbox, the answer), on a warm process: an untimed first run
loads the catalog and fills its cache, which are paid once per worker, not per batch. The RSS
figure is the growth of the peak resident size during the call, in a fresh process warmed up on a
small batch (`bench.child rss`): it also sees what tracemalloc cannot (orjson's own buffers,
allocator slack), and it is lower than the tracemalloc peak when freed memory is reused.
"""

from __future__ import annotations

import gc
import json
import tempfile
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson

from .coldstart import run_child
from .corpus import pipeline_settings, up_to_bytes
from .figures import Baseline, Figure
from .throughput import request_call

__all__ = ["Memory", "measure", "memory_figures"]


@dataclass(frozen=True, slots=True)
class Memory:
    """Peak bytes of the pipeline and of json.loads for one body; RSS growth in KB when measured."""

    events: int
    body_bytes: int
    pipeline_peak: int
    json_peak: int
    pipeline_rss_kb: int | None = None
    json_rss_kb: int | None = None


def _peak(call: Callable[[], object]) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        result = call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del result
    return peak


def measure(limit: int, *, rss: bool = True) -> Memory:
    """Peak memory for one batch of up to `limit` bytes of mixed events."""
    items = up_to_bytes(limit)
    body = orjson.dumps(items)
    settings = pipeline_settings(max_body_bytes=max(len(body), 1024))
    request_call(settings, body)()  # warm-up: the catalog and its cache are per worker, not per batch
    run = request_call(settings, body)  # a fresh store, made before tracing starts
    pipeline_peak = _peak(run)
    json_peak = _peak(lambda: json.loads(body))
    pipeline_rss = json_rss = None
    if rss:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "batch.json"
            path.write_bytes(body)
            answers = {mode: run_child("rss", mode, str(path)) for mode in ("pipeline", "json")}
        pipeline_rss = int(answers["pipeline"]["delta_kb"])
        json_rss = int(answers["json"]["delta_kb"])
    return Memory(len(items), len(body), pipeline_peak, json_peak, pipeline_rss, json_rss)


def memory_figures(limit: int, *, rss: bool = True) -> tuple[list[Figure], list[str]]:
    """tracemalloc peak (and RSS growth) of the pipeline vs json.loads, same body."""
    m = measure(limit, rss=rss)
    how = f"{m.events:,} mixed events, {m.body_bytes / 1e6:.2f} MB body"
    mb = 1024 * 1024
    figures = [
        Figure(
            f"peak memory (tracemalloc), {m.body_bytes / 1e6:.1f} MB batch",
            m.pipeline_peak / mb,
            "MB",
            (Baseline("json.loads", m.json_peak / mb, m.pipeline_peak / max(1, m.json_peak)),),
            how=how + "; warm worker",
        )
    ]
    if m.pipeline_rss_kb is not None and m.json_rss_kb is not None:
        rss_ratio = m.pipeline_rss_kb / max(1, m.json_rss_kb)
        figures.append(
            Figure(
                f"peak RSS growth, {m.body_bytes / 1e6:.1f} MB batch",
                m.pipeline_rss_kb / 1024,
                "MB",
                (Baseline("json.loads", m.json_rss_kb / 1024, rss_ratio),),
                target="≤ 1.5×",
                met=rss_ratio <= 1.5,
                how=how + "; fresh warm process each (VmHWM); the whole request, orjson's buffers too",
            )
        )
    return figures, []
