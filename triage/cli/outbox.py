"""`python -m triage outbox status | redrive`: what waits in the outbox and its poison queue,
and sending poisoned messages again once their webhook is back."""

from __future__ import annotations

import argparse
import json
import re
import time
from typing import Any

from ..store import Backlog, RedriveFilter

__all__ = ["add_commands", "parse_duration"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")


def parse_duration(text: str) -> float:
    """'90s', '15m', '6h', '2d' as seconds."""
    match = _DURATION.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 90s, 15m, 6h or 2d")
    return float(match.group(1)) * _UNITS[match.group(2)]


def add_commands(sub: Any) -> None:
    """Add `outbox status` and `outbox redrive` to the CLI's subcommands."""
    outbox = sub.add_parser("outbox", help="the outbox and its poison queue")
    commands = outbox.add_subparsers(dest="outbox_command", required=True)
    status = commands.add_parser("status", help="outbox and poison depth per destination, oldest age")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=cmd_status)
    redrive = commands.add_parser("redrive", help="send poisoned messages again (oldest first, paced)")
    redrive.add_argument(
        "--older-than", type=parse_duration, metavar="AGE", help="only those poisoned AGE ago or more"
    )
    redrive.add_argument(
        "--younger-than", type=parse_duration, metavar="AGE", help="only those poisoned less than AGE ago"
    )
    redrive.add_argument("--destination", metavar="NAME", help="only the messages of this destination")
    redrive.add_argument(
        "--include-refused",
        action="store_true",
        help="also payloads the webhook refused (4xx); they fail again unless the webhook changed",
    )
    redrive.set_defaults(func=cmd_redrive)


def _store() -> Any:
    """The store the Function App uses, from the same settings."""
    from ..settings import Settings
    from .stores import durable_store

    return durable_store(Settings.from_env(), "the outbox commands")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def cmd_status(args: argparse.Namespace) -> int:
    """Print the backlog of every destination."""
    rows: list[Backlog] = _store().outbox_status(time.time())
    if args.json:
        print(json.dumps([_as_dict(row) for row in rows], indent=2))
        return 0
    print(f"{'destination':<16}{'queued':>8}{'oldest':>9}{'poisoned':>10}{'refused':>9}{'oldest':>9}")
    for row in rows:
        queued = "?" if row.queued is None else str(row.queued)
        print(
            f"{row.destination:<16}{queued:>8}{_age(row.oldest_queued):>9}"
            f"{row.poisoned:>10}{row.refused:>9}{_age(row.oldest_poisoned):>9}"
        )
    if not rows:
        print("(nothing waiting)")
    return 0


def _as_dict(row: Backlog) -> dict[str, Any]:
    return {
        "destination": row.destination,
        "queued": row.queued,
        "oldest_queued_seconds": row.oldest_queued,
        "poisoned": row.poisoned,
        "refused": row.refused,
        "oldest_poisoned_seconds": row.oldest_poisoned,
    }


def cmd_redrive(args: argparse.Namespace) -> int:
    """Move poisoned messages back to the outbox; the queue trigger posts them at the pace."""
    which = RedriveFilter(
        destination=args.destination,
        younger_than=args.younger_than,
        older_than=args.older_than,
        refused=args.include_refused,
    )
    moved = _store().redrive(time.time(), which)
    print(f"re-queued {moved} poisoned message(s)")
    return 0
