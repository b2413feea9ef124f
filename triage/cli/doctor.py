"""`python -m triage doctor`: print every problem with the settings, its setting and its fix;
exit 1 on any error. The checks themselves live in `triage.checks` (the app runs them at start)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..checks import Problem, check, probe, problems_block
from ..settings import Settings
from .app_settings import read_values

__all__ = ["add_command", "main", "silence_problems"]


def add_command(sub: Any) -> None:
    """Register `doctor` on the CLI's subcommands."""
    doctor = sub.add_parser("doctor", help="check the settings; exit 1 on any error")
    doctor.add_argument(
        "--settings",
        metavar="FILE",
        help="check this local.settings.json alone (default: the environment and the app's own)",
    )
    doctor.add_argument("--offline", action="store_true", help="do not contact storage")
    doctor.add_argument("--json", action="store_true", help="print the problems as JSON")
    doctor.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Print each problem with its setting and fix; 1 when any is an error, else 0."""
    env: Mapping[str, str] = os.environ
    if args.settings:
        env = read_values(Path(args.settings))
        print(f"settings: {args.settings} (--settings: the environment is not read)", file=sys.stderr)
    settings, problems = check(env)
    depths: tuple[int, int] | None = None
    if (
        settings is not None
        and settings.storage is not None
        and not args.offline
        and not problems_block(problems)
    ):
        depths, found = probe(settings)
        problems += found
        complete = depths is not None and not found  # every table there: reading creates nothing
    else:
        complete = settings is not None and settings.storage is None
    if settings is not None and complete and not args.offline and not problems_block(problems):
        problems += silence_problems(settings)
    errors = [p for p in problems if p.level == "error"]
    timing = _timing(settings) if settings is not None and not errors else []
    inhibit = _inhibitions(settings) if settings is not None and not errors else []
    if args.json:
        doc: dict[str, Any] = {"problems": [p.as_dict() for p in problems]}
        if depths is not None:
            doc["outbox"] = {"depth": depths[0], "poison": depths[1]}
        if timing:
            doc["timing"] = timing
        if inhibit:
            doc["inhibit"] = inhibit
        print(json.dumps(doc, indent=2))
    else:
        for problem in problems:
            print(f"{problem.level}: {problem.message}")
        for line in timing:
            print(f"timing: {line}")
        for line in inhibit:
            print(f"inhibit: {line}")
        if depths is not None:
            print(f"storage answers: outbox {depths[0]} message(s), poison {depths[1]}")
        if not problems:
            print("ok: no problems found")
    return 1 if errors else 0


def _timing(settings: Settings) -> list[str]:
    """How each route times its bursts (digest window, reminders): what the settings mean,
    said once, so that a default nobody wrote down (4 h reminders) is not a surprise."""
    from ..routing import Routing

    return Routing(settings).timing()


def _inhibitions(settings: Settings) -> list[str]:
    """What each inhibit rule holds back, and while what fires."""
    lines: list[str] = []
    for number, rule in enumerate(settings.inhibit_rules, 1):
        same = f" with the same {', '.join(rule.equal)}" if rule.equal else ""
        lines.append(
            f"rule {number}: while {' '.join(rule.source_matchers)} fires, "
            f"{' '.join(rule.target_matchers)}{same} is held back (counted, summarised when it ends)"
        )
    return lines


def silence_problems(settings: Settings) -> list[Problem]:
    """A warning naming each silence in force that can never match (one stored before such
    silences were refused, e.g. `kinds=~Play.*` kept as the literal kind '~Play.*'): it holds
    nothing back, so the failures it was meant for still alert."""
    from ..clock import utcnow
    from ..store import configured_spec, open_configured

    spec = configured_spec(settings)
    if spec == "memory":
        return []  # nothing outlives a process there: no silence to check
    if spec.startswith("sqlite:") and not Path(spec.removeprefix("sqlite:")).is_file():
        return []  # no file yet: no silence, and doctor creates nothing
    try:
        store = open_configured(settings)
    except Exception:  # a storage problem is reported by the checks above
        return []
    try:
        silences = store.list_silences(utcnow())
    except Exception:
        return []
    finally:
        store.close()
    return [
        Problem(
            "warning",
            f"silence {silence.id}",
            f"silence {silence.id} ({silence.matcher.describe()}) can never match: {'; '.join(never)}; "
            f"expire it (python -m triage silence expire {silence.id}) and add it again",
        )
        for silence in silences
        if (never := silence.matcher.problems())
    ]
