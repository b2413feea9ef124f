"""`silence add | list | expire`: operators' silences, kept in the store every instance reads.

    python -m triage silence add --match kinds=PlayFailed codes=400 subcodes=8535 --for 4h \\
        --comment "new prompts being uploaded" --by alice
    python -m triage silence list [--all]
    python -m triage silence expire ID
"""

from __future__ import annotations

import argparse
import re
import secrets
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from ..clock import utcnow
from ..errors import ConfigurationError, TriageError
from ..matchers import MATCHER_FIELDS, Matcher, parse_conditions
from ..render.content import format_time
from ..settings import Settings
from ..store import SilenceRule, Store, configured_spec, open_configured

__all__ = ["add_commands", "parse_duration", "parse_matcher"]

MAX_DURATION = timedelta(days=90)
_DURATION = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def add_commands(subparsers: Any) -> None:
    """Add `silence add|list|expire` to an argparse subparsers object."""
    silence = subparsers.add_parser("silence", help="silence matching failures for a while")
    verbs = silence.add_subparsers(dest="verb", required=True)

    add = verbs.add_parser("add", help="start a silence")
    add.add_argument(
        "--match",
        nargs="+",
        required=True,
        metavar="KEY=VALUE[,VALUE]",
        help="conditions, as routes have them: KEY=VALUE[,VALUE] (one of), KEY!=VALUE[,VALUE] (none of), "
        "KEY=~REGEX, KEY!~REGEX (anchored); KEY: kind(s), context(s), code(s), subcode(s), resource(s)",
    )
    add.add_argument("--for", dest="duration", required=True, help="how long: 30m, 4h, 2d, 1h30m")
    add.add_argument("--comment", required=True, help="why (shown in its summary)")
    add.add_argument("--by", required=True, help="who (shown in its summary)")
    add.set_defaults(func=cmd_add)

    listing = verbs.add_parser("list", help="the silences in force (or, with --all, every one kept)")
    listing.add_argument("--all", action="store_true", help="ended silences too")
    listing.set_defaults(func=cmd_list)

    expire = verbs.add_parser("expire", help="end a silence now (its summary follows)")
    expire.add_argument("id")
    expire.set_defaults(func=cmd_expire)


def parse_duration(text: str) -> timedelta:
    """'4h' → 4 hours; '1h30m', '90s', '2d'. Raises TriageError for anything else."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise TriageError(f"--for {text!r}: give a duration such as 30m, 4h, 2d or 1h30m")
    duration = timedelta(**{_UNITS[u]: 0 for u in _UNITS})
    for number, unit in parts:
        duration += timedelta(**{_UNITS[unit]: int(number)})
    if not timedelta(0) < duration <= MAX_DURATION:
        raise TriageError(f"--for {text!r}: a silence lasts more than 0 s and at most 90 days")
    return duration


def parse_matcher(pairs: list[str]) -> Matcher:
    """`kinds=PlayFailed codes=400,408 kind=~Play.* resources!=test-acs` → a Matcher (see
    matchers.parse_conditions). Unknown keys, bad values and conditions that can never match
    are errors naming them; a silence with no condition (silence everything) is refused."""
    try:
        conditions = parse_conditions(pairs)
    except ValueError as err:
        raise TriageError(f"--match {err}") from None
    try:
        matcher = Matcher.model_validate(conditions)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            key = str(error["loc"][0]) if error["loc"] else "?"
            if error["type"] == "extra_forbidden":
                problems.append(f"unknown key {key!r} (known keys: {', '.join(MATCHER_FIELDS)})")
            else:
                problems.append(f"{key}: {error['msg']}")
        raise TriageError(f"--match: {'; '.join(problems)}") from None
    if not matcher.conditions():
        raise TriageError("--match: give at least one condition; a silence of everything is refused")
    never = matcher.problems()
    if never:
        raise TriageError(f"--match {matcher.describe()}: this silence could never match: {'; '.join(never)}")
    return matcher


def _store() -> Store:
    settings = Settings.from_env()
    if configured_spec(settings) == "memory":
        raise ConfigurationError(
            "silences must be kept where every instance reads them, and the in-memory store ends "
            "with this command: set AzureWebJobsStorage (ACS_TRIAGE_STORE=auto or azure) or "
            "ACS_TRIAGE_STORE=sqlite:PATH"
        )
    return open_configured(settings)


def describe(silence: SilenceRule, now: datetime) -> str:
    """One line: id, conditions, until when, by whom and why, and what it has held back."""
    if silence.active(now):
        state = f"until {format_time(silence.ends)}"
    elif silence.starts > now:
        state = f"from {format_time(silence.starts)} until {format_time(silence.ends)}"
    else:
        state = f"ended {format_time(silence.ends)}"
    never = silence.matcher.problems()
    return (
        f"{silence.id}  {silence.matcher.describe()}  {state}  by {silence.created_by}: {silence.comment}"
        f"  ({silence.count:,} silenced)"
        + (f"  CAN NEVER MATCH: {'; '.join(never)}; expire it and add it again" if never else "")
    )


def cmd_add(args: argparse.Namespace) -> int:
    """Start a silence now, for --for."""
    matcher = parse_matcher(args.match)
    duration = parse_duration(args.duration)
    now = utcnow()
    silence = SilenceRule(
        id=secrets.token_hex(4),
        matcher=matcher,
        starts=now,
        ends=now + duration,
        comment=args.comment,
        created_by=args.by,
    )
    store = _store()
    try:
        store.add_silence(silence)
    finally:
        store.close()
    print(describe(silence, now))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """Print the silences in force (with --all, every one kept), one per line."""
    now = utcnow()
    store = _store()
    try:
        silences = store.list_silences(now, include_ended=args.all)
    finally:
        store.close()
    for silence in silences:
        print(describe(silence, now))
    if not silences:
        print("no silences" if args.all else "no silence in force")
    return 0


def cmd_expire(args: argparse.Namespace) -> int:
    """End a silence now; its summary is posted by the next flush."""
    now = utcnow()
    store = _store()
    try:
        silence = store.expire_silence(args.id, now)
    finally:
        store.close()
    if silence is None:
        raise TriageError(f"no silence with id {args.id!r} (see `silence list --all`)")
    print(describe(silence, now))
    return 0
