"""Several workers sharing one store, as Function instances share Azure Storage (and as the
threads and processes of one machine share a SQLite file): every event is counted in exactly
one alert, however deliveries and flushes interleave.

Each worker has its own store object (its own connections) over the same state.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import datetime, timedelta
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import orjson
import pytest
from azurite_server import DURABLE_STORE_KINDS, Azurite
from factories import T0, make_incident
from test_delivery_faults import fixed_guidance, sms_failures

from triage.ingest import parse_body
from triage.model import Incident
from triage.pipeline import Triage
from triage.service import Service
from triage.settings import Settings
from triage.store import MAX_SAMPLES, open_store

EVENTS = 2_000
CODES = (4004, 4006, 4007, 4010, 5002)  # five fingerprints
WINDOW = timedelta(minutes=5)
SETTINGS = Settings(group_window_seconds=int(WINDOW.total_seconds()))  # no destinations: count only


def deliveries(seed: int, batch_size: int = 200) -> list[bytes]:
    """EVENTS SMS failures, each delivered twice, shuffled into Event Grid batches."""
    per_code = EVENTS // len(CODES)
    events = [e for code in CODES for e in sms_failures(per_code, code=code)]
    twice = events + events
    random.Random(seed).shuffle(twice)
    return [orjson.dumps(twice[i : i + batch_size]) for i in range(0, len(twice), batch_size)]


def run_batches(store: Any, batches: Sequence[bytes], now: datetime) -> tuple[int, int, int]:
    """Put batches through the pipeline: (alerted, grouped, duplicates). A batch with events
    another worker is still counting (Azure answers BUSY, the service a 503) is delivered
    again a moment later, whole, as Event Grid does."""
    triage = Triage(SETTINGS, store, lookup=fixed_guidance)
    alerted = grouped = duplicates = 0
    for n, body in enumerate(batches):
        envelope = parse_body(body, "application/json", 1 << 24)
        settled = 0  # events an earlier attempt at this batch settled: now its own duplicates
        while True:
            report = triage.handle(envelope.events, now + timedelta(seconds=n))
            assert report.recovered == 0  # nobody died here
            alerted, grouped, duplicates = (
                alerted + report.alerted, grouped + report.grouped,
                duplicates + report.duplicates - settled,
            )  # fmt: skip
            if not report.busy:
                break
            settled = report.alerted + report.grouped + report.duplicates  # all but the busy
            time.sleep(0.02)
    return alerted, grouped, duplicates


def run_batches_in_process(
    spec: str, options: dict[str, str], batches: list[bytes], now: str
) -> tuple[int, int, int]:
    """The same, in another process, on a store opened the way the app opens it."""
    store = open_store(spec, options.pop("connection", None), **options)
    try:
        return run_batches(store, batches, datetime.fromisoformat(now))
    finally:
        store.close()


def digests(store: Any, now: datetime) -> int:
    """Flush after the window: the number of occurrences the digests report."""
    report = Triage(SETTINGS, store, lookup=fixed_guidance).flush(now)
    return sum(alert.count for alert in report.alerts)


@pytest.mark.parametrize("kind", DURABLE_STORE_KINDS)
def test_the_same_events_delivered_twice_across_threads_are_counted_exactly_once(
    kind: str, make_store: Callable[[str], Any]
) -> None:
    batches = deliveries(seed=1)
    workers = 4
    stores = [make_store(kind) for _ in range(workers)]
    with ThreadPoolExecutor(workers) as pool:
        counts = list(pool.map(lambda w: run_batches(stores[w], batches[w::workers], T0), range(workers)))
    alerted, grouped, duplicates = (sum(column) for column in zip(*counts, strict=True))

    assert duplicates == EVENTS
    assert alerted == len(CODES)  # one immediate alert per fingerprint, whoever saw it first
    assert alerted + grouped == EVENTS
    assert digests(make_store(kind), T0 + timedelta(hours=1)) == grouped


@pytest.mark.parametrize("kind", DURABLE_STORE_KINDS)
def test_the_same_events_delivered_twice_across_processes_are_counted_exactly_once(
    kind: str, make_store: Callable[[str], Any], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    batches = deliveries(seed=2, batch_size=400)
    if kind == "sqlite":
        spec, options, flusher = f"sqlite:{tmp_path / 'acs-triage.sqlite3'}", {}, make_store("sqlite")
    else:
        azurite: Azurite = request.getfixturevalue("azurite")
        queue_name, table_prefix = azurite.names()
        spec = "azure"
        options = {"connection": azurite.connection, "queue_name": queue_name, "table_prefix": table_prefix}
        flusher = open_store(spec, azurite.connection, queue_name=queue_name, table_prefix=table_prefix)
    workers = 2
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        futures = [
            pool.submit(run_batches_in_process, spec, dict(options), batches[w::workers], T0.isoformat())
            for w in range(workers)
        ]
        counts = [future.result(timeout=300) for future in futures]
    alerted, grouped, duplicates = (sum(column) for column in zip(*counts, strict=True))

    assert duplicates == EVENTS
    assert alerted == len(CODES)
    assert alerted + grouped == EVENTS
    assert digests(flusher, T0 + timedelta(hours=1)) == grouped
    flusher.close()


def occurrences(fingerprint: str) -> list[Incident]:
    return [
        make_incident(event_id=f"{fingerprint}-{n}", ids={"correlationId": f"{fingerprint}-{n}"})
        for n in range(MAX_SAMPLES + 1)
    ]


@pytest.mark.parametrize("kind", DURABLE_STORE_KINDS)
def test_concurrent_flushers_take_each_held_count_exactly_once(
    kind: str, make_store: Callable[[str], Any]
) -> None:
    fingerprints = [f"PlayFailed|400|{8500 + n}|contoso-acs" for n in range(8)]
    setup = make_store(kind)
    for n, fingerprint in enumerate(fingerprints):
        setup.hit(fingerprint, 10 + n, occurrences(fingerprint), T0, WINDOW)  # opens, holds 9 + n
    flushers = [make_store(kind) for _ in range(4)]
    start = threading.Barrier(len(flushers))

    def flush(store: Any) -> list[tuple[str, int]]:
        start.wait()
        return [(held.fingerprint, held.count) for held in store.take_due(T0 + WINDOW)]

    with ThreadPoolExecutor(len(flushers)) as pool:
        taken = [pair for result in pool.map(flush, flushers) for pair in result]

    assert sorted(taken) == sorted((fingerprint, 9 + n) for n, fingerprint in enumerate(fingerprints))


@pytest.mark.parametrize("kind", DURABLE_STORE_KINDS)
def test_hits_and_flushes_interleaved_across_workers_lose_and_double_nothing(
    kind: str, make_store: Callable[[str], Any]
) -> None:
    fingerprints = [f"CallDisconnected|408|{10000 + n}|contoso-acs" for n in range(4)]
    samples = {fingerprint: occurrences(fingerprint) for fingerprint in fingerprints}
    make_store(kind)  # pytest sets the store fixture up here: the threads below must not race for it
    plans = [
        [(rng.choice(fingerprints), rng.randint(1, 40), rng.randint(0, 900)) for _ in range(25)]
        for rng in (random.Random(seed) for seed in range(3))
    ]

    def hitter(worker: int) -> tuple[int, int]:
        store, hits, alerted = make_store(kind), 0, 0
        for fingerprint, count, second in plans[worker]:
            alerted += store.hit(
                fingerprint, count, samples[fingerprint], T0 + timedelta(seconds=second), WINDOW
            )
            hits += count
        return hits, alerted

    def flusher(worker: int) -> int:
        store = make_store(kind)
        return sum(
            held.count
            for step in range(12)
            for held in store.take_due(T0 + timedelta(seconds=75 * step + worker * 10))
        )

    with ThreadPoolExecutor(5) as pool:
        hitting = [pool.submit(hitter, w) for w in range(len(plans))]
        flushing = [pool.submit(flusher, w) for w in range(2)]
        hits, alerted = (sum(column) for column in zip(*(f.result() for f in hitting), strict=True))
        taken = sum(f.result() for f in flushing)
    drain = make_store(kind)
    taken += sum(held.count for held in drain.take_due(T0 + timedelta(days=1)))

    assert drain.take_due(T0 + timedelta(days=2)) == []  # nothing left anywhere
    assert alerted + taken == hits


# -- Azure: a delivery that is still running, or that died --------------------------------------
LEASE = timedelta(seconds=30)
SLACK = "http://127.0.0.1:9/services/T0/B0/never-posted"  # rendered for, never posted to


class Died(Exception):
    """The process was killed here: its unit wrote no completion marker and gave nothing back."""


def event_key(body: bytes, index: int) -> str:
    """The dedup key of the `index`th event of an Event Grid batch."""
    event = parse_body(body, "application/json", 1 << 24).events[index]
    return f"{event.source}|{event.id}"


@pytest.mark.azurite
def test_a_batch_with_an_event_another_delivery_is_still_counting_answers_503_and_counts_the_rest(
    azure_store: Callable[..., Any],
) -> None:
    body = orjson.dumps(sms_failures(3))
    service = Service(SETTINGS, store=azure_store(claim_lease=LEASE), clock=lambda: T0)
    other = azure_store(claim_lease=LEASE)
    headers = {"Content-Type": "application/json", "aeg-event-type": "Notification"}

    with other.unit():  # another instance is counting the first event right now
        other.claim([event_key(body, 0)], T0, timedelta(hours=48))
        answer = service.handle_http("eventgrid", "POST", headers, {}, body)
    retry = service.handle_http("eventgrid", "POST", headers, {}, body)  # Event Grid, later

    doc = orjson.loads(answer.body)
    assert answer.status == 503
    assert doc["error"] == "1 events are being processed by another delivery; retry"
    assert (doc["busy"], doc["alerted"] + doc["grouped"], doc["duplicates"]) == (1, 2, 0)
    assert retry.status == 200
    assert orjson.loads(retry.body)["duplicates"] == 3  # two settled here, one by the other delivery


@pytest.mark.azurite
@pytest.mark.parametrize("window", [300, 0], ids=["grouping on", "grouping off"])
def test_events_of_a_delivery_that_died_after_alerting_are_counted_once_and_never_alerted_again(
    azure_store: Callable[..., Any], window: int
) -> None:
    settings = Settings.from_env(
        {"ACS_TRIAGE_SLACK_URL": SLACK, "ACS_TRIAGE_GROUP_WINDOW_SECONDS": str(window)}
    )
    events = parse_body(orjson.dumps(sms_failures(3)), "application/json", 1 << 24).events
    dying = azure_store(claim_lease=LEASE)
    with pytest.raises(Died), dying.unit():  # claimed, counted, alerted; killed before its marker
        first = Triage(settings, dying, lookup=fixed_guidance).handle(events, T0)
        raise Died
    store = azure_store(claim_lease=LEASE)
    triage = Triage(settings, store, lookup=fixed_guidance)

    busy = triage.handle(events, T0 + LEASE - timedelta(seconds=1))
    retry = triage.handle(events, T0 + LEASE)
    flushed = triage.flush(T0 + LEASE + timedelta(minutes=1))

    assert len(first.message_ids) == first.alerted == (1 if window else 3)
    assert busy.busy == 3
    assert (retry.recovered, retry.alerted, retry.grouped) == (3, 0, 0)
    assert [alert.digest for alert in flushed.alerts] == [True]  # the recovered events' digest
    # What the dying delivery held, and the events it alerted (those alerts may have been cut
    # off by the crash): the three once each, not again the ones it had counted.
    assert flushed.alerts[0].count == (3 - first.alerted) + first.alerted == 3
    # In the outbox: the dying delivery's alerts and the digest; the retry alerted nothing again.
    assert retry.message_ids == []
    outbox = [lease.message.id for lease in store.poll(settings.outbox_queue, 32)]
    assert sorted(outbox) == sorted([*first.message_ids, *flushed.message_ids])
    # Its burst's total counts each event once.
    resolved = triage.flush(T0 + LEASE + timedelta(days=1)).alerts
    assert [(alert.status, alert.count) for alert in resolved] == [("resolved", 3)]
