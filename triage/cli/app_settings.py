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

__all__ = ["APP_FOLDER", "FILE_NAME", "FILE_SETTING", "applied", "read_values"]

# The folder of function_app.py and host.json: where `func start` runs and finds the file.
APP_FOLDER = Path(__file__).resolve().parents[2]
FILE_NAME = "local.settings.json"
FILE_SETTING = "ACS_TRIAGE_LOCAL_SETTINGS"  # another file to read, or empty to read none


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
        return str(path.relative_to(Path.cwd())) or "."
    except ValueError:
        return str(path)


@contextmanager
def applied(environ: MutableMapping[str, str], folder: Path | None = None) -> Iterator[str]:
    """Put local.settings.json Values into `environ` where it has no value of its own, for the
    duration; yields the line a command prints at start (which file it read). The file is the
    app folder's, or the one ACS_TRIAGE_LOCAL_SETTINGS names (empty: none, as the tests run).
    Everything added is taken out again afterwards."""
    chosen = environ.get(FILE_SETTING)
    if chosen == "":
        yield f"settings: the environment only ({FILE_SETTING} is empty: no {FILE_NAME} is read)"
        return
    path = Path(chosen) if chosen else (folder or APP_FOLDER) / FILE_NAME
    if chosen is None and not path.is_file():
        yield f"settings: the environment only (no {FILE_NAME} in {_shown(path.parent)})"
        return
    values = read_values(path)
    added = [key for key in values if key not in environ]
    for key in added:
        environ[key] = values[key]
    overridden = len(values) - len(added)
    where = f"{len(values)} value(s)" + (
        f", {overridden} of them overridden by the environment" if overridden else ""
    )
    try:
        yield f"settings: {_shown(path)} ({where}) and the environment"
    finally:
        for key in added:
            environ.pop(key, None)
