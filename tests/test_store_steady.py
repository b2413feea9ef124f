"""A store in steady state holds no more than its work needs: SQLite keeps one connection per
running thread (a server that starts a thread per request opens no more files as it goes); the
Azure store's clients share one connection pool sized to the threads that use it; and every
flush purges expired dedup keys (bench/azure.py measures the rate against 200 events/s)."""

from __future__ import annotations

import gc
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from factories import T0

from triage.store import Claim
from triage.store.sqlite import SqliteStore

TTL = timedelta(hours=48)


def open_files_under(folder: Path) -> int:
    """This process's open file descriptors on files in `folder`."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith(str(folder))
        except OSError:
            continue  # closed meanwhile
    return count


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="reads /proc (Linux)")
def test_a_sqlite_store_used_by_a_new_thread_per_request_keeps_no_file_of_ended_threads(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "acs-triage.sqlite3")
    baseline = open_files_under(tmp_path)  # this thread's connection: the file, its WAL, its index

    def request(n: int) -> None:
        store.claim([f"eg|{n}"], T0, TTL)

    for n in range(300):
        thread = threading.Thread(target=request, args=(n,))
        thread.start()
        thread.join()
    gc.collect()

    # SQLite may keep one closed connection's descriptor while another holds a lock (POSIX
    # locks are per process): one more at most, not one per thread that ever ran.
    assert open_files_under(tmp_path) <= baseline + 1
    assert store.claim([f"eg|{n}" for n in range(300)], T0, TTL) == store.claim(["eg|0"] * 300, T0, TTL)
    store.close()
    assert open_files_under(tmp_path) == 0


@pytest.mark.azurite
def test_many_threads_at_once_share_the_azure_stores_connections_without_dropping_any(
    azure_store: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    store = azure_store()
    store.claim(["warm"], T0, TTL)  # tables and queue created

    def request(n: int) -> None:
        with store.unit():
            store.claim([f"eg|{n}-{k}" for k in range(40)], T0, TTL)  # 16 partitions, in parallel
            store.add_hourly(T0, {f"fingerprint-{n}": 1})

    with caplog.at_level(logging.WARNING, logger="urllib3"), ThreadPoolExecutor(24) as pool:
        list(pool.map(request, range(96)))

    assert not [r for r in caplog.records if "Connection pool is full" in r.getMessage()]


@pytest.mark.azurite
def test_a_flush_purges_expired_dedup_keys_beside_itself(azure_store: Callable[..., Any]) -> None:
    store = azure_store()
    keys = [f"eg|{n}" for n in range(600)]
    store.claim(keys, T0, timedelta(hours=24))
    later = T0 + timedelta(hours=25)

    assert store.take_due(later) == []  # nothing due; the purge starts beside it
    store.close()  # waits for the purge under way

    fresh = azure_store()
    assert fresh.purge_expired(later) == 0  # nothing was left to purge
    assert fresh.claim(keys[:3], later, TTL) == [Claim.NEW] * 3
