"""Azurite for the tests: one storage emulator per test session, on free loopback ports, with
its data in a temporary directory.

It is started from ./node_modules/.bin (not through npx, whose wrapper would survive a kill),
so the PID we hold is the node process itself, and it is stopped by that PID.

Fixtures (import them into a test module to use them):
    azurite      the running emulator: `.connection` (explicit endpoints), `.names()`
    azure_store  a factory of AzureStore objects on tables and a queue unique to the test;
                 every call is another "instance" sharing the same state
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from required import skip_or_fail

from tools.azurite import ACCOUNT, AZURITE, Azurite, run_azurite
from triage.store.azure import AzureStore

__all__ = [
    "ACCOUNT",
    "AZURITE",
    "DURABLE_STORE_KINDS",
    "STORE_KINDS",
    "Azurite",
    "azure_store_fixture",
    "azurite_fixture",
    "make_store_fixture",
    "poisoned",
    "run_azurite",
]


@pytest.fixture(scope="session", name="azurite")
def azurite_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """Start Azurite (blob, queue, table) for the session; stop it by PID at the end."""
    if shutil.which("node") is None:
        skip_or_fail("node is not installed (Azurite runs on node 20)")
    if not AZURITE.exists():
        skip_or_fail("Azurite is not installed: run `npm install` in the repository")
    data = tmp_path_factory.mktemp("azurite-data")
    with run_azurite(data / "db", data / "azurite.log") as (pid, blob, queue, table):
        yield Azurite(pid, blob, queue, table)


@pytest.fixture(name="azure_store")
def azure_store_fixture(azurite: Azurite) -> Iterator[Callable[..., AzureStore]]:
    """Make AzureStore instances on this test's own tables and queue (closed afterwards)."""
    queue_name, table_prefix = azurite.names()
    made: list[AzureStore] = []

    def make(**options: Any) -> AzureStore:
        store = AzureStore(azurite.connection, queue_name=queue_name, table_prefix=table_prefix, **options)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


STORE_KINDS = [
    pytest.param("memory", id="memory"),
    pytest.param("sqlite", id="sqlite"),
    pytest.param("azure", id="azure", marks=pytest.mark.azurite),
]
DURABLE_STORE_KINDS = STORE_KINDS[1:]


@pytest.fixture(name="make_store")
def make_store_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[str], Any]]:
    """make_store(kind) → a Store of kind memory, sqlite or azure (Azurite starts only when
    asked for). Each call is another instance over the same state, as another Function
    instance would be (memory has one instance only, so it returns the same object)."""
    memory: list[Any] = []
    sqlite: list[Any] = []

    def make(kind: str) -> Any:
        if kind == "memory":
            from triage.store.memory import MemoryStore

            if not memory:
                memory.append(MemoryStore())
            return memory[0]
        if kind == "sqlite":
            from triage.store.sqlite import SqliteStore

            sqlite.append(SqliteStore(tmp_path / "acs-triage.sqlite3"))
            return sqlite[-1]
        if kind == "azure":
            return request.getfixturevalue("azure_store")()
        raise ValueError(kind)

    yield make
    for store in sqlite:
        store.close()


def poisoned(store: Any) -> list[Any]:
    """The OutboxMessages a store has moved to its poison queue."""
    return list(store.poison) if hasattr(store, "poison") else store.poisoned()
