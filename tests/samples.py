"""Access to the sample events in samples/ for tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"


def sample_bytes(name: str) -> bytes:
    """The raw bytes of samples/<name>."""
    return (SAMPLES / name).read_bytes()


def sample(name: str) -> Any:
    """samples/<name> parsed as JSON."""
    return json.loads(sample_bytes(name))


def all_samples() -> list[Path]:
    """Every sample file, sorted."""
    return sorted(SAMPLES.rglob("*.json"))
