"""`python -m triage serve` that kills itself (SIGKILL) at a chosen point, for the crash tests.

    python tests/crashing_serve.py --port N            (arguments as `python -m triage serve`)
    CRASH_AT=claim:3   SIGKILL right after the 3rd dedup claim returned (hit:N, enqueue:N alike;
                       a call that returned an empty list does not count)
    CRASH_AT=timer.enqueue:3   the same, counting only the digest timer's calls (a flush)
    CRASH_AT=before._settle_taken:1   SIGKILL as the 1st call starts, before it does anything
    CRASH_AT=          no crash of its own (the test may still kill it)
    TIMER_SECONDS=0.5  how often the digest timer fires (serve's default: 60)
    CRASH_DELIVERS=1   keep the queue trigger (the outbox is delivered, as `serve` does)

The store's methods are wrapped here, in the test's process only; nothing in `triage/` knows.
The outbox is not drained (the queue trigger is left out), so that the test reads every alert
from the store itself instead of racing a deliverer for it.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools.localhost import LocalHost, LocalServer
from triage.cli import main
from triage.store.azure import AzureStore
from triage.store.memory import MemoryStore
from triage.store.sqlite import SqliteStore


def crash_after(point: str, nth: int) -> None:
    """Make every store's method named by `point` SIGKILL this process on its `nth` call:
    once it has returned, or with a `before.` prefix as it starts; with a `timer.` prefix
    counting only the calls made by the digest timer's thread."""
    method = point.rpartition(".")[2]
    before, timer_only = point.startswith("before."), point.startswith("timer.")
    calls = 0

    def counts(result: Any) -> bool:
        if timer_only and threading.current_thread().name != "localhost-timer":
            return False
        return not isinstance(result, list) or bool(result)

    def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            if before and counts(None):
                calls += 1
                if calls >= nth:
                    os.kill(os.getpid(), signal.SIGKILL)
            result = original(*args, **kwargs)
            if not before and counts(result):
                calls += 1
                if calls >= nth:
                    os.kill(os.getpid(), signal.SIGKILL)
            return result

        return wrapper

    for store in (SqliteStore, AzureStore, MemoryStore):
        if hasattr(store, method):
            setattr(store, method, wrap(getattr(store, method)))


def timer_every(seconds: float) -> None:
    """Fire the digest timer every `seconds` instead of every minute."""
    original = LocalServer.__init__

    @functools.wraps(original)
    def init(self: LocalServer, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.timer_seconds = seconds

    LocalServer.__init__ = init  # type: ignore[method-assign]


def no_delivery(self: LocalHost, store: Any, max_messages: int = 32) -> tuple[int, int]:
    """The queue trigger left out: alerts stay in the outbox for the test to read."""
    return 0, 0


if __name__ == "__main__":
    point = os.environ.get("CRASH_AT", "")
    if point:
        method, _, nth = point.partition(":")
        crash_after(method, int(nth))
    if os.environ.get("TIMER_SECONDS"):
        timer_every(float(os.environ["TIMER_SECONDS"]))
    if not os.environ.get("CRASH_DELIVERS"):
        LocalHost.run_queue = no_delivery  # type: ignore[method-assign]
    sys.exit(main(["serve", *sys.argv[1:]]))
