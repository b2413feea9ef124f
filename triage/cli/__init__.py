"""Command line: `python -m triage replay | serve | render | report | doctor | explain | catalog |
outbox | silence`."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from ..destinations import names
from ..errors import TriageError
from .app_settings import applied

__all__ = ["READS_SETTINGS", "build_parser", "main"]

# The commands that read settings: each reads local.settings.json as `func start` does.
READS_SETTINGS = ("replay", "serve", "render", "doctor", "report", "outbox", "silence")
_SIGPIPE_EXIT = 141  # what a shell reports for a command killed by SIGPIPE: the reader went away


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line complaint: what was wrong and where help is, no usage block."""

    def error(self, message: str) -> NoReturn:
        """Print one line naming the mistake and the help to read; exit 2."""
        self.exit(2, f"error: {message}; see `{self.prog} --help`\n")


def _port(text: str) -> int:
    """A TCP port to listen on: 1-65535 (0 would pick a random one the user cannot know)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number; use 1-65535, e.g. 7071") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number; use 1-65535, e.g. 7071")
    return port


def _tool(name: str) -> Callable[[argparse.Namespace], int]:
    """A command implemented in tools/ (development tooling, not shipped with the Function App),
    imported only when it runs."""

    def run(args: argparse.Namespace) -> int:
        command: Callable[[argparse.Namespace], int] = getattr(importlib.import_module("tools.replay"), name)
        return command(args)

    return run


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `python -m triage`."""
    parser = _Parser(prog="python -m triage", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    sub = parser.add_subparsers(dest="command", required=True)

    replay = sub.add_parser("replay", help="replay event files (default: samples/) through the pipeline")
    replay.add_argument("paths", nargs="*", help="JSON files or folders (default: the samples)")
    target = replay.add_mutually_exclusive_group()
    target.add_argument("--to", metavar="URL", help="post the alerts to this webhook")
    target.add_argument("--dry-run", action="store_true", help="print the alerts (the default)")
    replay.add_argument(
        "--format",
        choices=names(),
        help="text (default), or a destination's payload, printed as JSON Lines (one document per line)",
    )
    replay.add_argument("--window", type=int, help="grouping window in seconds (0: every event alerts)")
    replay.add_argument("-q", "--quiet", action="store_true", help="no per-file lines")
    replay.add_argument(
        "--resolved", action="store_true", help="also print the resolved notice each burst ends with"
    )
    replay.set_defaults(func=_tool("cmd_replay"))  # exit 1 when a file is refused or an event invalid

    serve = sub.add_parser("serve", help="run the Function App's routes on a local server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_port, default=7071, help="1-65535 (default 7071)")
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
    report.add_argument(
        "--format", default="text", choices=_report_formats(), help="text (default) or a chat's card"
    )
    report.add_argument("--post", action="store_true", help="post it now to the report's destinations")
    report.set_defaults(func=cmd_report)

    from .catalog import add_commands
    from .outbox import add_commands as add_outbox_commands
    from .silence import add_commands as add_silence_commands

    add_commands(sub)
    add_outbox_commands(sub)
    add_silence_commands(sub)
    for name in READS_SETTINGS:
        sub.choices[name].set_defaults(reads_settings=True)
    return parser


def _report_formats() -> list[str]:
    """The formats the daily report has (the chat kinds and text; pagers take alerts only)."""
    from ..destinations import kind

    return [n for n in names() if kind(n).report is not None]


def cmd_report(args: argparse.Namespace) -> int:
    """Print (or post) the report of the last `--since` hours, this hour included."""
    import json
    from datetime import timedelta

    from ..destinations import kind
    from ..report import parse_since
    from ..service import Service
    from ..settings import Settings
    from .stores import durable_store

    period = parse_since(args.since)
    spec = kind(args.format) if args.format in names() else None
    if spec is None or spec.report is None:
        raise TriageError(f"--format must be one of {', '.join(_report_formats())}, not {args.format!r}")
    settings = Settings.from_env()
    service = Service(settings, durable_store(settings, "report (it reads the app's hourly counters)"))
    try:
        end = service.clock().replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        report = service.report(end, period)
        if args.post:
            messages = service.report_messages(report, f"cli|{end.isoformat()}")
            if not messages:
                raise TriageError(
                    "no destination takes the report: set ACS_TRIAGE_TEAMS_URL or ACS_TRIAGE_SLACK_URL"
                )
            # A destination holding posts off (a Retry-After, booked send slots) gets the report
            # through the app's outbox instead: said so, not claimed as posted.
            posted = [m.destination for m in messages if service.deliver(m)]
            queued = [m.destination for m in messages if m.destination not in posted]
            if posted:
                print(f"report posted to {', '.join(posted)}", file=sys.stderr)
            if queued:
                print(
                    f"report queued in the app's outbox for {', '.join(queued)} (it holds posts off "
                    "for now); the app's outbox worker posts it when the hold has passed",
                    file=sys.stderr,
                )
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
        if getattr(args, "reads_settings", False) and not getattr(args, "settings", None):
            with applied(os.environ) as line:
                print(line, file=sys.stderr)
                return int(args.func(args))
        return int(args.func(args))
    except TriageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader (head, a closed pager) stopped early: say so once, and keep Python from
        # printing a second error when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print("error: the output was closed before the command finished", file=sys.stderr)
        return _SIGPIPE_EXIT
