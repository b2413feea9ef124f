"""The catalog's file format: pydantic models of `catalog/*.toml`, their validation (`catalog
lint`), and the build of the compiled form the runtime loads (`catalog/compiled.json`).

Only `catalog lint`, `catalog build` and the tests import this module: the Function App reads
the compiled form, which `triage.catalog` checks against the TOML files' digest, so the request
path never builds these models.
"""

from __future__ import annotations

import json
import tomllib
from collections import defaultdict
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import Struct
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from . import catalog as runtime
from .catalog import COMPILED_FORMAT, RUNTIME_TYPES, _code_text, normalize, sources_digest
from .model import Context

__all__ = [
    "SourceFiles",
    "compile_catalog",
    "lint",
    "read_files",
    "runtime_files",
]

# -- the file format ------------------------------------------------------------------------------------

Text = Annotated[str, StringConstraints(strip_whitespace=True)]
Required = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
SeedName = Annotated[str, StringConstraints(pattern=r"^\d{3}_[0-9a-f]+\.txt$")]
DocsUrl = Annotated[str, StringConstraints(pattern=r"^https://learn\.microsoft\.com/en-us/\S+$")]
HttpsUrl = Annotated[str, StringConstraints(pattern=r"^https://[^\s/]+\.[a-z]{2,}(/\S*)?$")]
CategoryName = Literal["Success", "ExpectedError", "UnexpectedClientError", "UnexpectedServerError"]
Origin = Literal["source", "catalog"]


class _Model(BaseModel):
    # defer_build: importing this module builds no schemas; the first validation does.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class Link(_Model):
    text: Required
    url: HttpsUrl


class Wording(_Model):
    """The same row as another seed document words it (merged tables keep both)."""

    seed: SeedName
    message: Required
    advice: Text = ""


class When(_Model):
    """The conditions under which the source says a row applies (all given ones must hold). Such
    a row answers only events that meet them; for other events it is only a related meaning."""

    # The event kinds (the action that failed): "AddParticipantFailed".
    events: tuple[Annotated[str, StringConstraints(pattern=r"^[A-Z]\w+$")], ...] = ()
    # The participant's raw id starts with one of these: "8:acs:" (an ACS user), "8:orgid:" (a
    # Teams user), "28:orgid:" (a Teams app), "4:" (a phone number).
    participants: tuple[Annotated[str, StringConstraints(pattern=r"^\d+:(\S*:)?$")], ...] = ()
    message: Text = ""  # the event's message contains this documented text (case and spacing aside)

    @model_validator(mode="after")
    def _says_something(self) -> When:
        if not (self.events or self.participants or self.message):
            raise ValueError("a [when] needs at least one condition: events, participants or message")
        return self


class Entry(_Model):
    code: int | None = Field(default=None, ge=0)
    subcode: int | None = Field(default=None, ge=0)
    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z]\w+$")] | None = None
    code_label: Text | None = None
    message: Required
    advice: Text = ""
    category: CategoryName | None = None
    category_as_written: Text | None = None
    category_origin: Origin = "source"
    links: tuple[Link, ...] = ()
    flags: tuple[Required, ...] = ()
    note: Text = ""
    seeds: tuple[SeedName, ...] = ()
    wording: tuple[Wording, ...] = ()
    known_duplicate: bool = False
    setup: bool = False
    # Event kinds this entry speaks to (e.g. ["PlayFailed"]): its advice is added to the
    # answer for those events, whatever table answered the code.
    events: tuple[Annotated[str, StringConstraints(pattern=r"^[A-Z]\w+$")], ...] = ()
    # When the source ties the row to a kind of event (Teams Phone's dual-persona AddParticipantFailed
    # 408/10057 for an 8:acs participant): only such an event gets this row, and its context becomes
    # this table's. Any other event never gets it as its answer.
    when: When | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Entry:
        if self.category is None and (self.category_as_written or self.category_origin == "catalog"):
            raise ValueError("category_as_written and category_origin need a category")
        if self.category_as_written and not any(self.category_as_written in f for f in self.flags):
            raise ValueError(
                f"add a flag that says the source spells the category {self.category_as_written!r}"
            )
        return self


class Evidence(_Model):
    """A phrase a written table rests on, as its page words it: `catalog sync` checks it is still there."""

    seed: SeedName
    says: Required


class Table(_Model):
    id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")]
    title: Required
    context: Context
    seeds: tuple[SeedName, ...] = Field(min_length=1)
    docs_url: DocsUrl
    columns: Text = ""
    notes: Text = ""  # the source's text for the whole table, shown after each entry's advice
    links: tuple[Link, ...] = ()
    # Written from pages that have no table to copy (email statuses, Meta's codes): `check-seeds`
    # does not look for its rows; `catalog sync` checks its evidence on its pages instead.
    written: bool = False
    evidence: tuple[Evidence, ...] = ()
    entry: tuple[Entry, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _seeds_known(self) -> Table:
        if self.evidence and not self.written:
            raise ValueError("evidence is for written tables: add written = true, or remove it")
        unknown_pages = {ev.seed for ev in self.evidence} - set(self.seeds)
        if unknown_pages:
            raise ValueError(f"evidence names seeds not in the table's seeds: {unknown_pages}")
        for e in self.entry:
            unknown = {*e.seeds, *(w.seed for w in e.wording)} - set(self.seeds)
            if unknown:
                raise ValueError(f"entry {e.message[:40]!r} names seeds not in the table's seeds: {unknown}")
        return self


class TableFile(_Model):
    table: tuple[Table, ...]

    @field_validator("table")
    @classmethod
    def _not_empty(cls, tables: tuple[Table, ...]) -> tuple[Table, ...]:
        # Checked after the items, so that one bad table is not also reported as "no tables".
        if not tables:
            raise ValueError("a table file needs at least one [[table]]")
        return tables


class FallbackClass(_Model):
    first: int = Field(ge=0)
    last: int = Field(ge=0)
    message: Required
    advice: Text = ""
    category: CategoryName | None = None
    category_origin: Origin = "source"


class CodeClass(FallbackClass):
    class_: Required = Field(alias="class")


class CodeClassFile(_Model):
    title: Required
    docs_url: DocsUrl
    seed: SeedName
    class_: tuple[CodeClass, ...] = Field(alias="class", min_length=1)


class Advice(_Model):
    categories: tuple[Literal[CategoryName, "Unknown"], ...] = Field(min_length=1)
    seed: SeedName
    text: Required


class AdviceFile(_Model):
    title: Required
    docs_url: DocsUrl
    advice: tuple[Advice, ...] = Field(min_length=1)


class Page(_Model):
    seed: SeedName
    title: Required
    url: DocsUrl


class PagesFile(_Model):
    page: tuple[Page, ...] = Field(min_length=1)


class Fallback(_Model):
    context: Context
    title: Required
    seed: SeedName
    docs_url: DocsUrl
    message: Required
    advice: Required
    classes_from: Context | None = None
    class_: tuple[FallbackClass, ...] = Field(default=(), alias="class")


class FallbacksFile(_Model):
    actions: dict[Annotated[str, StringConstraints(pattern=r"^[A-Z]\w+$")], Required] = {}
    # Events answered from a table that the documents do not tie to them (CallEnded's reason from
    # the Calling SDK's call-end table): what the alert says about that assumption.
    assumed: dict[Annotated[str, StringConstraints(pattern=r"^[A-Z]\w+$")], Required] = {}
    fallback: tuple[Fallback, ...] = Field(min_length=1)


class ContextsFile(_Model):
    default: tuple[str, ...] = Field(min_length=1)
    prefer: dict[Context, tuple[str, ...]] = {}
    # The tables whose code-only lines (no subcode) may answer an event of a context; a context
    # not listed: its own tables only.
    code_only: dict[Context, tuple[str, ...]] = {}


class SourceFiles(Struct, frozen=True):
    """The validated files, as pydantic models."""

    tables: tuple[Table, ...]
    classes: CodeClassFile
    advice: AdviceFile
    contexts: ContextsFile
    fallbacks: FallbacksFile
    pages: PagesFile


_SPECIAL: dict[str, type[BaseModel]] = {
    "contexts.toml": ContextsFile,
    "category-advice.toml": AdviceFile,
    "code-classes.toml": CodeClassFile,
    "fallbacks.toml": FallbacksFile,
    "pages.toml": PagesFile,
}
_M = TypeVar("_M", bound=BaseModel)


def _special(found: dict[str, BaseModel], name: str, kind: type[_M]) -> _M:
    model = found[name]
    assert isinstance(model, kind)  # _SPECIAL maps each name to its kind
    return model


# -- reading and checking --------------------------------------------------------------------------------


def lint(directory: Path | None = None) -> list[str]:
    """Every problem in the catalog files: schema errors, duplicates, conflicts, table order, URLs."""
    _, problems = read_files(directory or runtime.CATALOG_DIR)
    return problems


def read_files(directory: Path) -> tuple[SourceFiles | None, list[str]]:
    """Parse and validate every file; problems are messages that name file, place and fix."""
    problems: list[str] = []
    tables: list[Table] = []
    special: dict[str, BaseModel] = {}
    paths = sorted(directory.glob("*.toml"))
    if not paths:
        return None, [f"{directory}: no catalog files (*.toml)"]
    for path in paths:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as err:
            problems.append(f"{path.name}: not valid TOML: {err}")
            continue
        if path.name not in _SPECIAL and "entry" in data:
            problems.append(f"{path.name}: entries in no table: put each [[table.entry]] after a [[table]]")
            continue
        try:
            if path.name in _SPECIAL:
                special[path.name] = _SPECIAL[path.name].model_validate(data)
            else:
                tables.extend(TableFile.model_validate(data).table)
        except ValidationError as err:
            for e in err.errors():
                where = ".".join(str(part) for part in e["loc"])
                problems.append(f"{path.name}: {where}: {e['msg']}")
    missing = [name for name in _SPECIAL if not (directory / name).exists()]
    problems += [f"{name}: missing (see catalog/README.md)" for name in missing]
    if problems:
        return None, problems
    files = SourceFiles(
        tuple(tables),
        _special(special, "code-classes.toml", CodeClassFile),
        _special(special, "category-advice.toml", AdviceFile),
        _special(special, "contexts.toml", ContextsFile),
        _special(special, "fallbacks.toml", FallbacksFile),
        _special(special, "pages.toml", PagesFile),
    )
    return files, _cross_check(files)


def _cross_check(files: SourceFiles) -> list[str]:
    """What one file cannot see: table ids, table order, duplicates and conflicts inside a table."""
    problems: list[str] = []
    ids = [t.id for t in files.tables]
    problems += [f"table id {i!r} is used twice" for i in sorted({i for i in ids if ids.count(i) > 1})]
    order = files.contexts.default
    problems += [
        f"contexts.toml: default lists {i!r} twice" for i in sorted({i for i in order if order.count(i) > 1})
    ]
    problems += [f"contexts.toml: default does not list table {i!r}" for i in ids if i not in order]
    lists = [*files.contexts.prefer.values(), *files.contexts.code_only.values()]
    named = [*order, *(i for lst in lists for i in lst)]
    problems += [f"contexts.toml: no table {i!r}" for i in sorted(set(named) - set(ids))]
    for cls in files.classes.class_:
        if cls.first > cls.last:
            problems.append(f"code-classes.toml: class {cls.class_}: first is after last")
    for table in files.tables:
        problems += _duplicates(table)
    problems += _condition_problems(files)
    problems += _page_problems(files)
    contexts = [f.context for f in files.fallbacks.fallback]
    twice = sorted({c for c in contexts if contexts.count(c) > 1})
    problems += [f"fallbacks.toml: context {c!r} has two fallbacks" for c in twice]
    for fb in files.fallbacks.fallback:
        if fb.classes_from is not None and fb.classes_from not in contexts:
            problems.append(f"fallbacks.toml: {fb.context}: classes_from {fb.classes_from!r} has no fallback")
        problems += [
            f"fallbacks.toml: {fb.context}: class {c.first}-{c.last}: first is after last"
            for c in fb.class_
            if c.first > c.last
        ]
    return problems


def _condition_problems(files: SourceFiles) -> list[str]:
    """A row with conditions is named by its table and code (`teams-phone:408/10057`): that key
    must be unique, and the row needs a code for an event to carry."""
    keys: dict[str, int] = defaultdict(int)
    problems = []
    for table in files.tables:
        for e in table.entry:
            if e.when is None:
                continue
            key = f"{table.id}:{_code_text(e.code, e.subcode)}"
            keys[key] += 1
            if e.code is None or e.name or e.setup:
                problems.append(f"{key}: a row with [when] needs a numeric code an event carries")
    twice = [k for k, n in keys.items() if n > 1]
    problems += [f"{k}: two rows with [when] have this table and code; give one of them up" for k in twice]
    return problems


def _page_problems(files: SourceFiles) -> list[str]:
    """Every seed a file names needs its page (title and URL) in pages.toml: alerts show those."""
    known = {p.seed for p in files.pages.page}
    named = {s: "a table" for t in files.tables for e in t.entry for s in (*t.seeds, *e.seeds)}
    named.update({a.seed: "category-advice.toml" for a in files.advice.advice})
    named.update({f.seed: "fallbacks.toml" for f in files.fallbacks.fallback})
    named[files.classes.seed] = "code-classes.toml"
    missing = sorted((s, where) for s, where in named.items() if s not in known)
    return [f"pages.toml: no page for seed {s} (named by {where})" for s, where in missing]


def _duplicates(table: Table) -> list[str]:
    groups: dict[str, list[Entry]] = defaultdict(list)
    for e in table.entry:
        coded = e.code is not None or e.subcode is not None or e.name
        groups[e.name or _code_text(e.code, e.subcode) if coded else f"message {e.message!r}"].append(e)
    problems = []
    for label, entries in groups.items():
        if len(entries) < 2 or all(e.known_duplicate for e in entries[1:]):
            continue
        texts = {normalize(f"{e.message} {e.advice}") for e in entries}
        kind = "duplicate" if len(texts) == 1 else "conflict"
        problems.append(
            f"{table.id}: {kind}: {len(entries)} entries for {label[:70]}; merge them, or mark the"
            " later ones known_duplicate = true with a flag if the source really lists them twice"
        )
    return problems


# -- the compiled form ---------------------------------------------------------------------------------


def runtime_files(files: SourceFiles) -> runtime.CatalogFiles:
    """The validated files as the runtime's plain objects: every field, under the same name."""
    fields = runtime.CatalogFiles.__struct_fields__
    return runtime.CatalogFiles(*(_plain(getattr(files, name)) for name in fields))


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        kind = RUNTIME_TYPES[type(value).__name__]
        return kind(*(_plain(getattr(value, name)) for name in kind.__struct_fields__))
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def compile_catalog(directory: Path) -> str:
    """The text of `compiled.json` for the TOML files in `directory`: validated, then written as
    plain arrays, each table and each of its entries on a line of its own (a changed entry is a
    one-line diff). Raises CatalogError listing the problems when the files do not pass lint."""
    files, problems = read_files(directory)
    if files is None or problems:
        raise runtime.CatalogError(
            "the catalog is invalid; fix these and run `python -m triage catalog lint`:\n- "
            + "\n- ".join(problems)
        )
    plain = runtime_files(files)
    layout = {name: list(kind.__struct_fields__) for name, kind in RUNTIME_TYPES.items()}
    lines = [
        f"{_json(key)}: {_json(value)}"
        for key, value in (
            ("format", COMPILED_FORMAT),
            ("generated_by", "python -m triage catalog build, from catalog/*.toml: do not edit"),
            ("sources", sources_digest(directory)),
            ("fields", layout),
        )
    ]
    lines.append('"tables": [\n' + ",\n".join(_table(t) for t in plain.tables) + "\n]")
    for key in ("classes", "advice", "contexts", "fallbacks", "pages"):
        lines.append(f"{_json(key)}: {_json(msgspec.to_builtins(getattr(plain, key)))}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def _table(table: runtime.Table) -> str:
    """A table's array on one line, up to its last field, the entries: one per line after it."""
    head = _json(msgspec.to_builtins(table)[:-1])[:-1]  # without its closing bracket
    entries = ",\n".join(_json(msgspec.to_builtins(entry)) for entry in table.entry)
    return f"{head},[\n{entries}\n]]"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def build(directory: Path) -> bool:
    """Write `directory/compiled.json` from the TOML files; whether it changed."""
    text = compile_catalog(directory)
    path = directory / runtime.COMPILED_NAME
    old = path.read_text(encoding="utf-8") if path.exists() else None
    if old == text:
        return False
    path.write_text(text, encoding="utf-8")
    return True
