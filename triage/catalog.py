"""The catalog: what an ACS error code means and what to do about it, from `catalog/*.toml`.

The files are validated with pydantic once, at first use, and turned into dict indexes; after
that `lookup` is one cached dictionary read per event. Precedence of a lookup (recorded in
`Guidance.match`): exact (code, subcode) in a table of the event's context, exact in any table,
subcode alone, code alone, code class, unknown. `catalog/README.md` describes the files.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import TriageError
from .model import CONTEXTS, Category, Context, Guidance, Match, Severity

__all__ = [
    "CATALOG_DIR",
    "CatalogError",
    "category_advice",
    "documented_context",
    "lint",
    "lookup",
    "lookup_name",
    "normalize",
    "search",
    "table_sizes",
]

CATALOG_DIR = Path(__file__).resolve().parent.parent / "catalog"
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_FENCE = re.compile(r"^\s*```\S*\s*$", re.MULTILINE)
_CACHE_LIMIT = 50_000  # real traffic has a few hundred distinct keys; this only bounds junk codes
# Seed 001 is rendered text: a sentence that ended in a link ("… subcode of 3112 here.") lost it.
_LOST_LINK = re.compile(r"\bhere\.$", re.MULTILINE)
# The only events whose code may mean "all went well": a call that ended normally, a delivered
# SMS. Every other event (the *Failed ones) reports a failure, whatever code it carries.
_MAY_SUCCEED = frozenset({"CallDisconnected", "SMSDeliveryReportReceived"})


class CatalogError(TriageError):
    """The catalog files are missing or invalid; the message lists what to fix."""


# -- the file format (validated once) ---------------------------------------------------------------

Text = Annotated[str, StringConstraints(strip_whitespace=True)]
Required = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
SeedName = Annotated[str, StringConstraints(pattern=r"^\d{3}_[0-9a-f]+\.txt$")]
DocsUrl = Annotated[str, StringConstraints(pattern=r"^https://learn\.microsoft\.com/en-us/\S+$")]
HttpsUrl = Annotated[str, StringConstraints(pattern=r"^https://[^\s/]+\.[a-z]{2,}(/\S*)?$")]
CategoryName = Literal["Success", "ExpectedError", "UnexpectedClientError", "UnexpectedServerError"]
Origin = Literal["source", "catalog"]


class _Model(BaseModel):
    # defer_build: importing this module (every CLI command does) builds no schemas; first use does.
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
    """The conditions under which the source says a row applies (all given ones must hold)."""

    events: tuple[Annotated[str, StringConstraints(pattern=r"^[A-Z]\w+$")], ...] = ()
    participant: Text = ""  # the failed participant's raw id starts with this ("8:acs:")
    message: Text = ""  # the event's message contains this text


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
    # When the source ties the row to an event, a code and a kind of participant (Teams Phone's
    # dual-persona AddParticipantFailed 408/10057), such an event belongs to this table's context.
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


class Table(_Model):
    id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")]
    title: Required
    context: Context
    seeds: tuple[SeedName, ...] = Field(min_length=1)
    docs_url: DocsUrl
    columns: Text = ""
    notes: Text = ""  # the source's text for the whole table, shown after each entry's advice
    links: tuple[Link, ...] = ()
    entry: tuple[Entry, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _seeds_known(self) -> Table:
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
    fallback: tuple[Fallback, ...] = Field(min_length=1)


class ContextsFile(_Model):
    default: tuple[str, ...] = Field(min_length=1)
    prefer: dict[Context, tuple[str, ...]] = {}


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


# -- loading -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class _Row:
    """An entry with the table it belongs to; `seq` keeps file order as the last tie-break."""

    table: Table
    entry: Entry
    seq: int

    @property
    def indexed(self) -> bool:
        # A string code or a setup problem is found by name or search, never by an event's code.
        return self.entry.code is not None and self.entry.name is None and not self.entry.setup

    def own_text(self, seed: str) -> str:
        """Message + advice as `seed` words them, normalised like the seed parser does."""
        for w in self.entry.wording:
            if w.seed == seed:
                return normalize(f"{w.message}\n{w.advice}")
        return normalize(f"{self.entry.message}\n{self.entry.advice}")


@dataclass(frozen=True, slots=True)
class _Files:
    tables: tuple[Table, ...]
    classes: CodeClassFile
    advice: AdviceFile
    contexts: ContextsFile
    fallbacks: FallbacksFile
    pages: PagesFile


def _read(directory: Path) -> tuple[_Files | None, list[str]]:
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
    files = _Files(
        tuple(tables),
        _special(special, "code-classes.toml", CodeClassFile),
        _special(special, "category-advice.toml", AdviceFile),
        _special(special, "contexts.toml", ContextsFile),
        _special(special, "fallbacks.toml", FallbacksFile),
        _special(special, "pages.toml", PagesFile),
    )
    return files, _cross_check(files)


def _cross_check(files: _Files) -> list[str]:
    """What one file cannot see: table ids, table order, duplicates and conflicts inside a table."""
    problems: list[str] = []
    ids = [t.id for t in files.tables]
    problems += [f"table id {i!r} is used twice" for i in sorted({i for i in ids if ids.count(i) > 1})]
    order = files.contexts.default
    problems += [
        f"contexts.toml: default lists {i!r} twice" for i in sorted({i for i in order if order.count(i) > 1})
    ]
    problems += [f"contexts.toml: default does not list table {i!r}" for i in ids if i not in order]
    named = [*order, *(i for lst in files.contexts.prefer.values() for i in lst)]
    problems += [f"contexts.toml: no table {i!r}" for i in sorted(set(named) - set(ids))]
    for cls in files.classes.class_:
        if cls.first > cls.last:
            problems.append(f"code-classes.toml: class {cls.class_}: first is after last")
    for table in files.tables:
        problems += _duplicates(table)
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


def _page_problems(files: _Files) -> list[str]:
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


def _code_text(code: int | None, subcode: int | None) -> str:
    if code is None and subcode is None:
        return "no code"
    if subcode is None:
        return str(code)
    return f"{'?' if code is None else code}/{subcode}"


# -- the indexes and the answers ---------------------------------------------------------------------


class _Catalog:
    """The validated files as dict indexes, plus the cache of answers."""

    def __init__(self, files: _Files) -> None:
        self.files = files
        self.rows = [_Row(t, e, n) for n, (t, e) in enumerate((t, e) for t in files.tables for e in t.entry)]
        default = {tid: n for n, tid in enumerate(files.contexts.default)}
        self.rank: dict[str | None, dict[str, int]] = {None: default}
        for context in CONTEXTS:
            first = files.contexts.prefer.get(context, ())
            rest = [tid for tid in files.contexts.default if tid not in first]
            self.rank[context] = {tid: n for n, tid in enumerate([*first, *rest])}
        self.pairs: dict[tuple[int, int | None], list[_Row]] = defaultdict(list)
        self.codes: dict[int, list[_Row]] = defaultdict(list)
        self.subcodes: dict[int, list[_Row]] = defaultdict(list)  # coded rows with a subcode
        self.generic: dict[int, _Row] = {}  # rows with a subcode and no code: the generic subcodes
        self.names: dict[str, list[_Row]] = defaultdict(list)
        self.events: dict[str, list[_Row]] = defaultdict(list)
        for row in self.rows:
            e = row.entry
            for event in e.events:
                self.events[event].append(row)
            if e.name:
                self.names[e.name.lower()].append(row)
            if e.code is None and e.subcode is not None and not e.setup:
                self.generic.setdefault(e.subcode, row)
            if not row.indexed:
                continue
            assert e.code is not None  # for mypy: `indexed` implies it
            self.pairs[(e.code, e.subcode)].append(row)
            if e.subcode is None:
                self.codes[e.code].append(row)
            else:
                self.subcodes[e.subcode].append(row)
        self.advice = {c: self._advice_for(c) for c in Category}
        self.pages = {p.seed: p for p in files.pages.page}
        self.fallbacks = {f.context: f for f in files.fallbacks.fallback}
        # The tables whose meanings belong to a context's product area: its own and those it prefers.
        self.area: dict[str | None, frozenset[str]] = {None: frozenset(t.id for t in files.tables)}
        for context in CONTEXTS:
            own = {t.id for t in files.tables if t.context == context}
            self.area[context] = frozenset({*own, *files.contexts.prefer.get(context, ())})
        self.conditions: dict[tuple[int | None, int | None], list[_Row]] = defaultdict(list)
        for row in self.rows:
            if row.entry.when is not None:
                self.conditions[(row.entry.code, row.entry.subcode)].append(row)
        self.cache: dict[tuple[int | None, int | None, str | None, str | None], Guidance] = {}

    @functools.cached_property
    def haystack(self) -> dict[int, str]:
        """Lower-case searchable text per row (by id), built at the first `search`."""
        return {id(r): _haystack(r) for r in self.rows}

    def _advice_for(self, category: Category) -> str:
        return "\n".join(a.text for a in self.files.advice.advice if category.value in a.categories)

    def ordered(self, rows: Iterable[_Row], context: str | None) -> list[_Row]:
        """Best first: the context's own tables, then the preference order, then file order."""
        rank = self.rank[context]
        return sorted(rows, key=lambda r: (r.table.context != context, rank[r.table.id], r.seq))

    def answer(
        self, code: int | None, subcode: int | None, context: str | None, event: str | None = None
    ) -> Guidance:
        if context is not None and context not in CONTEXTS:
            raise CatalogError(f"unknown context {context!r}; use one of {', '.join(CONTEXTS)}")
        if code is not None and (rows := self.pairs.get((code, subcode))):
            best, *others = self.ordered(rows, context)
            match = Match.EXACT_IN_CONTEXT if best.table.context == context else Match.EXACT
            return self.guidance(best, code, subcode, match, others, context=context)
        if subcode is not None:
            generic = self.generic.get(subcode)
            if generic and self.fits(generic, code):
                others = self.ordered(self.subcodes.get(subcode, ()), context)
                return self.guidance(generic, code, subcode, Match.SUBCODE, others, context=context)
            rows = self.subcodes.get(subcode, [])
            if rows and len({r.entry.code for r in rows}) == 1:  # the subcode names one documented pair
                best, *others = self.ordered(rows, context)
                if self.fits(best, code):
                    return self.guidance(best, code, subcode, Match.SUBCODE, others, context=context)
        if code is not None and (rows := self.codes.get(code)):
            best, *others = self.ordered(rows, context)
            return self.guidance(best, code, subcode, Match.CODE, others, context=context)
        fallback = self.fallbacks.get(context) if context is not None else None
        if fallback is not None:
            return self.fallback_guidance(fallback, code, subcode, event)
        cls = self.code_class(code)
        if cls is not None:
            return self.class_guidance(cls, code, subcode)
        if code is None and subcode is None:
            return self.unknown(
                "No code or subcode was given: the catalog cannot say what failed.", code, subcode
            )
        return self.unknown(f"Code {_code_text(code, subcode)} is not in the catalog.", code, subcode)

    def for_event(self, found: Guidance, event: str, code: int | None) -> Guidance:
        """Add the advice of entries written for this event: those documented for the same
        code first; code-less tips only when no such entry exists."""
        rows = self.events.get(event)
        if not rows:
            return found
        same_code = [r for r in rows if r.entry.code is not None and r.entry.code == code]
        chosen = same_code or [r for r in rows if r.entry.code is None]
        extra = [r.entry.advice for r in chosen if r.entry.advice and r.entry.advice not in found.advice]
        if not extra:
            return found
        return replace(
            found,
            advice="\n\n".join([found.advice, *extra] if found.advice else extra),
            flags=(
                *found.flags,
                f"advice for {event} added from: {', '.join(r.table.title for r in chosen)}",
            ),
        )

    def fits(self, row: _Row, code: int | None) -> bool:
        """Whether a subcode's meaning may answer for `code`: a meaning of success (0/7000, 0/4097 …)
        never turns a failure code into a success, unless it was documented with a code of that class."""
        if self.category(row.entry, code) is not Category.SUCCESS or _success_code(code):
            return True
        documented = row.entry.code
        return code is not None and documented is not None and documented // 100 == code // 100

    def code_class(self, code: int | None) -> CodeClass | None:
        if code is None:
            return None
        return next((c for c in self.files.classes.class_ if c.first <= code <= c.last), None)

    def category(self, entry: Entry, code: int | None) -> Category:
        if entry.category is not None:
            return Category(entry.category)
        cls = self.code_class(entry.code if entry.code is not None else code)
        return Category(cls.category) if cls is not None and cls.category else Category.UNKNOWN

    def guidance(
        self,
        row: _Row,
        code: int | None,
        subcode: int | None,
        match: Match,
        related: Sequence[_Row] = (),
        *,
        context: str | None = None,
    ) -> Guidance:
        e, t = row.entry, row.table
        category = self.category(e, code)
        flags = e.flags
        if match is Match.SUBCODE and e.code is not None and e.code != code:
            flags = (*flags, f"answered by the entry documented as {_code_text(e.code, e.subcode)}")
        seeds = e.seeds or t.seeds
        others = tuple(self.guidance(r, r.entry.code, r.entry.subcode, match) for r in related)
        return Guidance(
            code=code,
            subcode=subcode,
            message=_one_line(e.message),  # a headline: the source's bullets (PSTN) on one line
            category=category,
            severity=Severity.of(category),
            advice=_advice(row),
            source=f"{self.pages[seeds[0]].title} · {t.title}",
            match=match,
            table=t.id,
            docs_url=t.docs_url,
            flags=flags,
            related=others,
            seeds=seeds,
            also=self.also(e.message, others, context=context),
        )

    def also(self, message: str, others: Sequence[Guidance], context: str | None) -> tuple[Guidance, ...]:
        """The other documented meanings worth showing: in the context's product area, each once."""
        area = self.area[context]
        seen = {_one_line(message)}
        shown = []
        for other in others:
            if other.table in area and other.message not in seen:
                seen.add(other.message)
                shown.append(other)
        return tuple(shown)

    def class_guidance(self, cls: CodeClass, code: int | None, subcode: int | None) -> Guidance:
        category = Category(cls.category) if cls.category else Category.UNKNOWN
        files = self.files.classes
        return Guidance(
            code=code,
            subcode=subcode,
            message=cls.message,
            category=category,
            severity=Severity.of(category),
            advice="\n\n".join(p for p in (cls.advice, self.advice[category]) if p),
            source=f"{self.pages[files.seed].title} · {files.title}",
            match=Match.CODE_CLASS,
            table="code-classes",
            docs_url=files.docs_url,
            seeds=(files.seed,),
        )

    def fallback_guidance(
        self, fallback: Fallback, code: int | None, subcode: int | None, event: str | None
    ) -> Guidance:
        """No row for the code: what its class means in this context's area, the area's advice,
        and (Call Automation areas) which action failed. Never another area's advice."""
        classes = fallback.class_
        if fallback.classes_from is not None:
            classes = (*classes, *self.fallbacks[fallback.classes_from].class_)
        cls = next((c for c in classes if code is not None and c.first <= code <= c.last), None)
        action = self.files.fallbacks.actions.get(event or "", "")
        if cls is not None:
            message, category = cls.message, Category(cls.category) if cls.category else Category.UNKNOWN
        else:
            message, category = fallback.message.format(code=_code_text(code, subcode)), Category.UNKNOWN
            if code is None and subcode is None:
                message = f"{action or 'The event failed.'} The event carried no result code."
        first = [action] if action and action not in message else []
        advice = "\n".join([*first, *([cls.advice] if cls and cls.advice else []), fallback.advice])
        return Guidance(
            code=code,
            subcode=subcode,
            message=message,
            category=category,
            severity=Severity.of(category),
            advice=advice,
            source=f"{self.pages[fallback.seed].title} · {fallback.title}",
            match=Match.CODE_CLASS if cls is not None else Match.UNKNOWN,
            table="",
            docs_url=fallback.docs_url,
            seeds=(fallback.seed,),
        )

    def unknown(self, message: str, code: int | None, subcode: int | None) -> Guidance:
        advice = self.files.advice
        seeds = tuple(dict.fromkeys(a.seed for a in advice.advice))
        return Guidance(
            code=code,
            subcode=subcode,
            message=message,
            category=Category.UNKNOWN,
            severity=Severity.WARNING,
            advice=self.advice[Category.UNKNOWN],
            source=f"{self.pages[seeds[0]].title} · {advice.title}",
            match=Match.UNKNOWN,
            table="",
            docs_url=advice.docs_url,
            seeds=seeds,
        )


def normalize(text: str) -> str:
    """Text as compared between seed and catalog: Markdown links, bold, code marks and fences
    reduced to their words, whitespace collapsed."""
    text = _LINK.sub(r"\1", text)
    text = _FENCE.sub(" ", text)
    text = text.replace("**", "").replace("`", "")
    return " ".join(text.split())


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _success_code(code: int | None) -> bool:
    return code is None or code == 0 or 200 <= code < 300


def _advice(row: _Row) -> str:
    """The entry's advice, then its table's notes, then the links the source gave as words."""
    links = [*row.entry.links, *row.table.links]
    # The page's own URL is the best we have for a link the saved page lost.
    parts = [_LOST_LINK.sub(f"here: {row.table.docs_url}", row.entry.advice), row.table.notes]
    if links:
        parts.append("See also:\n" + "\n".join(f"- {link.text}: {link.url}" for link in links))
    return "\n\n".join(p for p in parts if p)


def _haystack(row: _Row) -> str:
    e = row.entry
    words = [e.message, e.advice, e.name or "", _code_text(e.code, e.subcode), row.table.title]
    words += [f"{w.message} {w.advice}" for w in e.wording]
    return normalize(" ".join(words)).lower()


@functools.cache
def _catalog() -> _Catalog:
    files, problems = _read(CATALOG_DIR)
    if files is None or problems:
        raise CatalogError(
            "the catalog is invalid; fix these and run `python -m triage catalog lint`:\n- "
            + "\n- ".join(problems)
        )
    return _Catalog(files)


# -- the public surface -----------------------------------------------------------------------------


def lookup(
    code: int | None,
    subcode: int | None = None,
    context: Context | None = None,
    event: str | None = None,
) -> Guidance:
    """The catalog's guidance for an event's (code, subcode) in its context; unknown codes get
    advice too. `event` (e.g. "PlayFailed") adds the advice written for that event."""
    catalog = _catalog()
    key = (code, subcode, context, event)
    found = catalog.cache.get(key)
    if found is None:
        found = catalog.answer(code, subcode, context, event)
        if event is not None:
            found = _failure_alerts(catalog.for_event(found, event, code), event)
        if len(catalog.cache) >= _CACHE_LIMIT:  # codes come from outside: keep memory bounded
            catalog.cache.clear()
        catalog.cache[key] = found
    return found


def documented_context(
    event: str, code: int | None, subcode: int | None, participant: str, message: str
) -> Context | None:
    """The context of a table whose row the source ties to exactly this kind of event (event,
    code, subcode, participant id prefix, message text), or None: the event's own context holds."""
    rows = _catalog().conditions.get((code, subcode))
    for row in rows or ():
        when = row.entry.when
        assert when is not None  # only rows with conditions are indexed here
        if (
            (not when.events or event in when.events)
            and participant.startswith(when.participant)
            and when.message.lower() in message.lower()
        ):
            return row.table.context
    return None


def _failure_alerts(found: Guidance, event: str) -> Guidance:
    """A failure event is an alert even when its code reads as success (SendDtmfTonesFailed 200/0)."""
    if found.severity is not Severity.NONE or event in _MAY_SUCCEED:
        return found
    return replace(
        found,
        severity=Severity.WARNING,
        flags=(*found.flags, f"{event} reports a failure although its code means success"),
    )


def lookup_name(name: str, context: Context | None = None) -> Guidance:
    """Guidance for a string error code such as Teams' `UserLicenseNotPresentForbidden`."""
    catalog = _catalog()
    rows = catalog.names.get(name.strip().lower())
    if not rows:
        return catalog.unknown(f"Error code {name!r} is not in the catalog.", None, None)
    best, *others = catalog.ordered(rows, context)
    match = Match.EXACT_IN_CONTEXT if best.table.context == context else Match.EXACT
    return catalog.guidance(best, best.entry.code, best.entry.subcode, match, others, context=context)


def search(text: str, limit: int = 50) -> list[Guidance]:
    """Entries whose message, advice, name or code contain every word of `text`; best first."""
    catalog = _catalog()
    words = normalize(text).lower().split()
    if not words:
        return []
    phrase = " ".join(words)
    hits = []
    for row in catalog.rows:
        haystack = catalog.haystack[id(row)]
        if all(w in haystack for w in words):
            message = normalize(row.entry.message).lower()
            score = 0 if phrase in message else 1 if all(w in message for w in words) else 2
            hits.append((score, catalog.rank[None][row.table.id], row.seq, row))
    hits.sort(key=lambda hit: hit[:3])
    return [catalog.guidance(r, r.entry.code, r.entry.subcode, Match.EXACT) for *_, r in hits[:limit]]


def category_advice(category: Category) -> str:
    """The general advice for a result category (seed 000's "How to mitigate or resolve")."""
    return _catalog().advice[category]


def table_sizes() -> dict[str, int]:
    """Entries per table, in file order: what `catalog lint` reports when all is well."""
    return {t.id: len(t.entry) for t in _catalog().files.tables}


def lint(directory: Path | None = None) -> list[str]:
    """Every problem in the catalog files: schema errors, duplicates, conflicts, table order, URLs."""
    _, problems = _read(directory or CATALOG_DIR)
    return problems
