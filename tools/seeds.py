"""Re-read the ACS troubleshooting seed documents, table by table, as `SeedRow`s.

This is the independent check on `catalog/*.toml`: it never reads the catalog. It knows each
document's layout (seed 000 and 003 are Markdown, 002 is Markdown sections, 001 is rendered text
whose tables lost their column separators) and yields every row of every code table with its
full text, so that `catalog.check_seeds` can prove no row was lost or reworded.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from triage import catalog as _catalog
from triage.catalog import normalize

__all__ = [
    "CATEGORY_WORDS",
    "SeedError",
    "SeedRow",
    "check_seeds",
    "default_seeds_dir",
    "normalize",
    "page_title",
    "parse_seed",
    "read_seeds",
]

# The four result categories, plus the misspelling seed 001 uses in three call-end rows.
CATEGORY_WORDS = (
    "Success",
    "ExpectedError",
    "UnexpectedClientError",
    "UnexpectedServerError",
    "UnxpectedClientError",
)


class SeedError(ValueError):
    """A seed document does not look like any layout this parser knows."""


@dataclass(frozen=True, slots=True)
class SeedRow:
    """One row of one table in a seed document, as written there."""

    seed_file: str
    table_id: str
    code: int | None
    subcode: int | None
    text: str  # message + advice, normalised (see `normalize`), category word removed
    category_as_written: str | None = None
    name: str | None = None  # a string error code, e.g. Teams' UserLicenseNotPresentForbidden


_CATEGORY = re.compile(r"\b(" + "|".join(CATEGORY_WORDS) + r")\b")


def default_seeds_dir() -> Path:
    """`$ACS_TRIAGE_SEEDS`, else `shared/seeds` beside the repository."""
    env = os.environ.get("ACS_TRIAGE_SEEDS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent.parent / "shared" / "seeds"


_FRONT_TITLE = re.compile(r"^---\s*\n(?:.*\n)*?title:\s*(.+?)\s*\n(?:.*\n)*?---", re.MULTILINE)


def page_title(text: str) -> str:
    """A page's title: its front matter's `title:`, else (a page saved as text) its first line."""
    found = _FRONT_TITLE.search(text[:5000])
    if found:
        return found.group(1).strip().strip("'\"")
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def read_seeds(seeds_dir: Path) -> Iterator[SeedRow]:
    """Every row of every table of every seed document (`NNN_*.txt`) in `seeds_dir`."""
    files = sorted(seeds_dir.glob("[0-9][0-9][0-9]_*.txt"))
    if not files:
        raise SeedError(f"{seeds_dir}: no seed documents (NNN_*.txt); set ACS_TRIAGE_SEEDS")
    for path in files:
        yield from parse_seed(path.name, path.read_text(encoding="utf-8"))


def parse_seed(seed_file: str, text: str) -> list[SeedRow]:
    """The rows of one seed document; the layout is recognised from the document's title."""
    for title, parse in _LAYOUTS:
        if title in text[:2000]:
            return [SeedRow(seed_file, *row) for row in parse(text)]
    raise SeedError(f"{seed_file}: unknown document; expected one of: {[t for t, _ in _LAYOUTS]}")


# A row before it becomes a SeedRow: (table_id, code, subcode, text, category_as_written, name).
_Row = tuple[str, int | None, int | None, str, str | None, str | None]


def _row(table: str, code: int | None, subcode: int | None, raw: str, category: bool = False) -> _Row:
    found = _CATEGORY.search(raw) if category else None
    if found:
        raw = raw[: found.start()] + " " + raw[found.end() :]
    return (table, code, subcode, normalize(raw), found.group(1) if found else None, None)


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _codes(cell: str) -> list[int]:
    """'490, 491, 496' → [490, 491, 496]: a multi-code line is one row per code."""
    return [int(c) for c in re.findall(r"\d+", cell)]


# -- 000: Failed to create CallAgent (a key | value table, one `error` key per row) ---------------


def _parse_callagent(text: str) -> Iterator[_Row]:
    record: dict[str, str] = {}
    lines = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    for line in [*lines, "| error | |"]:
        key, value = _cells(line)[:2]
        if key == "error":
            if record:
                code = int(record["code"].split()[0])  # '409 (Conflict)'
                yield (
                    "create-callagent",
                    code,
                    int(record["subcode"]),
                    normalize(record["message"]),
                    record["resultCategories"],
                    None,
                )
            record = {}
        else:
            record[key] = value


# -- 001: the main reference, rendered to text: tables have no column separators -------------------

_FLAT_TABLES = {  # the heading line above a table → table id
    "Azure Communication Services Calling SDK client error codes and subcodes": "calling-sdk",
    "Calling End call codes and subcodes": "call-end",
    "Most common Call Automation error codes": "call-automation",
    "4xx codes": "generic-4xx",
    "5xx codes": "generic-5xx",
    "6xx codes": "generic-6xx",
    "Generic subcodes": "generic-subcodes",
    "ParticipantEndReason 0": "pstn-0",
    "ParticipantEndReason 4xx": "pstn-4xx",
    "ParticipantEndReason 5xx": "pstn-5xx",
    "ParticipantEndReason 603": "pstn-603",
    "Chat SDK error codes": "chat",
    "SMS error codes": "sms",
}
_FLAT_HEADERS = {  # the column header line → which leading numbers a row starts with
    "Subcode Code Message Result category Advice": ("subcode", "code"),
    "Subcode Code Message Result Categories Advice": ("subcode", "code"),
    "SubCode Code Message Result Categories Advice": ("subcode", "code"),
    "Code Subcode Description Mitigation": ("code", "subcode"),
    "Status Code Description": ("code",),
    "Subcode Description": ("subcode",),
    "Code Message Advice": ("code",),
}
# Two tables end with code-only lines ('480 Remote client endpoint not registered. …'): their own tables.
_TRAILING_CODES = {"calling-sdk": "calling-sdk-codes", "call-end": "call-end-codes"}
_CODE_ONLY = re.compile(r"^(\d{3}(?:, \d{3})*) (\D.*)$")


def _isolated(lines: list[str], i: int) -> bool:
    """A line alone between blank lines is a heading: it ends the table above it."""
    before = i == 0 or not lines[i - 1].strip()
    after = i + 1 == len(lines) or not lines[i + 1].strip()
    return before and after


def _parse_flat(text: str) -> Iterator[_Row]:
    lines = text.splitlines()
    heading, table, has_category = "", "", False
    keys: tuple[str, ...] = ()
    pending: list[tuple[str, list[int | None], int | None, list[str]]] = []  # the row being read

    def flush() -> Iterator[_Row]:
        for tid, codes, subcode, body in pending:
            for code in codes:
                yield _row(tid, code, subcode, "\n".join(body).strip(), has_category)
        pending.clear()

    for i, line in enumerate(lines):
        stripped = line.strip()
        if not table:
            if stripped in _FLAT_TABLES:
                heading = stripped
            elif stripped in _FLAT_HEADERS and heading in _FLAT_TABLES:
                table, keys = _FLAT_TABLES[heading], _FLAT_HEADERS[stripped]
                has_category = "Result" in stripped
            continue
        pattern = r"^(\d+) (\d+)(?: (.*))?$" if len(keys) == 2 else r"^(\d+) (.*)$"
        numbers = re.match(pattern, stripped)
        code_only = _CODE_ONLY.match(stripped) if len(keys) == 2 else None
        trailing = table in _TRAILING_CODES.values()  # reading the code-only lines after a table
        if numbers and not trailing:
            yield from flush()
            values = {key: int(numbers[n + 1]) for n, key in enumerate(keys)}
            pending.append(
                (table, [values.get("code")], values.get("subcode"), [numbers[len(keys) + 1] or ""])
            )
        elif code_only and (trailing or table in _TRAILING_CODES):
            yield from flush()
            table = _TRAILING_CODES.get(table, table)
            pending.append((table, [*_codes(code_only[1])], None, [code_only[2]]))
        elif stripped and _isolated(lines, i):
            yield from flush()
            table, heading = "", stripped
        elif pending:
            pending[-1][3].append(line)
    yield from flush()
    yield from _tips(text, "Consider the following tips when troubleshooting:", "•")


def _tips(text: str, intro: str, bullet: str) -> Iterator[_Row]:
    """Bulleted 'symptom: fix' tips; the first ': ' separates the two like a column would."""
    _, found, after = text.partition(intro)
    for line in after.strip().splitlines() if found else []:
        stripped = line.strip()
        if not stripped.startswith(bullet):
            break
        symptom, _, fix = stripped[len(bullet) :].strip().partition(": ")
        yield ("tips", None, None, normalize(f"{symptom}\n{fix}"), None, None)


# -- 002: Teams Phone extensibility: one `###` section per problem, one of them with a table -------

_SECTION_CODE = re.compile(r"^Error (\d{3})\s*(.*)$")
_NUMERIC_SUBCODE = re.compile(r"^(?:sub)?code (\d+):?\s*(.*)$")  # 'code 8523' is 400's subcode
_STRING_CODE = re.compile(r"^code `(\w+)`")


def _parse_teams(text: str) -> Iterator[_Row]:
    _, marker, issues = text.partition("## Common Teams Phone extensibility issues")
    if not marker:
        raise SeedError("Teams Phone document without its 'Common Teams Phone extensibility issues' section")
    issues = issues.split("\n## ", 1)[0]
    for section in issues.split("\n### ")[1:]:
        heading, _, body = section.partition("\n")
        body = body.split("\n---", 1)[0]
        code: int | None = None
        subcode: int | None = None
        name: str | None = None
        message = heading.strip()
        found = _SECTION_CODE.match(message)
        if found:
            code, message = int(found[1]), found[2]
            if numeric := _NUMERIC_SUBCODE.match(message):
                subcode, message = int(numeric[1]), numeric[2]
            elif string := _STRING_CODE.match(message):
                name, message = string[1], message.removeprefix("code ")
        table_lines = [line for line in body.splitlines() if line.startswith("|")]
        if table_lines:  # 'Error 404 subcode 5804xx': the table's first column holds the subcodes
            for line in table_lines:
                cells = _cells(line)
                if cells[0].isdigit():
                    yield (
                        "teams-phone-5804xx",
                        code,
                        int(cells[0]),
                        normalize(" ".join(cells[1:])),
                        None,
                        None,
                    )
            continue
        yield ("teams-phone", code, subcode, normalize(f"{message}\n{body}"), None, name)


# -- 003: general troubleshooting: Markdown tables under known headings -----------------------------

_MD_TABLES = {
    "## Calling SDK error codes": "info-calling-sdk",
    "## Call Automation SDK error codes": "info-call-automation",
    "## Chat SDK error codes": "chat",
    "## SMS error codes": "sms",
}


def _parse_markdown(text: str) -> Iterator[_Row]:
    table: str | None = None
    for line in text.splitlines():
        if line.startswith("## "):
            heading = line.strip()
            # A code table under a heading we do not know yet is a new table (`catalog sync`).
            table = _MD_TABLES.get(heading) or (_slug(heading) if heading.endswith("error codes") else None)
        elif table and line.startswith("|") and not re.match(r"^\|\s*-", line):
            cells = _cells(line)
            if not cells[0][:1].isdigit():
                continue  # the column header
            for code in _codes(cells[0]):
                yield (table, code, None, normalize(" ".join(cells[1:])), None, None)
    yield from _tips(text, "Consider the below tips when troubleshooting certain issues.", "-")


def _slug(heading: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", heading.lstrip("# ").lower()).strip("-")


_LAYOUTS = (
    ("# Failed to create CallAgent", _parse_callagent),
    ("Troubleshooting call end response codes for Calling SDK", _parse_flat),
    ("# Teams Phone extensibility troubleshooting", _parse_teams),
    ("# Troubleshooting in Azure Communication Services", _parse_markdown),
)


def check_seeds(seeds_dir: Path) -> list[str]:
    """Seed rows the catalog does not answer with their own table's text, and catalog rows no seed has."""
    catalog = _catalog._catalog()
    tables = {t.id: t for t in catalog.files.tables}
    problems: list[str] = []
    matched: set[tuple[int, str]] = set()
    for seed_row in read_seeds(seeds_dir):
        table = tables.get(seed_row.table_id)
        where = f"{seed_row.seed_file} {seed_row.table_id} {_row_label(seed_row)}"
        if table is None:
            problems.append(f"{where}: no catalog table {seed_row.table_id!r}")
            continue
        answer = _answer_rows(catalog, seed_row, table)
        found = next((r for r in answer if r.own_text(seed_row.seed_file) == seed_row.text), None)
        if found is None:
            got = answer[0].own_text(seed_row.seed_file)[:80] if answer else "nothing from this table"
            problems.append(f"{where}: not answered with its text {seed_row.text[:80]!r}; got {got!r}")
            continue
        matched.add((id(found), seed_row.seed_file))
        written = found.entry.category_as_written or found.entry.category
        if seed_row.category_as_written != written and found.entry.category_origin == "source":
            problems.append(
                f"{where}: category {seed_row.category_as_written!r} in the seed, {written!r} here"
            )
    for row in catalog.rows:
        if row.table.written:
            continue  # put together from prose: `catalog sync` checks its evidence instead
        for seed in row.entry.seeds or row.table.seeds:
            if (id(row), seed) not in matched:
                problems.append(
                    f"{row.table.id} {_catalog._code_text(row.entry.code, row.entry.subcode)} "
                    f"{row.entry.message[:50]!r}: not found in {seed}"
                )
    return problems


def _row_label(row: SeedRow) -> str:
    return row.name or _catalog._code_text(row.code, row.subcode)


def _answer_rows(catalog: _catalog._Catalog, seed_row: SeedRow, table: _catalog.Table) -> list[_catalog._Row]:
    """The rows of `table` the public API gives for a seed row: the answer and its related meanings."""
    own = [r for r in catalog.rows if r.table is table and r.own_text(seed_row.seed_file) == seed_row.text]
    if seed_row.name:
        guides = [_catalog.lookup_name(seed_row.name, table.context)]
    elif (seed_row.code is None and seed_row.subcode is None) or any(r.entry.setup for r in own):
        # No code, or a setup problem: the row must be found by searching for its own message.
        guides = [g for r in own for g in _catalog.search(_catalog._one_line(r.entry.message))]
    else:
        guides = [_catalog.lookup(seed_row.code, seed_row.subcode, table.context)]
    wanted = {
        (g.message, g.code, g.subcode)
        for g in [*guides, *(r for g in guides for r in g.related)]
        if g.table == table.id
    }
    return [
        r
        for r in catalog.rows
        if r.table is table and (_catalog._one_line(r.entry.message), r.entry.code, r.entry.subcode) in wanted
    ]
