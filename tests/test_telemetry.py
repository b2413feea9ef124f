"""Telemetry: events by outcome, kind and code, deliveries by destination, digests and delivery
latency, read back through OpenTelemetry's in-memory metric reader. Nothing is exported."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from samples import sample, sample_bytes
from triage import telemetry
from triage.errors import DeliveryError
from triage.service import Service
from triage.settings import Settings
from triage.store import OutboxMessage
from triage.store.memory import MemoryStore

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
JSON = {"Content-Type": "application/json"}


def points(reader: InMemoryMetricReader, name: str) -> dict[tuple[tuple[str, Any], ...], Any]:
    """The data points of one metric, keyed by their sorted attributes."""
    found: dict[tuple[tuple[str, Any], ...], Any] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    for point in metric.data.data_points:
                        found[tuple(sorted(point.attributes.items()))] = point
    return found


@pytest.fixture
def metered() -> tuple[Service, InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("test")
    settings = Settings.from_env({"ACS_TRIAGE_SLACK_URL": "http://127.0.0.1:9/hook"})
    return Service(settings, MemoryStore(), telemetry=telemetry.Telemetry(meter)), reader


def test_events_are_counted_by_outcome_kind_and_code(metered: tuple[Service, InMemoryMetricReader]) -> None:
    service, reader = metered
    body = sample_bytes("callbacks/play-failed-400-8535.json")
    for offset in (0, 1):  # the same delivery twice: the second is a duplicate
        service.handle_http("callbacks", "POST", JSON, {}, body, now=T0 + timedelta(seconds=offset))
    service.handle_http("eventgrid", "POST", JSON, {}, sample_bytes("eventgrid/sms-delivered.json"), now=T0)
    events = {dict(k)["outcome"]: (dict(k), p.value) for k, p in points(reader, "acs_triage.events").items()}
    assert events["alerted"] == ({"outcome": "alerted", "kind": "PlayFailed", "code": "400/8535"}, 1)
    assert events["duplicate"] == ({"outcome": "duplicate", "kind": "PlayFailed", "code": "400/8535"}, 1)
    assert events["success"][1] == 1
    assert sum(p.value for p in points(reader, "acs_triage.events.received").values()) == 3


def test_deliveries_are_counted_by_destination_with_their_latency(
    metered: tuple[Service, InMemoryMetricReader],
) -> None:
    service, reader = metered
    message = OutboxMessage(id="m1", destination="slack", payload={"text": "hi"})
    for dequeue_count in (1, 8):  # nothing listens on port 9: a failure, then the host's last try
        with pytest.raises(DeliveryError):
            service.deliver(message, dequeue_count)
    deliveries = {dict(k)["outcome"]: p.value for k, p in points(reader, "acs_triage.deliveries").items()}
    assert deliveries == {"failed": 1, "poisoned": 1}
    latency = points(reader, "acs_triage.delivery.duration")
    assert {dict(k)["destination"] for k in latency} == {"slack"}
    assert sum(p.count for p in latency.values()) == 2


def test_digests_from_the_timer_are_counted(metered: tuple[Service, InMemoryMetricReader]) -> None:
    service, reader = metered
    for offset in range(3):  # three events of one burst: one alert, two held for the digest
        events = sample("callbacks/play-failed-400-8535.json")
        events[0]["id"] = f"event-{offset}"
        body = json.dumps(events).encode()
        service.handle_http("callbacks", "POST", JSON, {}, body, now=T0 + timedelta(seconds=offset))
    service.flush(T0 + timedelta(seconds=service.settings.group_window_seconds + 5))
    assert sum(p.value for p in points(reader, "acs_triage.digests").values()) == 1
    digest = [dict(k) for k in points(reader, "acs_triage.events") if dict(k)["outcome"] == "digest"]
    assert digest == [{"outcome": "digest", "kind": "PlayFailed", "code": "400/8535"}]


def test_without_a_connection_string_nothing_of_opentelemetry_is_imported() -> None:
    code = (
        "import sys; from triage import telemetry; t = telemetry.from_env({}); "
        "assert not t.enabled; "
        "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry', 'azure.monitor'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_with_a_connection_string_azure_monitor_is_configured_to_loopback() -> None:
    # Exports point at a closed loopback port and statsbeat is off: nothing leaves the machine.
    code = (
        "import os; from triage import telemetry; "
        "t = telemetry.from_env({'APPLICATIONINSIGHTS_CONNECTION_STRING': "
        "'InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:9/'}); "
        "assert t.enabled; print('ok')"
    )
    env = {"APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true", "PATH": "", "HOME": "/nonexistent"}
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, env=env, timeout=60
    )
    assert result.stdout.strip() == "ok", result.stderr[-2000:]
