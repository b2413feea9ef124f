"""Which incidents a rule is about: one matcher model shared by routes and silences.

Fields (lists; an empty list matches anything): `kinds`, `contexts`, `codes`, `subcodes`,
`resources`, and their negations `not_kinds`, `not_contexts`, `not_codes`, `not_subcodes`,
`not_resources` (the incident must be in none of them). Every given condition must hold.
Unknown keys are refused, so a misspelt condition (`kind`, `subcode`) cannot silently match all.
"""

# No `from __future__ import annotations` here: the models' annotations are then objects when
# the classes are made, and pydantic need not evaluate each field's as a string (cold start).

from typing import Any

from pydantic import BaseModel, ConfigDict, PrivateAttr

from .model import Facts, Incident

__all__ = ["MATCHER_FIELDS", "Matcher"]

# Matcher field → the Incident attribute it tests.
_ATTRIBUTE = {
    "kinds": "kind",
    "contexts": "context",
    "codes": "code",
    "subcodes": "subcode",
    "resources": "resource",
}
MATCHER_FIELDS: tuple[str, ...] = (*_ATTRIBUTE, *(f"not_{name}" for name in _ATTRIBUTE))


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

    # (attribute, values, wanted): built once, so matching an incident is a few set look-ups.
    _checks: tuple[tuple[str, frozenset[Any], bool], ...] = PrivateAttr(default=())

    def model_post_init(self, context: Any, /) -> None:
        """Compile the given conditions into set look-ups."""
        checks: list[tuple[str, frozenset[Any], bool]] = []
        for name, attribute in _ATTRIBUTE.items():
            wanted, unwanted = getattr(self, name), getattr(self, f"not_{name}")
            if wanted:
                checks.append((attribute, frozenset(wanted), True))
            if unwanted:
                checks.append((attribute, frozenset(unwanted), False))
        self._checks = tuple(checks)

    def matches(self, incident: Facts | Incident) -> bool:
        """True when `incident` meets every given condition."""
        return all(
            (getattr(incident, attribute) in values) is wanted for attribute, values, wanted in self._checks
        )

    def describe(self) -> str:
        """The given conditions as `kinds=PlayFailed codes=400 not_resources=x` (the CLI's own syntax)."""
        parts = [
            f"{name}={','.join(str(v) for v in getattr(self, name))}"
            for name in MATCHER_FIELDS
            if getattr(self, name)
        ]
        return " ".join(parts) or "everything"

    def conditions(self) -> dict[str, list[Any]]:
        """The given conditions only, as JSON-ready lists (what a store keeps)."""
        return {name: list(getattr(self, name)) for name in MATCHER_FIELDS if getattr(self, name)}
