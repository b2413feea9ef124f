"""Identity-based storage: AzureWebJobsStorage__* read as the Functions host reads it, and the
store working on Azurite with OAuth over HTTPS and a managed identity's token (from a loopback
identity endpoint; no real one is ever reached)."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azurite_oauth import (
    IdentityEndpoint,
    azurite_oauth_fixture,
    identity_endpoint_fixture,
    storage_token,
)
from azurite_server import ACCOUNT

from samples import sample_bytes
from triage.errors import ConfigurationError
from triage.service import Service
from triage.settings import Settings, StorageConnection
from triage.store import Claim
from triage.store.azure import AzureStore

__all__ = ["azurite_oauth_fixture", "identity_endpoint_fixture"]

CLIENT_ID = "0d6e7a4f-1b2c-4d3e-8f90-a1b2c3d4e5f6"  # a user-assigned identity's client id
TEAMS = {"ACS_TRIAGE_TEAMS_URL": "https://teams.example.invalid/workflows/x?sig=y"}
SAMPLE = "callbacks/play-failed-400-8535.json"


def test_account_name_alone_means_the_public_queue_and_table_endpoints() -> None:
    storage = StorageConnection.from_env({"AzureWebJobsStorage__accountName": "contosotriage"})
    assert storage is not None and storage.connection_string is None
    assert storage.queue_service_uri == "https://contosotriage.queue.core.windows.net"
    assert storage.table_service_uri == "https://contosotriage.table.core.windows.net"
    assert (storage.credential, storage.client_id) == (None, None)


def test_service_uris_credential_and_client_id_are_read_case_insensitively_in_either_form() -> None:
    storage = StorageConnection.from_env(
        {
            "AzureWebJobsStorage__queueServiceUri": "https://q.example.invalid/acct/",
            "AzureWebJobsStorage:tableServiceUri": "https://t.example.invalid/acct",
            "AzureWebJobsStorage__CREDENTIAL": "ManagedIdentity",
            "AzureWebJobsStorage__clientId": CLIENT_ID,
        }
    )
    assert storage is not None
    assert (storage.queue_service_uri, storage.table_service_uri) == (
        "https://q.example.invalid/acct",
        "https://t.example.invalid/acct",
    )
    assert (storage.credential, storage.client_id) == ("managedidentity", CLIENT_ID)


def test_a_connection_string_wins_over_identity_settings_as_with_the_host() -> None:
    storage = StorageConnection.from_env(
        {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "AzureWebJobsStorage__accountName": "x"}
    )
    assert storage is not None and storage.connection_string is not None
    assert "UseDevelopmentStorage" not in repr(storage)  # a connection string is a secret


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"AzureWebJobsStorage__queueServiceUri": "https://q.invalid/a"},
            "AzureWebJobsStorage__tableServiceUri",
        ),
        ({"AzureWebJobsStorage__credential": "managedidentity"}, "AzureWebJobsStorage__accountName"),
        ({"AzureWebJobsStorage__accountName": "a", "AzureWebJobsStorage__credential": "cli"}, "__credential"),
        (
            {
                "AzureWebJobsStorage__queueServiceUri": "http://q.invalid/a",
                "AzureWebJobsStorage__accountName": "a",
            },
            "must be an https:// URL",
        ),
    ],
)
def test_an_incomplete_identity_connection_names_the_setting_to_fix(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Settings.from_env(env)


def _identity_env(azurite: Any, **extra: str) -> dict[str, str]:
    return {
        **TEAMS,
        "AzureWebJobsStorage__queueServiceUri": azurite.queue_uri,
        "AzureWebJobsStorage__tableServiceUri": azurite.table_uri,
        "ACS_TRIAGE_OUTBOX_QUEUE": f"outbox-{time.time_ns()}",
        "ACS_TRIAGE_TABLE_PREFIX": f"t{time.time_ns()}",
        **extra,
    }


@pytest.mark.azurite
def test_a_user_assigned_managed_identity_carries_events_into_the_outbox(
    azurite_oauth: Any, identity_endpoint: IdentityEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(azurite_oauth.ca_file))
    env = _identity_env(
        azurite_oauth,
        AzureWebJobsStorage__credential="managedidentity",
        AzureWebJobsStorage__clientId=CLIENT_ID,
    )
    service = Service(Settings.from_env(env))
    answer = service.handle_http(
        "callbacks", "POST", {"Content-Type": "application/json"}, {}, sample_bytes(SAMPLE)
    )
    assert answer.status == 200, answer.body
    leases = service.store.poll(env["ACS_TRIAGE_OUTBOX_QUEUE"], 32)  # type: ignore[attr-defined]
    assert [lease.message.destination for lease in leases] == ["teams"]
    # The token came from the (loopback) managed identity endpoint, for storage, for that identity.
    assert identity_endpoint.requests
    assert {r.get("client_id") for r in identity_endpoint.requests} == {CLIENT_ID}
    assert {r["resource"] for r in identity_endpoint.requests} == {"https://storage.azure.com"}


@pytest.mark.azurite
def test_a_refused_identity_answers_503_naming_the_setting_and_logs_it_once(
    azurite_oauth: Any,
    identity_endpoint: IdentityEndpoint,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(azurite_oauth.ca_file))
    identity_endpoint.refuse = True
    env = _identity_env(azurite_oauth, AzureWebJobsStorage__credential="managedidentity")
    service = Service(Settings.from_env(env))
    caplog.set_level(logging.ERROR, logger="triage")
    answers = [
        service.handle_http(
            "callbacks", "POST", {"Content-Type": "application/json"}, {}, sample_bytes(SAMPLE)
        )
        for _ in range(2)
    ]
    assert [a.status for a in answers] == [503, 503]
    assert b"AzureWebJobsStorage__accountName" in answers[0].body and b"managed identity" in answers[0].body
    logged = [r for r in caplog.records if "storage is unusable" in r.getMessage()]
    assert len(logged) == 1
    health = service.health()
    assert health.status == 503 and b"storage is unusable" in health.body


class _FixedToken:
    """A TokenCredential handing out one storage token, as a credential object a caller brings."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(storage_token(), int(time.time()) + 3600)


@pytest.mark.azurite
def test_the_store_takes_a_credential_object_and_probes_tables_and_queues(azurite_oauth: Any) -> None:
    credential = _FixedToken()
    storage = StorageConnection(
        queue_service_uri=azurite_oauth.queue_uri, table_service_uri=azurite_oauth.table_uri
    )
    tag = time.time_ns()
    with AzureStore(
        storage,
        credential=credential,
        client_options={"connection_verify": str(azurite_oauth.ca_file)},
        queue_name=f"outbox-{tag}",
        table_prefix=f"t{tag}",
    ) as store:
        from datetime import UTC, datetime, timedelta

        now = datetime.now(UTC)
        assert store.claim(["a", "a2"], now, timedelta(hours=24)) == [Claim.NEW, Claim.NEW]
        assert store.claim(["a"], now, timedelta(hours=24)) == [Claim.DUPLICATE]
        assert store.probe() == (0, 0)
    assert credential.scopes and all(s == ("https://storage.azure.com/.default",) for s in credential.scopes)


@pytest.mark.azurite
def test_without_a_token_oauth_azurite_refuses_so_the_token_is_what_gets_in(azurite_oauth: Any) -> None:
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

    class _NoToken(_FixedToken):
        def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            return AccessToken("not-a-jwt", int(time.time()) + 3600)

    storage = StorageConnection(
        queue_service_uri=azurite_oauth.queue_uri, table_service_uri=azurite_oauth.table_uri
    )
    with (
        AzureStore(
            storage,
            credential=_NoToken(),
            client_options={"connection_verify": str(azurite_oauth.ca_file)},
            queue_name=f"outbox-{time.time_ns()}",
        ) as store,
        pytest.raises((ClientAuthenticationError, HttpResponseError)),
    ):
        store.probe()
    assert ACCOUNT in azurite_oauth.queue_uri
