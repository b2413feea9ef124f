"""Timing in turns: every contender runs once per round, so a noisy moment hits all of them."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Mapping

from .figures import Samples

__all__ = ["Prepare", "in_turns", "per_call"]

# Builds untimed state (a fresh store, say) and returns the call to time.
Prepare = Callable[[], Callable[[], object]]


def in_turns(contenders: Mapping[str, Prepare], repeat: int) -> dict[str, Samples]:
    """Seconds per run of each contender, `repeat` rounds, each round running all of them once.
    The garbage collector stays on (the real process has it) but starts every run empty."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeat):
        for name, prepare in contenders.items():
            run = prepare()
            gc.collect()
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: Samples(tuple(values)) for name, values in times.items()}


def per_call(
    contenders: Mapping[str, Callable[[], object]], calls: int, rounds: int = 5
) -> dict[str, Samples]:
    """Seconds of each single call (for percentiles), `calls` in all, spread over `rounds` turns."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    clock = time.perf_counter_ns
    chunk = max(1, calls // rounds)
    for _ in range(rounds):
        for name, call in contenders.items():
            out = times[name]
            for _ in range(chunk):
                start = clock()
                call()
                out.append((clock() - start) / 1e9)
    return {name: Samples(tuple(values)) for name, values in times.items()}
