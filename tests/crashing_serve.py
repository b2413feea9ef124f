"""`python -m triage serve` that kills itself (SIGKILL) at a chosen point, for the crash tests.

    python tests/crashing_serve.py --port N            (arguments as `python -m triage serve`)
    CRASH_AT=claim:3   SIGKILL right after the 3rd dedup claim returned (hit:N, enqueue:N alike)
    CRASH_AT=          no crash of its own (the test may still kill it)
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools.localhost import LocalHost
from triage.cli import main
from triage.store.azure import AzureStore
from triage.store.memory import MemoryStore
from triage.store.sqlite import SqliteStore


def crash_after(method: str, nth: int) -> None:
    """Make every store's `method` SIGKILL this process once it has returned `nth` times."""
    calls = 0

    def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            result = original(*args, **kwargs)
            calls += 1
            if calls >= nth:
                os.kill(os.getpid(), signal.SIGKILL)
            return result

        return wrapper

    for store in (SqliteStore, AzureStore, MemoryStore):
        setattr(store, method, wrap(getattr(store, method)))


def no_delivery(self: LocalHost, store: Any, max_messages: int = 32) -> tuple[int, int]:
    """The queue trigger left out: alerts stay in the outbox for the test to read."""
    return 0, 0


if __name__ == "__main__":
    point = os.environ.get("CRASH_AT", "")
    if point:
        method, _, nth = point.partition(":")
        crash_after(method, int(nth))
    if not os.environ.get("CRASH_DELIVERS"):
        LocalHost.run_queue = no_delivery  # type: ignore[method-assign]
    sys.exit(main(["serve", *sys.argv[1:]]))
