"""The commands that run the Function App locally: `replay`, `render` and `serve`
(`python -m triage` loads this module for them; the Function App never does)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from triage.clock import utcnow
from triage.destinations import Destination, kind
from triage.errors import TriageError
from triage.model import Alert
from triage.settings import Settings

__all__ = ["alerts_from_files", "cmd_render", "cmd_replay", "cmd_serve"]

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
    from triage.service import Service
    from triage.store.memory import MemoryStore

    from .localhost import LocalHost

    fmt: str = args.format or ("teams" if args.to else "text")
    base = Settings.from_env()
    if args.to:
        spec = kind(fmt)
        if not spec.postable:
            raise TriageError(f"--to needs a destination's --format, not {fmt}")
        # A kind with a key of its own (PagerDuty's routing key, the webhook's signing key) reads
        # it from its usual setting: a key never goes on a command line.
        key = os.environ.get(spec.secret_setting, "") if spec.secret_setting else ""
        if spec.secret_required and not key:
            raise TriageError(f"--format {fmt} --to needs {spec.secret_setting} in the environment")
        secret = SecretStr(key) if key else None
        destination = Destination(name="replay", format=fmt, url=SecretStr(args.to), secret=secret)
    else:
        destination = Destination(name="dry-run", format=fmt, url=SecretStr(DRY_RUN_URL))
    # Resolved notices only with --resolved: a replay shows the alerts, and the notices only
    # when asked (they come a whole quiet window after each burst).
    settings = base.model_copy(
        update={"destinations": {destination.name: destination}, "routes": [], "send_resolved": args.resolved}
    )
    if args.window is not None:
        settings = settings.model_copy(update={"group_window_seconds": args.window})
    store = MemoryStore()
    service = Service(settings, store)
    function_app.configure(service)
    local = LocalHost(function_app.app)

    totals: dict[str, int] = {}
    refused = 0
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
            refused += 1
        else:
            for key in ("received", "alerted", "grouped", "duplicates", "successes", "skipped", "invalid"):
                totals[key] = totals.get(key, 0) + int(doc.get(key, 0))
            note = ", ".join(
                f"{k} {v}" for k, v in doc.items() if isinstance(v, int) and v and k != "received"
            )
        if not args.quiet:
            print(f"{_display(path)}: {status} {note}", file=sys.stderr)

    # The end of a replay closes every grouping window, so held repeats come out as digests.
    window = timedelta(seconds=settings.group_window_seconds + 1)
    end = utcnow() + window
    flushed = service.flush(end)
    totals["digests"] = flushed.digests
    if args.resolved:  # one more quiet period (grouping off too): every burst is resolved
        quiet = timedelta(seconds=settings.quiet_seconds + 1)
        totals["resolved"] = flushed.resolved + service.flush(end + quiet).resolved

    if args.to:
        delivered = failed = 0
        while store.queued():
            ok, bad = local.run_queue(store)
            delivered, failed = delivered + ok, failed + bad
            if not ok and not bad:
                time.sleep(0.5)  # what is queued waits out a destination's Retry-After (deferred)
        totals["delivered"] = delivered
        totals["failed_posts"] = failed
        totals["dead"] = len(store.poison)
    else:
        shown = store.take_outbox()
        for message in shown:
            payload = message.payload_dict()
            if fmt == "text":
                print(payload["text"], end="\n\n")
            else:  # JSON Lines: one document per line, for jq or a line-by-line reader
                print(json.dumps(payload, ensure_ascii=False))
        totals["alerts"] = len(shown)
    summary = " · ".join(f"{k} {v}" for k, v in totals.items())
    print(f"replayed {len(files)} file(s): {summary}", file=sys.stderr)
    invalid = totals.get("invalid", 0)
    if refused or invalid:
        print(
            f"error: {refused} file(s) refused and {invalid} invalid event(s) (see the lines above): "
            f"fix or remove them",
            file=sys.stderr,
        )
    return 1 if totals.get("dead") or refused or invalid else 0


def alerts_from_files(paths: Sequence[str], settings: Settings | None = None) -> list[Alert]:
    """Every alert the files produce, one per failing event (grouping off), with `settings`
    (default: the environment's)."""
    from triage.ingest import parse_body
    from triage.pipeline import Triage
    from triage.store.memory import MemoryStore

    base = settings or Settings.from_env()
    settings = base.model_copy(update={"group_window_seconds": 0, "destinations": {}})
    triage = Triage(settings, MemoryStore())
    alerts: list[Alert] = []
    for path in _json_files(paths):
        envelope = parse_body(path.read_bytes(), "application/json", settings.max_body_bytes)
        alerts.extend(triage.handle(envelope.events, utcnow()).alerts)
    return alerts


def cmd_render(args: argparse.Namespace) -> int:
    """Write card previews (JSON, HTML, PNG) for every alert the files produce."""
    from .preview import write_previews

    alerts = alerts_from_files(args.paths or [str(SAMPLES)])
    formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
    written = write_previews(
        alerts,
        Path(args.out),
        formats=formats,
        scale=args.scale,
        progress=lambda line: print(f"render: {line}", file=sys.stderr, flush=True),
    )
    print(f"{len(alerts)} alert(s), {len(written)} file(s) written to {args.out}", file=sys.stderr)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the Function App's routes locally."""
    from .localhost import serve

    serve(args.host, args.port)
    return 0
