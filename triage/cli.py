"""Command line: `python -m triage replay | serve | render | explain | catalog`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from .deliver import utcnow
from .errors import TriageError
from .model import Alert
from .settings import Destination, Format, Settings

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
DRY_RUN_URL = "http://dry-run.invalid/"  # a destination that is printed, never posted to


def _json_files(paths: Sequence[str]) -> Iterator[Path]:
    for name in paths:
        path = Path(name)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*.json") if p.is_file())
        elif path.is_file():
            yield path
        else:
            raise TriageError(f"{name}: no such file or directory")


def _route_for(path: Path) -> str:
    return "callbacks" if "callbacks" in path.parts else "eventgrid"


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def cmd_replay(args: argparse.Namespace) -> int:
    """Replay event files through the whole pipeline (HTTP route → … → outbox → delivery)."""
    import function_app

    from .localhost import LocalHost
    from .service import Service
    from .store.memory import MemoryStore

    fmt: Format = args.format or ("teams" if args.to else "text")
    base = Settings.from_env()
    if args.to:
        if fmt == "text":
            raise TriageError("--to needs --format teams or slack")
        destination = Destination(name="replay", format=fmt, url=SecretStr(args.to))
    else:
        destination = Destination(name="dry-run", format=fmt, url=SecretStr(DRY_RUN_URL))
    settings = base.model_copy(update={"destinations": {destination.name: destination}, "routes": []})
    if args.window is not None:
        settings = settings.model_copy(update={"group_window_seconds": args.window})
    store = MemoryStore()
    service = Service(settings, store)
    function_app.configure(service)
    local = LocalHost(function_app.app)

    totals: dict[str, int] = {}
    files = list(_json_files(args.paths or [str(SAMPLES)]))
    for path in files:
        body = path.read_bytes()
        status, _, answer = local.http(
            "POST", f"/api/{_route_for(path)}", {"Content-Type": "application/json"}, body
        )
        doc: dict[str, Any] = json.loads(answer) if answer else {}
        if "validationResponse" in doc:
            note = "subscription validation answered"
        elif status != 200:
            note = f"refused: {doc.get('error', '')}"
        else:
            for key in ("received", "alerted", "grouped", "duplicates", "successes", "skipped", "invalid"):
                totals[key] = totals.get(key, 0) + int(doc.get(key, 0))
            note = ", ".join(
                f"{k} {v}" for k, v in doc.items() if isinstance(v, int) and v and k != "received"
            )
        if not args.quiet:
            print(f"{_display(path)}: {status} {note}", file=sys.stderr)

    # The end of a replay closes every grouping window, so held repeats come out as digests.
    flushed = service.flush(utcnow() + timedelta(seconds=settings.group_window_seconds + 1))
    totals["digests"] = flushed.digests

    if args.to:
        delivered = failed = 0
        while store.outbox:
            ok, bad = local.run_queue(store)
            delivered, failed = delivered + ok, failed + bad
        totals["delivered"] = delivered
        totals["failed_posts"] = failed
        totals["dead"] = len(store.poison)
    else:
        for message in list(store.outbox):
            payload = message.payload
            text = payload["text"] if fmt == "text" else json.dumps(payload, indent=2, ensure_ascii=False)
            print(text)
            print()
        totals["alerts"] = len(store.outbox)
        store.outbox.clear()
    summary = " · ".join(f"{k} {v}" for k, v in totals.items())
    print(f"replayed {len(files)} file(s): {summary}", file=sys.stderr)
    return 1 if totals.get("dead") else 0


def alerts_from_files(paths: Sequence[str]) -> list[Alert]:
    """Every alert the files produce, one per failing event (grouping off)."""
    from .ingest import parse_body
    from .pipeline import Triage
    from .store.memory import MemoryStore

    settings = Settings.from_env().model_copy(update={"group_window_seconds": 0, "destinations": {}})
    triage = Triage(settings, MemoryStore())
    alerts: list[Alert] = []
    for path in _json_files(paths):
        envelope = parse_body(path.read_bytes(), "application/json", settings.max_body_bytes)
        alerts.extend(triage.handle(envelope.events, utcnow()).alerts)
    return alerts


def cmd_render(args: argparse.Namespace) -> int:
    """Write card previews (JSON, HTML, PNG) for every alert the files produce."""
    from .render.preview import write_previews

    alerts = alerts_from_files(args.paths or [str(SAMPLES)])
    formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
    written = write_previews(alerts, Path(args.out), formats=formats, scale=args.scale)
    print(f"{len(alerts)} alert(s), {len(written)} file(s) written to {args.out}", file=sys.stderr)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the Function App's routes locally."""
    from .localhost import serve

    serve(args.host, args.port)
    return 0


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
    replay.add_argument("--format", choices=("teams", "slack", "text"), help="text (default) or payload")
    replay.add_argument("--window", type=int, help="grouping window in seconds (0: every event alerts)")
    replay.add_argument("-q", "--quiet", action="store_true", help="no per-file lines")
    replay.set_defaults(func=cmd_replay)

    serve = sub.add_parser("serve", help="run the Function App's routes on a local server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=7071)
    serve.set_defaults(func=cmd_serve)

    render = sub.add_parser("render", help="write card previews (JSON, HTML, PNG) for event files")
    render.add_argument("paths", nargs="*", help="JSON files or folders (default: the samples)")
    render.add_argument("--out", required=True, help="output folder")
    render.add_argument("--formats", default="teams,slack", help="comma-separated: teams,slack")
    render.add_argument("--scale", type=float, default=1.0, help="device pixel ratio of the pictures")
    render.set_defaults(func=cmd_render)

    from .catalog_cli import add_commands

    add_commands(sub)
    return parser


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
