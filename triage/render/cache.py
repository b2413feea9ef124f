"""What renderers remember between alerts, so that only what changes is escaped per alert.

Most of a card depends on the Guidance alone (the catalog's meaning, advice, other documented
meanings, docs link, catalog note): `per_guidance` remembers a renderer's rendering of those parts.
The catalog hands out one Guidance object per answer, so they are found by identity first (hashing
a Guidance hashes its nested related meanings: ~1.5 µs an alert), then by value (an equal Guidance
built anew, as an alert read back from a store has). Everything is bounded, and safe to share
between threads: a race only computes a value twice.

Remembered values must be immutable (str, tuples, frozen Structs): renderers build every
payload dict and list afresh around them, so a caller that changes a payload changes no cache.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable
from typing import TypeVar

from ..model import Guidance
from .escape import MEMO_CHARS, MEMO_ENTRIES

__all__ = ["per_guidance", "per_texts"]

_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")


def per_guidance(function: Callable[[Guidance, _K], _V]) -> Callable[[Guidance, _K], _V]:
    """`function` (pure, of a Guidance and a small hashable key) with its answers remembered."""
    by_value = functools.lru_cache(maxsize=MEMO_ENTRIES)(function)
    # (id, key) → (the Guidance itself, answer): holding the Guidance keeps its id from being reused
    # by another object while the entry exists.
    by_object: dict[tuple[int, _K], tuple[Guidance, _V]] = {}

    @functools.wraps(function)
    def call(guidance: Guidance, key: _K) -> _V:
        entry = by_object.get((id(guidance), key))
        if entry is not None and entry[0] is guidance:
            return entry[1]
        answer = by_value(guidance, key)
        if len(by_object) >= MEMO_ENTRIES:
            by_object.clear()  # the catalog has a few hundred answers: only a flood of new ones gets here
        by_object[(id(guidance), key)] = (guidance, answer)
        return answer

    return call


def per_texts(function: Callable[[tuple[str, ...], int], _V]) -> Callable[[tuple[str, ...], int], _V]:
    """`function` (pure, of a few texts and a limit) with its answers remembered while the texts are
    short: they come from events, and a cache of long texts is memory an attacker could fill."""
    cached = functools.lru_cache(maxsize=MEMO_ENTRIES)(function)

    @functools.wraps(function)
    def call(texts: tuple[str, ...], limit: int) -> _V:
        return cached(texts, limit) if sum(map(len, texts)) <= MEMO_CHARS else function(texts, limit)

    return call
