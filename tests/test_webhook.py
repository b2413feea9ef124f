"""The generic webhook, end to end: alerts go through the real pipeline and deliverer to a local
receiver (tools/sinks.py WebhookSink) that checks each document against
docs/webhook-alert.schema.json and verifies the signature as docs/webhook.md tells receivers to.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, tzinfo
from typing import Any

import jsonschema
import orjson
import pytest
import standardwebhooks.webhooks
from azurite_server import STORE_KINDS, poisoned
from factories import make_alert, make_digest, make_huge_alert, make_incident
from msgspec.structs import replace
from standardwebhooks import Webhook, WebhookVerificationError
from test_delivery_faults import WINDOW_SECONDS, App, FakeClock, sms_failures

from tools.replay import SAMPLES, alerts_from_files
from tools.sinks import WEBHOOK_SCHEMA, Received, WebhookSink
from triage.destinations import webhook
from triage.errors import ConfigurationError
from triage.settings import Settings
from triage.store.memory import MemoryStore


def whsec(seed: str) -> str:
    """A Standard Webhooks key: `whsec_` and 32 bytes in base64."""
    return "whsec_" + base64.b64encode(hashlib.sha256(seed.encode()).digest()).decode()


SECRET = whsec("the webhook's key")
NEXT_SECRET = whsec("the key it rotates to")
LEGACY_SECRET = "legacy-7f3a9c2e41b84d0f9e6a"  # a key of the scheme before Standard Webhooks


@pytest.fixture(name="library_clock", autouse=True)
def library_clock_fixture(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> None:
    """standardwebhooks checks timestamps against datetime.now(): here that is the test's clock,
    so the library verifies what the deliverer signed at the fake time."""

    class _Now(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> _Now:
            moment = datetime.fromtimestamp(clock.time(), tz or UTC)
            return cls.fromtimestamp(moment.timestamp(), moment.tzinfo)

    monkeypatch.setattr(standardwebhooks.webhooks, "datetime", _Now)


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


def test_every_post_verifies_with_the_standardwebhooks_package_and_its_id_is_the_outbox_message_id(
    make_app: Callable[..., App], receiver: WebhookSink, clock: FakeClock
) -> None:
    store = MemoryStore()
    app = with_webhook(make_app, store, receiver)
    app.post(sms_failures(1))
    [queued] = store.outbox
    app.deliver()
    [request] = receiver.received
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert Webhook(SECRET).verify(request.body, headers) == orjson.loads(request.body)
    assert int(headers["webhook-timestamp"]) == int(clock.time())
    assert headers["webhook-signature"].startswith("v1,") and " " not in headers["webhook-signature"]
    assert headers["webhook-id"] == queued.id
    # A whsec_ key speaks Standard Webhooks only: the old headers are for legacy keys.
    assert not any(k.startswith("x-acs-triage") for k in headers)


def test_the_signature_is_hmac_sha256_of_id_timestamp_and_the_exact_body_with_the_decoded_key(
    make_app: Callable[..., App], receiver: WebhookSink
) -> None:
    request = one_alert_received(make_app, receiver)
    headers = {k.lower(): v for k, v in request.headers.items()}
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + request.body
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert headers["webhook-signature"] == f"v1,{expected}"


def test_retries_of_one_message_share_its_webhook_id_and_each_attempt_is_signed_at_its_own_time(
    make_store: Callable[[str], Any], make_app: Callable[..., App], receiver: WebhookSink, clock: FakeClock
) -> None:
    receiver.fail_first(2, status=503)
    app = with_webhook(make_app, make_store("memory"), receiver)
    app.post(sms_failures(1))
    assert app.deliver() == (1, 0)
    attempts = receiver.received
    assert [r.status for r in attempts] == [503, 503, 200]
    ids = {r.headers["webhook-id"] for r in attempts}
    assert len(ids) == 1
    stamps = [int(r.headers["webhook-timestamp"]) for r in attempts]
    assert stamps == sorted(stamps) and stamps[0] < stamps[-1]  # the backoff passed between them
    for request in attempts:
        Webhook(SECRET).verify(request.body, dict(request.headers), json_parse=False)


def test_two_keys_sign_each_post_twice_so_receivers_with_either_key_verify_during_a_rotation(
    make_app: Callable[..., App], clock: FakeClock
) -> None:
    with (
        WebhookSink(secret=SECRET, clock=clock.time) as old_receiver,
        WebhookSink(secret=NEXT_SECRET, clock=clock.time) as new_receiver,
        WebhookSink(secret=whsec("neither key"), clock=clock.time) as stranger,
    ):
        for sink in (old_receiver, new_receiver, stranger):
            app = make_app(MemoryStore(), webhook_url=sink.url, webhook_secret=f"{SECRET} {NEXT_SECRET}")
            app.post(sms_failures(1))
            assert app.deliver() == (1, 0), app.answers
        assert [r.status for r in old_receiver.received] == [200]
        assert [r.status for r in new_receiver.received] == [200]
        assert [r.status for r in stranger.received] == [401]
        [request] = new_receiver.received
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for key in (SECRET, NEXT_SECRET):
        Webhook(key).verify(request.body, dict(request.headers), json_parse=False)


def test_a_legacy_key_still_sends_the_old_headers_beside_standard_webhooks_until_the_migration_date(
    make_store: Callable[[str], Any], make_app: Callable[..., App], clock: FakeClock
) -> None:
    with WebhookSink(secret=LEGACY_SECRET, clock=clock.time) as old_receiver:  # verifies both schemes
        app = make_app(make_store("memory"), webhook_url=old_receiver.url, webhook_secret=LEGACY_SECRET)
        app.post(sms_failures(1))
        app.deliver()
        [request] = old_receiver.received
    assert request.status == 200
    timestamp = request.headers["X-ACS-Triage-Timestamp"]
    expected = hmac.new(LEGACY_SECRET.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256)
    assert request.headers["X-ACS-Triage-Signature"] == f"sha256={expected.hexdigest()}"
    Webhook(LEGACY_SECRET.encode()).verify(request.body, dict(request.headers), json_parse=False)
    assert webhook.LEGACY_UNTIL in (WEBHOOK_SCHEMA.parent / "webhook.md").read_text(encoding="utf-8")


def test_a_receiver_with_another_secret_refuses_the_post_and_it_is_dead_lettered_not_retried(
    make_store: Callable[[str], Any], make_app: Callable[..., App], clock: FakeClock
) -> None:
    store = make_store("memory")
    with WebhookSink(secret=whsec("another key entirely"), clock=clock.time) as strict:
        app = make_app(store, webhook_url=strict.url, webhook_secret=SECRET)
        app.post(sms_failures(1))
        assert app.deliver() == (1, 0)
        assert [r.status for r in strict.received] == [401]
    [dead] = poisoned(store)
    assert dead.destination == "webhook"


def test_a_captured_request_played_again_later_is_refused_and_within_five_minutes_its_id_gives_it_away(
    make_app: Callable[..., App], receiver: WebhookSink, clock: FakeClock
) -> None:
    import requests

    request = one_alert_received(make_app, receiver)
    headers = {k: v for k, v in request.headers.items() if k.lower().startswith("webhook-")}
    soon = requests.post(receiver.url, data=request.body, headers=headers, timeout=5)
    assert soon.status_code == 200 and receiver.duplicates == [headers["webhook-id"]]
    clock.advance(301)  # past the 5 minutes Standard Webhooks tells receivers to allow
    again = requests.post(receiver.url, data=request.body, headers=headers, timeout=5)
    assert again.status_code == 401
    assert "too old" in again.json()["error"]
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(SECRET).verify(request.body, headers)


def test_without_a_secret_posts_carry_no_signature_headers(
    make_store: Callable[[str], Any], make_app: Callable[..., App], clock: FakeClock
) -> None:
    with WebhookSink(clock=clock.time) as open_receiver:
        app = make_app(make_store("memory"), webhook_url=open_receiver.url)
        app.post(sms_failures(1))
        assert app.deliver() == (1, 0)
        [request] = open_receiver.received
    assert not any(k.lower().startswith(("x-acs-triage", "webhook-")) for k in request.headers)


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
@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("whsec_not*base64!", "key 1 is not whsec_ followed by base64"),
        ("whsec_" + base64.b64encode(b"sixteen bytes!!!").decode(), "key 1 decodes to 16 bytes"),
        (f"{SECRET} {LEGACY_SECRET}", "holds several keys: each must be a whsec_<base64> key"),
        (f"{SECRET} whsec_AAAA", "key 2 decodes to 3 bytes"),
    ],
)
def test_a_webhook_secret_that_cannot_sign_as_standard_webhooks_asks_is_an_error_naming_it(
    value: str, problem: str
) -> None:
    with pytest.raises(ConfigurationError, match=f"ACS_TRIAGE_WEBHOOK_SECRET {problem}") as caught:
        Settings.from_env(
            {"ACS_TRIAGE_WEBHOOK_URL": "https://example.invalid/hook", "ACS_TRIAGE_WEBHOOK_SECRET": value}
        )
    assert value not in str(caught.value)


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


def test_doctor_warns_about_a_legacy_key_until_the_migration_date_and_not_about_whsec_keys() -> None:
    from triage.checks import check

    base = {"ACS_TRIAGE_WEBHOOK_URL": "https://example.invalid/hook"}
    _, problems = check({**base, "ACS_TRIAGE_WEBHOOK_SECRET": LEGACY_SECRET})
    [legacy] = [p for p in problems if p.setting == "ACS_TRIAGE_WEBHOOK_SECRET"]
    assert legacy.level == "warning" and webhook.LEGACY_UNTIL in legacy.message
    assert LEGACY_SECRET not in legacy.message
    _, problems = check({**base, "ACS_TRIAGE_WEBHOOK_SECRET": f"{SECRET} {NEXT_SECRET}"})
    assert [p for p in problems if "SECRET" in p.setting] == []
