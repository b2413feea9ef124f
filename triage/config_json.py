"""Settings written as JSON lists (routes, time intervals, inhibit rules): one way to read them
and one way to say what is wrong, so every such setting's errors read alike."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

__all__ = ["json_list", "problems"]


def json_list(text: str, setting: str, shape: str) -> list[Any]:
    """`text` read as a JSON list; ValueError names `setting` and the `shape` it must have."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{setting} is not valid JSON: {exc.msg} at {exc.pos}") from None
    if not isinstance(document, list):
        raise ValueError(f"{setting} must be a JSON list of {shape}")
    return document


def problems(err: ValidationError, unknown_key: str | None = None) -> str:
    """A validation error as `where: what` phrases joined by '; ' (an unknown key's phrase is
    `unknown_key` when given: which keys are known)."""
    found = []
    for error in err.errors():
        where = ".".join(str(p) for p in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if unknown_key is not None and error["type"] == "extra_forbidden":
            message = unknown_key
        found.append(f"{where}: {message}" if where else message)
    return "; ".join(found)
