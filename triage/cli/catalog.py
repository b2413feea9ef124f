"""`explain` and `catalog` commands: what a code means, and whether the catalog files are sound.

`add_commands(subparsers)` plugs them into `python -m triage`; `main(argv)` runs them alone
(`python -m triage.cli.catalog explain 410 3112`).
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..catalog import (
    CATALOG_DIR,
    COMPILED_NAME,
    CatalogError,
    condition_text,
    conditions_of,
    lookup,
    lookup_name,
    search,
    table_sizes,
)
from ..model import CONTEXTS, Guidance

__all__ = [
    "add_commands",
    "cmd_catalog_build",
    "cmd_catalog_check_seeds",
    "cmd_catalog_lint",
    "cmd_catalog_sync",
    "cmd_explain",
    "explain_text",
    "main",
]


def add_commands(subparsers: Any) -> None:
    """Add `explain` and `catalog lint|build|check-seeds|sync` to an argparse subparsers object."""
    explain = subparsers.add_parser("explain", help="what an ACS code means and what to do")
    explain.add_argument(
        "code", nargs="?", help="the code (410), or a string code (UserLicenseNotPresentForbidden)"
    )
    explain.add_argument("subcode", nargs="?", type=int, help="the subcode (3112)")
    explain.add_argument("--context", choices=CONTEXTS, help="where the code came from (default: any)")
    explain.add_argument(
        "--event",
        metavar="KIND|FILE",
        help="the event that carried it: its kind (PlayFailed) adds its advice; an event file (a body"
        " as ACS posts it) is read whole, each failure explained with the row that answers it and why",
    )
    explain.add_argument("--search", metavar="TEXT", help="list entries whose text contains these words")
    explain.add_argument("--json", action="store_true", help="print JSON instead of text")
    explain.set_defaults(func=cmd_explain)

    catalog = subparsers.add_parser("catalog", help="check the catalog files")
    sub = catalog.add_subparsers(dest="catalog_command", required=True)
    sub.add_parser("lint", help="validate every catalog file").set_defaults(func=cmd_catalog_lint)
    build = sub.add_parser("build", help=f"validate the TOML files and write catalog/{COMPILED_NAME}")
    build.add_argument("--check", action="store_true", help="write nothing; exit 1 if it is not current")
    build.add_argument("--catalog", metavar="DIR", help="the catalog folder (default: this repository's)")
    build.set_defaults(func=cmd_catalog_build)
    check = sub.add_parser("check-seeds", help="prove every row of the seed documents is answered")
    check.add_argument(
        "seeds_dir", nargs="?", help="folder of NNN_*.txt (default: $ACS_TRIAGE_SEEDS or ../shared/seeds)"
    )
    check.set_defaults(func=cmd_catalog_check_seeds)
    sync = sub.add_parser("sync", help="compare the catalog with Learn pages and update it")
    sync.add_argument("paths", nargs="+", help="pages (Markdown or saved text), or folders of them")
    sync.add_argument("--check", action="store_true", help="change nothing; exit 1 if anything differs")
    sync.add_argument("--catalog", metavar="DIR", help="the catalog folder (default: this repository's)")
    sync.set_defaults(func=cmd_catalog_sync)


def cmd_explain(args: argparse.Namespace) -> int:
    """Print the guidance for a code (or the entries matching --search); always exit 0."""
    if args.search:
        found = search(args.search)
        if args.json:
            print(json.dumps([g.as_dict() for g in found], indent=2, ensure_ascii=False))
        else:
            print(f"{len(found)} entr{'y' if len(found) == 1 else 'ies'} for {args.search!r}")
            for g in found:
                print(f"- {_code(g):<12} {g.table:<20} {_one_line(g.message)}")
        return 0
    if args.event and Path(args.event).is_file():
        if args.code is not None or args.context:
            print("explain: --event FILE takes the codes and context from the events", file=sys.stderr)
            return 2
        return _explain_events(Path(args.event), as_json=args.json)
    if args.code is None:
        print("explain: give a CODE [SUBCODE], --event FILE, or --search TEXT", file=sys.stderr)
        return 2
    code = args.code.strip()
    guidance = (
        lookup(int(code), args.subcode, args.context, args.event)
        if code.isdigit()
        else lookup_name(code, args.context)
    )
    if args.json:
        print(json.dumps(guidance.as_dict(), indent=2, ensure_ascii=False))
    else:
        print(explain_text(guidance))
    return 0


def cmd_catalog_lint(args: argparse.Namespace) -> int:
    """Validate the catalog files; exit 1 on any problem."""
    from ..catalog_files import lint  # pydantic models: built for lint and build, never for lookups

    problems = lint()
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s)", file=sys.stderr)
        return 1
    try:
        sizes = table_sizes()  # what the runtime loads: compiled.json, checked against the TOML files
    except CatalogError as err:
        print(err)
        return 1
    print(f"catalog ok: {sum(sizes.values())} entries in {len(sizes)} tables")
    for table, count in sizes.items():
        print(f"  {table:<22} {count}")
    return 0


def cmd_catalog_build(args: argparse.Namespace) -> int:
    """Write compiled.json from the TOML files (the form the Function App loads); with --check,
    exit 1 when it is not what the TOML files give. Exit 1 when the TOML files do not pass lint."""
    from ..catalog_files import build, compile_catalog  # pydantic models: never on the request path

    directory = Path(args.catalog) if args.catalog else CATALOG_DIR
    path = directory / COMPILED_NAME
    try:
        if args.check:
            current = path.read_text(encoding="utf-8") if path.exists() else None
            if current != compile_catalog(directory):
                print(f"catalog/{COMPILED_NAME} is not current; run `python -m triage catalog build`")
                return 1
            print(f"catalog/{COMPILED_NAME} is current")
            return 0
        changed = build(directory)
    except CatalogError as err:
        print(err, file=sys.stderr)
        return 1
    print(f"{'wrote' if changed else 'unchanged:'} catalog/{COMPILED_NAME}")
    return 0


def cmd_catalog_check_seeds(args: argparse.Namespace) -> int:
    """Check every seed row against the catalog; exit 1 on a missing or reworded row."""
    from tools.seeds import check_seeds, default_seeds_dir  # a development tool, never on the request path

    seeds_dir = Path(args.seeds_dir) if args.seeds_dir else default_seeds_dir()
    if not seeds_dir.is_dir():
        print(f"no seed folder at {seeds_dir}; pass one or set ACS_TRIAGE_SEEDS", file=sys.stderr)
        return 1
    problems = check_seeds(seeds_dir)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"every row of the seeds in {seeds_dir} is answered with its own text")
    return 0


def cmd_catalog_sync(args: argparse.Namespace) -> int:
    """Print what differs between the pages and the catalog; write it unless --check."""
    from tools.catalog_sync import sync  # a development tool, never on the request path
    from tools.seeds import SeedError

    from ..catalog_files import lint

    directory = Path(args.catalog) if args.catalog else CATALOG_DIR
    try:
        result = sync([Path(p) for p in args.paths], directory)
    except (SeedError, OSError) as err:
        print(f"catalog sync: {err}", file=sys.stderr)
        return 1
    for line in [*result.diff, *result.review]:
        print(line)
    if not result.diff:
        if not result.review:
            print("the catalog matches every row of these pages")
        return 1 if result.review else 0
    if args.check:
        print(f"{len(result.diff)} difference(s); run without --check to update the catalog", file=sys.stderr)
        return 1
    for path, text in result.files.items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.name}")
    problems = lint(directory)
    for problem in problems:
        print(problem)
    if problems:
        return 1
    # The runtime reads the compiled form: rebuilt with the TOML files it comes from.
    built = cmd_catalog_build(argparse.Namespace(check=False, catalog=str(directory)))
    return built or (1 if result.review else 0)  # what needs a person still fails the run


def _explain_events(path: Path, *, as_json: bool) -> int:
    """Explain every event in an event file as the pipeline reads it: its facts, the context and
    row its participant, action and message chose (and which documented condition did), and the
    guidance an alert would carry. Exit 1 when the file is not a body the app accepts."""
    from ..errors import TriageError
    from ..events import Skip, read
    from ..ingest import parse_body

    body = path.read_bytes()
    try:
        envelope = parse_body(body, "application/json", max(len(body), 1))
    except TriageError as err:
        print(f"explain: {path}: {err}", file=sys.stderr)
        return 1
    found: list[dict[str, Any]] = []
    texts: list[str] = []
    for raw in envelope.events:
        reading = read(raw)
        if isinstance(reading, Skip):
            found.append({"event_id": raw.id, "type": raw.type, "skipped": reading.reason})
            texts.append(f"{raw.type} (id {raw.id}): no alert ({reading.outcome}): {reading.reason}")
            continue
        facts = reading.facts
        g = lookup(facts.code, facts.subcode, facts.context, facts.kind, facts.row)
        when = conditions_of(facts.row) if facts.row else None
        why = (
            f"the source's condition for row {facts.row}: {condition_text(when)}"
            if when is not None
            else "no documented condition holds: the event's own context and the usual order"
        )
        found.append(
            {"event_id": raw.id, "type": raw.type, "context": facts.context, "row": facts.row,
             "chosen_by": condition_text(when) if when is not None else None, "guidance": g.as_dict()}
        )  # fmt: skip
        head = f"{facts.kind} {_code(g)} (id {raw.id}) · context {facts.context}\nChosen by: {why}"
        texts.append(f"{head}\n\n{explain_text(g)}")
    for rejected in envelope.rejected:
        found.append({"index": rejected.index, "rejected": rejected.reason})
        texts.append(f"event #{rejected.index}: rejected: {rejected.reason}")
    if as_json:
        print(json.dumps(found, indent=2, ensure_ascii=False))
    else:
        print(("\n\n" + "-" * 72 + "\n\n").join(texts) if texts else f"{path}: no events")
    return 0


def explain_text(g: Guidance) -> str:
    """The guidance as a person reads it in a terminal."""
    lines = [
        f"{_code(g)}  {g.category.value} · severity {g.severity.value} · matched: {g.match.value}",
        "",
        g.message,
    ]
    if g.advice:
        lines += ["", "What to do:", textwrap.indent(g.advice, "  ")]
    lines += ["", f"Source: {g.source}" + (f" (table {g.table})" if g.table else "")]
    if g.docs_url:
        lines.append(f"Docs:   {g.docs_url}")
    lines += [f"Note:   {flag}" for flag in g.flags]
    if g.related:
        lines += ["", "Also documented as:"]
        lines += [f"  - {r.table}: {_code(r)} {_one_line(r.message)}{_only_when(r)}" for r in g.related]
    return "\n".join(lines)


def _only_when(g: Guidance) -> str:
    """The conditions, for a related row that answers only the events meeting them ("" otherwise)."""
    when = conditions_of(f"{g.table}:{_code(g)}")
    return f" (only when: {condition_text(when)})" if when is not None else ""


def _code(g: Guidance) -> str:
    if g.code is None and g.subcode is None:
        return "(no code)"
    return f"{g.code}/{g.subcode}" if g.subcode is not None else str(g.code)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    """Run `explain` or `catalog` on their own; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m triage.cli.catalog", description=__doc__)
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
