"""`catalog sync`: compare the catalog with the Learn pages it was copied from and update it.

Pages are read in the seed documents' form (`tools.seeds`), recognised by their title
(`catalog/pages.toml`), so a checkout of the Learn docs repository or saved pages work alike.
Every row is compared with its catalog entry by table and code; the TOML files are then edited in
place, entry by entry, so comments, notes, flags and severities of untouched entries stay as they
are, and a changed entry keeps every field but the source's words.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.seeds import SeedError, SeedRow, normalize, page_title, parse_seed
from triage.catalog import CATALOG_DIR

__all__ = ["SyncResult", "sync"]

_HEADER = re.compile(r"^\[\[table(?:\.entry)?\]\][ \t]*$", re.MULTILINE)
# A new table's context, guessed from its heading; the diff asks for a review.
_CONTEXT_WORDS = (("sms", "sms"), ("chat", "chat"), ("teams", "teams-phone"), ("pstn", "pstn"),
                  ("automation", "call-automation"), ("calling", "calling-sdk"))  # fmt: skip


@dataclass
class SyncResult:
    """What differs (one line per row, by table and code) and the files as they should be."""

    diff: list[str] = field(default_factory=list)
    files: dict[Path, str] = field(default_factory=dict)
    # What sync cannot write: a written table's page no longer says what its rows rest on.
    review: list[str] = field(default_factory=list)


def sync(paths: Sequence[Path], catalog_dir: Path = CATALOG_DIR) -> SyncResult:
    """Compare every row of the pages at `paths` (files or folders) with `catalog_dir`."""
    pages = tomllib.loads((catalog_dir / "pages.toml").read_text(encoding="utf-8"))["page"]
    by_title = {p["title"].casefold(): p for p in pages}
    rows: dict[tuple[str, str], list[SeedRow]] = defaultdict(list)  # (seed, table id) → rows
    written = _written_tables(catalog_dir)
    result = SyncResult()
    for path in _pages(paths):
        text = path.read_text(encoding="utf-8")
        page = by_title.get(page_title(text).casefold())
        if page is None:
            raise SeedError(f"{path}: title {page_title(text)!r} is no page in pages.toml")
        if page["seed"] in written:  # prose, no code table: check what the rows rest on
            result.review += _evidence_missing(page, text, written[page["seed"]])
            continue
        for row in parse_seed(page["seed"], text):
            rows[(page["seed"], row.table_id)].append(row)
    known: set[str] = set()
    for path in sorted(catalog_dir.glob("*.toml")):
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
        if "table" not in data:
            continue
        known.update(t["id"] for t in data["table"])
        edited = _sync_file(text, data["table"], rows, result.diff)
        if edited != text:
            result.files[path] = edited
    pages_by_seed = {p["seed"]: p for p in pages}
    for (seed, table_id), new in sorted(rows.items()):
        if table_id not in known and new:
            _new_table(catalog_dir, table_id, pages_by_seed[seed], new, result)
    return result


def _written_tables(catalog_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Seed (page) → the written tables put together from it (`written = true`)."""
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in sorted(catalog_dir.glob("*.toml")):
        for table in tomllib.loads(path.read_text(encoding="utf-8")).get("table", ()):
            if table.get("written"):
                for seed in table["seeds"]:
                    found[seed].append(table)
    return found


def _evidence_missing(page: dict[str, Any], text: str, tables: list[dict[str, Any]]) -> list[str]:
    """A line for each phrase a written table rests on that the page no longer says."""
    said = normalize(text).casefold()
    return [
        f"! {table['id']}: {page['title']!r} no longer says {evidence['says']!r}:"
        " review the rows written from it (and its evidence)"
        for table in tables
        for evidence in table.get("evidence", ())
        if evidence["seed"] == page["seed"] and normalize(evidence["says"]).casefold() not in said
    ]


def _pages(paths: Sequence[Path]) -> Iterable[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(
                p for p in path.rglob("*") if p.suffix in (".md", ".txt") and p.name != "README.md"
            )
        elif path.is_file():
            yield path
        else:
            raise SeedError(f"{path}: no such file or folder")


def _label(code: int | None, subcode: int | None, name: str | None, text: str) -> str:
    if name:
        return name
    if code is None and subcode is None:
        return f"(no code) {text[:50]!r}"
    return f"{'?' if code is None else code}" + (f"/{subcode}" if subcode is not None else "")


def _own_text(entry: dict[str, Any], seed: str) -> str:
    for wording in entry.get("wording", ()):
        if wording["seed"] == seed:
            return normalize(f"{wording['message']}\n{wording.get('advice', '')}")
    return normalize(f"{entry['message']}\n{entry.get('advice', '')}")


def _key(entry: dict[str, Any], seed: str) -> str:
    code, subcode, name = entry.get("code"), entry.get("subcode"), entry.get("name")
    if code is None and subcode is None and not name:
        return _own_text(entry, seed)  # rows without a code are known by their words
    return _label(code, subcode, name, "")


def _row_key(row: SeedRow) -> str:
    if row.code is None and row.subcode is None and not row.name:
        return row.text
    return _label(row.code, row.subcode, row.name, "")


def _sync_file(
    text: str, tables: list[dict[str, Any]], rows: dict[tuple[str, str], list[SeedRow]], diff: list[str]
) -> str:
    """`text` with every entry brought in line with the pages' rows (those pages that were given)."""
    spans = _entry_spans(text)
    replace: dict[int, str | None] = {}  # entry number in the file → new text (None: removed)
    added: dict[int, list[str]] = {}  # after which entry number → new entries
    n = 0
    for table in tables:
        first, entries = n, table["entry"]
        n += len(entries)
        for seed in table["seeds"]:
            if (seed, table["id"]) not in rows:
                continue  # that page was not given: nothing to compare
            pending = defaultdict(list)
            for row in rows[(seed, table["id"])]:
                pending[_row_key(row)].append(row)
            for i, entry in enumerate(entries):
                if seed not in (entry.get("seeds") or table["seeds"]):
                    continue
                key = _key(entry, seed)
                code_label = _label(entry.get("code"), entry.get("subcode"), entry.get("name"), "")
                label = f"{table['id']} {code_label}"
                if not pending.get(key):
                    diff.append(f"- removed {label} from {seed}: {normalize(entry['message'])[:70]!r}")
                    others = [s for s in (entry.get("seeds") or table["seeds"]) if s != seed]
                    # A row another page still has stays, for that page only.
                    replace[first + i] = _entry_text(_without(entry, seed, others)) if others else None
                    continue
                row = pending[key].pop(0)
                if _own_text(entry, seed) != row.text:
                    diff.append(f"~ changed {label}: {_own_text(entry, seed)[:200]!r} → {row.text[:200]!r}")
                    replace[first + i] = _entry_text(_reworded(entry, seed, row))
            for left in pending.values():
                for row in left:
                    label = f"{table['id']} {_label(row.code, row.subcode, row.name, row.text)}"
                    diff.append(f"+ added {label}: {row.text[:70]!r}")
                    added.setdefault(first + len(entries) - 1, []).append(_entry_text(_new_entry(row)))
    if not replace and not added:
        return text
    out, last = [], 0
    for number, (start, body_end, end) in enumerate(spans):
        out.append(text[last:start])
        new = replace[number] if number in replace else text[start:body_end]
        if new is not None:
            out.append(new)
        for extra in added.get(number, ()):
            out.append("\n" + extra)
        out.append(text[body_end:end])
        last = end
    out.append(text[last:])
    return "".join(out)


def _entry_spans(text: str) -> list[tuple[int, int, int]]:
    """(start, end of its own lines, end) of every [[table.entry]]; what lies between the end of
    its own lines and the next header (comments, blank lines) belongs to what follows."""
    headers = list(_HEADER.finditer(text))
    spans = []
    for i, header in enumerate(headers):
        if header.group(0).strip() != "[[table.entry]]":
            continue
        end = headers[i + 1].start() if i + 1 < len(headers) else len(text)
        lines = text[header.start() : end].splitlines(keepends=True)
        while lines and (not lines[-1].strip() or lines[-1].lstrip().startswith("#")):
            lines.pop()
        spans.append((header.start(), header.start() + len("".join(lines)), end))
    return spans


def _split(text: str, entry: dict[str, Any] | None) -> tuple[str, str]:
    """Message and advice for a row whose words changed: the old split where it still holds."""
    if entry is not None:
        message = normalize(entry["message"])
        advice = normalize(entry.get("advice", ""))
        if message and text.startswith(message):
            return message, text[len(message) :].strip()
        if advice and text.endswith(advice):
            return text[: -len(advice)].strip(), advice
    return text, ""


def _reworded(entry: dict[str, Any], seed: str, row: SeedRow) -> dict[str, Any]:
    new = dict(entry)
    wordings = [dict(w) for w in entry.get("wording", ())]
    for wording in wordings:
        if wording["seed"] == seed:
            wording["message"], wording["advice"] = _split(row.text, wording)
            new["wording"] = wordings
            return new
    new["message"], new["advice"] = _split(row.text, entry)
    if not new["advice"]:
        new.pop("advice")
    return new


def _without(entry: dict[str, Any], seed: str, others: list[str]) -> dict[str, Any]:
    new = {k: v for k, v in entry.items() if k != "wording"}
    new["seeds"] = others
    wordings = [w for w in entry.get("wording", ()) if w["seed"] != seed]
    if wordings:
        new["wording"] = wordings
    return new


def _new_entry(row: SeedRow) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if row.code is not None:
        entry["code"] = row.code
    if row.subcode is not None:
        entry["subcode"] = row.subcode
    if row.name:
        entry["name"] = row.name
    entry["message"] = row.text
    if row.category_as_written:
        entry["category"] = row.category_as_written
    entry["note"] = "added by `catalog sync`: split message and advice as the source's columns do"
    return entry


def _entry_text(entry: dict[str, Any]) -> str:
    lines = ["[[table.entry]]"]
    tables: list[tuple[str, dict[str, Any]]] = []
    for key, value in entry.items():
        if key == "wording":
            tables += [("[[table.entry.wording]]", w) for w in value]
        elif isinstance(value, dict):
            tables.append((f"[table.entry.{key}]", value))
        else:
            lines.append(f"{key} = {_value(value)}")
    for header, sub in tables:
        lines.append(header)
        lines += [f"{k} = {_value(v)}" for k, v in sub.items()]
    return "\n".join(lines) + "\n"


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        if "\n" in value:
            return '"""\n' + value.replace("\\", "\\\\").replace('"""', '""\\"') + '\n"""'
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {type(value).__name__}")


def _new_table(
    catalog_dir: Path, table_id: str, page: dict[str, Any], rows: list[SeedRow], result: SyncResult
) -> None:
    words = table_id.replace("-", " ")
    context = next((c for word, c in _CONTEXT_WORDS if word in words), "call-automation")
    head = {
        "id": table_id,
        "title": words.capitalize(),
        "context": context,
        "seeds": [page["seed"]],
        "docs_url": page["url"],
    }
    lines = [
        f"# Added by `python -m triage catalog sync` from {page['title']!r}: review the context",
        "# (guessed from the heading), the title, and each row's message/advice split.",
        "",
        "[[table]]",
        *(f"{k} = {_value(v)}" for k, v in head.items()),
    ]
    body = "\n".join(lines) + "\n" + "".join("\n" + _entry_text(_new_entry(r)) for r in rows)
    result.files[catalog_dir / f"{table_id}.toml"] = body
    for row in rows:
        result.diff.append(
            f"+ added {table_id} {_label(row.code, row.subcode, row.name, row.text)}: {row.text[:70]!r}"
        )
    result.diff.append(f"+ new table {table_id} ({len(rows)} rows, context {context}: review)")
    contexts = catalog_dir / "contexts.toml"
    text = result.files.get(contexts) or contexts.read_text(encoding="utf-8")
    result.files[contexts] = re.sub(
        r"(\ndefault = \[\n(?:.*\n)*?)\]", rf'\1  "{table_id}",\n]', text, count=1
    )
