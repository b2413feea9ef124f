"""Child processes the tools, benches and tests start (Azurite, `serve`, recipe servers)."""

from __future__ import annotations

import subprocess

__all__ = ["stop"]


def stop(process: subprocess.Popen[bytes], grace: float = 10) -> None:
    """Ask `process` to end (SIGTERM); kill it if it has not ended within `grace` seconds, and
    reap it either way, so no child outlives the code that started it."""
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=grace)
