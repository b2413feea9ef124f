"""OpenTelemetry metrics and traces, sent to Application Insights through
azure-monitor-opentelemetry when APPLICATIONINSIGHTS_CONNECTION_STRING is set.

Without that setting nothing of OpenTelemetry is imported (cold start stays as it was) and every
call here is a no-op. Metric names and attributes (what a Kusto query groups by):

  acs_triage.events            outcome (received is not an outcome: alerted, grouped, duplicate,
                               invalid, success, skipped, digest, muted (a route's
                               time interval held it back); on Azure also busy and
                               recovered), kind, code ("410/3112")
  acs_triage.deliveries        destination, outcome (delivered, failed, poisoned)
  acs_triage.delivery.duration destination, outcome; seconds, from dequeue to the webhook's answer
  acs_triage.digests           digest alerts produced by the timer
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.metrics import Meter
    from opentelemetry.trace import Tracer

    from .pipeline import Report

__all__ = ["CONNECTION_SETTING", "Telemetry", "from_env"]

CONNECTION_SETTING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
log = logging.getLogger("triage")


class Telemetry:
    """The app's instruments. Built without a meter it records nothing (the default)."""

    def __init__(self, meter: Meter | None = None, tracer: Tracer | None = None) -> None:
        self._tracer = tracer
        self.enabled = meter is not None
        if meter is None:
            return
        self._events = meter.create_counter(
            "acs_triage.events", unit="{event}", description="ACS events by outcome, kind and code"
        )
        self._received = meter.create_counter(
            "acs_triage.events.received", unit="{event}", description="ACS events received"
        )
        self._deliveries = meter.create_counter(
            "acs_triage.deliveries", unit="{alert}", description="alert posts by destination and outcome"
        )
        self._latency = meter.create_histogram(
            "acs_triage.delivery.duration", unit="s", description="time to post one alert"
        )
        self._digests = meter.create_counter(
            "acs_triage.digests", unit="{alert}", description="burst digests produced"
        )

    def events(self, report: Report) -> None:
        """Count what one request (or one flush) did, by outcome, event kind and code."""
        if not self.enabled:
            return
        if report.received:
            self._received.add(report.received)
        for (outcome, kind, code), count in report.outcomes.items():
            self._events.add(count, {"outcome": outcome, "kind": kind, "code": code})
        if report.digests:
            self._digests.add(report.digests)

    def delivery(self, destination: str, outcome: str, seconds: float | None = None) -> None:
        """Count one alert post (delivered, failed or poisoned) and how long it took."""
        if not self.enabled:
            return
        attributes = {"destination": destination, "outcome": outcome}
        self._deliveries.add(1, attributes)
        if seconds is not None:
            self._latency.record(seconds, attributes)

    @contextlib.contextmanager
    def span(self, name: str, **attributes: str) -> Iterator[None]:
        """A trace span around a unit of work (a request, a delivery), when tracing is on."""
        if self._tracer is None:
            yield
            return
        with self._tracer.start_as_current_span(name, attributes=attributes):
            yield


def from_env(env: Mapping[str, str] | None = None) -> Telemetry:
    """Telemetry to Application Insights when APPLICATIONINSIGHTS_CONNECTION_STRING is set,
    else the no-op one. Only then is azure-monitor-opentelemetry imported and configured."""
    env = os.environ if env is None else env
    connection = env.get(CONNECTION_SETTING)
    if not connection:
        return Telemetry()
    from azure.monitor.opentelemetry import configure_azure_monitor
    from opentelemetry import metrics, trace

    configure_azure_monitor(connection_string=connection, logger_name="triage")
    log.info("telemetry: OpenTelemetry metrics and traces go to Application Insights")
    return Telemetry(metrics.get_meter("acs-triage"), trace.get_tracer("acs-triage"))
