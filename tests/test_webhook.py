"""The generic webhook, end to end: alerts go through the real pipeline and deliverer to a local
receiver (tools/sinks.py WebhookSink) that checks each document against
docs/webhook-alert.schema.json and verifies the signature as docs/webhook.md tells receivers to.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterator
from typing import Any

import jsonschema
import orjson
import pytest
from azurite_server import (  # noqa: F401 - pytest fixtures
    STORE_KINDS,
    azure_store_fixture,
    azurite_fixture,
    make_store_fixture,
    poisoned,
)
from factories import make_alert, make_digest, make_huge_alert, make_incident
from msgspec.structs import replace
from test_delivery_faults import (  # noqa: F401 - pytest fixtures and the shared harness
    WINDOW_SECONDS,
    App,
    FakeClock,
    clock_fixture,
    make_app_fixture,
    sms_failures,
)

from tools.replay import SAMPLES, alerts_from_files
from tools.sinks import WEBHOOK_SCHEMA, Received, WebhookSink
from triage.destinations import webhook
from triage.errors import ConfigurationError
from triage.settings import Settings
from triage.store.memory import MemoryStore

SECRET = "whsec-7f3a9c2e41b84d0f9e6a"


@pytest.fixture(name="receiver")
def receiver_fixture(clock: FakeClock) -> Iterator[WebhookSink]:
    with WebhookSink(secret=SECRET, clock=clock.time) as sink:
        yield sink


def schema_validator() -> jsonschema.Draft202012Validator:
    """docs/webhook-alert.schema.json, itself checked against the JSON Schema meta-schema."""
    schema = orjson.loads(WEBHOOK_SCHEMA.read_bytes())
    jsonschema.Draft202012Validator.check_schema(schema)
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    return jsonschema.Draft202012Validator(schema, format_checker=checker)


VALIDATOR = schema_validator()


def with_webhook(make_app: Callable[..., App], store: Any, receiver: WebhookSink, **more: str) -> App:
    return make_app(store, webhook_url=receiver.url, webhook_secret=SECRET, **more)


def one_alert_received(make_app: Callable[..., App], receiver: WebhookSink) -> Received:
    """One SMS failure through the pipeline and the deliverer: the request the receiver got."""
    app = with_webhook(make_app, MemoryStore(), receiver)
    app.post(sms_failures(1))
    app.deliver()
    [request] = receiver.received
    return request


# -- delivery ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", STORE_KINDS)
def test_an_alert_and_its_digest_reach_the_receiver_signed_and_valid_against_the_schema(
    kind: str,
    make_store: Callable[[str], Any],
    make_app: Callable[..., App],
    receiver: WebhookSink,
    clock: FakeClock,
) -> None:
    app = with_webhook(make_app, make_store(kind), receiver)
    app.post(sms_failures(4))
    clock.advance(WINDOW_SECONDS + 1)
    app.flush()
    assert app.deliver() == (2, 0)

    assert [r.status for r in receiver.received] == [200, 200]  # the receiver verified both
    first, digest = receiver.accepted
    for doc in (first, digest):
        VALIDATOR.validate(doc)
        assert doc["schema"] == "acs-triage.alert/v1"
        assert doc["status"] == "firing"
    assert (first["counts"]["count"], first["counts"]["digest"]) == (1, False)
    assert (digest["counts"]["count"], digest["counts"]["digest"]) == (3, True)
    assert first["fingerprint"] == digest["fingerprint"]
    assert len(digest["samples"]) == 3


def test_the_signature_is_hmac_sha256_over_the_timestamp_and_the_exact_body(
    make_app: Callable[..., App], receiver: WebhookSink, clock: FakeClock
) -> None:
    request = one_alert_received(make_app, receiver)
    timestamp = request.headers["X-ACS-Triage-Timestamp"]
    assert int(timestamp) == int(clock.time())
    expected = hmac.new(SECRET.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-ACS-Triage-Signature"] == f"sha256={expected}"


def test_a_receiver_with_another_secret_refuses_the_post_and_it_is_dead_lettered_not_retried(
    make_store: Callable[[str], Any], make_app: Callable[..., App], clock: FakeClock
) -> None:
    store = make_store("memory")
    with WebhookSink(secret="another-secret-entirely-1234", clock=clock.time) as strict:
        app = make_app(store, webhook_url=strict.url, webhook_secret=SECRET)
        app.post(sms_failures(1))
        assert app.deliver() == (1, 0)
        assert [r.status for r in strict.received] == [401]
    [dead] = poisoned(store)
    assert dead.destination == "webhook"


def test_a_captured_request_played_again_later_is_refused_by_a_verifying_receiver(
    make_app: Callable[..., App], receiver: WebhookSink, clock: FakeClock
) -> None:
    import requests

    request = one_alert_received(make_app, receiver)
    clock.advance(301)  # past the 5 minutes docs/webhook.md tells receivers to allow
    headers = {k: v for k, v in request.headers.items() if k.lower().startswith("x-acs-triage")}
    again = requests.post(receiver.url, data=request.body, headers=headers, timeout=5)
    assert again.status_code == 401
    assert "timestamp" in again.json()["error"]


def test_without_a_secret_posts_carry_no_signature_headers(
    make_store: Callable[[str], Any], make_app: Callable[..., App], clock: FakeClock
) -> None:
    with WebhookSink(clock=clock.time) as open_receiver:
        app = make_app(make_store("memory"), webhook_url=open_receiver.url)
        app.post(sms_failures(1))
        assert app.deliver() == (1, 0)
        [request] = open_receiver.received
    assert not any(k.lower().startswith("x-acs-triage") for k in request.headers)


def test_a_500_from_the_receiver_is_retried_and_the_document_delivered_once(
    make_store: Callable[[str], Any], make_app: Callable[..., App], receiver: WebhookSink
) -> None:
    receiver.fail_first(1, status=503)
    app = with_webhook(make_app, make_store("memory"), receiver)
    app.post(sms_failures(1))
    assert app.deliver() == (1, 0)
    assert [r.status for r in receiver.received] == [503, 200]
    # Each attempt is signed afresh: the retry verified.
    assert len(receiver.accepted) == 1


# -- the document ----------------------------------------------------------------------------------
def test_every_sample_and_every_status_renders_a_document_valid_against_the_schema() -> None:
    alerts = alerts_from_files([str(SAMPLES)])  # every sample, one alert per failing event
    alerts += [make_alert(), make_digest(), make_huge_alert(), make_alert(make_incident(time=None))]
    assert len(alerts) > 20
    for alert in alerts:
        for status in ("firing", "resolved", "silenced"):
            doc = webhook.render(replace(alert, status=status))  # type: ignore[arg-type]
            errors = [e.message for e in VALIDATOR.iter_errors(doc)]
            assert errors == [], (alert.title, status, errors)


def test_the_schema_refuses_a_document_of_another_version_or_with_unknown_fields() -> None:
    doc = webhook.render(make_alert())
    assert not list(VALIDATOR.iter_errors(doc))
    assert list(VALIDATOR.iter_errors({**doc, "schema": "acs-triage.alert/v2"}))
    assert list(VALIDATOR.iter_errors({**doc, "surprise": 1}))


def test_the_document_keeps_event_text_as_given_for_the_receiver_to_escape() -> None:
    doc = webhook.render(make_alert(make_incident(message="<!channel> *bold*")))
    assert doc["alert"]["message"] == "<!channel> *bold*"


# -- settings ----------------------------------------------------------------------------------------
def test_the_webhook_url_configures_it_and_a_short_secret_is_an_error() -> None:
    settings = Settings.from_env({"ACS_TRIAGE_WEBHOOK_URL": "https://example.invalid/hook"})
    assert settings.destinations["webhook"].secret is None
    with pytest.raises(ConfigurationError, match="ACS_TRIAGE_WEBHOOK_SECRET is too short"):
        Settings.from_env(
            {"ACS_TRIAGE_WEBHOOK_URL": "https://example.invalid/hook", "ACS_TRIAGE_WEBHOOK_SECRET": "x"}
        )


def test_a_named_destination_of_kind_webhook_takes_its_own_secret() -> None:
    settings = Settings.from_env(
        {
            "ACS_TRIAGE_DEST_SNOW_URL": "https://example.invalid/servicenow",
            "ACS_TRIAGE_DEST_SNOW_FORMAT": "webhook",
            "ACS_TRIAGE_DEST_SNOW_SECRET": SECRET,
        }
    )
    destination = settings.destinations["snow"]
    assert destination.secret is not None and destination.secret.get_secret_value() == SECRET
    assert SECRET not in repr(destination)
