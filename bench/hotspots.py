"""Where the request path spends its time: cProfile of one batch on a warm process
(`python -m bench --profile`). The profiler slows everything down; read shares, not speeds."""

from __future__ import annotations

import cProfile
import io
import pstats

import orjson

from .corpus import mixed_events, pipeline_settings
from .throughput import request_call

__all__ = ["profile"]


def profile(events: int, *, group_window_seconds: int = 300, top: int = 25) -> str:
    """The `top` functions by own time and by cumulative time for one batch of `events` mixed events."""
    body = orjson.dumps(mixed_events(events))
    settings = pipeline_settings(group_window_seconds, max_body_bytes=max(len(body), 1_048_576))
    request_call(settings, body)()  # warm-up: catalog, caches, lazy imports
    run = request_call(settings, body)
    profiler = cProfile.Profile()
    profiler.enable()
    run()
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.strip_dirs()
    out.write(f"== {events:,} mixed events, grouping window {group_window_seconds} s: by own time ==\n")
    stats.sort_stats("tottime").print_stats(top)
    out.write("== by cumulative time ==\n")
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()
