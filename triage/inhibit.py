"""Inhibition, as Alertmanager's `inhibit_rules`: while a *source* burst fires, alerts that a
rule's *target* matchers take, with the same values of its `equal` labels, are held back.

    ACS_TRIAGE_INHIBIT_RULES='[{"source_matchers": ["kind=CallDisconnected"],
                                "target_matchers": ["kind=~Play.*"], "equal": ["resource"]}]'

An inhibition is a store silence, `inhibit:<rule>:<equal values>:<start>`, so that it costs a
batch what a silence costs and nothing vanishes: what it holds back is counted in it, and its
summary is posted when it ends (the next flush). It is started by the first batch whose source
events find none in force (`policy.StartInhibitions`, read from the silences every batch reads anyway,
at most 5 s old), runs for `INHIBIT_SPAN` at most (a source still firing then starts the next
one: the summary doubles as an hourly "held back so far"), and is ended by the flush that
resolves a source burst (`policy.Digests`). An alert that matches a rule's source matchers is
never held back by that rule (Alertmanager's rule: a source does not inhibit itself).
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from .config_json import json_list, problems
from .matchers import Matcher
from .model import Facts, Incident, code_text

__all__ = [
    "INHIBIT_PREFIX",
    "INHIBIT_SPAN",
    "InhibitRule",
    "Inhibition",
    "parse_inhibit_rules",
]

log = logging.getLogger("triage")

INHIBIT_PREFIX = "inhibit:"
# The longest one inhibition runs: if a flush that should end it is lost (a process killed
# between closing the source burst and ending it), targets are held back at most this long.
INHIBIT_SPAN = timedelta(hours=1)

Label = Literal["kind", "code", "subcode", "resource", "context"]


class InhibitRule(BaseModel):
    """One rule: `source_matchers` and `target_matchers` in Alertmanager's form (`kind=~Play.*`),
    `equal` the labels whose values source and target must share (none: any target)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    source_matchers: list[str] = Field(min_length=1)
    target_matchers: list[str] = Field(min_length=1)
    equal: list[Label] = []

    _source: Matcher = PrivateAttr()
    _target: Matcher = PrivateAttr()

    @model_validator(mode="after")
    def _can_match(self) -> InhibitRule:
        # A side that can never match inhibits nothing (or is never inhibited): refused, as routes are.
        sides: dict[str, Matcher] = {}
        for side in ("source_matchers", "target_matchers"):
            try:
                matcher = Matcher(matchers=getattr(self, side))
            except ValidationError as err:
                raise ValueError(f"{side}: {err.errors()[0]['msg'].removeprefix('Value error, ')}") from None
            problems = matcher.problems()
            if problems:
                raise ValueError(f"{side} can never match: {'; '.join(problems)}")
            sides[side] = matcher
        self._source, self._target = sides["source_matchers"], sides["target_matchers"]
        return self

    def is_source(self, facts: Facts | Incident) -> bool:
        """Whether `facts` is one of this rule's sources."""
        return self._source.matches(facts)

    def values(self, facts: Facts | Incident) -> list[str]:
        """The `equal` labels' values of `facts` ("" for a missing code or subcode)."""
        return ["" if (value := getattr(facts, label)) is None else str(value) for label in self.equal]

    def target(self, facts: Facts | Incident) -> Matcher:
        """What an inhibition started by source `facts` holds back: the target matchers, and
        each `equal` label equal to the source's value."""
        same = [f'{label}="{value}"' for label, value in zip(self.equal, self.values(facts), strict=True)]
        return Matcher(matchers=[*self.target_matchers, *same])


def parse_inhibit_rules(text: str | None, setting: str) -> list[InhibitRule]:
    """ACS_TRIAGE_INHIBIT_RULES (a JSON list of rules) read; ValueError names the rule and what
    is wrong with it."""
    if not text:
        return []
    parsed: list[InhibitRule] = []
    for number, rule in enumerate(json_list(text, setting, "rules"), 1):
        try:
            parsed.append(InhibitRule.model_validate(rule))
        except ValidationError as err:
            known = "unknown key (known keys: source_matchers, target_matchers, equal)"
            raise ValueError(f"{setting} rule {number}: {problems(err, known)}") from None
    return parsed


class Inhibition:
    """The rules, and the silences that carry them (see the module's docstring)."""

    def __init__(self, rules: list[InhibitRule]) -> None:
        self.rules = rules
        self.inhibited = 0  # events held back since this process started (/api/health)

    def __bool__(self) -> bool:
        return bool(self.rules)

    def prefix(self, number: int, facts: Facts | Incident) -> str:
        """The id prefix of rule `number`'s inhibitions for the equal values of `facts`."""
        values = "\x1f".join(self.rules[number - 1].values(facts))
        return f"{INHIBIT_PREFIX}{number}:{hashlib.sha256(values.encode()).hexdigest()[:16]}:"

    def sources(self, facts: Facts | Incident) -> list[int]:
        """The numbers (from 1) of the rules `facts` is a source of."""
        return [n for n, rule in enumerate(self.rules, 1) if rule.is_source(facts)]

    def exempt(self, silence_id: str, facts: Facts | Incident) -> bool:
        """Whether `facts` may not be held back by the silence `silence_id`: it is an inhibition
        and `facts` is a source of its own rule."""
        if not silence_id.startswith(INHIBIT_PREFIX):
            return False
        number = int(silence_id[len(INHIBIT_PREFIX) :].split(":", 1)[0])
        return 0 < number <= len(self.rules) and self.rules[number - 1].is_source(facts)

    def start(self, number: int, source: Incident, now: datetime) -> dict[str, Any]:
        """The fields of the store silence that inhibits rule `number`'s targets while `source`
        fires (a SilenceRule's: policy.StartInhibitions stores it)."""
        rule = self.rules[number - 1]
        what = f"{source.kind} {code_text(source.code, source.subcode, source.status, source.scope)}"
        return {
            "id": self.prefix(number, source) + now.strftime("%Y%m%dT%H%M%S"),
            "matcher": rule.target(source),
            "starts": now,
            "ends": now + INHIBIT_SPAN,
            "comment": f"inhibited while {what} fired on {source.resource}",
            "created_by": f"inhibit rule {number}",
        }

    def ended_by(self, ended: list[Incident]) -> tuple[str, ...]:
        """The id prefixes of the inhibitions that end with these source bursts (`ended`: each
        resolved burst's first occurrence)."""
        return tuple({self.prefix(n, incident) for incident in ended for n in self.sources(incident)})
