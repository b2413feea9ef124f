"""Azurite, the Azure Storage emulator, on free loopback ports (for the tests and the benches).

It is started from ./node_modules/.bin (not through npx, whose wrapper would survive a kill),
so the PID we hold is the node process itself, and it is stopped by that PID. Telemetry is off.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .processes import stop

__all__ = ["ACCOUNT", "AZURITE", "Azurite", "run_azurite"]

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
        process = subprocess.Popen(command, cwd=log_path.parent, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603 - our own node_modules binary
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not all(_listening(port) for port in (blob, queue, table)):
            if process.poll() is not None or time.monotonic() > deadline:
                output = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"Azurite did not start (exit {process.poll()}):\n{output}")
            time.sleep(0.05)
        yield process.pid, blob, queue, table
    finally:
        stop(process)
