"""`serve` over HTTP: process CPU per 5,000-event batch, against a standard-library server that
only json.loads the body (`bench/stdlib_server.py`), both real processes on loopback, posted to
in turns in the same run. CPU time, not wall time: it is what a Function App instance pays, and
it does not count the other processes of a shared machine. Read from /proc (Linux), in clock
ticks, so ten batches are posted per measurement.

`serve` keeps its store between batches, as a running instance does: the first (untimed) batch
opens a group per fingerprint and alerts; the timed batches, each with fresh event ids, are
counted into those groups. Its delivery thread posts the alerts to two local sinks (Slack- and
Teams-like, no rate limit) at the kinds' own pace; that CPU is counted too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import requests

from tools.processes import stop
from tools.sinks import SlackSink, TeamsSink

from .corpus import _numbered, sample_items
from .figures import Baseline, Figure

__all__ = ["http_figures"]

ROOT = Path(__file__).resolve().parent.parent
_HEADERS = {"Content-Type": "application/json", "aeg-event-type": "Notification"}


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (Linux /proc; clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_port(
    port: int, process: subprocess.Popen[bytes], within: float = 30.0, log: Path | None = None
) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            requests.get(f"http://127.0.0.1:{port}/", timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.05)
    said = f": {log.read_text(errors='replace')[-2000:]}" if log else ""
    raise RuntimeError(f"the server did not listen within {within:.0f} s (exit {process.poll()}){said}")


@contextmanager
def serve(
    env: dict[str, str], log: Path | None = None, start_within: float = 30.0
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`python -m triage serve` on a free port: (process, the Event Grid route's URL). Its output
    goes to `log` (appended; else nowhere), whose end is in the error if it does not start."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with log.open("ab") if log else open(os.devnull, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "triage", "serve", "--port", str(port)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        _wait_port(port, process, start_within, log)
        yield process, f"http://127.0.0.1:{port}/api/eventgrid"
    finally:
        stop(process, grace=15)


@contextmanager
def _stdlib_server() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.stdlib_server"], cwd=ROOT, stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        _wait_port(port, process)
        yield process, f"http://127.0.0.1:{port}/"
    finally:
        process.terminate()
        process.wait(timeout=30)


def _cpu_per_batch(pid: int, url: str, bodies: list[bytes]) -> float:
    with requests.Session() as session:
        before = _cpu_seconds(pid)
        for body in bodies:
            answer = session.post(url, data=body, headers=_HEADERS, timeout=120)
            answer.raise_for_status()
        return (_cpu_seconds(pid) - before) / len(bodies)


def http_figures(events: int = 5_000, rounds: int = 5, per_round: int = 10) -> tuple[list[Figure], list[str]]:
    """CPU seconds per batch of `events` for serve and for the stdlib baseline, best of `rounds`.
    A round posts `per_round` batches to each: CPU is read in 10 ms clock ticks, and the baseline
    spends about 30 ms per batch, so fewer batches would leave it a few ticks, ±10% per round."""
    stream = _numbered(sample_items())

    def batches(count: int) -> list[bytes]:  # fresh event ids each: never dropped as duplicates
        return [orjson.dumps([next(stream) for _ in range(events)]) for _ in range(count)]

    (first,) = batches(1)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ACS_TRIAGE_")}
    clean["ACS_TRIAGE_LOCAL_SETTINGS"] = ""  # never a developer's local.settings.json
    with (
        SlackSink(rate_limit=False) as slack,
        TeamsSink(rate_limit=False) as teams,
    ):
        env = {
            **clean,
            "ACS_TRIAGE_SLACK_URL": slack.url,
            "ACS_TRIAGE_TEAMS_URL": teams.url,
            "ACS_TRIAGE_MAX_BODY_BYTES": str(2 * len(first)),  # same events, other ids: about as long
            "ACS_TRIAGE_GROUP_WINDOW_SECONDS": "300",
        }
        with serve(env) as (ours, ours_url), _stdlib_server() as (floor, floor_url):
            _cpu_per_batch(ours.pid, ours_url, [first])  # opens the groups, loads the catalog
            _cpu_per_batch(floor.pid, floor_url, [first])
            serve_cpu: list[float] = []
            floor_cpu: list[float] = []
            for _ in range(rounds):
                timed = batches(per_round)  # made between rounds: not counted in either's CPU
                floor_cpu.append(_cpu_per_batch(floor.pid, floor_url, timed))
                serve_cpu.append(_cpu_per_batch(ours.pid, ours_url, timed))
    best, base = min(serve_cpu), min(floor_cpu)
    ratio = best / base if base else float("inf")
    size = len(first) / 1e6
    figure = Figure(
        f"serve over HTTP, CPU per {events:,}-event batch",
        best * 1e3,
        "ms",
        (Baseline("stdlib server + json.loads", base * 1e3, ratio, "× its CPU"),),
        target="≤ 2.5×",
        met=ratio <= 2.5,
        how=f"best of {rounds} rounds of {per_round} batches ({size:.2f} MB each), process CPU from /proc; "
        "serve keeps its store (groups open after the first batch)",
    )
    return [figure], []
