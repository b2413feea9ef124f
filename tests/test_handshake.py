"""Event Grid's handshake right after `azd up`: the subscription is made while a Key Vault
reference may still be unresolved and storage roles still propagating. An authentic handshake is
answered whatever the destinations and storage say; everything else still answers 503 with the
setting to fix, and `doctor` and /api/health name an unresolved Key Vault reference as such."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import azure.functions as func
import pytest

import function_app
from samples import sample_bytes
from triage.checks import check
from triage.service import Service
from triage.settings import Settings
from triage.store.memory import MemoryStore

TEAMS_URL = "https://prod-12.westeurope.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?sig=SECRET"
REFERENCE = "@Microsoft.KeyVault(SecretUri=https://kv-acstriage-x.vault.azure.net/secrets/teams-webhook-url)"
VALIDATION_CODE = "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"
UNRESOLVED = (
    "Key Vault reference for ACS_TRIAGE_TEAMS_URL is not resolved: check the app's identity has "
    "Key Vault Secrets User"
)
APP_SETTINGS = ("ACS_TRIAGE_", "AzureWebJobsStorage", "WEBSITE_")


class FunctionApp:
    """The app as the host runs it: app settings in the environment, read on the first request."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch
        self.settings: dict[str, str] = {}

    def request(
        self,
        method: str,
        route: str = "eventgrid",
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> func.HttpResponse:
        """One request as the host hands it over, to a process started with `self.settings`."""
        self.restart()
        req = func.HttpRequest(
            method=method,
            url=f"https://func-acstriage.azurewebsites.net/api/{route}",
            headers=headers if headers is not None else {"Content-Type": "application/json"},
            params=params or {},
            body=body,
        )
        response: func.HttpResponse = getattr(function_app, route)(req)
        return response

    def restart(self) -> None:
        for key, value in self.settings.items():
            self.monkeypatch.setenv(key, value)
        self.monkeypatch.setattr(function_app, "_service", None)


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> Iterator[FunctionApp]:
    for key in list(os.environ):
        if key.startswith(APP_SETTINGS):
            monkeypatch.delenv(key)
    yield FunctionApp(monkeypatch)
    function_app.configure(Service(Settings.from_env({}), MemoryStore()))


def validation() -> bytes:
    return sample_bytes("eventgrid/subscription-validation.json")


def test_validation_is_answered_while_the_teams_url_is_an_unresolved_key_vault_reference(
    app: FunctionApp,
) -> None:
    app.settings["ACS_TRIAGE_TEAMS_URL"] = REFERENCE
    response = app.request("POST", body=validation())
    assert response.status_code == 200
    assert json.loads(response.get_body()) == {"validationResponse": VALIDATION_CODE}


def test_events_meanwhile_answer_503_naming_the_unresolved_reference_so_event_grid_retries(
    app: FunctionApp,
) -> None:
    app.settings["ACS_TRIAGE_TEAMS_URL"] = REFERENCE
    response = app.request("POST", body=sample_bytes("eventgrid/sms-delivery-failed-4007-opt-out.json"))
    assert response.status_code == 503
    error = json.loads(response.get_body())["error"]
    assert UNRESOLVED in error
    assert "https://" not in error.split("Key Vault Secrets User", 1)[0]


def test_the_cloudevents_options_handshake_is_answered_whatever_the_destinations_say(
    app: FunctionApp,
) -> None:
    app.settings["ACS_TRIAGE_TEAMS_URL"] = "http://not-https.example.invalid/hook"
    response = app.request("OPTIONS", headers={"WebHook-Request-Origin": "eventgrid.azure.net"})
    assert response.status_code == 200
    assert response.headers["WebHook-Allowed-Origin"] == "eventgrid.azure.net"
    # Without the origin header it is no handshake: the settings' problem is the answer.
    assert app.request("OPTIONS", headers={}).status_code == 503


def test_validation_is_answered_while_storage_is_refused_and_events_are_not(app: FunctionApp) -> None:
    # In Azure without storage: nothing may be taken into an outbox the trigger never reads.
    app.settings |= {"ACS_TRIAGE_TEAMS_URL": TEAMS_URL, "WEBSITE_INSTANCE_ID": "abc"}
    assert app.request("POST", body=validation()).status_code == 200
    refused = app.request("POST", body=sample_bytes("eventgrid/sms-delivery-failed-4007-opt-out.json"))
    assert refused.status_code == 503
    assert b"AzureWebJobsStorage" in refused.get_body()


@pytest.mark.parametrize("working_settings", [True, False], ids=["settings-valid", "settings-broken"])
def test_with_a_shared_secret_only_an_authentic_handshake_is_answered(
    app: FunctionApp, working_settings: bool
) -> None:
    app.settings["ACS_TRIAGE_SHARED_SECRET"] = "s3cret-in-the-subscription-url"
    app.settings["ACS_TRIAGE_TEAMS_URL"] = TEAMS_URL if working_settings else REFERENCE
    forged = app.request("POST", body=validation(), params={"secret": "guess"})
    assert forged.status_code == (401 if working_settings else 503)
    assert b"validationResponse" not in forged.get_body()
    options = app.request("OPTIONS", headers={"WebHook-Request-Origin": "eventgrid.azure.net"})
    assert "WebHook-Allowed-Origin" not in options.headers
    authentic = app.request("POST", body=validation(), params={"secret": "s3cret-in-the-subscription-url"})
    assert authentic.status_code == 200
    assert json.loads(authentic.get_body()) == {"validationResponse": VALIDATION_CODE}


def test_a_shared_secret_that_is_itself_an_unresolved_reference_authenticates_nothing(
    app: FunctionApp,
) -> None:
    app.settings["ACS_TRIAGE_TEAMS_URL"] = TEAMS_URL
    app.settings["ACS_TRIAGE_SHARED_SECRET"] = REFERENCE.replace("teams-webhook-url", "shared-secret")
    for params in ({}, {"secret": REFERENCE.replace("teams-webhook-url", "shared-secret")}):
        response = app.request("POST", body=validation(), params=params)
        assert response.status_code == 503
        assert b"Key Vault reference for ACS_TRIAGE_SHARED_SECRET is not resolved" in response.get_body()


def test_a_validation_event_beside_events_still_goes_through_the_pipeline(app: FunctionApp) -> None:
    app.settings["ACS_TRIAGE_TEAMS_URL"] = REFERENCE
    body = json.dumps(
        json.loads(validation()) + json.loads(sample_bytes("eventgrid/sms-delivery-failed-4007-opt-out.json"))
    ).encode()
    assert app.request("POST", body=body).status_code == 503  # the events cannot be taken yet


def test_callbacks_are_never_answered_as_a_handshake(app: FunctionApp) -> None:
    app.settings["ACS_TRIAGE_TEAMS_URL"] = REFERENCE
    assert app.request("POST", route="callbacks", body=validation()).status_code == 503


def test_health_names_the_unresolved_reference_and_nothing_it_would_cause(app: FunctionApp) -> None:
    app.settings["ACS_TRIAGE_TEAMS_URL"] = REFERENCE
    app.restart()
    response = function_app.health(func.HttpRequest("GET", "http://localhost/api/health", body=b""))
    assert response.status_code == 503
    problems = json.loads(response.get_body())["problems"]
    errors = [p for p in problems if p["level"] == "error"]
    assert [(p["setting"], p["message"].startswith(UNRESOLVED)) for p in errors] == [
        ("ACS_TRIAGE_TEAMS_URL", True)
    ]
    assert "SecretUri" not in response.get_body().decode()  # the vault's address is not for everyone


def test_doctor_names_each_unresolved_reference_once_and_reads_it_as_unset() -> None:
    _, problems = check(
        {
            "ACS_TRIAGE_TEAMS_URL": TEAMS_URL,
            "ACS_TRIAGE_WEBHOOK_URL": "https://hooks.example.com/acs",
            "ACS_TRIAGE_WEBHOOK_SECRET": "@microsoft.keyvault(VaultName=kv;SecretName=webhook-key)",
            "ACS_TRIAGE_SLACK_URL": REFERENCE.replace("teams", "slack"),
            "UNRELATED_SETTING": REFERENCE,  # not acs-triage's: not its business
        }
    )
    problems = [p for p in problems if p.level == "error"]
    assert [p.setting for p in problems] == ["ACS_TRIAGE_SLACK_URL", "ACS_TRIAGE_WEBHOOK_SECRET"]
    assert all(
        "is not resolved: check the app's identity has Key Vault Secrets User" in p.message for p in problems
    )
    assert not any("not set" in p.message or "https://" in p.message for p in problems)


def test_resolved_references_are_what_the_app_reads() -> None:
    settings, problems = check({"ACS_TRIAGE_TEAMS_URL": TEAMS_URL})
    assert settings is not None and "teams" in settings.destinations
    assert [p.level for p in problems] == ["warning"]  # the local in-memory store
