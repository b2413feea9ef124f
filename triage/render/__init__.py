"""Alert → what a destination receives. Each destination module (`triage.destinations.*`)
renders its own payload; `content` decides the wording they share and `escape` makes event
text safe for each target.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..destinations import kind, names
from ..model import Alert
from .content import payload_bytes

__all__ = ["FORMATS", "payload_bytes", "render"]

FORMATS: tuple[str, ...] = names()

# format → its render function, found once: looking the kind up imports its module by name (a few µs).
_RENDERERS: dict[str, Callable[[Alert], dict[str, Any] | str]] = {}


def render(alert: Alert, fmt: str) -> dict[str, Any] | str:
    """Render `alert` for the destination kind `fmt`: a JSON-ready dict, or a str for "text"."""
    renderer = _RENDERERS.get(fmt)
    if renderer is None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
        renderer = _RENDERERS[fmt] = kind(fmt).render
    return renderer(alert)
