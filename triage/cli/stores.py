"""The store a command looks at: the app's durable one, never a fresh in-memory store.

`report`, `outbox` and `silence` run in their own process: an in-memory store there is empty,
and a store that cannot open would show as empty too. Both are refused with the fix instead.
"""

from __future__ import annotations

from ..errors import ConfigurationError
from ..service import open_configured_store
from ..settings import Settings
from ..store import Store, configured_spec

__all__ = ["durable_store"]


def durable_store(settings: Settings, command: str) -> Store:
    """Open the store the settings name for `command`; ConfigurationError when it is the
    in-memory store (it lives in one process only) or cannot be opened."""
    if configured_spec(settings) == "memory":
        raise ConfigurationError(
            f"{command} needs the app's durable store (the in-memory one lives in one process): set "
            f"AzureWebJobsStorage (Azure) or ACS_TRIAGE_STORE=sqlite:PATH (the file `serve` uses)"
        )
    return open_configured_store(settings)
