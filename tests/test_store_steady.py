"""A store in steady state holds no more than its work needs: SQLite keeps one connection per
running thread (a server that starts a thread per request opens no more files as it goes), and
expired dedup keys are purged at least as fast as they arrive."""

from __future__ import annotations

import gc
import os
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from factories import T0

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
