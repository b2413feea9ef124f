"""The cyclic garbage collector pauses while a request runs.

A batch is thousands of short-lived objects without reference cycles (parsed JSON, events,
candidates): reference counting frees them as the request goes. The cyclic collector runs on
allocation counts, not on need: during a 5,000-event batch it ran several times, each time
walking every live object, the batch included, so its share grew with the batch (measured with
`./dev bench`: about a third of a batch, and a cost per event that rose with the batch size).
Paused for the request, it resumes when the last concurrent request ends and collects whatever
cycles were made meanwhile then. When requests overlap without a gap for `longest` seconds, the
request that ends collects once, so a busy instance never goes without collection for long.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["GcPause", "paused"]


class GcPause:
    """Counts the requests running; the collector is off while there is one (if it was on)."""

    def __init__(self, longest: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.longest = longest
        self._clock = clock
        self._lock = threading.Lock()
        self._running = 0
        self._resume = False
        self._since = 0.0

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._running == 0:
                self._resume = gc.isenabled()  # never turn on a collector the host turned off
                self._since = self._clock()
                gc.disable()
            self._running += 1
        try:
            yield
        finally:
            collect = False
            with self._lock:
                self._running -= 1
                if self._running == 0:
                    if self._resume:
                        gc.enable()
                elif self._resume and self._clock() - self._since >= self.longest:
                    self._since = self._clock()
                    collect = True
            if collect:
                gc.collect()


paused = GcPause()
