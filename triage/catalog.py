"""The catalog: what an ACS error code means and what to do about it, from `catalog/*.toml`.

The TOML files are validated with pydantic by `catalog lint` and `catalog build`
(`triage.catalog_files`), which writes them, as plain arrays, to `catalog/compiled.json`. At
first use this module reads that file into its records (about a millisecond, no validation to
repeat), after checking that it was built from the TOML files as they are now, and turns it into
dict indexes; after that `lookup` is one cached dictionary read per event. Precedence of a lookup
(recorded in `Guidance.match`): exact (code, subcode) in a table of the event's context, exact
in any table, subcode alone, code alone, code class, unknown. `catalog/README.md` describes
the files.
"""

# No `from __future__ import annotations` here: the records' annotations are then objects when
# the classes are made, and msgspec need not evaluate some eighty strings at the first request.

import functools
import hashlib
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import msgspec
from msgspec import Struct
from msgspec.structs import replace

from .errors import TriageError
from .model import CONTEXTS, Category, Context, Guidance, Match, Severity

__all__ = [
    "CATALOG_DIR",
    "COMPILED_FORMAT",
    "COMPILED_NAME",
    "RUNTIME_TYPES",
    "CatalogError",
    "CatalogFiles",
    "category_advice",
    "condition_text",
    "conditioned_codes",
    "conditions_of",
    "documented_row",
    "load_compiled",
    "lookup",
    "lookup_name",
    "lookup_status",
    "normalize",
    "search",
    "sources_digest",
    "table_sizes",
]

CATALOG_DIR = Path(__file__).resolve().parent.parent / "catalog"
COMPILED_NAME = "compiled.json"
# Raised whenever the layout of compiled.json changes, so that a file of the old layout is refused.
COMPILED_FORMAT = 3
_BUILD = "run `python -m triage catalog build` and commit catalog/compiled.json"
_OTHER_LAYOUT = f"catalog/{COMPILED_NAME} has another layout than this code reads; {_BUILD}"
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_FENCE = re.compile(r"^\s*```\S*\s*$", re.MULTILINE)
_CACHE_LIMIT = 50_000  # real traffic has a few hundred distinct keys; this only bounds junk codes
# Seed 001 is rendered text: a sentence that ended in a link ("… subcode of 3112 here.") lost it.
_LOST_LINK = re.compile(r"\bhere\.$", re.MULTILINE)
# The only events whose code may mean "all went well": a call that ended normally, a delivered
# SMS. Every other event (the *Failed ones) reports a failure, whatever code it carries.
_MAY_SUCCEED = frozenset({"CallDisconnected", "SMSDeliveryReportReceived", "CallEnded"})
# Areas whose codes are not ACS's own: Meta's WhatsApp codes, email status words, Job Router (whose
# failures carry no code at all). A number from them means nothing in another area's tables (Meta's
# 100 is no SIP 100), so only the area's own tables answer them, then its fallback.
_OWN_NUMBERING = frozenset({"email", "whatsapp", "job-router"})


class CatalogError(TriageError):
    """The catalog files are missing or invalid; the message lists what to fix."""


# -- the catalog as the runtime holds it: records, field for field the file format's models ----------
# (`triage.catalog_files` has the pydantic models, with the constraints and the comments.) msgspec
# records, written to compiled.json as arrays in field order: msgspec reads the file straight into
# them, and the classes take about 0.5 ms to define where named tuples took 3.9.


class Link(Struct, frozen=True, array_like=True):
    text: str
    url: str


class Wording(Struct, frozen=True, array_like=True):
    seed: str
    message: str
    advice: str


class When(Struct, frozen=True, array_like=True):
    events: tuple[str, ...]
    participants: tuple[str, ...]
    message: str


class Entry(Struct, frozen=True, array_like=True):
    code: int | None
    subcode: int | None
    name: str | None
    code_label: str | None
    message: str
    advice: str
    category: str | None
    category_as_written: str | None
    category_origin: str
    links: tuple[Link, ...]
    flags: tuple[str, ...]
    note: str
    seeds: tuple[str, ...]
    wording: tuple[Wording, ...]
    known_duplicate: bool
    setup: bool
    events: tuple[str, ...]
    when: When | None


class Evidence(Struct, frozen=True, array_like=True):
    seed: str
    says: str


class Table(Struct, frozen=True, array_like=True):
    id: str
    title: str
    context: Context
    seeds: tuple[str, ...]
    docs_url: str
    columns: str
    notes: str
    links: tuple[Link, ...]
    written: bool
    evidence: tuple[Evidence, ...]
    entry: tuple[Entry, ...]  # last: compiled.json writes each entry on a line of its own


class FallbackClass(Struct, frozen=True, array_like=True):
    first: int
    last: int
    message: str
    advice: str
    category: str | None
    category_origin: str


class CodeClass(Struct, frozen=True, array_like=True):
    first: int
    last: int
    message: str
    advice: str
    category: str | None
    category_origin: str
    class_: str


class CodeClassFile(Struct, frozen=True, array_like=True):
    title: str
    docs_url: str
    seed: str
    class_: tuple[CodeClass, ...]


class Advice(Struct, frozen=True, array_like=True):
    categories: tuple[str, ...]
    seed: str
    text: str


class AdviceFile(Struct, frozen=True, array_like=True):
    title: str
    docs_url: str
    advice: tuple[Advice, ...]


class Page(Struct, frozen=True, array_like=True):
    seed: str
    title: str
    url: str


class PagesFile(Struct, frozen=True, array_like=True):
    page: tuple[Page, ...]


class Fallback(Struct, frozen=True, array_like=True):
    context: Context
    title: str
    seed: str
    docs_url: str
    message: str
    advice: str
    classes_from: Context | None
    class_: tuple[FallbackClass, ...]


class FallbacksFile(Struct, frozen=True, array_like=True):
    actions: dict[str, str]
    assumed: dict[str, str]
    fallback: tuple[Fallback, ...]


class ContextsFile(Struct, frozen=True, array_like=True):
    default: tuple[str, ...]
    prefer: dict[str, tuple[str, ...]]
    code_only: dict[str, tuple[str, ...]]


class CatalogFiles(Struct, frozen=True):
    """Every catalog file, as validated by `triage.catalog_files`: compiled.json's object, whose
    other keys (the header) msgspec skips."""

    tables: tuple[Table, ...]
    classes: CodeClassFile
    advice: AdviceFile
    contexts: ContextsFile
    fallbacks: FallbacksFile
    pages: PagesFile


# The file format's model names → the runtime's types (the build converts one into the other).
RUNTIME_TYPES: dict[str, type[Any]] = {
    kind.__name__: kind
    for kind in (Link, Wording, When, Entry, Evidence, Table, FallbackClass, CodeClass, CodeClassFile, Advice,
                 AdviceFile, Page, PagesFile, Fallback, FallbacksFile, ContextsFile)
}  # fmt: skip
# Written into compiled.json and compared on load: a field added here without a rebuild is refused.
_FIELDS = {name: list(kind.__struct_fields__) for name, kind in RUNTIME_TYPES.items()}


class _Header(Struct):
    """What compiled.json says of itself (any other key is skipped): checked before the rest is read."""

    format: object = None
    fields: object = None
    sources: object = None


_HEADER = msgspec.json.Decoder(_Header)
_FILES = msgspec.json.Decoder(CatalogFiles)


# -- loading the compiled form ------------------------------------------------------------------------


def sources_digest(directory: Path) -> str:
    """SHA-256 of every `*.toml` file's name and text (line ends normalised): what compiled.json
    was built from."""
    digest = hashlib.sha256()
    for name in sorted(n for n in os.listdir(directory) if n.endswith(".toml")):
        with open(os.path.join(directory, name), "rb") as source:
            digest.update(name.encode() + b"\0" + source.read().replace(b"\r\n", b"\n") + b"\0")
    return digest.hexdigest()


def load_compiled(directory: Path) -> CatalogFiles:
    """The catalog from `directory/compiled.json`; a CatalogError naming the fix when that file is
    missing, corrupt, of another layout, or built from other TOML files than those beside it."""
    try:
        text = (directory / COMPILED_NAME).read_bytes()
        header = _HEADER.decode(text)
    except msgspec.ValidationError as err:  # JSON, but not an object
        raise CatalogError(_OTHER_LAYOUT) from err
    except (OSError, msgspec.DecodeError) as err:
        raise CatalogError(f"catalog/{COMPILED_NAME} cannot be read ({err}); {_BUILD}") from err
    if header.format != COMPILED_FORMAT or header.fields != _FIELDS:
        raise CatalogError(_OTHER_LAYOUT)
    if header.sources != sources_digest(directory):
        raise CatalogError(
            f"catalog/{COMPILED_NAME} is stale: catalog/*.toml changed since it was built; {_BUILD}"
        )
    try:
        return _FILES.decode(text)
    except msgspec.DecodeError as err:
        raise CatalogError(f"catalog/{COMPILED_NAME} is corrupt ({err}); {_BUILD}") from err


class _Row(Struct, frozen=True, eq=False):
    """An entry with the table it belongs to; `seq` keeps file order as the last tie-break."""

    table: Table
    entry: Entry
    seq: int

    @property
    def key(self) -> str:
        """How an event names this row once the source's conditions chose it ("teams-phone:408/10057")."""
        return f"{self.table.id}:{_code_text(self.entry.code, self.entry.subcode)}"

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


def _code_text(code: int | None, subcode: int | None) -> str:
    if code is None and subcode is None:
        return "no code"
    if subcode is None:
        return str(code)
    return f"{'?' if code is None else code}/{subcode}"


# -- the indexes and the answers ---------------------------------------------------------------------


class _Catalog:
    """The validated files as dict indexes, plus the cache of answers."""

    def __init__(self, files: CatalogFiles) -> None:
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
        self.own_pairs: dict[tuple[int, int | None], list[_Row]] = defaultdict(list)
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
            if row.table.context in _OWN_NUMBERING:  # answers its own area only: never another's
                self.own_pairs[(e.code, e.subcode)].append(row)
                continue
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
        # The tables whose code-only lines (rows without a subcode) may answer an event of a context:
        # those contexts.toml lists for it, else the context's own tables.
        self.code_only: dict[str | None, frozenset[str]] = {None: self.area[None]}
        for context in CONTEXTS:
            listed = files.contexts.code_only.get(context)
            self.code_only[context] = frozenset(
                listed if listed is not None else (t.id for t in files.tables if t.context == context)
            )
        self.conditions: dict[tuple[int | None, int | None], list[_Row]] = defaultdict(list)
        self.conditional: dict[str, _Row] = {}
        for row in self.rows:
            if row.entry.when is not None:
                self.conditions[(row.entry.code, row.entry.subcode)].append(row)
                self.conditional[row.key] = row
        self.cache: dict[tuple[int | None, int | None, str | None, str | None, str], Guidance] = {}
        self.status_cache: dict[tuple[str, str, str | None], Guidance] = {}

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

    def may_head(self, row: _Row, context: str | None, chosen: _Row | None = None) -> bool:
        """Whether `row` may answer an event of `context`: a row with conditions only when the
        event met them (`chosen`), a code-only line only for the contexts contexts.toml lets it answer."""
        if row.entry.when is not None and row is not chosen:
            return False
        return row.entry.subcode is not None or row.table.id in self.code_only[context]

    def answer(
        self,
        code: int | None,
        subcode: int | None,
        context: str | None,
        event: str | None = None,
        row: str = "",
    ) -> Guidance:
        if context is not None and context not in CONTEXTS:
            raise CatalogError(f"unknown context {context!r}; use one of {', '.join(CONTEXTS)}")
        if context in _OWN_NUMBERING:
            return self.own_numbering(code, subcode, context, event)
        chosen = self.conditional.get(row) if row else None
        if chosen is not None and (chosen.entry.code, chosen.entry.subcode) != (code, subcode):
            chosen = None  # a key for another code: nothing the source said applies
        if code is not None and (rows := self.pairs.get((code, subcode))):
            found = self.first(rows, context, chosen)
            if found is not None:
                best, others = found
                match = Match.EXACT_IN_CONTEXT if best.table.context == context else Match.EXACT
                return self.guidance(best, code, subcode, match, others, context=context, chosen=chosen)
        if subcode is not None:
            generic = self.generic.get(subcode)
            if generic and self.fits(generic, code):
                others = self.ordered(self.subcodes.get(subcode, ()), context)
                return self.guidance(generic, code, subcode, Match.SUBCODE, others, context=context)
            area = self.area[context]
            rows = [
                r for r in self.subcodes.get(subcode, ()) if r.table.id in area and self.may_head(r, context)
            ]
            if rows and len({r.entry.code for r in rows}) == 1:  # the subcode names one documented pair
                best, *others = self.ordered(rows, context)
                if self.fits(best, code):
                    return self.guidance(best, code, subcode, Match.SUBCODE, others, context=context)
        if code is not None and (rows := self.codes.get(code)):
            found = self.first(rows, context, None)
            if found is not None:
                best, others = found
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

    def own_numbering(
        self, code: int | None, subcode: int | None, context: Context, event: str | None
    ) -> Guidance:
        """The answer in an area with its own numbering (see _OWN_NUMBERING): its own tables, else
        its fallback."""
        found = self.own_pairs.get((code, subcode), ()) if code is not None else ()
        rows = [r for r in found if r.table.context == context]
        if rows:
            best, *others = self.ordered(rows, context)
            return self.guidance(best, code, subcode, Match.EXACT_IN_CONTEXT, others, context=context)
        fallback = self.fallbacks.get(context)
        if fallback is not None:
            return self.fallback_guidance(fallback, code, subcode, event)
        return self.unknown(f"Code {_code_text(code, subcode)} is not in the catalog.", code, subcode)

    def assumed(self, found: Guidance, event: str) -> Guidance:
        """A table row answering an event the documents do not tie it to says so in its source
        (fallbacks.toml [assumed])."""
        label = self.files.fallbacks.assumed.get(event)
        if label is None or not found.table:
            return found
        return replace(found, source=f"{found.source} · {label}")

    def first(
        self, rows: Iterable[_Row], context: str | None, chosen: _Row | None
    ) -> tuple[_Row, list[_Row]] | None:
        """The best row that may answer an event of `context` (the one its conditions chose, if
        any), and the others best first; None when no row may."""
        ordered = self.ordered(rows, context)
        if chosen is not None and chosen in ordered:
            return chosen, [r for r in ordered if r is not chosen]
        best = next((r for r in ordered if self.may_head(r, context)), None)
        return None if best is None else (best, [r for r in ordered if r is not best])

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
        chosen: _Row | None = None,
    ) -> Guidance:
        e, t = row.entry, row.table
        category = self.category(e, code)
        flags = e.flags
        if match is Match.SUBCODE and e.code is not None and e.code != code:
            flags = (*flags, f"answered by the entry documented as {_code_text(e.code, e.subcode)}")
        if row is chosen and e.when is not None:
            flags = (*flags, f"chosen by the source's condition: {condition_text(e.when)}")
        seeds = e.seeds or t.seeds
        others = tuple(self.guidance(r, r.entry.code, r.entry.subcode, match) for r in related)
        # Shown as "Also documented as": the same documented code and subcode in the context's
        # area, never a row whose condition this event did not meet.
        shown = [g for r, g in zip(related, others, strict=True) if self.also_fits(r, row, chosen)]
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
            also=self.also(e.message, shown, context),
        )

    def also_fits(self, other: _Row, answer: _Row, chosen: _Row | None) -> bool:
        """Whether a related row is another meaning of the answer's own documented code and subcode
        that may apply to the event (no condition, or the one the event met)."""
        same = (other.entry.code, other.entry.subcode) == (answer.entry.code, answer.entry.subcode)
        return same and (other.entry.when is None or other is chosen)

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
    return _Catalog(load_compiled(CATALOG_DIR))


# -- the public surface -----------------------------------------------------------------------------


def lookup(
    code: int | None,
    subcode: int | None = None,
    context: Context | None = None,
    event: str | None = None,
    row: str = "",
) -> Guidance:
    """The catalog's guidance for an event's (code, subcode) in its context; unknown codes get
    advice too. `event` (e.g. "PlayFailed") adds the advice written for that event; `row` is the
    key `documented_row` gave for the event, when the source's conditions chose a row for it."""
    catalog = _catalog()
    key = (code, subcode, context, event, row)
    found = catalog.cache.get(key)
    if found is None:
        found = catalog.answer(code, subcode, context, event, row)
        if event is not None:
            found = _failure_alerts(catalog.assumed(catalog.for_event(found, event, code), event), event)
        if len(catalog.cache) >= _CACHE_LIMIT:  # codes come from outside: keep memory bounded
            catalog.cache.clear()
        catalog.cache[key] = found
    return found


def conditioned_codes() -> frozenset[tuple[int | None, int | None]]:
    """The (code, subcode) pairs some row ties to conditions: `documented_row` answers None for
    every other pair, whatever the event (asked once: the catalog does not change while it runs)."""
    return frozenset(_catalog().conditions)


def documented_row(
    event: str, code: int | None, subcode: int | None, participant: str, message: str
) -> tuple[Context, str] | None:
    """The row the source ties to exactly this kind of event (event, code, subcode, participant
    raw id, message text), as (its table's context, its key for `lookup`); None when no row's
    conditions hold, and the event's own context and the usual order decide."""
    rows = _catalog().conditions.get((code, subcode))
    for row in rows or ():
        when = row.entry.when
        assert when is not None  # only rows with conditions are indexed here
        if _holds(when, event, participant, message):
            return row.table.context, row.key
    return None


def _holds(when: When, event: str, participant: str, message: str) -> bool:
    """Whether an event meets every condition given (the participant by raw-id prefix, the
    message by the documented text it contains; both compared without case or spacing)."""
    if when.events and event not in when.events:
        return False
    who = participant.strip().lower()
    if when.participants and not any(who.startswith(p.lower()) for p in when.participants):
        return False
    return not when.message or _one_line(when.message).lower() in _one_line(message).lower()


def condition_text(when: When) -> str:
    """The conditions of a row as a person reads them."""
    parts = []
    if when.events:
        parts.append(" or ".join(when.events))
    if when.participants:
        parts.append("participant " + " or ".join(f"{p}…" for p in when.participants))
    if when.message:
        parts.append(f"message containing {when.message!r}")
    return ", ".join(parts)


def conditions_of(row: str) -> When | None:
    """The conditions of the row an event's key names (`documented_row`), or None."""
    found = _catalog().conditional.get(row)
    return found.entry.when if found is not None else None


def _failure_alerts(found: Guidance, event: str) -> Guidance:
    """A failure event is an alert even when its code reads as success (SendDtmfTonesFailed 200/0)."""
    if found.severity is not Severity.NONE or event in _MAY_SUCCEED:
        return found
    return replace(
        found,
        severity=Severity.WARNING,
        flags=(*found.flags, f"{event} reports a failure although its code means success"),
    )


def lookup_status(status: str, context: Context, event: str | None = None) -> Guidance:
    """Guidance for an event that reports a status word instead of a code (an email's `Bounced`):
    the row of that name in the context's own tables, compared without case."""
    catalog = _catalog()
    key = (status, context, event)
    found = catalog.status_cache.get(key)
    if found is not None:  # one object per answer, as `lookup` gives: alerts of it share a template
        return found
    rows = [r for r in catalog.names.get(status.strip().lower(), ()) if r.table.context == context]
    if not rows:
        found = catalog.unknown(f"Status {status!r} is not in the catalog.", None, None)
    else:
        best, *others = catalog.ordered(rows, context)
        found = catalog.guidance(best, None, None, Match.STATUS, others, context=context)
        found = catalog.assumed(found, event) if event is not None else found
    if len(catalog.status_cache) >= _CACHE_LIMIT:  # status words come from outside: keep memory bounded
        catalog.status_cache.clear()
    catalog.status_cache[key] = found
    return found


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
