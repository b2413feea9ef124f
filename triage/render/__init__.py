"""Alert → what a destination receives: a Teams Workflows body, a Slack webhook body, or text.

One module per format (`teams`, `slack`, `text`); `escape` makes event text safe for each;
`preview` draws the cards to HTML/PNG for people and for the README.
"""

from __future__ import annotations

from typing import Any, Literal, overload

from ..model import Alert
from . import slack, teams, text
from .content import payload_bytes

__all__ = ["FORMATS", "Format", "payload_bytes", "render"]

Format = Literal["teams", "slack", "text"]
FORMATS: tuple[Format, ...] = ("teams", "slack", "text")


@overload
def render(alert: Alert, fmt: Literal["teams", "slack"]) -> dict[str, Any]: ...
@overload
def render(alert: Alert, fmt: Literal["text"]) -> str: ...
@overload
def render(alert: Alert, fmt: Format) -> dict[str, Any] | str: ...


def render(alert: Alert, fmt: Format) -> dict[str, Any] | str:
    """Render `alert` for `fmt`: a JSON-ready dict for "teams"/"slack", a str for "text"."""
    if fmt == "teams":
        return teams.render(alert)
    if fmt == "slack":
        return slack.render(alert)
    if fmt == "text":
        return text.render(alert)
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
