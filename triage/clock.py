"""The one clock the adapters read; the core receives the time it needs."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["utcnow"]


def utcnow() -> datetime:
    """The current time, timezone-aware."""
    return datetime.now(UTC)
