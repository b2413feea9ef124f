"""`python -m bench --only soak`: `python -m triage serve` under a steady load, on SQLite and
on Azure (an Azurite started here), for a few minutes (`--quick`: half a minute each).

A client opens ten bursts (their first alerts go out first), then posts Event Grid batches of
SMS failures over them at a steady rate (their digests flow at every timer run, each minute;
the window is 30 s), and every few seconds one event of a fingerprint never seen before, whose
first alert is timed from its POST to its arrival at a Slack-like sink (1 message a second, as
Slack allows). The server's resident set
and open files are read from /proc while it runs; each request's time is taken by the client.
"""

from __future__ import annotations

import copy
import os
import re
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import requests

from tools.azurite import Azurite, run_azurite
from tools.sinks import SlackSink

from .corpus import sample_items
from .figures import Baseline, Figure, Samples
from .overhttp import serve

__all__ = ["Soak", "soak_figures"]

_SMS_FAILURE = "eventgrid/sms-delivery-failed-4007-opt-out.json"
_HEADERS = {"Content-Type": "application/json", "aeg-event-type": "Notification"}


@dataclass(frozen=True, slots=True)
class Soak:
    """What one soak measured."""

    store: str
    seconds: float
    events: int
    requests: Samples  # seconds per POST
    first_alerts: Samples  # seconds from a new fingerprint's POST to its alert at the sink
    first_alerts_missing: int  # new fingerprints whose alert had not arrived at the end
    rss_mib: list[tuple[float, float]]  # (seconds since start, resident set in MiB)
    open_files: list[tuple[float, int]]
    unavailable: list[str]  # 503 answers (each batch was posted again until it got a 200)

    @property
    def rss_slope(self) -> float:
        """MiB per minute: least squares over the second half (the first half warms up)."""
        points = self.rss_mib[len(self.rss_mib) // 2 :]
        if len(points) < 2:
            return 0.0
        mean_t = statistics.fmean(t for t, _ in points)
        mean_m = statistics.fmean(m for _, m in points)
        spread = sum((t - mean_t) ** 2 for t, _ in points)
        return 60 * sum((t - mean_t) * (m - mean_m) for t, m in points) / spread if spread else 0.0


def _failure(template: dict[str, Any], code: int, n: int) -> dict[str, Any]:
    event = copy.deepcopy(template)
    event["id"] = event["data"]["messageId"] = f"Outgoing_soak_{code}_{n:08d}"
    event["data"]["deliveryStatusDetails"] = f"ErrorCode: {code}. ErrorMessage: Message failed"
    return event


def _proc(pid: int) -> tuple[float, int]:
    """(resident set in MiB, open file descriptors) of a running process."""
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    rss = int(found.group(1)) / 1024 if found else 0.0
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def run(
    store: str,
    store_env: dict[str, str],
    seconds: float,
    *,
    rate: float = 50.0,
    batch: int = 25,
    fingerprints: int = 10,
    new_every: float = 4.0,
) -> Soak:
    """Soak `serve` on the store `store_env` configures for `seconds` at `rate` events/s."""
    [template] = sample_items(_SMS_FAILURE)[:1]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ACS_TRIAGE_")}
    clean.pop("AzureWebJobsStorage", None)
    with tempfile.TemporaryDirectory() as tmp, SlackSink() as sink:
        env = {
            **clean,
            **store_env,
            "ACS_TRIAGE_SLACK_URL": sink.url,
            "ACS_TRIAGE_GROUP_WINDOW_SECONDS": "30",
        }
        with serve(env, Path(tmp) / "serve.log", start_within=60) as (process, url):
            session = requests.Session()
            # Open every steady burst first and let its first alert through (1 a second), so
            # that what is timed is a new fingerprint's alert among the steady ones' digests.
            opening = [_failure(template, 5000 + i, -1 - i) for i in range(fingerprints)]
            session.post(url, data=orjson.dumps(opening), headers=_HEADERS, timeout=60).raise_for_status()
            deadline = time.monotonic() + fingerprints * 2 + 10
            while len([m for m in sink.received if 200 <= m.status < 300]) < fingerprints:
                if time.monotonic() > deadline:
                    raise RuntimeError("the opening first alerts did not reach the sink")
                time.sleep(0.2)
            posted: dict[int, float] = {}  # a new fingerprint's code → when its event was posted
            times: list[float] = []
            unavailable: list[str] = []  # the 503 answers' reasons
            rss: list[tuple[float, float]] = []
            files: list[tuple[float, int]] = []
            start = time.monotonic()
            n = sent = 0
            next_new = start + 1.0
            next_sample = start
            interval = batch / rate
            while (now := time.monotonic()) - start < seconds:
                events = [_failure(template, 5000 + (n + i) % fingerprints, n + i) for i in range(batch)]
                n += batch
                fresh = 0
                if now >= next_new:
                    fresh = 9000 + len(posted)
                    events.append(_failure(template, fresh, n))
                    next_new += new_every
                began = time.monotonic()
                body = orjson.dumps(events)
                answer = session.post(url, data=body, headers=_HEADERS, timeout=60)
                times.append(time.monotonic() - began)
                for _ in range(10):  # a 503 is delivered again, as Event Grid does
                    if answer.status_code != 503:
                        break
                    unavailable.append(answer.text[:200])
                    time.sleep(1.0)
                    answer = session.post(url, data=body, headers=_HEADERS, timeout=60)
                if answer.status_code != 200:
                    log = (Path(tmp) / "serve.log").read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"serve answered {answer.status_code}: {answer.text[:200]}\n{log}")
                if fresh:
                    posted[fresh] = began
                sent += len(events)
                if now >= next_sample:
                    memory, fds = _proc(process.pid)
                    rss.append((now - start, memory))
                    files.append((now - start, fds))
                    next_sample += 5.0
                time.sleep(max(0.0, began + interval - time.monotonic()))
            # The last first alerts may be in the outbox still: give them a while.
            deadline = time.monotonic() + 30
            arrived: dict[int, float] = {}
            while time.monotonic() < deadline:
                for message in sink.received:
                    if 200 <= message.status < 300:
                        text = str((message.json or {}).get("text", ""))
                        for code in posted:
                            if code not in arrived and f" {code} on " in text and "× " not in text:
                                arrived[code] = message.at
                if len(arrived) == len(posted):
                    break
                time.sleep(0.5)
    delays = [arrived[code] - posted[code] for code in arrived]
    return Soak(
        store=store,
        seconds=seconds,
        events=sent,
        requests=Samples(tuple(times)),
        first_alerts=Samples(tuple(delays or [float("nan")])),
        first_alerts_missing=len(posted) - len(arrived),
        rss_mib=rss,
        open_files=files,
        unavailable=unavailable,
    )


def soak_figures(seconds: float) -> tuple[list[Figure], list[str]]:
    """The soak on SQLite and on Azure (Azurite): request p99, first-alert p99, RSS slope."""
    results: list[Soak] = []
    with tempfile.TemporaryDirectory() as tmp:
        results.append(run("sqlite", {"ACS_TRIAGE_STORE": f"sqlite:{Path(tmp) / 'soak.sqlite3'}"}, seconds))
        with run_azurite(Path(tmp) / "db", Path(tmp) / "azurite.log") as (pid, blob, queue, table):
            queue_name, prefix = Azurite.names()
            azure = {
                "ACS_TRIAGE_STORE": "azure",
                "AzureWebJobsStorage": Azurite(pid, blob, queue, table).connection,
                "ACS_TRIAGE_OUTBOX_QUEUE": queue_name,
                "ACS_TRIAGE_TABLE_PREFIX": prefix,
            }
            results.append(run("azure", azure, seconds))
    figures: list[Figure] = []
    details: list[str] = []
    for s in results:
        how = f"{s.seconds:.0f} s, {s.events:,} events, {len(s.requests.values)} requests"
        figures += [
            Figure(
                f"soak ({s.store}): request p99",
                s.requests.percentile(99) * 1000,
                "ms",
                (
                    Baseline(
                        "p50",
                        s.requests.percentile(50) * 1000,
                        s.requests.percentile(99) / s.requests.percentile(50),
                        "× p50",
                    ),
                ),
                how=how,
            ),
            Figure(
                f"soak ({s.store}): POST → first alert at the sink, p99",
                s.first_alerts.percentile(99),
                "s",
                (
                    Baseline(
                        "p50",
                        s.first_alerts.percentile(50),
                        s.first_alerts.percentile(99) / s.first_alerts.percentile(50),
                        "× p50",
                    ),
                ),
                target="≤ 2 s",
                met=s.first_alerts.percentile(99) <= 2.0 and not s.first_alerts_missing,
                how=f"{len(s.first_alerts.values)} new fingerprints ({s.first_alerts_missing} not arrived); "
                "Slack-like sink, 1 message/s",
            ),
        ]
        start_rss, end_rss = s.rss_mib[0][1], s.rss_mib[-1][1]
        details.append(
            f"soak ({s.store}): RSS {start_rss:.1f} → {end_rss:.1f} MiB, slope over the second half "
            f"{s.rss_slope:+.2f} MiB/min; open files {s.open_files[0][1]} → {s.open_files[-1][1]} "
            f"(max {max(f for _, f in s.open_files)}); requests p50 "
            f"{s.requests.percentile(50) * 1000:.0f} ms, p99 {s.requests.percentile(99) * 1000:.0f} ms; "
            f"{len(s.unavailable)} answered 503 (posted again)"
            + (f": {s.unavailable[0]}" if s.unavailable else "")
        )
    return figures, details
