"""The pipeline's policy: dedup, success suppression, burst grouping and digests, routing."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from samples import sample
from triage.errors import ConfigurationError
from triage.events import to_incident
from triage.ingest import RawEvent, parse_body
from triage.model import Severity
from triage.pipeline import Triage
from triage.settings import Settings
from triage.store.memory import MemoryStore

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
TEAMS = "https://teams.example.invalid/workflows/abc?sig=s3cret"
SLACK = "https://slack.example.invalid/services/T/B/x"


class FlakyOutbox(MemoryStore):
    """A store whose outbox write fails while `fail` is set (storage down)."""

    fail = False

    def enqueue(self, messages: Any) -> None:
        if self.fail:
            raise OSError("storage unavailable")
        super().enqueue(messages)


def settings(**env: str) -> Settings:
    return Settings.from_env({f"ACS_TRIAGE_{k}": v for k, v in env.items()})


def events(name: str, copies: int = 1, *, id_prefix: str = "evt") -> list[RawEvent]:
    """`copies` distinct events (new ids) cloned from the first event of a sample."""
    doc = sample(name)
    first = doc[0] if isinstance(doc, list) else doc
    items: list[dict[str, Any]] = []
    for i in range(copies):
        item = copy.deepcopy(first)
        item["id"] = f"{id_prefix}-{i}"
        items.append(item)
    return parse_body(json.dumps(items).encode(), None, 10 << 20).events


def test_first_failure_alerts_at_once_and_repeats_are_held_for_one_digest() -> None:
    triage = Triage(settings(), MemoryStore())
    report = triage.handle(events("callbacks/play-failed-400-8535.json", 10), T0)
    assert (report.alerted, report.grouped, len(report.alerts)) == (1, 9, 1)
    assert report.alerts[0].count == 1 and not report.alerts[0].digest

    assert triage.flush(T0 + timedelta(minutes=4)).digests == 0  # window not over yet
    digest = triage.flush(T0 + timedelta(minutes=5)).alerts
    assert len(digest) == 1 and digest[0].digest and digest[0].count == 9
    assert digest[0].window_seconds == 300
    assert 1 <= len(digest[0].samples) <= 5
    assert digest[0].incident.event_id == "evt-1"  # the first held occurrence, not the one alerted


@pytest.mark.parametrize(
    "name",
    ["callbacks/add-participant-failed-408-10057.json", "eventgrid/sms-delivery-failed-4007-opt-out.json"],
)
def test_a_digests_samples_are_the_ids_of_its_first_held_occurrences(name: str) -> None:
    """Samples are read as IDs alone (not whole incidents): the same IDs, masked the same way."""
    batch = events(name, 8)
    for n, raw in enumerate(batch):
        data = copy.deepcopy(raw.data)
        for key in ("correlationId", "messageId", "operationContext"):
            if key in data:
                data[key] = f"{data[key]}-{n} +1 425 555 01{n:02d}"  # a number in an ID is masked
        batch[n] = raw._replace(payload=data)
    body = json.dumps([{"id": r.id, "eventType": r.type, "subject": "s", "eventTime": "2026-11-20T09:00:00Z",
                        "topic": r.source, "dataVersion": "1.0", "data": r.data} for r in batch])  # fmt: skip
    sent = parse_body(body.encode(), None, 10 << 20).events
    triage = Triage(settings(), MemoryStore())

    triage.handle(sent, T0)
    digest = triage.flush(T0 + timedelta(minutes=5)).alerts[0]

    expected = [to_incident(raw, resource=triage.settings.resource).ids for raw in sent[1:6]]
    assert list(digest.samples) == expected and len(expected) == 5
    assert all("555" not in value for ids in expected for value in ids.values())


def test_every_event_is_counted_in_exactly_one_alert_across_batches_and_windows() -> None:
    triage = Triage(settings(), MemoryStore())
    total = 0
    for minute in range(0, 12):
        batch = events("callbacks/call-disconnected-410-3112.json", 25, id_prefix=f"m{minute}")
        now = T0 + timedelta(minutes=minute)
        total += sum(a.count for a in triage.handle(batch, now).alerts)
        total += sum(a.count for a in triage.flush(now).alerts)
    total += sum(a.count for a in triage.flush(T0 + timedelta(hours=1)).alerts)
    assert total == 12 * 25


def test_a_quiet_window_closes_the_group_so_the_next_failure_alerts_at_once() -> None:
    triage = Triage(settings(), MemoryStore())
    triage.handle(events("callbacks/play-failed-400-8535.json", 1, id_prefix="a"), T0)
    assert triage.flush(T0 + timedelta(minutes=6)).digests == 0  # nothing held: group closed
    again = triage.handle(
        events("callbacks/play-failed-400-8535.json", 1, id_prefix="b"), T0 + timedelta(minutes=7)
    )
    assert again.alerted == 1


def test_the_same_batch_delivered_twice_alerts_once() -> None:
    triage = Triage(settings(), MemoryStore())
    batch = events("callbacks/play-failed-400-8535.json", 3)
    first = triage.handle(batch, T0)
    second = triage.handle(batch, T0 + timedelta(seconds=30))
    assert (first.alerted, first.grouped) == (1, 2)
    assert (second.alerted, second.grouped, second.duplicates) == (0, 0, 3)


def test_dedup_remembers_an_event_for_the_configured_ttl_only() -> None:
    triage = Triage(settings(DEDUP_TTL_HOURS="24", GROUP_WINDOW_SECONDS="0"), MemoryStore())
    batch = events("callbacks/play-failed-400-8535.json", 1)
    assert triage.handle(batch, T0).alerted == 1
    assert triage.handle(batch, T0 + timedelta(hours=23)).duplicates == 1
    assert triage.handle(batch, T0 + timedelta(hours=25)).alerted == 1


def test_successes_never_alert_and_are_not_stored() -> None:
    store = MemoryStore()
    triage = Triage(settings(), store)
    report = triage.handle(
        events("callbacks/call-disconnected-normal-200-7000.json", 3)
        + events("eventgrid/sms-delivered.json", 2),
        T0,
    )
    assert (report.successes, report.alerted, report.grouped) == (5, 0, 0)
    assert store._seen == {}


def test_grouping_window_zero_alerts_every_event() -> None:
    triage = Triage(settings(GROUP_WINDOW_SECONDS="0"), MemoryStore())
    report = triage.handle(events("callbacks/play-failed-400-8535.json", 12), T0)
    assert (report.alerted, report.grouped, len(report.alerts)) == (12, 0, 12)


def test_different_codes_are_different_groups() -> None:
    triage = Triage(settings(), MemoryStore())
    batch = events("callbacks/play-failed-400-8535.json", 3) + events(
        "callbacks/play-failed-400-8536.json", 3, id_prefix="other"
    )
    report = triage.handle(batch, T0)
    assert sorted(a.code_text for a in report.alerts) == ["400/8535", "400/8536"]


def test_without_routes_every_alert_goes_to_every_destination() -> None:
    store = MemoryStore()
    triage = Triage(settings(TEAMS_URL=TEAMS, SLACK_URL=SLACK), store)
    triage.handle(events("callbacks/play-failed-400-8535.json"), T0)
    assert sorted(m.destination for m in store.outbox) == ["slack", "teams"]
    teams = next(m for m in store.outbox if m.destination == "teams")
    assert teams.payload["type"] == "message"  # rendered for Teams
    assert "sig=" not in json.dumps([m.to_dict() for m in store.outbox])  # no URL in the outbox


def test_routes_send_errors_to_teams_and_sms_to_slack() -> None:
    routes = json.dumps(
        [
            {"min_severity": "error", "to": ["teams"]},
            {"kinds": ["SMSDeliveryReportReceived"], "to": ["slack"]},
        ]
    )
    s = settings(TEAMS_URL=TEAMS, SLACK_URL=SLACK, ROUTES=routes, GROUP_WINDOW_SECONDS="0")
    triage = Triage(s, MemoryStore())
    error = triage.handle(events("callbacks/call-disconnected-410-3112.json"), T0).alerts[0]
    sms = triage.handle(events("eventgrid/sms-delivery-failed-4007-opt-out.json"), T0).alerts[0]
    warning = triage.handle(events("callbacks/recognize-failed-400-8510.json"), T0).alerts[0]
    assert [d.name for d in triage.destinations(sms)] == ["slack"]
    assert warning.severity is Severity.WARNING
    # No rule takes a warning that is not an SMS report: the default route (every destination).
    assert [d.name for d in triage.destinations(warning)] == ["teams", "slack"]
    if error.severity is Severity.ERROR:
        assert [d.name for d in triage.destinations(error)] == ["teams"]


def test_routes_naming_an_unconfigured_destination_are_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="not configured"):
        settings(TEAMS_URL=TEAMS, ROUTES='[{"to": ["pager"]}]')


def test_an_alert_that_could_not_be_stored_is_not_lost_the_retry_reports_it_in_the_digest() -> None:
    store = FlakyOutbox()
    store.fail = True
    triage = Triage(settings(TEAMS_URL=TEAMS), store)
    batch = events("callbacks/play-failed-400-8535.json", 1)
    with pytest.raises(OSError):
        triage.handle(batch, T0)
    store.fail = False
    # The claim was released, so Event Grid's retry is not dropped as a duplicate; the burst's
    # group is already open, so the event is held and reported by the digest.
    retry = triage.handle(batch, T0 + timedelta(seconds=10))
    assert (retry.duplicates, retry.grouped) == (0, 1)
    digest = triage.flush(T0 + timedelta(minutes=5))
    assert [a.count for a in digest.alerts] == [1] and len(store.outbox) == 1


def test_when_counting_fails_every_uncounted_event_is_released_for_event_grids_retry() -> None:
    class BrokenHit(MemoryStore):
        broken = True

        def hit(self, fingerprint: str, *args: Any, **kwargs: Any) -> bool:
            if self.broken and "8536" in fingerprint:
                raise OSError("storage unavailable")
            return super().hit(fingerprint, *args, **kwargs)

    store = BrokenHit()
    triage = Triage(settings(), store)
    batch = events("callbacks/play-failed-400-8535.json", 3, id_prefix="a") + events(
        "callbacks/play-failed-400-8536.json", 20, id_prefix="b"
    )
    with pytest.raises(OSError):
        triage.handle(batch, T0)
    store.broken = False
    retry = triage.handle(batch, T0 + timedelta(seconds=10))
    # The 8535 group was counted the first time; all 20 of the 8536 group come back.
    assert (retry.duplicates, retry.alerted, retry.grouped) == (3, 1, 19)


def test_a_digest_that_could_not_be_stored_is_reported_by_the_next_flush() -> None:
    store = FlakyOutbox()
    triage = Triage(settings(TEAMS_URL=TEAMS), store)
    triage.handle(events("callbacks/play-failed-400-8535.json", 8), T0)
    store.fail = True
    with pytest.raises(OSError):
        triage.flush(T0 + timedelta(minutes=5))
    store.fail = False
    later = triage.flush(T0 + timedelta(minutes=6))
    assert [a.count for a in later.alerts] == [7]


def test_grouping_off_tallies_each_alert_under_its_own_code_when_a_route_groups_by_kind_alone() -> None:
    # A route grouping by kind puts two codes in one burst; each alert still counts under its code.
    routes = json.dumps([{"kinds": ["PlayFailed"], "group_by": ["kind"], "to": ["teams"]}])
    s = settings(TEAMS_URL=TEAMS, ROUTES=routes, GROUP_WINDOW_SECONDS="0")
    batch = events("callbacks/play-failed-400-8535.json", 3) + events(
        "callbacks/play-failed-400-8536.json", 2, id_prefix="other"
    )
    report = Triage(s, MemoryStore()).handle(batch, T0)
    assert report.alerted == 5
    alerted = {key: n for key, n in report.outcomes.items() if key[0] == "alerted"}
    assert alerted == {("alerted", "PlayFailed", "400/8535"): 3, ("alerted", "PlayFailed", "400/8536"): 2}


def test_grouping_off_tallies_every_alert_of_a_burst_under_its_code() -> None:
    report = Triage(settings(GROUP_WINDOW_SECONDS="0"), MemoryStore()).handle(
        events("callbacks/play-failed-400-8535.json", 4), T0
    )
    assert {k: n for k, n in report.outcomes.items() if k[0] == "alerted"} == {
        ("alerted", "PlayFailed", "400/8535"): 4
    }
