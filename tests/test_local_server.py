"""The local server: the Function App's routes on a real socket, hit by real clients
(requests, and azure-eventgrid's EventGridPublisherClient, which needs a 200)."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import requests
from azure.core.credentials import AzureKeyCredential
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridEvent, EventGridPublisherClient

import function_app
from samples import sample, sample_bytes
from tools.localhost import LocalServer
from triage.service import Service
from triage.settings import Settings
from triage.store.memory import MemoryStore


@pytest.fixture
def server() -> Iterator[tuple[LocalServer, MemoryStore]]:
    store = MemoryStore()
    function_app.configure(Service(Settings.from_env({"ACS_TRIAGE_MAX_BODY_BYTES": "65536"}), store))
    with LocalServer(port=0, tick_seconds=0.05) as running:
        yield running, store


def test_curl_style_post_of_a_callback_is_answered_with_counts(
    server: tuple[LocalServer, MemoryStore],
) -> None:
    running, _ = server
    response = requests.post(
        f"{running.url}/api/callbacks",
        data=sample_bytes("callbacks/call-disconnected-410-3112.json"),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 200
    assert response.json()["alerted"] == 1


def test_both_handshakes_work_over_http(server: tuple[LocalServer, MemoryStore]) -> None:
    running, _ = server
    options = requests.options(
        f"{running.url}/api/eventgrid", headers={"WebHook-Request-Origin": "eventgrid.azure.net"}, timeout=10
    )
    assert options.status_code == 200
    assert options.headers["WebHook-Allowed-Origin"] == "eventgrid.azure.net"
    validation = requests.post(
        f"{running.url}/api/eventgrid",
        data=sample_bytes("eventgrid/subscription-validation.json"),
        headers={"aeg-event-type": "SubscriptionValidation", "Content-Type": "application/json"},
        timeout=10,
    )
    assert validation.json() == {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}


def test_the_azure_eventgrid_publisher_client_can_post_event_grid_events(
    server: tuple[LocalServer, MemoryStore],
) -> None:
    running, store = server
    data = sample("eventgrid/sms-delivery-failed-4007-opt-out.json")[0]
    client = EventGridPublisherClient(f"{running.url}/api/eventgrid", AzureKeyCredential("local-key"))
    event = EventGridEvent(
        subject=data["subject"],
        event_type=data["eventType"],
        data=data["data"],
        data_version="1.0",
        id="publisher-eg-1",
        event_time=datetime(2026, 11, 20, 9, 20, tzinfo=UTC),
    )
    client.send([event], retry_total=0)  # raises unless the server answered 200
    # The publisher leaves out `topic`, so the dedup key is "|<id>": the failure was taken in.
    assert "|publisher-eg-1" in store._seen


def test_the_azure_eventgrid_publisher_client_can_post_cloudevents(
    server: tuple[LocalServer, MemoryStore],
) -> None:
    running, store = server
    data = sample("cloudevents/sms-delivery-failed-4004.json")
    client = EventGridPublisherClient(f"{running.url}/api/eventgrid", AzureKeyCredential("local-key"))
    client.send(
        [CloudEvent(source=data["source"], type=data["type"], data=data["data"], subject=data["subject"])],
        retry_total=0,
    )
    assert [k for k in store._seen if k.startswith(data["source"] + "|")]


def test_a_body_over_the_limit_is_refused_with_413_before_it_is_read(
    server: tuple[LocalServer, MemoryStore],
) -> None:
    running, _ = server
    response = requests.post(f"{running.url}/api/eventgrid", data=b"[" + b" " * 70000 + b"]", timeout=10)
    assert response.status_code == 413
    assert "limit" in response.json()["error"]


def test_wrong_method_and_unknown_path_are_405_and_404(server: tuple[LocalServer, MemoryStore]) -> None:
    running, _ = server
    assert requests.get(f"{running.url}/api/eventgrid", timeout=10).status_code == 405
    assert requests.put(f"{running.url}/api/callbacks", timeout=10).status_code == 405
    assert requests.post(f"{running.url}/api/nothing", timeout=10).status_code == 404


def test_malformed_json_over_http_is_a_400_with_a_reason(server: tuple[LocalServer, MemoryStore]) -> None:
    running, _ = server
    host, port = running.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("POST", "/api/eventgrid", body=b'[{"id": ', headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    assert response.status == 400
    assert "not valid JSON" in json.loads(response.read())["error"]


def test_a_client_sending_less_than_its_content_length_gets_408_and_frees_its_thread() -> None:
    function_app.configure(Service(Settings.from_env({}), MemoryStore()))
    with (
        LocalServer(port=0, read_timeout=0.5) as running,
        socket.create_connection(("127.0.0.1", int(running.url.rsplit(":", 1)[1])), timeout=10) as client,
    ):
        client.sendall(b"POST /api/callbacks HTTP/1.1\r\nHost: local\r\nContent-Length: 100\r\n\r\n[{")
        started = time.monotonic()
        answer = b""
        while chunk := client.recv(4096):  # the server answers, then closes the connection
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 408") and b"body not received within 0.5s" in answer
        assert time.monotonic() - started < 5


def test_digests_keep_coming_while_delivery_is_stuck_in_an_outage() -> None:
    function_app.configure(Service(Settings.from_env({}), MemoryStore()))
    running = LocalServer(port=0, tick_seconds=0.01, timer_seconds=0.05)
    stuck, release = threading.Event(), threading.Event()
    timers: list[float] = []

    def delivery_in_retries(store: object, max_messages: int = 32) -> tuple[int, int]:
        stuck.set()
        release.wait(10)  # a delivery sleeping through a webhook's outage
        return 0, 0

    running.local.run_queue = delivery_in_retries  # type: ignore[method-assign]
    running.local.run_timers = lambda: timers.append(time.monotonic())  # type: ignore[method-assign]
    with running:
        assert stuck.wait(5)
        deadline = time.monotonic() + 5
        while len(timers) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        release.set()
    assert len(timers) >= 3  # the digest timer fired while delivery was held up


def test_idle_outbox_workers_poll_in_turn_so_a_new_message_waits_a_fraction_of_a_tick() -> None:
    """Workers that found the outbox empty together do not all wake together a tick later: each
    polls once a tick, and between them the outbox is polled every tick / workers."""
    function_app.configure(Service(Settings.from_env({}), MemoryStore()))
    hour = 3600.0  # a long tick: the few microseconds between the calls below do not count
    running = LocalServer(port=0, tick_seconds=hour, outbox_workers=4)
    try:
        waits = [running._next_poll() for _ in range(4)]  # four workers, idle at the same moment
        assert waits == pytest.approx([hour / 4, hour / 2, 3 * hour / 4, hour], abs=5.0)
        # The first worker, back from its poll a quarter tick later, polls again one tick after it.
        assert running._next_poll() == pytest.approx(hour + hour / 4, abs=5.0)
    finally:
        running._server.server_close()  # never started: only its socket to close
