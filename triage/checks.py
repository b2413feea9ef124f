"""The settings a Function App has, checked before they bite (`python -m triage doctor` prints them).

Every problem names its setting and says how to fix it. Errors are settings that would lose or
misroute alerts; warnings are choices that work but deserve a second look. The same checks run
when the app starts (`Service`) and feed `GET /api/health`.
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Mapping
from typing import Literal

from msgspec import Struct

from .errors import ConfigurationError
from .settings import (
    DEST_PARTS,
    IN_AZURE_SETTING,
    OUTBOX_QUEUE_SETTING,
    PREFIX,
    STORAGE_SETTING,
    Settings,
    destination_settings,
    in_azure,
    known_names,
)

__all__ = [
    "Problem",
    "check",
    "check_settings",
    "env_problems",
    "is_no_destination",
    "probe",
    "problems_block",
    "storage_failure",
    "store_refusal",
    "unknown_names",
]

_SETTING = re.compile(r"^(?:Key Vault reference for )?([A-Za-z][A-Za-z0-9_]*)")
_ROLES = "Storage Queue Data Contributor and Storage Table Data Contributor"
_NO_DESTINATION = "no destination is configured"
_DEST_NAME = re.compile(rf"^{PREFIX}DEST_(.+)_({'|'.join(DEST_PARTS)})$")


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
        wanted = ", ".join(destination_settings())
        if any(d.format == "text" for d in settings.destinations.values()):
            # Only `serve` puts the terminal there: a local run that shows alerts instead of posting.
            problems.append(
                Problem(
                    "warning",
                    f"{PREFIX}TEAMS_URL",
                    f"{wanted}: none is set, so alerts are printed on the terminal and posted nowhere",
                )
            )
        else:
            problems.append(
                Problem(
                    "error",
                    f"{PREFIX}TEAMS_URL",
                    f"{wanted}: {_NO_DESTINATION}, so no alert is posted. Set at least one of them "
                    f"(a Key Vault reference works: @Microsoft.KeyVault(SecretUri=...))",
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
    problems += _contradictions(settings)
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


def is_no_destination(problem: Problem) -> bool:
    """True for the error that no destination is configured (`serve` prints alerts instead)."""
    return problem.level == "error" and _NO_DESTINATION in problem.message


def _suggestion(name: str, known: set[str]) -> str:
    # Compared without the prefix every name shares, which would make any two names look alike.
    short = name.upper().removeprefix(PREFIX)
    close = difflib.get_close_matches(short, [k.removeprefix(PREFIX) for k in known], n=3, cutoff=0.6)
    if not close:
        return "remove it, or see local.settings.sample.json for every setting"
    # TEAMS_WEBHOOK_URL is nearer WEBHOOK_URL by letters, but its first word says Teams.
    best = PREFIX + next((c for c in close if c.split("_")[0] == short.split("_")[0]), close[0])
    if best == name.upper():
        return f"did you mean {best}? (names are case-sensitive)"
    return f"did you mean {best}?"


def unknown_names(env: Mapping[str, str]) -> list[Problem]:
    """Every ACS_TRIAGE_* name nothing reads (a misspelt one leaves its setting at the default,
    which for a webhook URL means alerts go nowhere), with the closest known name; and every
    ACS_TRIAGE_DEST_<NAME>_FORMAT or _SECRET whose _URL is missing."""
    known = known_names()
    problems: list[Problem] = []
    for name in sorted(env):
        if not name.upper().startswith(PREFIX) or name in known:
            continue
        dest = _DEST_NAME.match(name)
        if dest and dest.group(2) != "URL" and not env.get(f"{PREFIX}DEST_{dest.group(1)}_URL"):
            url = f"{PREFIX}DEST_{dest.group(1)}_URL"
            problems.append(
                Problem("error", name, f"{name} is set but {url} is not: set {url}, or remove {name}")
            )
        elif not dest:
            fix = _suggestion(name, known)
            problems.append(Problem("error", name, f"{name} is not a setting acs-triage reads: {fix}"))
    return problems


def env_problems(env: Mapping[str, str]) -> list[Problem]:
    """What the names in `env` say beyond the Settings they make: unknown names, and settings
    that contradict each other (ACS_TRIAGE_ROUTES beside ACS_TRIAGE_ROUTES_FILE)."""
    problems = unknown_names(env)
    if env.get(f"{PREFIX}ROUTES") and env.get(f"{PREFIX}ROUTES_FILE"):
        problems.append(
            Problem(
                "error",
                f"{PREFIX}ROUTES",
                f"{PREFIX}ROUTES and {PREFIX}ROUTES_FILE are both set, and only the file is read: "
                f"keep one of them",
            )
        )
    return problems


def _contradictions(settings: Settings) -> list[Problem]:
    """Settings that parse alone but contradict each other."""
    problems: list[Problem] = []
    mute = [d.name for d in settings.destinations_for(settings.report_to) if d.kind.report is None]
    if mute:
        problems.append(
            Problem(
                "error",
                f"{PREFIX}REPORT_TO",
                f"{PREFIX}REPORT_TO names {', '.join(mute)}, which takes alerts but not the daily report: "
                f"name a Teams or Slack destination, or remove {PREFIX}REPORT_TO",
            )
        )
    if settings.store == "azure" and settings.storage is None:
        problems.append(
            _error(
                f"{PREFIX}STORE=azure needs storage: set {STORAGE_SETTING}__accountName (managed identity) "
                f"or {STORAGE_SETTING} (a connection string), or remove {PREFIX}STORE"
            )
        )
    elif settings.storage is not None and settings.store.partition(":")[0] in ("memory", "sqlite"):
        problems.append(
            Problem(
                "warning",
                f"{PREFIX}STORE",
                f"{PREFIX}STORE={settings.store} while {STORAGE_SETTING} is set: the storage account is "
                f"not used; remove {PREFIX}STORE to use it",
            )
        )
    if settings.callback_audience is None and (
        settings.callback_issuer != Settings.model_fields["callback_issuer"].default
        or settings.callback_jwks_url != Settings.model_fields["callback_jwks_url"].default
    ):
        problems.append(
            Problem(
                "warning",
                f"{PREFIX}CALLBACK_AUDIENCE",
                f"{PREFIX}CALLBACK_ISSUER or {PREFIX}CALLBACK_JWKS_URL is set, but callback tokens are "
                f"checked only when {PREFIX}CALLBACK_AUDIENCE is set too: set it, or remove them",
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
    problems = [_error(text) for text in found] + env_problems(env)
    if settings is not None:
        unreadable_url = any(p.setting.endswith("_URL") or "Key Vault" in p.message for p in problems)
        problems += [  # "no destination" would only repeat that a URL setting is wrong
            p for p in check_settings(settings) if not (unreadable_url and is_no_destination(p))
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


def _development_storage(settings: Settings) -> bool:
    secret = settings.storage_connection
    return secret is not None and "usedevelopmentstorage=true" in secret.get_secret_value().lower()


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
    elif isinstance(err, ServiceRequestError) and _development_storage(settings):
        how = (
            f"UseDevelopmentStorage=true means Azurite on 127.0.0.1:10001-10002, and it does not answer "
            f"({type(err).__name__}): start it (node_modules/.bin/azurite, which ./dev test installs), or "
            f"empty {STORAGE_SETTING} to keep state in memory"
        )
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


def probe(settings: Settings) -> tuple[tuple[int, int] | None, list[Problem]]:
    """Look at the Azure store the settings name without changing it (nothing is created):
    (outbox and poison depths, or None; the problems: what is missing, or why it is unusable)."""
    from .store.azure import AzureStore

    try:
        with AzureStore(
            settings.storage or "", queue_name=settings.outbox_queue, table_prefix=settings.table_prefix
        ) as store:
            depths, missing = store.look()
    except Exception as err:
        problem = storage_failure(err, settings)
        if problem is None:
            setting = settings.storage.setting if settings.storage else STORAGE_SETTING
            problem = Problem("error", setting, f"{setting}: storage is unusable ({type(err).__name__})")
        return None, [problem]
    problems = []
    if missing:
        setting = settings.storage.setting if settings.storage else STORAGE_SETTING
        problems.append(
            Problem(
                "warning",
                setting,
                f"{setting}: storage answers, but {', '.join(missing)} do(es) not exist yet: the app "
                f"creates them on first use (doctor only looks, it creates nothing)",
            )
        )
    return depths, problems
