"""The settings a Function App has, checked before they bite (`python -m triage doctor` prints them).

Every problem names its setting and says how to fix it. Errors are settings that would lose or
misroute alerts; warnings are choices that work but deserve a second look. The same checks run
when the app starts (`Service`) and feed `GET /api/health`.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from typing import Literal

from msgspec import Struct

from .errors import ConfigurationError
from .settings import (
    IN_AZURE_SETTING,
    OUTBOX_QUEUE_SETTING,
    PREFIX,
    STORAGE_SETTING,
    Settings,
    in_azure,
)

__all__ = [
    "Problem",
    "check",
    "check_settings",
    "probe",
    "problems_block",
    "storage_failure",
    "store_refusal",
]

_SETTING = re.compile(r"^(?:Key Vault reference for )?([A-Za-z][A-Za-z0-9_]*)")
_ROLES = "Storage Queue Data Contributor and Storage Table Data Contributor"


class Problem(Struct, frozen=True):
    """One thing wrong with the settings: its level, the setting, and what to do."""

    level: Literal["error", "warning"]
    setting: str
    message: str  # starts with the setting's name; says the fix; never holds a secret

    def as_dict(self) -> dict[str, str]:
        """The problem as the health route and `doctor --json` show it."""
        return {"level": self.level, "setting": self.setting, "message": self.message}


def _error(message: str) -> Problem:
    found = _SETTING.match(message)
    return Problem("error", found.group(1) if found else "settings", message)


def store_refusal(settings: Settings) -> str | None:
    """Why the configured store cannot be used here, or None. In Azure only Azure Storage is
    accepted: the queue trigger reads the storage queue, so an outbox anywhere else (memory,
    SQLite on one instance's disk) is never delivered."""
    if not settings.in_azure:
        return None
    if settings.store == "auto" and settings.storage is None:
        return (
            f"{STORAGE_SETTING} is not set: in Azure alerts need Azure Storage for the outbox. Set "
            f"{STORAGE_SETTING}__accountName to the storage account's name (managed identity, with the "
            f"{_ROLES} roles) or {STORAGE_SETTING} to a connection string"
        )
    if settings.store not in ("auto", "azure"):
        return (
            f"{PREFIX}STORE={settings.store} is refused in Azure ({IN_AZURE_SETTING} is set): the queue "
            f"trigger reads Azure Storage, so alerts stored elsewhere would never be delivered. "
            f"Remove {PREFIX}STORE"
        )
    return None


def check_settings(settings: Settings) -> list[Problem]:
    """Problems with settings that parsed: what they would do rather than how they are spelt."""
    problems: list[Problem] = []
    if not [d for d in settings.destinations.values() if d.kind.postable]:
        problems.append(
            Problem(
                "error",
                f"{PREFIX}TEAMS_URL",
                f"{PREFIX}TEAMS_URL, {PREFIX}SLACK_URL: no destination is configured, so no alert is "
                f"posted. Set at least one webhook URL (a Key Vault reference works: "
                f"@Microsoft.KeyVault(SecretUri=...))",
            )
        )
    refusal = store_refusal(settings)
    if refusal:
        problems.append(_error(refusal))
    elif settings.store == "memory" or (settings.store == "auto" and settings.storage is None):
        problems.append(
            Problem(
                "warning",
                STORAGE_SETTING,
                f"{STORAGE_SETTING} is not set: the in-memory store keeps dedup keys, bursts and the outbox "
                f"in this process only (fine for a local run; in Azure it is refused)",
            )
        )
    problems += _legacy_webhook_keys(settings)
    if not settings.mask_pii:
        problems.append(
            Problem(
                "warning",
                f"{PREFIX}MASK_PII",
                f"{PREFIX}MASK_PII=false: phone numbers and user ids are shown in full in alerts; "
                f"remove the setting unless the channel may see them",
            )
        )
    return problems


def _legacy_webhook_keys(settings: Settings) -> list[Problem]:
    """A webhook signed with a key of the scheme before Standard Webhooks: it works until the
    migration date, and then the key is refused."""
    from .destinations import webhook

    problems = []
    for destination in settings.destinations.values():
        secret = destination.secret.get_secret_value() if destination.secret is not None else ""
        if destination.format != "webhook" or not secret or secret.startswith(webhook.SECRET_PREFIX):
            continue
        setting = (
            f"{PREFIX}WEBHOOK_SECRET"
            if destination.name == "webhook"
            else f"{PREFIX}DEST_{destination.name.upper()}_SECRET"
        )
        problems.append(
            Problem(
                "warning",
                setting,
                f"{setting} is a legacy key (not {webhook.SECRET_PREFIX}): posts also carry the old "
                f"X-ACS-Triage-* headers, until {webhook.LEGACY_UNTIL}; then the key is refused. Move the "
                f"receiver to Standard Webhooks and set a {webhook.SECRET_PREFIX} key (docs/webhook.md)",
            )
        )
    return problems


def check(env: Mapping[str, str]) -> tuple[Settings | None, list[Problem]]:
    """The settings in `env` and every problem with them, without touching storage."""
    settings, found = Settings.read(env)
    problems = [_error(text) for text in found]
    if settings is not None:
        unreadable_url = any(p.setting.endswith("_URL") or "Key Vault" in p.message for p in problems)
        problems += [  # "no destination" would only repeat that a URL setting is wrong
            p for p in check_settings(settings) if not (unreadable_url and "no destination" in p.message)
        ]
    if in_azure(env) and not env.get(OUTBOX_QUEUE_SETTING):
        problems.append(
            Problem(
                "error",
                OUTBOX_QUEUE_SETTING,
                f"{OUTBOX_QUEUE_SETTING} is not set: the queue trigger binds %{OUTBOX_QUEUE_SETTING}%, so "
                f"the host cannot index the delivering function and no alert is posted. Set it to "
                f"{settings.outbox_queue if settings else 'acs-triage-outbox'!r} (unique per app)",
            )
        )
    return settings, problems


def storage_failure(err: BaseException, settings: Settings) -> Problem | None:
    """The problem an Azure SDK error says about the storage settings, or None when `err` is
    not a storage failure. Names the setting; holds no URL (a SAS token could be in one)."""
    if isinstance(err, ConfigurationError):
        return _error(str(err))
    if settings.storage is None or "azure.core.exceptions" not in sys.modules:
        return None
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
    )

    setting = settings.storage.setting
    if isinstance(err, ClientAuthenticationError) or "CredentialUnavailable" in type(err).__name__:
        how = (
            f"the app's identity could not get a storage token ({type(err).__name__}): turn on the Function "
            f"App's managed identity (and set {STORAGE_SETTING}__credential=managedidentity with "
            f"{STORAGE_SETTING}__clientId for a user-assigned one)"
        )
    elif isinstance(err, HttpResponseError) and err.status_code in (401, 403):
        how = f"storage refused access ({err.status_code}): give the app's identity the {_ROLES} roles"
    elif isinstance(err, ServiceRequestError):
        how = f"storage could not be reached ({type(err).__name__}): check the account name or service URIs"
    elif isinstance(err, HttpResponseError):
        how = f"storage answered {err.status_code} ({type(err).__name__})"
    else:
        return None
    return Problem("error", setting, f"{setting}: storage is unusable: {how}")


def problems_block(problems: list[Problem]) -> bool:
    """True when a storage problem is already known (no point in contacting it)."""
    return any(p.setting.startswith(STORAGE_SETTING) and p.level == "error" for p in problems)


def probe(settings: Settings) -> tuple[tuple[int, int] | None, Problem | None]:
    """Open the Azure store the settings name and ask it something cheap: (outbox and poison
    depths, None), or (None, the problem)."""
    from .store.azure import AzureStore

    try:
        with AzureStore(
            settings.storage or "", queue_name=settings.outbox_queue, table_prefix=settings.table_prefix
        ) as store:
            return store.probe(), None
    except Exception as err:
        problem = storage_failure(err, settings)
        if problem is None:
            setting = settings.storage.setting if settings.storage else STORAGE_SETTING
            problem = Problem("error", setting, f"{setting}: storage is unusable ({type(err).__name__})")
        return None, problem
