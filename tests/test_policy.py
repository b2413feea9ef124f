"""Each policy stage alone: what it keeps, what it counts, what it gives back when storage fails."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from factories import T0, make_alert, make_guidance, make_incident

from triage.model import Severity
from triage.policy import (
    Batch,
    Candidate,
    Dedup,
    Digests,
    Enqueue,
    Group,
    Pending,
    Report,
    Route,
    SuppressSuccesses,
)
from triage.render import render
from triage.settings import Settings
from triage.store import Claim, EnqueueFailed
from triage.store.memory import MemoryStore

TEAMS = "https://teams.example.invalid/workflows/abc?sig=s3cret"
SLACK = "https://slack.example.invalid/services/T/B/x"
WINDOW = timedelta(minutes=5)


def candidate(
    key: str, severity: Severity = Severity.ERROR, code: int = 400, subcode: int = 8535
) -> Candidate:
    return Candidate(key, make_incident(code=code, subcode=subcode), make_guidance(severity=severity))


def batch(*candidates: Candidate) -> Batch:
    return Batch(T0, Report(), list(candidates))


class BrokenGroups(MemoryStore):
    """Counting fails after `ok` successful hits (storage went away mid-batch)."""

    def __init__(self, ok: int) -> None:
        super().__init__()
        self.ok = ok

    def hit(self, *args: Any, **kwargs: Any) -> bool:
        if self.ok <= 0:
            raise OSError("table unavailable")
        self.ok -= 1
        return super().hit(*args, **kwargs)


class BrokenOutbox(MemoryStore):
    """The outbox takes `ok` writes, then fails."""

    def __init__(self, ok: int) -> None:
        super().__init__()
        self.ok = ok
        self.released: list[str] = []

    def enqueue(self, messages: Sequence[Any]) -> None:
        if self.ok <= 0:
            raise OSError("queue unavailable")
        self.ok -= 1
        super().enqueue(messages)

    def release(self, keys: Sequence[str]) -> None:
        self.released.extend(keys)
        super().release(keys)


def test_suppress_successes_counts_them_and_keeps_only_failures() -> None:
    work = batch(candidate("a", Severity.NONE), candidate("b"), candidate("c", Severity.WARNING))
    SuppressSuccesses()(work)
    assert [c.key for c in work.candidates] == ["b", "c"]
    assert work.report.successes == 1


def test_dedup_drops_events_seen_before_and_counts_them_as_duplicates() -> None:
    store = MemoryStore()
    Dedup(store, timedelta(hours=24))(batch(candidate("a")))
    work = batch(candidate("a"), candidate("b"), candidate("b"))
    Dedup(store, timedelta(hours=24))(work)
    assert [c.key for c in work.candidates] == ["b"]
    assert work.report.duplicates == 2
    work.release(["b"])  # the stage hands the batch its own way to give claims back
    assert store.claim(["b"], T0, timedelta(hours=24)) == [Claim.NEW]


def test_group_alerts_the_first_of_a_fingerprint_and_holds_the_rest() -> None:
    store = MemoryStore()
    work = batch(*(candidate(f"k{i}") for i in range(4)), candidate("other", subcode=8536))
    Group(store, WINDOW)(work)
    assert [p.keys for p in work.pending] == [["k0"], ["other"]]
    assert (work.report.alerted, work.report.grouped) == (2, 3)
    assert not work.candidates


def test_group_with_no_window_alerts_every_failure() -> None:
    work = batch(candidate("a"), candidate("b"))
    Group(MemoryStore(), timedelta(0))(work)
    assert [p.keys for p in work.pending] == [["a"], ["b"]]
    assert work.report.alerted == 2


def test_group_that_cannot_count_releases_the_claims_of_every_uncounted_occurrence() -> None:
    store = BrokenGroups(ok=1)
    work = batch(
        candidate("a1"), candidate("a2"), candidate("b1", subcode=8536), candidate("b2", subcode=8536)
    )
    Dedup(store, timedelta(hours=24))(work)
    with pytest.raises(OSError):
        Group(store, WINDOW)(work)
    # The first fingerprint was counted: its claims stay. The second was not: a retry must count it.
    assert store.claim(["a1", "a2", "b1", "b2"], T0, timedelta(hours=24)) == [
        Claim.DUPLICATE,
        Claim.DUPLICATE,
        Claim.NEW,
        Claim.NEW,
    ]


def test_route_sends_to_every_destination_without_routes_and_to_matches_with_them() -> None:
    both = Settings.from_env({"ACS_TRIAGE_TEAMS_URL": TEAMS, "ACS_TRIAGE_SLACK_URL": SLACK})
    work = batch(candidate("a"))
    Group(MemoryStore(), timedelta(0))(work)
    Route(both)(work)
    assert [d.name for d in work.pending[0].destinations] == ["teams", "slack"]

    routed = Settings.from_env(
        {
            "ACS_TRIAGE_TEAMS_URL": TEAMS,
            "ACS_TRIAGE_SLACK_URL": SLACK,
            "ACS_TRIAGE_ROUTES": '[{"codes": [400], "to": ["slack"]}]',
        }
    )
    Route(routed)(work)
    assert [d.name for d in work.pending[0].destinations] == ["slack"]


def test_enqueue_writes_one_message_per_destination_and_reports_the_alert() -> None:
    store = MemoryStore()
    work = batch(candidate("a"))
    Group(store, timedelta(0))(work)
    Route(Settings.from_env({"ACS_TRIAGE_TEAMS_URL": TEAMS, "ACS_TRIAGE_SLACK_URL": SLACK}))(work)
    Enqueue(store, lambda: render)(work)
    assert [m.destination for m in store.outbox] == ["teams", "slack"]
    assert len(work.report.alerts) == 1 and not work.pending


def test_enqueue_that_fails_gives_back_every_alert_of_the_batch() -> None:
    store = BrokenOutbox(ok=0)
    work = batch(candidate("a"), candidate("b"), candidate("c"))
    Dedup(store, timedelta(hours=24))(work)
    Group(store, timedelta(0))(work)
    Route(Settings.from_env({"ACS_TRIAGE_TEAMS_URL": TEAMS}))(work)
    with pytest.raises(OSError):
        Enqueue(store, lambda: render)(work)
    assert len(store.outbox) == 0
    assert store.released == ["a", "b", "c"]  # all must come again


class PartlyWritten(MemoryStore):
    """An outbox whose writes are separate (a Storage queue): the first `ok` messages of a
    call go in, then it fails, naming those written."""

    def __init__(self, ok: int) -> None:
        super().__init__()
        self.ok = ok
        self.released: list[str] = []

    def enqueue(self, messages: Sequence[Any]) -> None:
        super().enqueue(messages[: self.ok])
        if len(messages) > self.ok:
            cause = OSError("queue unavailable")
            raise EnqueueFailed({m.id for m in messages[: self.ok]}, len(messages)) from cause

    def release(self, keys: Sequence[str]) -> None:
        self.released.extend(keys)
        super().release(keys)


def test_enqueue_that_fails_part_way_gives_back_only_the_alerts_not_wholly_written() -> None:
    store = PartlyWritten(ok=3)  # "a" to both destinations, "b" to one of them
    work = batch(*(Candidate(k, make_incident(event_id=k), make_guidance()) for k in ("a", "b", "c")))
    Dedup(store, timedelta(hours=24))(work)
    Group(store, timedelta(0))(work)
    Route(Settings.from_env({"ACS_TRIAGE_TEAMS_URL": TEAMS, "ACS_TRIAGE_SLACK_URL": SLACK}))(work)
    with pytest.raises(OSError, match="queue unavailable"):  # the store's own error
        Enqueue(store, lambda: render)(work)
    assert len(store.outbox) == 3
    assert store.released == ["b", "c"]  # "a" is in the outbox; "b" and "c" must come again


def test_digest_that_cannot_be_stored_gives_its_counts_back_for_the_next_flush() -> None:
    store = BrokenOutbox(ok=0)
    work = batch(*(candidate(f"k{i}") for i in range(5)))
    Group(store, WINDOW)(work)  # one alert now, four held
    work = Batch(T0 + WINDOW, Report())
    Digests(store, lambda incident: make_guidance())(work)
    assert [p.alert.count for p in work.pending] == [4]
    Route(Settings.from_env({"ACS_TRIAGE_TEAMS_URL": TEAMS}))(work)
    with pytest.raises(OSError):
        Enqueue(store, lambda: render)(work)
    again = Batch(T0 + WINDOW, Report())
    Digests(store, lambda incident: make_guidance())(again)
    assert [p.alert.count for p in again.pending] == [4]


def test_alert_routed_nowhere_is_reported_but_writes_nothing() -> None:
    store = MemoryStore()
    work = batch()
    work.pending.append(Pending(make_alert()))
    Enqueue(store, lambda: render)(work)
    assert not store.outbox and len(work.report.alerts) == 1
