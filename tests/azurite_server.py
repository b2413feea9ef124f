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

import contextlib
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import skip_or_fail

from triage.store.azure import AzureStore

__all__ = [
    "DURABLE_STORE_KINDS",
    "STORE_KINDS",
    "Azurite",
    "azure_store_fixture",
    "azurite_fixture",
    "make_store_fixture",
    "poisoned",
    "run_azurite",
]

REPO = Path(__file__).resolve().parent.parent
AZURITE = REPO / "node_modules" / ".bin" / "azurite"
# Azurite's well-known development account (public, documented; it guards nothing).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
START_TIMEOUT = 30.0


@dataclass(frozen=True)
class Azurite:
    """A running Azurite: its PID, ports and a connection string naming every endpoint."""

    pid: int
    blob_port: int
    queue_port: int
    table_port: int

    @property
    def connection(self) -> str:
        host = "http://127.0.0.1"
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={host}:{self.blob_port}/{ACCOUNT};"
            f"QueueEndpoint={host}:{self.queue_port}/{ACCOUNT};"
            f"TableEndpoint={host}:{self.table_port}/{ACCOUNT};"
        )

    @staticmethod
    def names() -> tuple[str, str]:
        """A fresh (queue name, table prefix) pair, so that tests never share state."""
        tag = uuid.uuid4().hex[:12]
        return f"outbox-{tag}", f"t{tag}"


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


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


@contextlib.contextmanager
def run_azurite(location: Path, log_path: Path, *options: str) -> Iterator[tuple[int, int, int, int]]:
    """Azurite with its data in `location`, on free loopback ports, with extra command-line
    `options`: (pid, blob port, queue port, table port) once every port listens. Stopped by PID."""
    blob, queue, table = _free_ports(3)
    command = [
        str(AZURITE),
        "--silent",
        "--skipApiVersionCheck",  # the Python SDKs send a newer API version than Azurite knows
        "--disableTelemetry",
        "--location", str(location),
        "--blobHost", "127.0.0.1", "--blobPort", str(blob),
        "--queueHost", "127.0.0.1", "--queuePort", str(queue),
        "--tableHost", "127.0.0.1", "--tablePort", str(table),
        *options,
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=log_path.parent, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not all(_listening(port) for port in (blob, queue, table)):
            if process.poll() is not None or time.monotonic() > deadline:
                output = log_path.read_text(errors="replace")[-2000:]
                pytest.fail(f"Azurite did not start (exit {process.poll()}):\n{output}")
            time.sleep(0.05)
        yield process.pid, blob, queue, table
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


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
