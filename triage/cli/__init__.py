"""Command line: `python -m triage replay | serve | render | report | doctor | explain | catalog |
outbox | silence`."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence

from ..destinations import names
from ..errors import TriageError

__all__ = ["main"]


def _tool(name: str) -> Callable[[argparse.Namespace], int]:
    """A command implemented in tools/ (development tooling, not shipped with the Function App),
    imported only when it runs."""

    def run(args: argparse.Namespace) -> int:
        command: Callable[[argparse.Namespace], int] = getattr(importlib.import_module("tools.replay"), name)
        return command(args)

    return run


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `python -m triage`."""
    parser = argparse.ArgumentParser(prog="python -m triage", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    sub = parser.add_subparsers(dest="command", required=True)

    replay = sub.add_parser("replay", help="replay event files (default: samples/) through the pipeline")
    replay.add_argument("paths", nargs="*", help="JSON files or folders (default: the samples)")
    target = replay.add_mutually_exclusive_group()
    target.add_argument("--to", metavar="URL", help="post the alerts to this webhook")
    target.add_argument("--dry-run", action="store_true", help="print the alerts (the default)")
    replay.add_argument("--format", choices=names(), help="text (default) or a destination's payload")
    replay.add_argument("--window", type=int, help="grouping window in seconds (0: every event alerts)")
    replay.add_argument("-q", "--quiet", action="store_true", help="no per-file lines")
    replay.add_argument(
        "--resolved", action="store_true", help="also print the resolved notice each burst ends with"
    )
    replay.set_defaults(func=_tool("cmd_replay"))

    serve = sub.add_parser("serve", help="run the Function App's routes on a local server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=7071)
    serve.set_defaults(func=_tool("cmd_serve"))

    render = sub.add_parser("render", help="write card previews (JSON, HTML, PNG) for event files")
    render.add_argument("paths", nargs="*", help="JSON files or folders (default: the samples)")
    render.add_argument("--out", required=True, help="output folder")
    render.add_argument("--formats", default="teams,slack", help="comma-separated: teams,slack")
    render.add_argument("--scale", type=float, default=1.0, help="device pixel ratio of the pictures")
    render.set_defaults(func=_tool("cmd_render"))

    from .doctor import add_command as add_doctor

    add_doctor(sub)

    report = sub.add_parser("report", help="the daily report from the store's hourly counters")
    report.add_argument("--since", default="24h", help="the period up to now: 24h (default), 7d, …")
    report.add_argument("--format", default="text", help="text (default) or a destination's (teams, slack)")
    report.add_argument("--post", action="store_true", help="post it now to the report's destinations")
    report.set_defaults(func=cmd_report)

    from .catalog import add_commands
    from .outbox import add_commands as add_outbox_commands
    from .silence import add_commands as add_silence_commands

    add_commands(sub)
    add_outbox_commands(sub)
    add_silence_commands(sub)
    return parser


def cmd_report(args: argparse.Namespace) -> int:
    """Print (or post) the report of the last `--since` hours, this hour included."""
    import json
    from datetime import timedelta

    from ..destinations import kind
    from ..report import parse_since
    from ..service import Service

    period = parse_since(args.since)
    spec = kind(args.format) if args.format in names() else None
    if spec is None or spec.report is None:
        raise TriageError(f"--format must be one of text, teams, slack, not {args.format!r}")
    service = Service.from_env()
    try:
        end = service.clock().replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        report = service.report(end, period)
        if args.post:
            messages = service.report_messages(report, f"cli|{end.isoformat()}")
            if not messages:
                raise TriageError(
                    "no destination takes the report: set ACS_TRIAGE_TEAMS_URL or ACS_TRIAGE_SLACK_URL"
                )
            for message in messages:
                service.deliver(message)
            print(f"report posted to {', '.join(m.destination for m in messages)}", file=sys.stderr)
            return 0
        rendered = spec.report(report)
        print(rendered if isinstance(rendered, str) else json.dumps(rendered, indent=2, ensure_ascii=False))
        return 0
    finally:
        service.store.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except TriageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
