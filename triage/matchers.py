"""Which incidents a rule is about: one matcher model shared by routes and silences.

Two ways to say it, and every condition given must hold:

- lists (an empty list matches anything): `kinds`, `contexts`, `codes`, `subcodes`, `resources`,
  and their negations `not_kinds`, … (the incident must be in none of them);
- `matchers`, as Alertmanager writes them: `LABEL OP VALUE` with the labels `kind`, `context`,
  `code`, `subcode`, `resource` and the operators `=`, `!=`, `=~`, `!~`. A regex is anchored at
  both ends, as Alertmanager's are (`kind=~Play.*` matches PlayFailed, not ReplayFailed); an
  incident without a code or subcode has the empty value there (`subcode=""`).

Unknown keys are refused, so a misspelt condition (`kind`, `subcode`) cannot silently match all.
`problems()` names conditions that can never match (an unknown kind, a subcode on SMS reports,
a value that is an operator taken literally): routes refuse them, silences too.
"""

# No `from __future__ import annotations` here: the models' annotations are then objects when
# the classes are made, and pydantic need not evaluate each field's as a string (cold start).

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, PrivateAttr, field_validator

from .model import CONTEXTS, Facts, Incident

__all__ = ["LABELS", "MATCHER_FIELDS", "Matcher", "parse_conditions"]

# Matcher list field → the Incident attribute (the label) it tests.
_ATTRIBUTE = {
    "kinds": "kind",
    "contexts": "context",
    "codes": "code",
    "subcodes": "subcode",
    "resources": "resource",
}
LABELS: tuple[str, ...] = tuple(_ATTRIBUTE.values())
MATCHER_FIELDS: tuple[str, ...] = (*_ATTRIBUTE, *(f"not_{name}" for name in _ATTRIBUTE), "matchers")
_NUMERIC = frozenset({"code", "subcode"})
# Longest operators first: `=~` must not be read as `=` followed by a value starting with `~`.
_MATCHER = re.compile(r"^\s*([A-Za-z_]+)\s*(=~|!~|!=|=)\s*(.*?)\s*$", re.DOTALL)
_OPERATOR_LOOKALIKE = re.compile(r"^(=~|!~|!=|~|=|!)")
_SMS_KIND = "SMSDeliveryReportReceived"

# (attribute, test, wanted): the test is a set of values or an anchored regex over the value's text.
_Check = tuple[str, frozenset[Any] | re.Pattern[str], bool]


def _label(name: str) -> str | None:
    """'kind' or 'kinds' → 'kind'; None for a name that is no label."""
    name = name.strip().lower()
    if name in _ATTRIBUTE:
        return _ATTRIBUTE[name]
    return name if name in LABELS else None


def _unquoted(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"')
    return value


def _split(text: str) -> tuple[str, str, str]:
    """'kind =~ Play.*' → ('kind', '=~', 'Play.*'). Raises ValueError naming what is wrong."""
    found = _MATCHER.match(text)
    if found is None:
        raise ValueError(f"{text!r} is not LABEL OP VALUE (OP one of =, !=, =~, !~; e.g. kind=~Play.*)")
    name, op, value = found.groups()
    label = _label(name)
    if label is None:
        raise ValueError(f"{text!r}: unknown label {name!r} (labels: {', '.join(LABELS)})")
    value = _unquoted(value)
    if op in ("=~", "!~"):
        try:
            re.compile(value)
        except re.error as err:
            raise ValueError(f"{text!r}: not a valid regular expression ({err})") from None
    elif label in _NUMERIC and value and not value.lstrip("-").isdigit():
        raise ValueError(f'{text!r}: a {label} is a number (or "" for none)')
    return label, op, value


def _hit(test: frozenset[Any] | re.Pattern[str], value: Any) -> bool:
    """Whether `value` is in the set, or its text (empty for none) matches the whole regex."""
    if isinstance(test, frozenset):
        return value in test
    return test.fullmatch("" if value is None else str(value)) is not None


def _number(value: str) -> int | None:
    return int(value) if value else None


def _known_kinds() -> frozenset[str]:
    # Imported when asked (configuration checks), not when a request's matchers are built.
    from .events import ACS_PREFIX, CALL_AUTOMATION_FAILURES, SUBSCRIBABLE_EVENT_TYPES

    return frozenset(
        {*CALL_AUTOMATION_FAILURES, *(t.removeprefix(ACS_PREFIX) for t in SUBSCRIBABLE_EVENT_TYPES)}
    )


def _is_kind(value: str) -> bool:
    """A kind this app alerts on: a known one, or any future Call Automation `*Failed`."""
    return value in _known_kinds() or re.fullmatch(r"[A-Z][A-Za-z0-9]*Failed", value) is not None


class Matcher(BaseModel):
    """Conditions on an incident's kind, context, code, subcode and resource."""

    # Built when first used: requests use Routes (built with Settings) and only read silences;
    # a Matcher of its own is validated by the silence CLI and a store reading its silences.
    model_config = ConfigDict(extra="forbid", defer_build=True)

    # Plain `[]` defaults: pydantic copies a default that cannot be hashed for every instance, as
    # `default_factory=list` would, without asking `inspect` for list's signature (slow at import).
    kinds: list[str] = []
    contexts: list[str] = []
    codes: list[int] = []
    subcodes: list[int] = []
    resources: list[str] = []
    not_kinds: list[str] = []
    not_contexts: list[str] = []
    not_codes: list[int] = []
    not_subcodes: list[int] = []
    not_resources: list[str] = []
    matchers: list[str] = []  # Alertmanager's form: "kind=~Play.*", "resource!=test-acs"

    _checks: tuple[_Check, ...] = PrivateAttr(default=())

    @field_validator("matchers")
    @classmethod
    def _well_formed(cls, matchers: list[str]) -> list[str]:
        for text in matchers:
            _split(text)
        return matchers

    def model_post_init(self, context: Any, /) -> None:
        """Compile the given conditions into set look-ups and anchored regexes."""
        checks: list[_Check] = []
        for name, attribute in _ATTRIBUTE.items():
            wanted, unwanted = getattr(self, name), getattr(self, f"not_{name}")
            if wanted:
                checks.append((attribute, frozenset(wanted), True))
            if unwanted:
                checks.append((attribute, frozenset(unwanted), False))
        for label, op, value in self.parsed():
            if op in ("=", "!="):
                checks.append((label, frozenset({_number(value) if label in _NUMERIC else value}), op == "="))
            else:
                checks.append((label, re.compile(value), op == "=~"))
        self._checks = tuple(checks)

    def parsed(self) -> list[tuple[str, str, str]]:
        """`matchers` as (label, operator, value)."""
        return [_split(text) for text in self.matchers]

    def matches(self, incident: Facts | Incident) -> bool:
        """True when `incident` meets every given condition."""
        for attribute, test, wanted in self._checks:
            if _hit(test, getattr(incident, attribute)) is not wanted:
                return False
        return True

    def describe(self) -> str:
        """The given conditions as `kinds=PlayFailed codes=400 kind=~Play.*` (the CLI's own syntax)."""
        parts = [
            f"{name}={','.join(str(v) for v in getattr(self, name))}"
            for name in MATCHER_FIELDS
            if name != "matchers" and getattr(self, name)
        ]
        parts += [f"{label}{op}{value}" for label, op, value in self.parsed()]
        return " ".join(parts) or "everything"

    def conditions(self) -> dict[str, list[Any]]:
        """The given conditions only, as JSON-ready lists (what a store keeps)."""
        return {name: list(getattr(self, name)) for name in MATCHER_FIELDS if getattr(self, name)}

    def problems(self) -> list[str]:
        """Conditions that can never match, each saying why and what to write instead ([]: none)."""
        found: list[str] = []
        for name in (*_ATTRIBUTE, *(f"not_{n}" for n in _ATTRIBUTE)):
            for value in getattr(self, name):
                if isinstance(value, str) and _OPERATOR_LOOKALIKE.match(value):
                    label = _ATTRIBUTE[name.removeprefix("not_")]
                    found.append(
                        f"{name} value {value!r} starts with an operator and would be compared literally: "
                        f"write a matcher such as {label}=~{value.lstrip('=!~')}"
                    )
        for label, op, value in self.parsed():
            if op in ("=", "!=") and _OPERATOR_LOOKALIKE.match(value):
                found.append(
                    f"matcher {label}{op}{value!r}: the value starts with an operator and would be compared "
                    f"literally: write {label}=~{value.lstrip('=!~')} for a regex"
                )
        if found:
            return found
        found += self._never_kind()
        found += self._never_context()
        if self._sms_only() and (self.subcodes or any(
            label == "subcode" and ((op == "=") == bool(value) or op == "=~")
            for label, op, value in self.parsed()
        )):  # fmt: skip
            found.append(
                "SMS delivery reports carry a code and no subcode, so a subcode condition on them never "
                "matches: use codes (e.g. codes=4007 or code=4007)"
            )
        return found

    def _label_tests(self, label: str) -> list[tuple[str, str, str]]:
        """Every condition on `label` as (operator, value, text) with list fields included."""
        plural = next(name for name, attribute in _ATTRIBUTE.items() if attribute == label)
        tests = [("in", ",".join(map(str, getattr(self, plural))), plural)] if getattr(self, plural) else []
        if getattr(self, f"not_{plural}"):
            tests.append(("not in", ",".join(map(str, getattr(self, f"not_{plural}"))), f"not_{plural}"))
        tests += [(op, value, f"{label}{op}{value}") for lab, op, value in self.parsed() if lab == label]
        return tests

    def _allows(self, label: str, value: str) -> bool:
        """Whether every condition on `label` lets `value` through."""
        for attribute, test, wanted in self._checks:
            if attribute == label and _hit(test, value) is not wanted:
                return False
        return True

    def _never_kind(self) -> list[str]:
        unknown = [k for k in (*self.kinds, *self.not_kinds) if not _is_kind(k)]
        unknown += [v for lab, op, v in self.parsed() if lab == "kind" and op[-1] == "=" and not _is_kind(v)]
        if unknown:
            known = ", ".join(sorted(_known_kinds()))
            return [
                f"kind {k!r} is not an event acs-triage alerts on (known: {known}, "
                "or any other Call Automation *Failed event)"
                for k in unknown
            ]
        # A kind named outright may be a future *Failed: it can match once ACS sends it.
        named = {*self.kinds, *(v for lab, op, v in self.parsed() if lab == "kind" and op == "=")}
        if self._label_tests("kind") and not any(self._allows("kind", k) for k in _known_kinds() | named):
            conditions = " ".join(t for _, _, t in self._label_tests("kind"))
            return [f"{conditions}: no event kind acs-triage alerts on meets these conditions"]
        return []

    def _never_context(self) -> list[str]:
        named = [*self.contexts, *self.not_contexts]
        named += [v for lab, op, v in self.parsed() if lab == "context" and op[-1] == "="]
        unknown = [c for c in named if c not in CONTEXTS]
        if unknown:
            return [f"context {c!r} is not one of {', '.join(CONTEXTS)}" for c in unknown]
        if self._label_tests("context") and not any(self._allows("context", c) for c in CONTEXTS):
            conditions = " ".join(t for _, _, t in self._label_tests("context"))
            return [f"{conditions}: no context meets these conditions"]
        return []

    def _sms_only(self) -> bool:
        """True when only SMS delivery reports can meet the kind and context conditions."""
        kinds = self._label_tests("kind")
        if (
            kinds
            and self._allows("kind", _SMS_KIND)
            and not any(self._allows("kind", k) for k in _known_kinds() - {_SMS_KIND})
        ):
            return not self.kinds or set(self.kinds) == {_SMS_KIND}
        contexts = self._label_tests("context")
        return (
            bool(contexts)
            and self._allows("context", "sms")
            and not any(self._allows("context", c) for c in CONTEXTS if c != "sms")
        )


def parse_conditions(pairs: list[str]) -> dict[str, list[str]]:
    """The CLI's conditions as Matcher fields: `kinds=PlayFailed,RecognizeFailed` (one of),
    `resources!=test-acs` (none of), `kind=~Play.*` and `kind!~Play.*` (anchored regexes; commas
    belong to the regex). A label may be named as a list field (`kinds`) or singly (`kind`).
    Raises ValueError naming the pair that is not one."""
    fields: dict[str, list[str]] = {}
    for pair in pairs:
        found = _MATCHER.match(pair)
        if found is None or not found.group(3):
            raise ValueError(f"{pair!r}: write KEY=VALUE[,VALUE], KEY!=VALUE, KEY=~REGEX or KEY!~REGEX")
        name, op, value = found.groups()
        label = _label(name)
        if label is None:
            if name.startswith("not_") and op == "=":  # the list negations, as routes write them
                fields.setdefault(name, []).extend(v.strip() for v in value.split(",") if v.strip())
                continue
            raise ValueError(f"{pair!r}: unknown key {name!r} (labels: {', '.join(LABELS)})")
        plural = next(n for n, attribute in _ATTRIBUTE.items() if attribute == label)
        if op == "=":
            fields.setdefault(plural, []).extend(v.strip() for v in value.split(",") if v.strip())
        elif op == "!=":
            fields.setdefault(f"not_{plural}", []).extend(v.strip() for v in value.split(",") if v.strip())
        else:
            fields.setdefault("matchers", []).append(f"{label}{op}{value}")
    return fields
