"""Alert → what a destination receives. Each destination module (`triage.destinations.*`)
renders its own payload; `content` decides the wording they share and `escape` makes event
text safe for each target.
"""

from __future__ import annotations

from typing import Any

from ..destinations import kind, names
from ..model import Alert
from .content import payload_bytes

__all__ = ["FORMATS", "payload_bytes", "render"]

FORMATS: tuple[str, ...] = names()


def render(alert: Alert, fmt: str) -> dict[str, Any] | str:
    """Render `alert` for the destination kind `fmt`: a JSON-ready dict, or a str for "text"."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return kind(fmt).render(alert)
