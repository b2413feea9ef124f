"""Handshake latency, in process: Event Grid's SubscriptionValidation POST and the CloudEvents
OPTIONS request, through `Service.handle_http` and through the function the app registers
(found with `app.get_functions()`, called with a `func.HttpRequest` as the host builds one).

Baselines, per handshake, the least any handler must do: parse the validation body and dump
the answer with the json module; for OPTIONS, dump the answer headers. A no-op call shows
what the timer itself costs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import azure.functions as func

from triage.service import Service
from triage.store.memory import MemoryStore

from .corpus import SAMPLES, pipeline_settings
from .figures import Baseline, Figure, Samples
from .timing import per_call

__all__ = ["Handshakes", "handshake_figures", "measure"]

_ORIGIN = "eventgrid.azure.net"
_VALIDATION_HEADERS = {"Content-Type": "application/json", "aeg-event-type": "SubscriptionValidation"}
_OPTIONS_HEADERS = {"WebHook-Request-Origin": _ORIGIN}


@dataclass(frozen=True, slots=True)
class Handshakes:
    """Seconds per call of each way in, and of the baselines."""

    samples: dict[str, Samples]
    calls: int


def _registered(route: str) -> Callable[[func.HttpRequest], func.HttpResponse]:
    """The user function the app registered for `route`, as the host indexes it."""
    import function_app

    app = function_app.app
    # get_functions() refuses to index an app twice (it remembers the names it returned).
    app.functions_bindings = {}
    for function in app.get_functions():
        trigger: Any = function.get_trigger()
        if function.is_http_function() and trigger.route == route:
            user: Callable[[func.HttpRequest], func.HttpResponse] = function.get_user_function()
            return user
    raise LookupError(f"no HTTP function is registered for route {route!r}")


def _call_function(
    function: Callable[[func.HttpRequest], func.HttpResponse],
    method: str,
    headers: dict[str, str],
    body: bytes,
) -> Callable[[], object]:
    def call() -> object:
        request = func.HttpRequest(
            method=method,
            url="http://localhost/api/eventgrid",
            headers=headers,
            params={},
            route_params={},
            body=body,
        )
        response = function(request)
        if response.status_code != 200:
            raise RuntimeError(f"{method} answered {response.status_code}")
        return response

    return call


def measure(calls: int) -> Handshakes:
    """Time every way in `calls` times (p50 and p99 need many calls)."""
    import function_app

    validation = (SAMPLES / "eventgrid" / "subscription-validation.json").read_bytes()
    service = Service(pipeline_settings(), MemoryStore())
    function_app.configure(service)
    eventgrid = _registered("eventgrid")
    code = json.loads(validation)[0]["data"]["validationCode"]
    options_answer = {
        "WebHook-Allowed-Origin": _ORIGIN,
        "WebHook-Allowed-Rate": "*",
        "Allow": "POST, OPTIONS",
    }

    def service_validation() -> object:
        answer = service.handle_http("eventgrid", "POST", _VALIDATION_HEADERS, {}, validation)
        if answer.status != 200:
            raise RuntimeError(f"validation answered {answer.status}")
        return answer

    def service_options() -> object:
        return service.handle_http("eventgrid", "OPTIONS", _OPTIONS_HEADERS, {}, b"")

    contenders: dict[str, Callable[[], object]] = {
        "no-op": lambda: None,
        "baseline validation": lambda: json.dumps(
            {"validationResponse": json.loads(validation)[0]["data"]["validationCode"]}
        ),
        "baseline options": lambda: json.dumps(options_answer),
        "service validation": service_validation,
        "service options": service_options,
        "function validation": _call_function(eventgrid, "POST", _VALIDATION_HEADERS, validation),
        "function options": _call_function(eventgrid, "OPTIONS", _OPTIONS_HEADERS, b""),
    }
    answer = service.handle_http("eventgrid", "POST", _VALIDATION_HEADERS, {}, validation)
    if json.loads(answer.body).get("validationResponse") != code:
        raise RuntimeError(f"the validation answer does not echo the validation code: {answer.body!r}")
    for call in contenders.values():  # warm-up
        for _ in range(50):
            call()
    return Handshakes(per_call(contenders, calls), calls)


def handshake_figures(calls: int) -> tuple[list[Figure], list[str]]:
    """p50 and p99 of each handshake, each next to its baseline's."""
    result = measure(calls)
    s = result.samples
    figures: list[Figure] = []
    noop = f"no-op call p50 {s['no-op'].percentile(50) * 1e6:.2f} µs"
    for kind, label in (("validation", "Event Grid validation POST"), ("options", "CloudEvents OPTIONS")):
        base = s[f"baseline {kind}"]
        base_name = "json.loads + json.dumps" if kind == "validation" else "json.dumps of the answer"
        for way, way_label in (("service", "Service.handle_http"), ("function", "registered function")):
            mine = s[f"{way} {kind}"]
            for pct in (50, 99):
                value = mine.percentile(pct) * 1e6
                baseline = base.percentile(pct) * 1e6
                figures.append(
                    Figure(
                        name=f"{label} via {way_label}, p{pct}",
                        value=value,
                        unit="µs",
                        baselines=(Baseline(f"{base_name} p{pct}", baseline, value / baseline),),
                        how=f"{len(mine.values):,} calls; {noop}",
                    )
                )
    return figures, []
