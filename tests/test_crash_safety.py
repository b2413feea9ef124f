"""A killed process loses no event: `python -m triage serve` is SIGKILLed mid-storm at several
points (right after a dedup claim, after a burst count, after an outbox write, and at a random
moment), restarted on the same store, and every batch that got no 2xx is posted again, as Event
Grid does. In the end the alerts' counts add up to every event, and no fingerprint alerted twice.

The child runs through tests/crashing_serve.py, which only wraps the store's methods to kill
itself; the outbox is read here, after a final flush of the digests.
"""

from __future__ import annotations

import os
import random
import re
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
import requests
from azurite_server import Azurite
from test_delivery_faults import sms_failures
from test_storm import count_in

from triage.clock import utcnow
from triage.pipeline import Triage
from triage.settings import Settings
from triage.store import OutboxMessage, Store, open_configured

ROOT = Path(__file__).resolve().parent.parent
WRAPPER = Path(__file__).resolve().parent / "crashing_serve.py"
CODES = (4004, 4006, 4007, 4010)  # four fingerprints
PER_CODE = 600
BATCH = 100
# One life of the server each: where it kills itself; "random": the test kills it at a random
# moment; "": it runs to the end. The first batch opens every group (four alerts written), so
# that is where an outbox write can be cut short; later lives die at later batches.
LIVES = ("enqueue:2", "claim:3", "hit_many:2", "random", "")
LEASE_SECONDS = 2


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def storm() -> list[bytes]:
    """PER_CODE SMS failures of each code, interleaved, in Event Grid batches of BATCH."""
    events = [e for code in CODES for e in sms_failures(PER_CODE, code=code)]
    random.Random(11).shuffle(events)
    return [orjson.dumps(events[i : i + BATCH]) for i in range(0, len(events), BATCH)]


def start(env: dict[str, str], crash: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start the server (crashing at `crash`) and wait until it listens: (process, URL)."""
    port = free_port()
    child_env = {**env, "CRASH_AT": "" if crash == "random" else crash}
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, str(WRAPPER), "--port", str(port)], cwd=ROOT, env=child_env,
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return process, f"http://127.0.0.1:{port}/api/eventgrid"
        assert process.poll() is None, log.read_text(errors="replace")[-2000:]
        assert time.monotonic() < deadline, "serve did not start listening"
        time.sleep(0.05)


def post_until_every_batch_succeeds(
    env: dict[str, str],
    batches: list[bytes],
    log: Path,
    lives_planned: Sequence[str] = LIVES,
    pace: float = 0.0,
) -> list[int]:
    """Post every batch (`pace` seconds apart), restarting the server whenever it died and
    posting again what got no 2xx (Event Grid's retry); returns each life's exit code."""
    pending = list(range(len(batches)))
    lives = iter(lives_planned)
    exits: list[int] = []
    rng = random.Random(7)
    headers = {"Content-Type": "application/json", "aeg-event-type": "Notification"}
    while pending:
        crash = next(lives, "")
        process, url = start(env, crash, log)
        if crash == "random":
            threading.Timer(rng.uniform(0.05, 0.4), process.kill).start()
        while pending and process.poll() is None:
            index = pending[0]
            try:
                answer = requests.post(url, data=batches[index], headers=headers, timeout=60)
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
                # Killed mid-request, or while its answer was being written (cut off): no 2xx,
                # so Event Grid delivers the batch again.
                break
            if answer.status_code // 100 == 2:
                pending.pop(0)
                time.sleep(pace)
            else:
                assert answer.status_code == 503, answer.text  # storage busy: retried later
                time.sleep(0.2)
        if pending or crash == "random":
            exits.append(process.wait(timeout=30))
        else:
            process.kill()
            process.wait(timeout=30)
    return exits


def alerts_after_flush(store: Store, settings: Settings, days: int = 1) -> list[OutboxMessage]:
    """Flush every digest (a day later, every window has ended; on a second day every burst
    has been quiet for a window, so it resolves) and read the whole outbox."""
    for day in range(1, days + 1):
        Triage(settings, store).flush(utcnow() + timedelta(days=day))
    messages: list[OutboxMessage] = []
    while leases := store.poll(settings.outbox_queue, 32):
        messages += [lease.message for lease in leases]
    return messages


def run_storm(
    env: dict[str, str],
    tmp_path: Path,
    *,
    batches: list[bytes] | None = None,
    lives: Sequence[str] = LIVES,
    days: int = 1,
    pace: float = 0.0,
) -> tuple[list[int], list[OutboxMessage]]:
    exits = post_until_every_batch_succeeds(env, batches or storm(), tmp_path / "serve.log", lives, pace)
    settings = Settings.from_env(env)
    store = open_configured(settings)  # the store, queue and tables `serve` used
    try:
        return exits, alerts_after_flush(store, settings, days)
    finally:
        store.close()


def base_env() -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ACS_TRIAGE_")}
    clean["ACS_TRIAGE_LOCAL_SETTINGS"] = ""  # never a developer's local.settings.json
    clean.pop("AzureWebJobsStorage", None)
    # Rendered for Slack; never posted (the crashing server does not deliver).
    return {**clean, "ACS_TRIAGE_SLACK_URL": "http://127.0.0.1:9/services/T0/B0/never-posted"}


def immediate_alerts(messages: list[OutboxMessage]) -> Counter[str]:
    """Alerts that are not digests, per fingerprint (a digest's text starts with its count)."""
    return Counter(m.fingerprint for m in messages if "× " not in str(m.payload["text"]))


def test_a_sqlite_server_killed_at_any_point_mid_storm_counts_every_event_exactly_once(
    tmp_path: Path,
) -> None:
    env = {**base_env(), "ACS_TRIAGE_STORE": f"sqlite:{tmp_path / 'acs-triage.sqlite3'}"}

    exits, messages = run_storm(env, tmp_path)

    assert exits == [-9, -9, -9, -9]  # each crash point was reached, and the random kill struck
    assert sum(count_in(m.payload) for m in messages) == len(CODES) * PER_CODE
    assert immediate_alerts(messages) == {f: 1 for f in {m.fingerprint for m in messages}}
    assert len({m.fingerprint for m in messages}) == len(CODES)


def per_fingerprint(messages: list[OutboxMessage]) -> Counter[str]:
    """Events each fingerprint's alerts report (an immediate alert reports one)."""
    counted: Counter[str] = Counter()
    for m in messages:
        counted[m.fingerprint] += count_in(m.payload)
    return counted


def azure_env(azurite: Azurite) -> dict[str, str]:
    queue_name, table_prefix = azurite.names()
    return {
        **base_env(),
        "ACS_TRIAGE_STORE": "azure",
        "AzureWebJobsStorage": azurite.connection,
        "ACS_TRIAGE_OUTBOX_QUEUE": queue_name,
        "ACS_TRIAGE_TABLE_PREFIX": table_prefix,
        # A crashed delivery's claims are taken over once this has passed (300 s in production).
        "ACS_TRIAGE_CLAIM_LEASE_SECONDS": str(LEASE_SECONDS),
    }


@pytest.mark.azurite
def test_an_azure_server_killed_at_any_point_mid_storm_counts_every_event_once_and_alerts_none_twice(
    tmp_path: Path, azurite: Azurite
) -> None:
    exits, messages = run_storm(azure_env(azurite), tmp_path, days=2)

    assert exits == [-9, -9, -9, -9]
    assert_counted_once(messages, PER_CODE, len(CODES))
    firing = [m for m in messages if not is_resolved(m)]
    assert all(n <= 1 for n in immediate_alerts(firing).values())  # none alerted twice


def assert_counted_once(messages: list[OutboxMessage], per_code: int, codes: int) -> None:
    """Azure after crashes: every fingerprint's first alerts and digests report each event
    once, but for one case: a burst that a unit which died had opened also reports its first
    event in a digest (that unit's first alert may have been cut off, or not), so a
    fingerprint counts at most one more per first alert of its own. The resolved notices'
    totals are exact. A message written again after a crash (a digest or notice handed out
    again) has the same id, and the deliverer posts an id once: counted once here."""
    unique = list({m.id: m for m in messages}.values())
    firsts = immediate_alerts([m for m in unique if not is_resolved(m)])
    reported = per_fingerprint([m for m in unique if not is_resolved(m)])
    assert len(reported) == codes
    counted_twice = {f: n for f, n in reported.items() if not per_code <= n <= per_code + firsts[f]}
    assert not counted_twice, (counted_twice, firsts)
    totals = resolved_totals(unique)
    assert totals == dict.fromkeys(reported, per_code), {f: n for f, n in totals.items() if n != per_code}


# -- kills during the digest flush -----------------------------------------------------------------
# Many small bursts posted 0.1 s apart, a 1 s window and the timer every 0.25 s: digests and
# resolved notices are flushed all the time, and the server dies inside a flush: after the due
# groups were taken and before any digest was written (take_due), after some of a flush's
# digests were written (timer.enqueue), before what the flush took is marked written (Azure's
# settle), and twice at a random moment.
FLUSH_CODES = tuple(range(4100, 4160))  # sixty fingerprints
FLUSH_PER_CODE = 30
FLUSH_BATCH = 20
PACE = 0.1
FLUSH_LIVES = (
    "take_due:2",
    "timer.enqueue:3",
    "before._settle_taken:2",
    "take_due:4",
    "random",
    "random",
    "",
)
_EVENTS = re.compile(r"(\d[\d,]*) events?")


def small_bursts() -> list[bytes]:
    events = [e for code in FLUSH_CODES for e in sms_failures(FLUSH_PER_CODE, code=code)]
    random.Random(5).shuffle(events)
    return [orjson.dumps(events[i : i + FLUSH_BATCH]) for i in range(0, len(events), FLUSH_BATCH)]


def flush_env(env: dict[str, str]) -> dict[str, str]:
    return {**env, "ACS_TRIAGE_GROUP_WINDOW_SECONDS": "1", "TIMER_SECONDS": "0.25"}


def is_resolved(message: OutboxMessage) -> bool:
    return str(message.payload["text"]).startswith("Resolved")


def assert_every_event_reported(messages: list[OutboxMessage]) -> None:
    """Every event in a first alert or a digest; no event first-alerted twice; the resolved
    notices' totals add up to what was posted (once each: a notice written again after a
    crash is the same message, under the same id)."""
    reported = per_fingerprint([m for m in messages if not is_resolved(m)])
    assert len(reported) == len(FLUSH_CODES)
    short = {f for f, n in reported.items() if n < FLUSH_PER_CODE}
    assert not short, [(m.id[:8], m.payload["text"]) for m in messages if m.fingerprint in short]
    firsts = Counter(m.id for m in messages if not is_resolved(m) and "× " not in str(m.payload["text"]))
    assert all(n == 1 for n in firsts.values())  # an event's first alert is one message, written once
    resolved = resolved_totals(messages)
    assert len(resolved) == len(FLUSH_CODES)
    assert set(resolved.values()) == {FLUSH_PER_CODE}, resolved


def resolved_totals(messages: list[OutboxMessage]) -> Counter[str]:
    """Events the resolved notices report, per fingerprint (a notice written twice: once)."""
    resolved: Counter[str] = Counter()
    for m in {m.id: m for m in messages if is_resolved(m)}.values():
        found = _EVENTS.search(str(m.payload["text"]))
        assert found is not None, m.payload
        resolved[m.fingerprint] += int(found.group(1).replace(",", ""))
    return resolved


def test_a_sqlite_server_killed_during_digest_flushes_loses_no_count(tmp_path: Path) -> None:
    env = flush_env({**base_env(), "ACS_TRIAGE_STORE": f"sqlite:{tmp_path / 'acs-triage.sqlite3'}"})
    lives = [life for life in FLUSH_LIVES if "_settle_taken" not in life]  # SQLite writes in one go

    exits, messages = run_storm(env, tmp_path, batches=small_bursts(), lives=lives, days=2, pace=PACE)

    assert exits == [-9] * (len(lives) - 1)
    assert_every_event_reported(messages)


@pytest.mark.azurite
def test_an_azure_server_killed_during_digest_flushes_loses_no_count_and_counts_none_twice(
    tmp_path: Path, azurite: Azurite
) -> None:
    env = flush_env(azure_env(azurite))

    exits, messages = run_storm(env, tmp_path, batches=small_bursts(), lives=FLUSH_LIVES, days=2, pace=PACE)

    assert exits == [-9] * (len(FLUSH_LIVES) - 1)
    assert_every_event_reported(messages)
    assert_counted_once(messages, FLUSH_PER_CODE, len(FLUSH_CODES))
