"""One Settings object, read once from the environment (Function App settings or
local.settings.json Values). Every setting is documented in local.settings.sample.json."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from .config_json import json_list
from .destinations import Destination, kind, names
from .errors import ConfigurationError
from .matchers import MATCHER_FIELDS, Matcher
from .model import Severity

if TYPE_CHECKING:
    from .inhibit import InhibitRule
    from .intervals import NamedInterval
    from .silence_link import SilenceLinks
else:
    # Validated where they are read (parse_time_intervals, parse_inhibit_rules), and imported
    # only when set: most apps set neither, and their models cost a cold start ~2 ms to define.
    InhibitRule = NamedInterval = Any

__all__ = [
    "IN_AZURE_SETTING",
    "KEY_VAULT_REFERENCE",
    "MIN_LINK_KEY_CHARS",
    "MIN_SECRET_CHARS",
    "OUTBOX_QUEUE_SETTING",
    "STORAGE_SETTING",
    "Route",
    "Settings",
    "StorageConnection",
    "app_names",
    "destination_settings",
    "in_azure",
    "known_names",
    "unresolved_references",
]

PREFIX = "ACS_TRIAGE_"
# The Storage queue between the HTTP function and the delivering queue trigger. The trigger's
# binding reads the same app setting (queue_name="%ACS_TRIAGE_OUTBOX_QUEUE%"), so the queue the
# store writes and the queue the host reads can never disagree.
OUTBOX_QUEUE_SETTING = "ACS_TRIAGE_OUTBOX_QUEUE"
STORAGE_SETTING = "AzureWebJobsStorage"
IN_AZURE_SETTING = "WEBSITE_INSTANCE_ID"  # set by App Service on every instance, never locally
SITE_NAME_SETTING = "WEBSITE_SITE_NAME"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_SITE_TAG_MAX = 32  # keeps "acs-triage-<tag>-outbox-poison" within a queue name's 63 characters
DEFAULT_QUIET_SECONDS = 300  # grouping off, ACS_TRIAGE_RESOLVE_AFTER_SECONDS unset
# ACS_TRIAGE_REPEAT_INTERVAL_SECONDS unset: Alertmanager's default repeat_interval (4 h). A reminder
# is a digest that would go out anyway, shown in full: it adds no message, so it can be on by default.
DEFAULT_REPEAT_SECONDS = 4 * 3600
REPEAT_MAX_SECONDS = 7 * 86_400
MIN_SECRET_CHARS = 16  # a destination's own key (PagerDuty's are 32): shorter is guessable
MIN_LINK_KEY_CHARS = 32  # the key that signs "Silence…" links: a bearer capability to silence
# App Service replaces a Key Vault reference with the secret once its identity may read it; until
# then (or when it may not) the app sees the reference itself, which is no URL and no key.
KEY_VAULT_REFERENCE = "@microsoft.keyvault("


def unresolved_references(env: Mapping[str, str]) -> list[str]:
    """The settings acs-triage reads whose value is still a Key Vault reference, each named in
    a problem of its own: checked as a URL it would only say "must start with https://"."""
    return sorted(
        key
        for key, value in env.items()
        if key.startswith((PREFIX, STORAGE_SETTING)) and value.strip().lower().startswith(KEY_VAULT_REFERENCE)
    )


def _unresolved(name: str) -> str:
    return (
        f"Key Vault reference for {name} is not resolved: check the app's identity has Key Vault "
        f"Secrets User on the vault (and the app's keyVaultReferenceIdentity names it), then restart the app"
    )


def in_azure(env: Mapping[str, str]) -> bool:
    """True on a Function App instance (App Service sets WEBSITE_INSTANCE_ID)."""
    return bool(env.get(IN_AZURE_SETTING))


def app_names(env: Mapping[str, str]) -> tuple[str, str]:
    """The default (outbox queue, table prefix) of this app: per app when WEBSITE_SITE_NAME names
    it, so that two apps sharing a storage account never read each other's outbox or state."""
    tag = re.sub(r"[^a-z0-9]", "", env.get(SITE_NAME_SETTING, "").lower())
    if len(tag) > _SITE_TAG_MAX:  # long names keep their start and a hash, to stay unique
        tag = tag[: _SITE_TAG_MAX - 8] + hashlib.sha256(tag.encode()).hexdigest()[:8]
    if not tag:
        return "acs-triage-outbox", "acstriage"
    return f"acs-triage-{tag}-outbox", f"acstriage{tag}"


class StorageConnection(BaseModel):
    """How to reach the storage account, read as the Functions host reads `AzureWebJobsStorage`:
    a connection string in the setting itself, or an identity-based connection in
    `AzureWebJobsStorage__accountName` (or `__queueServiceUri` and `__tableServiceUri`) with
    `__credential` (`managedidentity`) and `__clientId` (a user-assigned identity)."""

    model_config = ConfigDict(frozen=True)

    connection_string: SecretStr | None = None
    queue_service_uri: str | None = None
    table_service_uri: str | None = None
    credential: str | None = None  # "managedidentity", or None: DefaultAzureCredential
    client_id: str | None = None

    @property
    def setting(self) -> str:
        """The setting a problem with this storage should name."""
        if self.connection_string is not None:
            return STORAGE_SETTING
        return f"{STORAGE_SETTING}__accountName (or __queueServiceUri / __tableServiceUri)"

    @classmethod
    def from_env(cls, env: Mapping[str, str], name: str = STORAGE_SETTING) -> StorageConnection | None:
        """The connection configured under `name`, or None. Raises ConfigurationError when an
        identity-based connection is incomplete."""
        if env.get(name):  # the host: an exact match is a connection string and wins
            return cls(connection_string=SecretStr(env[name]))
        # Properties after `__` (or `:` in local.settings.json), case-insensitive, as the host reads them.
        props: dict[str, str] = {}
        for key, value in env.items():
            for separator in ("__", ":"):
                if key.lower().startswith(name.lower() + separator) and value:
                    props[key[len(name) + len(separator) :].lower()] = value.strip()
        if not props:
            return None
        account = props.get("accountname")
        queue_uri = props.get("queueserviceuri") or (account and f"https://{account}.queue.core.windows.net")
        table_uri = props.get("tableserviceuri") or (account and f"https://{account}.table.core.windows.net")
        for service, uri in (("queue", queue_uri), ("table", table_uri)):
            if not uri:
                raise ConfigurationError(
                    f"{name}__{service}ServiceUri is not set: an identity-based {name} needs "
                    f"{name}__accountName, or both {name}__queueServiceUri and {name}__tableServiceUri"
                )
            if not uri.startswith("https://"):
                raise ConfigurationError(
                    f"{name}__{service}ServiceUri must be an https:// URL (tokens are never sent over http)"
                )
        credential = props.get("credential")
        if credential is not None and credential.lower() != "managedidentity":
            raise ConfigurationError(
                f"{name}__credential must be managedidentity (or unset to use DefaultAzureCredential), "
                f"not {credential!r}"
            )
        return cls(
            queue_service_uri=str(queue_uri).rstrip("/"),
            table_service_uri=str(table_uri).rstrip("/"),
            credential=credential.lower() if credential else None,
            client_id=props.get("clientid"),
        )


GroupLabel = Literal["kind", "code", "subcode", "resource", "context"]
_DURATION = re.compile(r"(\d+)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def duration_seconds(text: str) -> int:
    """'5m' → 300, '1h30m' → 5400, '90' → 90 (Alertmanager's durations, in whole seconds)."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{text!r} is not a duration such as 30s, 5m, 4h or 1h30m")
    return sum(int(n) * _UNIT_SECONDS[u] for n, u in parts)


class Route(Matcher):
    """Send alerts that match every given condition (see `Matcher`) and are at least
    `min_severity` to `to` (destination names). Routes are tried in order and the first that
    matches wins, unless it says `"continue": true`: then later routes are tried too.
    Unknown keys are refused. Example:
    {"kinds": ["PlayFailed"], "not_resources": ["test-acs"], "min_severity": "error", "to": ["teams"]}
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    min_severity: Severity = Severity.WARNING
    to: list[str]
    continue_: bool = Field(False, alias="continue")
    # Timing, with Alertmanager's names. `name` keys the route's bursts and names it in notices
    # (default: its position, "1" for the first rule).
    name: str = ""
    group_by: list[GroupLabel] | None = None  # default: kind, code, subcode, resource
    group_interval: int | None = Field(None, ge=0, le=86_400)  # seconds, or "5m"; 0: no grouping
    # A burst still firing this long after its first alert (then after each reminder) gets its
    # next digest as a reminder; seconds or "4h"; 0: never. Default ACS_TRIAGE_REPEAT_INTERVAL_SECONDS.
    repeat_interval: int | None = Field(None, ge=0, le=REPEAT_MAX_SECONDS)
    mute_time_intervals: list[str] = Field(default=[])
    active_time_intervals: list[str] = Field(default=[])

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        # The name is part of its bursts' keys (`route:<name>|…`, `mute:<name>:<end>`).
        if re.search(r"[|:\s]", value):
            raise ValueError(f"{value!r}: a route's name holds no '|', ':' or spaces")
        return value

    @field_validator("group_interval", "repeat_interval", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        return duration_seconds(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _can_match(self) -> Route:
        # A rule that can never match sends nothing where its author meant it to: refused.
        problems = self.problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self


class Settings(BaseModel):
    """All configuration. Build it with `Settings.from_env()`."""

    # `{}` and `[]` are copied for every instance (see Matcher), like a default_factory.
    destinations: dict[str, Destination] = {}
    routes: list[Route] = []
    time_intervals: dict[str, NamedInterval] = {}  # ACS_TRIAGE_TIME_INTERVALS, by name
    inhibit_rules: list[InhibitRule] = []  # ACS_TRIAGE_INHIBIT_RULES (triage.inhibit)
    resource: str = "acs"  # shown for callbacks, which do not name their ACS resource
    group_window_seconds: int = Field(300, ge=0, le=86_400)
    # Every route's repeat_interval unless it gives its own (unset: DEFAULT_REPEAT_SECONDS, or a
    # longer group window; 0: no reminders). See `repeat_seconds`.
    repeat_interval_seconds: int | None = Field(None, ge=0, le=REPEAT_MAX_SECONDS)
    dedup_ttl_hours: int = Field(48, ge=24, le=24 * 30)
    # Azure: how long a delivery's claims are its own before a retry may take them over as
    # recovered (its process died); it must outlast the slowest batch.
    claim_lease_seconds: int = Field(300, ge=1, le=3600)
    max_body_bytes: int = Field(1_048_576, ge=1024)
    mask_pii: bool = True
    shared_secret: SecretStr | None = None
    secret_param: str = "secret"  # noqa: S105 - the name of a query parameter, not a secret
    callback_audience: str | None = None  # the ACS resource's immutable id; enables JWT checks
    callback_issuer: str = "https://acscallautomation.communication.azure.com"
    callback_jwks_url: str = "https://acscallautomation.communication.azure.com/calling/keys"
    # auto (azure when storage is configured, else memory) | memory | sqlite:PATH | azure
    store: str = "auto"
    storage: StorageConnection | None = None  # AzureWebJobsStorage, either form
    table_prefix: str = "acstriage"
    outbox_queue: str = "acs-triage-outbox"
    in_azure: bool = False  # WEBSITE_INSTANCE_ID is set: the in-memory store is refused
    http_timeout_seconds: float = Field(10.0, gt=0, le=60)
    max_retry_after_seconds: float = Field(30.0, ge=0, le=300)
    # Poisoned messages younger than this are re-queued once a post to their destination
    # succeeds again; 0 turns the automatic re-drive off. Storage queue messages live 7 days.
    redrive_max_age_hours: float = Field(24.0, ge=0, le=24 * 7)

    @field_validator("callback_audience")
    @classmethod
    def _audience_is_guid(cls, v: str | None) -> str | None:
        # Call Automation signs callbacks for the ACS resource's immutable id, a GUID; a resource
        # name or ARM id here would make every callback answer 401.
        if v is not None and not _GUID.match(v.strip()):
            raise ValueError(
                "must be your ACS resource's immutable resource id, a GUID "
                "(Azure portal: the resource's Properties, 'Immutable Resource ID')"
            )
        return v.strip() if v else v

    send_resolved: bool = True  # post a short notice when a burst has been quiet for a window
    # Grouping off: how long a fingerprint must be quiet before its alerts are resolved (unset:
    # 300 s). Grouping on, a burst resolves after a quiet group window, so it can only equal it.
    resolve_after_seconds: int | None = Field(None, ge=1, le=86_400)

    @property
    def quiet_seconds(self) -> int:
        """How long a burst must be quiet to be resolved: ACS_TRIAGE_RESOLVE_AFTER_SECONDS, else
        the group window, else (grouping off) 5 minutes."""
        return self.resolve_after_seconds or self.group_window_seconds or DEFAULT_QUIET_SECONDS

    def repeat_seconds(self, window: int, given: int | None = None) -> int:
        """The repeat interval of a lane with a `window`-second digest window, whose route gives
        `given` (None: none): that, else ACS_TRIAGE_REPEAT_INTERVAL_SECONDS, else the default
        (4 h, or the window when that is longer: unset, it never asks for the impossible)."""
        if given is None:
            given = self.repeat_interval_seconds
        if given is None:
            return max(DEFAULT_REPEAT_SECONDS, window)
        return given

    report_schedule: str | None = None  # cron (UTC); unset: no scheduled daily report
    report_period_hours: int = Field(24, ge=1, le=24 * 31)
    report_to: list[str] = []  # empty: every destination with a report form
    # Where an alert no route matches goes; empty: every destination. Never nowhere.
    default_route: list[str] = []
    # "Silence…" links in Teams and Slack alerts (triage.silence_link): the app's public address
    # and the key that signs the links. Both or neither: one alone is a configuration error.
    public_url: str | None = None
    silence_link_key: SecretStr | None = None

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        from .destinations import check_https

        value = value.strip().rstrip("/")
        problem = check_https(value)
        if problem:
            raise ValueError(f"the app's public address {problem}, e.g. https://<app>.azurewebsites.net")
        if "?" in value or "#" in value:
            raise ValueError("must be the app's address alone, without a query or fragment")
        return value

    @field_validator("silence_link_key")
    @classmethod
    def _link_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_LINK_KEY_CHARS:
            raise ValueError(
                f"is too short to sign links: use at least {MIN_LINK_KEY_CHARS} random characters "
                "(e.g. a Key Vault secret made with `openssl rand -base64 48`)"
            )
        return value

    @field_validator("store")
    @classmethod
    def _store_spec(cls, v: str) -> str:
        # A store that cannot open would turn every request into a 503: refused where it is set.
        name, colon, path = v.strip().partition(":")
        if name not in ("auto", "memory", "azure", "sqlite") or (colon and name != "sqlite"):
            raise ValueError(f"must be auto, memory, azure or sqlite:PATH, not {v!r}")
        if name == "sqlite" and not path.strip():
            raise ValueError("sqlite needs a file path after 'sqlite:', e.g. sqlite:triage.db")
        return v.strip()

    @field_validator("resource")
    @classmethod
    def _resource_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be blank")
        return v.strip()

    @property
    def storage_connection(self) -> SecretStr | None:
        """The storage connection string, when storage is configured by one (a secret)."""
        return self.storage.connection_string if self.storage else None

    @field_validator("report_schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        from .schedule import check_schedule  # croniter is imported only when a schedule is set

        return check_schedule(" ".join(value.split()))

    @field_validator("report_to", "default_route", mode="before")
    @classmethod
    def _names(cls, value: object) -> object:
        return [n.strip() for n in value.split(",") if n.strip()] if isinstance(value, str) else value

    def silence_links(self) -> SilenceLinks | None:
        """What makes and reads "Silence…" links, when ACS_TRIAGE_PUBLIC_URL and its key are set."""
        if self.public_url is None or self.silence_link_key is None:
            return None
        from .silence_link import SilenceLinks

        return SilenceLinks(self.public_url, self.silence_link_key.get_secret_value())

    def report_destinations(self) -> list[Destination]:
        """Where the daily report goes: ACS_TRIAGE_REPORT_TO, else every destination whose kind
        has a report form (chat; PagerDuty and the webhook take alerts only)."""
        chosen = self.destinations_for(self.report_to) if self.report_to else self.destinations.values()
        return [d for d in chosen if d.kind.report is not None]

    def destinations_for(self, wanted: list[str]) -> list[Destination]:
        """The configured destinations among `names`, in order, ignoring unknown names."""
        return [self.destinations[n] for n in wanted if n in self.destinations]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read ACS_TRIAGE_* variables (and AzureWebJobsStorage). Raises ConfigurationError
        naming every setting that is wrong."""
        settings, problems = cls.read(os.environ if env is None else env)
        if settings is None or problems:
            raise ConfigurationError("invalid settings: " + "; ".join(problems))
        return settings

    @classmethod
    def read(cls, env: Mapping[str, str]) -> tuple[Settings | None, list[str]]:
        """The settings and every problem found, each naming its setting and the fix; the
        settings are None when a problem leaves nothing to build them from."""
        problems: list[str] = []
        unresolved = unresolved_references(env)
        if unresolved:  # read as unset, with one problem each instead of what their text would cause
            problems += [_unresolved(name) for name in unresolved]
            env = {k: v for k, v in env.items() if k not in unresolved}

        def get(name: str) -> str | None:
            value = env.get(PREFIX + name)
            return value if value not in (None, "") else None

        queue, prefix = app_names(env)
        raw: dict[str, object] = {"outbox_queue": queue, "table_prefix": prefix, "in_azure": in_azure(env)}
        for field_name in (
            "resource",
            "group_window_seconds",
            "repeat_interval_seconds",
            "dedup_ttl_hours",
            "claim_lease_seconds",
            "max_body_bytes",
            "mask_pii",
            "shared_secret",
            "secret_param",
            "callback_audience",
            "callback_issuer",
            "callback_jwks_url",
            "store",
            "table_prefix",
            "outbox_queue",
            "http_timeout_seconds",
            "max_retry_after_seconds",
            "redrive_max_age_hours",
            "send_resolved",
            "resolve_after_seconds",
            "report_schedule",
            "report_period_hours",
            "report_to",
            "default_route",
            "public_url",
            "silence_link_key",
        ):
            value = get(field_name.upper())
            if value is not None:
                raw[field_name] = value
        try:
            raw["storage"] = StorageConnection.from_env(env)
        except ConfigurationError as err:
            problems.append(str(err))
        raw["destinations"] = _destinations(env, problems)
        try:
            raw["routes"] = _routes(get("ROUTES"), get("ROUTES_FILE"))
        except ConfigurationError as err:
            problems.append(str(err))
        if get("TIME_INTERVALS"):
            from .intervals import parse_time_intervals

            try:
                raw["time_intervals"] = parse_time_intervals(get("TIME_INTERVALS"), f"{PREFIX}TIME_INTERVALS")
            except ValueError as err:
                problems.append(str(err))
        if get("INHIBIT_RULES"):
            from .inhibit import parse_inhibit_rules

            try:
                raw["inhibit_rules"] = parse_inhibit_rules(get("INHIBIT_RULES"), f"{PREFIX}INHIBIT_RULES")
            except ValueError as err:
                problems.append(str(err))
        try:
            settings = cls.model_validate(raw)
        except ValidationError as exc:
            problems += [_problem(e["loc"], e["type"], e["msg"]) for e in exc.errors()]
            # The rest is still worth checking (doctor lists every problem at once): defaults
            # stand in for the fields that failed.
            failed = {e["loc"][0] for e in exc.errors() if e["loc"]}
            try:
                return cls.model_validate({k: v for k, v in raw.items() if k not in failed}), problems
            except ValidationError:
                return None, problems
        window, quiet = settings.group_window_seconds, settings.resolve_after_seconds
        if window and quiet is not None and quiet != window:
            problems.append(
                f"{PREFIX}RESOLVE_AFTER_SECONDS ({quiet}) applies when grouping is off: with "
                f"{PREFIX}GROUP_WINDOW_SECONDS={window} a burst is resolved after one quiet group window; "
                f"unset {PREFIX}RESOLVE_AFTER_SECONDS, or set it to {window}"
            )
        problems += _route_timing(settings)
        problems += _repeat_problems(settings)
        unknown = {n for r in settings.routes for n in r.to} - set(settings.destinations)
        if unknown:
            problems.append(f"{PREFIX}ROUTES names destinations that are not configured: {sorted(unknown)}")
        unknown = set(settings.default_route) - set(settings.destinations)
        if unknown:
            problems.append(
                f"{PREFIX}DEFAULT_ROUTE names destinations that are not configured: {sorted(unknown)}; "
                "name configured ones, or unset it to send alerts no route matches everywhere"
            )
        if (settings.public_url is None) != (settings.silence_link_key is None):
            given, missing = (
                ("PUBLIC_URL", "SILENCE_LINK_KEY")
                if settings.silence_link_key is None
                else ("SILENCE_LINK_KEY", "PUBLIC_URL")
            )
            problems.append(
                f'{PREFIX}{missing} is not set: "Silence…" links need both {PREFIX}PUBLIC_URL and '
                f"{PREFIX}SILENCE_LINK_KEY; {PREFIX}{given} alone does nothing. "
                f"Set it, or remove {PREFIX}{given}"
            )
        unknown = set(settings.report_to) - set(settings.destinations)
        if unknown:
            problems.append(
                f"{PREFIX}REPORT_TO names destinations that are not configured: {sorted(unknown)}"
            )
        return settings, problems


def _problem(loc: tuple[int | str, ...], kind: str, message: str) -> str:
    """One validation error, naming the setting (and for routes, the rule and its key)."""
    if loc and loc[0] == "routes" and len(loc) == 2 and isinstance(loc[1], int):
        return f"{PREFIX}ROUTES rule {loc[1] + 1}: {message.removeprefix('Value error, ')}"
    if loc and loc[0] == "routes" and len(loc) >= 3:
        rule, key = loc[1], loc[2]
        where = f"{PREFIX}ROUTES rule {int(rule) + 1}" if isinstance(rule, int) else f"{PREFIX}ROUTES"
        if kind == "extra_forbidden":
            known = ", ".join([*MATCHER_FIELDS, "min_severity", "to", "continue", *_TIMING_KEYS])
            return f"{where}: unknown key {key!r} (known keys: {known})"
        return f"{where}, {key!r}: {message}"
    return f"{PREFIX}{'.'.join(str(p) for p in loc).upper()}: {message.removeprefix('Value error, ')}"


_TIMING_KEYS = (
    "name",
    "group_by",
    "group_interval",
    "repeat_interval",
    "mute_time_intervals",
    "active_time_intervals",
)


def _repeat_problems(settings: Settings) -> list[str]:
    """A repeat interval that cannot work: shorter than the digest window it would remind in
    (a reminder is one of the window's digests), or given where nothing is grouped (every
    failure alerts on its own: there is no digest to make a reminder of)."""
    problems: list[str] = []
    window = settings.group_window_seconds
    given = settings.repeat_interval_seconds
    setting = f"{PREFIX}REPEAT_INTERVAL_SECONDS"
    if given and window and given < window:
        problems.append(
            f"{setting} ({given}) is shorter than {PREFIX}GROUP_WINDOW_SECONDS ({window}): a reminder "
            f"is one of a burst's digests, which come once a window; set it to {window} or more, or 0 "
            "for no reminders"
        )
    grouped = bool(window) or any(r.group_interval for r in settings.routes)
    if given and not grouped:
        problems.append(
            f"{setting} ({given}) has nothing to remind of: grouping is off ({PREFIX}GROUP_WINDOW_SECONDS=0 "
            "and no rule gives a group_interval), so every failure alerts on its own; unset it or set "
            f"it to 0, or turn grouping on"
        )
    for index, route in enumerate(settings.routes):
        interval = window if route.group_interval is None else route.group_interval
        repeat = route.repeat_interval
        where = f"{PREFIX}ROUTES rule {index + 1} ({route.name})"
        if repeat is None:
            if given and interval and given < interval and given >= window:
                problems.append(
                    f"{where}: {setting} ({given}) is shorter than the rule's group_interval ({interval}), "
                    f"whose digests come once a window; give the rule a repeat_interval of {interval} "
                    "or more, or 0 for no reminders"
                )
            continue
        if repeat and not interval:
            problems.append(
                f"{where}, 'repeat_interval': the rule alerts every failure on its own (group_interval "
                "0), so there is no digest to make a reminder of; remove repeat_interval, or give the "
                "rule a group_interval"
            )
        elif repeat and repeat < interval:
            problems.append(
                f"{where}, 'repeat_interval' ({repeat}) is shorter than its group_interval ({interval}): a "
                f"reminder is one of the burst's digests, which come once a window; set it to {interval} "
                "or more, or 0 for no reminders"
            )
    return problems


def _route_timing(settings: Settings) -> list[str]:
    """Name every route (its position when it gives none) and check what its timing names:
    each time interval must be defined, each name given once."""
    problems: list[str] = []
    seen: set[str] = set()
    for index, route in enumerate(settings.routes):
        where = f"{PREFIX}ROUTES rule {index + 1}"
        if not route.name:
            route.name = str(index + 1)
        if route.name in seen:
            problems.append(f"{where}: the name {route.name!r} is given to another rule too")
        seen.add(route.name)
        for key in ("mute_time_intervals", "active_time_intervals"):
            for name in getattr(route, key):
                if name not in settings.time_intervals:
                    defined = ", ".join(settings.time_intervals) or "none"
                    problems.append(
                        f"{where}, {key!r}: no time interval is named {name!r} in {PREFIX}TIME_INTERVALS "
                        f"(defined: {defined})"
                    )
    return problems


def _destinations(env: Mapping[str, str], problems: list[str]) -> dict[str, Destination]:
    """Each kind's own settings (ACS_TRIAGE_TEAMS_URL, ACS_TRIAGE_PAGERDUTY_ROUTING_KEY, …), plus
    any ACS_TRIAGE_DEST_<NAME>_URL with ACS_TRIAGE_DEST_<NAME>_FORMAT naming its kind (and
    ACS_TRIAGE_DEST_<NAME>_SECRET when that kind takes a secret). A setting that is wrong goes to
    `problems` and the others are still read."""
    found: dict[str, Destination] = {}
    for name in names():
        spec = kind(name)
        url = env.get(spec.url_setting) if spec.url_setting else None
        secret = env.get(spec.secret_setting) if spec.secret_setting else None
        if not url and secret and spec.default_url:
            url = spec.default_url  # one service endpoint: the secret alone configures it
        if url:
            setting = spec.url_setting or spec.secret_setting or name
            destination = _destination(
                name, name, url, setting, problems, secret=secret, secret_setting=spec.secret_setting
            )
            if destination is not None:
                found[name] = destination
    for key, url in env.items():
        if key.startswith(PREFIX + "DEST_") and key.endswith("_URL") and url:
            name = key[len(PREFIX + "DEST_") : -len("_URL")].lower()
            format_setting = f"{PREFIX}DEST_{name.upper()}_FORMAT"
            fmt = env.get(format_setting, "")
            postable = [n for n in names() if kind(n).postable]
            if fmt not in postable:
                problems.append(f"{format_setting} must be one of {', '.join(postable)}")
                continue
            secret_setting = f"{PREFIX}DEST_{name.upper()}_SECRET"
            destination = _destination(
                name, fmt, url, key, problems, secret=env.get(secret_setting), secret_setting=secret_setting
            )
            if destination is not None:
                found[name] = destination
    return found


def _destination(
    name: str,
    fmt: str,
    url: str,
    setting: str,
    problems: list[str],
    *,
    secret: str | None,
    secret_setting: str | None,
) -> Destination | None:
    """The destination these settings describe, or None with what is wrong added to `problems`."""
    spec = kind(fmt)
    problem = spec.check_url(url)
    if problem:
        problems.append(f"{setting}: the URL of destination {name!r} {problem}")
        return None
    if secret and len(secret) < MIN_SECRET_CHARS:
        problems.append(
            f"{secret_setting} is too short to be a key: use at least {MIN_SECRET_CHARS} random characters"
        )
        return None
    problem = spec.check_secret(secret) if secret else None
    if problem:
        problems.append(f"{secret_setting} {problem}")
        return None
    if spec.secret_required and not secret:
        problems.append(
            f"{secret_setting} is not set: destination {name!r} ({fmt}) cannot post without it; "
            f"set it, or remove {setting}"
        )
        return None
    return Destination(
        name=name,
        format=fmt,
        url=SecretStr(url),
        secret=SecretStr(secret) if secret and spec.secret_setting else None,
    )


def _routes(inline: str | None, path: str | None) -> list[object]:
    text = inline
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(f"{PREFIX}ROUTES_FILE cannot be read: {exc.strerror}") from None
    if not text:
        return []
    try:
        return json_list(text, f"{PREFIX}ROUTES", "rules")
    except ValueError as err:
        raise ConfigurationError(str(err)) from None


# Settings the runtime reads outside `Settings`, and ACS_TRIAGE_* names of the tools around it,
# which may share a shell or a local.settings.json with the app's own: known, so never "unknown".
_OTHER_NAMES = {
    "ROUTES": "the routes as JSON",
    "ROUTES_FILE": "a file holding the routes",
    "SEEDS": "tools/seeds.py: the seed documents' folder",
    "REQUIRE_SEEDS": "the tests: a missing seed folder fails",
    "REQUIRE_TOOLS": "the tests: a missing tool fails",
    "CHROMIUM": "tools/preview.py: the browser that draws card pictures",
    "EVENT_SCHEMA": "azd: the Event Grid subscription's schema (scripts/postdeploy)",
    "EVENT_TYPES": "azd: the event types the subscription takes (scripts/postdeploy)",
    "DEADLETTER_CONTAINER_ID": "azd: where Event Grid dead-letters (infra/, scripts/postdeploy)",
    "TOPIC_NAME": "azd: the ACS system topic the hooks use (scripts/postdeploy)",
    "TOPIC_GROUP": "azd: that topic's resource group (scripts/postdeploy)",
    "TOPIC_MADE": "azd: whether the hooks made that topic (scripts/postdeploy)",
    "REQUIRE_CALLBACK_TOKEN": "azd: whether callbacks must carry a token (infra/)",
    "VAULT_GENERATION": "azd: the Key Vault's generation (infra/)",
    "ALERT_EMAIL": "azd: who the Azure Monitor alerts mail (infra/)",
    "FORWARD_URL": "docs/recipes: where the forwarding recipe posts",
    "FORWARD_TIMEOUT_SECONDS": "docs/recipes: the forwarding recipe's timeout",
    "LOCAL_SETTINGS": "the command line: the local.settings.json to read (empty: none)",
}
_NOT_SETTINGS = {"destinations", "routes", "storage", "in_azure"}  # built from other settings
DEST_PARTS = ("URL", "FORMAT", "SECRET")  # ACS_TRIAGE_DEST_<NAME>_<PART>


def destination_settings() -> list[str]:
    """The settings that each configure a destination on their own, for messages that say how
    to add one (PagerDuty: its routing key; the service URL has a default)."""
    found: list[str] = []
    for name in names():
        spec = kind(name)
        setting = spec.secret_setting if spec.default_url else spec.url_setting
        if spec.postable and setting:
            found.append(setting)
    return [*found, f"{PREFIX}DEST_<NAME>_URL"]


def known_names() -> set[str]:
    """Every ACS_TRIAGE_* name something here reads, except the ACS_TRIAGE_DEST_<NAME>_* family."""
    fields = {PREFIX + f.upper() for f in Settings.model_fields if f not in _NOT_SETTINGS}
    kinds = {s for n in names() for s in (kind(n).url_setting, kind(n).secret_setting) if s}
    return fields | kinds | {PREFIX + n for n in _OTHER_NAMES}
