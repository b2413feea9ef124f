"""Where alerts go. One module per kind of destination declares everything about it (its
`KIND`: name, the settings that configure it, URL check, render, send pacing, what a refused
payload falls back to, what only the send may add: a secret in the body, signed headers);
`REGISTRY` lists the modules. Adding a destination is one new module and one registry line.

A `Destination` is one configured target: a name, its kind, its URL and, for kinds that need
one, a secret of its own (a routing key, a signing key). Both are SecretStr, never printed.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from msgspec import Struct
from pydantic import BaseModel, SecretStr, field_validator

from ..model import Alert

__all__ = ["REGISTRY", "STATUSES", "Destination", "Kind", "check_https", "kind", "names"]

# name → module. One line per destination; modules are imported when first used.
REGISTRY: dict[str, str] = {
    "teams": "triage.destinations.teams",
    "slack": "triage.destinations.slack",
    "text": "triage.destinations.text",
    "pagerduty": "triage.destinations.pagerduty",
    "webhook": "triage.destinations.webhook",
}

STATUSES: frozenset[str] = frozenset({"firing", "resolved", "silenced"})


_LOOPBACK = ("127.0.0.1", "localhost", "[::1]")


def check_https(url: str) -> str | None:
    """What is wrong with a webhook URL's scheme: https://, or http:// on loopback (local sinks)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and parts.netloc.rsplit("@", 1)[-1].rsplit(":", 1)[0] in _LOOPBACK:
        return None
    if parts.scheme == "http":
        return "must start with https:// (http:// is allowed only for a local sink on 127.0.0.1)"
    return "must start with https://"


def _no_fallback(payload: dict[str, Any], reason: str) -> dict[str, Any] | None:
    return None


def _as_stored(payload: dict[str, Any], destination: Destination) -> dict[str, Any]:
    return payload


def _no_headers(body: bytes, destination: Destination, now: float, message_id: str) -> dict[str, str]:
    return {}


def _any_secret(value: str) -> str | None:
    return None


class Kind(Struct, frozen=True):
    """Everything about one kind of destination."""

    name: str  # the format name settings use: ACS_TRIAGE_DEST_<NAME>_FORMAT=<name>
    render: Callable[[Alert], dict[str, Any] | str]
    send_interval: float  # seconds between two posts to one webhook, across all instances
    url_setting: str | None = None  # the setting whose URL configures a destination of this name
    check_url: Callable[[str], str | None] = check_https  # a problem with the URL, or None
    # A payload the webhook refused (4xx) and the reason it gave → a smaller payload worth one
    # more try, or None (the message is dead-lettered).
    fallback: Callable[[dict[str, Any], str], dict[str, Any] | None] = _no_fallback
    postable: bool = True  # False: only printed (the terminal text form), never a destination
    # A secret of the destination's own besides its URL (PagerDuty's routing key, the webhook's
    # signing key): the setting that holds it, and whether the destination cannot work without it.
    secret_setting: str | None = None
    secret_required: bool = False
    check_secret: Callable[[str], str | None] = _any_secret  # a problem with the secret's value, or None
    default_url: str | None = None  # a service with one endpoint: configured by its secret alone
    # The outbox stores what `render` made, without secrets; just before the POST, `finish` adds
    # what only the send may know (a routing key), and `headers` what the exact body bytes earn
    # (a signature over them, with the send time `now` in seconds and the outbox message's id,
    # which every retry of the message shares).
    finish: Callable[[dict[str, Any], Destination], dict[str, Any]] = _as_stored
    headers: Callable[[bytes, Destination, float, str], dict[str, str]] = _no_headers
    # The Alert statuses this kind is told about: a pager pages on firing and resolves on
    # resolved; what a silence held back is chat news, not an incident.
    statuses: frozenset[str] = STATUSES
    # An incident tracker (a pager): what it was told fired stays open until it is told resolved,
    # so it gets resolved notices even with ACS_TRIAGE_SEND_RESOLVED=false.
    keeps_incidents: bool = False
    # The daily report (triage.report.DailyReport) as this kind's payload; None: not sent there.
    report: Callable[[Any], dict[str, Any] | str] | None = None
    # A kind that shows each value of an alert (its time, the values of its IDs and details, the
    # event's message) as it stands when no escaping or shortening changes it, and whose layout
    # no such value changes, names here its fullest layout: `render` before any shortening to
    # fit `max_bytes` (0: render never shortens to a size). Its alerts are then rendered from a
    # template per alert shape (triage.render.template).
    template: Callable[[Alert], dict[str, Any]] | None = None
    max_bytes: int = 0
    # How that fullest layout shows a value the escapers change but do not shorten (an e-mail's
    # `<id@host>` message id): the escapers it passes through, the same wherever a value stands.
    # With it, such values are put into the template escaped (None: those alerts render in full).
    value_text: Callable[[str], str] | None = None


def names() -> tuple[str, ...]:
    """Every registered kind, in registry order."""
    return tuple(REGISTRY)


@cache  # asked per outbox message: import_module costs about 1 µs even for a loaded module
def kind(name: str) -> Kind:
    """The Kind registered as `name`. Raises KeyError for an unknown name."""
    found: Kind = importlib.import_module(REGISTRY[name]).KIND
    return found


class Destination(BaseModel):
    """A configured destination. The URL is the credential: a SecretStr, never printed."""

    name: str
    format: str  # a registered kind's name
    url: SecretStr
    secret: SecretStr | None = None  # the kind's secret_setting, when it has one

    @field_validator("format")
    @classmethod
    def _registered(cls, value: str) -> str:
        if value not in REGISTRY:
            raise ValueError(f"must be one of {', '.join(names())}, not {value!r}")
        return value

    @property
    def kind(self) -> Kind:
        """What this destination is: render, pacing, fallback."""
        return kind(self.format)

    def __repr__(self) -> str:
        return f"Destination(name={self.name!r}, format={self.format!r}, url=<redacted>)"

    __str__ = __repr__
