"""A posted alert is not posted again when the queue hands its message out a second time.

The host deletes a queue message only after the function returned; a worker that dies between a
destination's 2xx and that delete used to post the alert again once the message's visibility
timeout ran out. The deliverer now records each posted message id in the store right after the
2xx (`Outbox.mark_sent`) and skips an id it finds there. What remains is the one storage write
between the 2xx and that record: a death exactly there posts once more, and the post carries the
same message id (passed to every destination kind's headers; PagerDuty's dedup_key is the burst's
fingerprint, which folds a repeated trigger into the alert already open)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
import requests
from azure.functions.queue import QueueMessage
from azurite_server import STORE_KINDS
from test_crash_safety import start
from test_delivery_faults import App, FakeClock, sms_failures

import function_app
from tools.localhost import MAX_DEQUEUE_COUNT
from tools.sinks import PagerDutySink, SlackSink, WebhookSink
from triage import destinations
from triage.destinations import webhook
from triage.settings import Settings
from triage.store import RedriveFilter, Store, open_configured


def take_one(store: Any) -> Any:
    [lease] = store.poll("acs-triage-outbox", 32)
    return lease


def run_queue_function(lease: Any) -> None:
    """The queue trigger as the host calls it, for one leased message (which it does not settle)."""
    function_app.deliver(QueueMessage(id=lease.id, body=lease.body, dequeue_count=lease.dequeue_count))  # type: ignore[no-untyped-call]


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_a_message_handed_out_again_after_its_post_is_not_posted_again(
    kind: str, make_store: Callable[[str], Any], make_app: Callable[..., App], clock: FakeClock
) -> None:
    with SlackSink(clock=clock.time, rate_limit=False) as slack:
        store = make_store(kind)
        app = make_app(store, slack_url=slack.url)
        app.post(sms_failures(1))
        lease = take_one(store)
        run_queue_function(lease)  # posted, and recorded as sent...
        assert len(slack.accepted) == 1
        lease.fail()  # ...but the worker died before the host deleted it: the message comes back

        again = take_one(store)
        assert again.message.id == lease.message.id and again.dequeue_count == 2
        run_queue_function(again)
        again.done()
        assert len(slack.received) == 1  # not posted a second time
        assert app.deliver() == (0, 0)


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_a_message_that_was_never_posted_is_posted_when_it_comes_back(
    kind: str, make_store: Callable[[str], Any], make_app: Callable[..., App], clock: FakeClock
) -> None:
    with SlackSink(clock=clock.time, rate_limit=False) as slack:
        slack.fail_first(3, status=500)  # every in-process attempt of the first dequeue fails
        store = make_store(kind)
        app = make_app(store, slack_url=slack.url)
        app.post(sms_failures(1))
        assert app.deliver() == (1, 1)
        assert [r.status for r in slack.received] == [500, 500, 500, 200]


def test_every_attempt_dequeue_and_redrive_of_one_alert_gives_destinations_the_same_message_id(
    monkeypatch: pytest.MonkeyPatch, make_store: Callable[[str], Any], make_app: Callable[..., App]
) -> None:
    seen: list[str] = []

    def record(body: bytes, destination: Any, now: float, message_id: str) -> dict[str, str]:
        seen.append(message_id)
        return {"X-Message-Id": message_id}

    monkeypatch.setattr(webhook, "KIND", msgspec.structs.replace(webhook.KIND, headers=record))
    destinations.kind.cache_clear()
    try:
        with WebhookSink() as sink:
            sink.fail_first(3 * MAX_DEQUEUE_COUNT, status=503)  # every attempt of every dequeue
            store = make_store("memory")
            app = make_app(store, webhook_url=sink.url)
            app.post(sms_failures(1))
            assert app.deliver() == (0, MAX_DEQUEUE_COUNT)  # poisoned
            assert store.poison and store.queued() == 0
            store.redrive(time.time(), RedriveFilter())
            assert app.deliver() == (1, 0)
            headers = [r.headers for r in sink.received]
    finally:
        destinations.kind.cache_clear()
    [message_id] = set(seen)
    assert len(seen) == len(sink.received) > 3
    assert all(h.get("X-Message-Id") == message_id for h in headers)


def test_pagerduty_gets_the_bursts_dedup_key_on_every_post_of_one_alert(
    make_store: Callable[[str], Any], make_app: Callable[..., App], clock: FakeClock
) -> None:
    with PagerDutySink(clock=clock.time, rate_limit=False) as pd:
        pd.fail_first(1, status=500)
        app = make_app(make_store("memory"), pagerduty_url=pd.url, pagerduty_routing_key=pd.routing_key)
        app.post(sms_failures(1))
        assert app.deliver() == (1, 0)
        keys = {r.json["dedup_key"] for r in pd.received}
        assert len(pd.received) == 2 and len(keys) == 1 and set(pd.incidents) == keys


# -- a real SIGKILL ---------------------------------------------------------------------------
def outbox_empty(store: Store, now: float) -> bool:
    return all(not row.queued for row in store.outbox_status(now))


def test_serve_killed_right_after_recording_a_post_does_not_post_it_again(tmp_path: Path) -> None:
    with SlackSink(rate_limit=False) as slack:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("ACS_TRIAGE_")}
        clean.pop("AzureWebJobsStorage", None)
        env = {
            **clean,
            "ACS_TRIAGE_STORE": f"sqlite:{tmp_path / 'state.sqlite3'}",
            "ACS_TRIAGE_SLACK_URL": slack.url,
        }
        log = tmp_path / "serve.log"
        # Killed as soon as the post is recorded: before the lease is settled (deleted).
        process, url = start({**env, "CRASH_DELIVERS": "1"}, "mark_sent:1", log)
        answer = requests.post(url, json=sms_failures(1), timeout=30)
        assert answer.status_code == 200 and answer.json()["alerted"] == 1
        assert process.wait(timeout=60) == -signal.SIGKILL
        assert len(slack.accepted) == 1

        # Restarted: the message becomes visible again once its lease (30 s) has run out.
        process, _ = start({**env, "CRASH_DELIVERS": "1"}, "", log)
        store = open_configured(Settings.from_env(env))
        try:
            deadline = time.monotonic() + 60
            while not outbox_empty(store, time.time()):
                assert time.monotonic() < deadline, log.read_text(errors="replace")[-2000:]
                time.sleep(0.5)
        finally:
            store.close()
            process.kill()
            process.wait(timeout=30)
        assert len(slack.received) == 1
        assert "was delivered to slack before" in log.read_text(errors="replace")
