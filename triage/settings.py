"""One Settings object, read once from the environment (Function App settings or
local.settings.json Values). Every setting is documented in local.settings.sample.json."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator

from .destinations import Destination, kind, names
from .errors import ConfigurationError
from .model import Severity

__all__ = ["OUTBOX_QUEUE", "Route", "Settings"]

PREFIX = "ACS_TRIAGE_"
# The Storage queue between the HTTP function and the delivering queue trigger. A constant, not
# a setting: the trigger's binding and the store that writes the queue must never disagree.
OUTBOX_QUEUE = "acs-triage-outbox"


class Route(BaseModel):
    """Send alerts that match every given condition to `to` (a list of destination names).

    An empty condition matches anything. Example:
    {"kinds": ["PlayFailed"], "min_severity": "error", "codes": [400], "to": ["teams"]}
    """

    kinds: list[str] = Field(default_factory=list)
    contexts: list[str] = Field(default_factory=list)
    codes: list[int] = Field(default_factory=list)
    subcodes: list[int] = Field(default_factory=list)
    min_severity: Severity = Severity.WARNING
    to: list[str]


class Settings(BaseModel):
    """All configuration. Build it with `Settings.from_env()`."""

    destinations: dict[str, Destination] = Field(default_factory=dict)
    routes: list[Route] = Field(default_factory=list)
    resource: str = "acs"  # shown for callbacks, which do not name their ACS resource
    group_window_seconds: int = Field(300, ge=0, le=86_400)
    dedup_ttl_hours: int = Field(48, ge=24, le=24 * 30)
    max_body_bytes: int = Field(1_048_576, ge=1024)
    mask_pii: bool = True
    shared_secret: SecretStr | None = None
    secret_param: str = "secret"  # noqa: S105 - the name of a query parameter, not a secret
    callback_audience: str | None = None  # the ACS resource's immutable id; enables JWT checks
    callback_issuer: str = "https://acscallautomation.communication.azure.com"
    callback_jwks_url: str = "https://acscallautomation.communication.azure.com/calling/keys"
    # auto (azure when AzureWebJobsStorage is set, else memory) | memory | sqlite:PATH | azure
    store: str = "auto"
    storage_connection: SecretStr | None = None  # AzureWebJobsStorage
    table_prefix: str = "acstriage"
    http_timeout_seconds: float = Field(10.0, gt=0, le=60)
    max_retry_after_seconds: float = Field(30.0, ge=0, le=300)
    # Azure store: how long an event's claim may stay pending (its request still counting and
    # enqueueing) before a retry takes it over. Well above a batch's processing time.
    claim_lease_seconds: float = Field(60.0, ge=1, le=3600)

    @field_validator("resource")
    @classmethod
    def _resource_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be blank")
        return v.strip()

    def destinations_for(self, wanted: list[str]) -> list[Destination]:
        """The configured destinations among `names`, in order, ignoring unknown names."""
        return [self.destinations[n] for n in wanted if n in self.destinations]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read ACS_TRIAGE_* variables (and AzureWebJobsStorage). Raises ConfigurationError."""
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = env.get(PREFIX + name)
            return value if value not in (None, "") else None

        raw: dict[str, object] = {}
        for field_name in (
            "resource",
            "group_window_seconds",
            "dedup_ttl_hours",
            "max_body_bytes",
            "mask_pii",
            "shared_secret",
            "secret_param",
            "callback_audience",
            "callback_issuer",
            "callback_jwks_url",
            "store",
            "table_prefix",
            "http_timeout_seconds",
            "max_retry_after_seconds",
            "claim_lease_seconds",
        ):
            value = get(field_name.upper())
            if value is not None:
                raw[field_name] = value
        if env.get("AzureWebJobsStorage"):
            raw["storage_connection"] = env["AzureWebJobsStorage"]

        raw["destinations"] = _destinations(env)
        raw["routes"] = _routes(get("ROUTES"), get("ROUTES_FILE"))
        try:
            settings = cls.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{PREFIX}{'.'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
            )
            raise ConfigurationError(f"invalid settings: {problems}") from None
        unknown = {n for r in settings.routes for n in r.to} - set(settings.destinations)
        if unknown:
            raise ConfigurationError(
                f"{PREFIX}ROUTES names destinations that are not configured: {sorted(unknown)}"
            )
        return settings


def _destinations(env: Mapping[str, str]) -> dict[str, Destination]:
    """Each kind's own URL setting (ACS_TRIAGE_TEAMS_URL, ACS_TRIAGE_SLACK_URL), plus any
    ACS_TRIAGE_DEST_<NAME>_URL with ACS_TRIAGE_DEST_<NAME>_FORMAT naming its kind."""
    found: dict[str, Destination] = {}
    for name in names():
        setting = kind(name).url_setting
        url = env.get(setting) if setting else None
        if setting and url:
            found[name] = _destination(name, name, url, setting)
    for key, url in env.items():
        if key.startswith(PREFIX + "DEST_") and key.endswith("_URL") and url:
            name = key[len(PREFIX + "DEST_") : -len("_URL")].lower()
            format_setting = f"{PREFIX}DEST_{name.upper()}_FORMAT"
            fmt = env.get(format_setting, "")
            postable = [n for n in names() if kind(n).postable]
            if fmt not in postable:
                raise ConfigurationError(f"{format_setting} must be one of {', '.join(postable)}")
            found[name] = _destination(name, fmt, url, key)
    return found


def _destination(name: str, fmt: str, url: str, setting: str) -> Destination:
    problem = kind(fmt).check_url(url)
    if problem:
        raise ConfigurationError(f"{setting}: the URL of destination {name!r} {problem}")
    return Destination(name=name, format=fmt, url=SecretStr(url))


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
        routes = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{PREFIX}ROUTES is not valid JSON: {exc.msg} at {exc.pos}") from None
    if not isinstance(routes, list):
        raise ConfigurationError(f"{PREFIX}ROUTES must be a JSON list of rules")
    return routes
