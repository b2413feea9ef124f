"""local.settings.json for the command line, read as `func start` reads it: the `Values` of the
file in the app folder become settings, and a variable already set in the environment wins.

Only the command line needs this: in Azure the host turns app settings into the environment, and
`func start` does the same with this file. Without it `serve`, `report`, `outbox`, `silence` and
`replay` would ignore the file a Functions user keeps settings in, and alerts would go nowhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError

__all__ = ["APP_FOLDER", "FILE_NAME", "applied", "describe", "read_values"]

# The folder of function_app.py and host.json: where `func start` runs and finds the file.
APP_FOLDER = Path(__file__).resolve().parents[2]
FILE_NAME = "local.settings.json"


def read_values(path: Path) -> dict[str, str]:
    """The `Values` of a local.settings.json as strings. Raises ConfigurationError naming the file
    and the fix when it is not JSON, is encrypted, or holds a value that is not one string (the
    Functions host ignores such a file silently; here it is said)."""
    try:
        document: Any = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigurationError(f"{path}: cannot be read ({err.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigurationError(f"{path}: is not valid JSON ({err}); fix it or remove it") from None
    if not isinstance(document, dict):
        raise ConfigurationError(f"{path}: must be a JSON object with a Values object")
    if document.get("IsEncrypted") is True:
        raise ConfigurationError(
            f"{path}: IsEncrypted is true; run `func settings decrypt` (only the Functions host can read it)"
        )
    values = document.get("Values", {})
    if not isinstance(values, dict):
        raise ConfigurationError(f"{path}: Values must be an object of setting names and strings")
    found: dict[str, str] = {}
    for key, value in values.items():
        if isinstance(value, str):
            found[key] = value
        elif isinstance(value, bool | int | float):
            found[key] = json.dumps(value)  # true → "true", as the app setting would read
        else:
            raise ConfigurationError(
                f"{path}: Values.{key} must be a string, not {type(value).__name__} (app settings are "
                f"flat strings; write JSON settings such as ACS_TRIAGE_ROUTES as one quoted string)"
            )
    return found


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def describe(path: Path, values: dict[str, str] | None, overridden: int) -> str:
    """The line a command prints at start: which settings file it read, if any."""
    if values is None:
        return f"settings: the environment only (no {FILE_NAME} in {_shown(path.parent) or '.'})"
    where = f"{len(values)} value(s)"
    if overridden:
        where += f", {overridden} of them overridden by the environment"
    return f"settings: {_shown(path)} ({where}) and the environment"


@contextmanager
def applied(
    environ: MutableMapping[str, str], folder: Path | None = None
) -> Iterator[tuple[Path, dict[str, str] | None, int]]:
    """Put the folder's local.settings.json Values into `environ` where it has no value of its
    own, for the duration; yields (the file's path, its values or None, how many the environment
    overrode). Everything added is taken out again afterwards."""
    path = (folder or APP_FOLDER) / FILE_NAME
    values = read_values(path) if path.is_file() else None
    added = [key for key in values or {} if key not in environ]
    for key in added:
        environ[key] = (values or {})[key]
    try:
        yield path, values, len(values or {}) - len(added)
    finally:
        for key in added:
            environ.pop(key, None)
