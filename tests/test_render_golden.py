"""What every destination receives is pinned byte for byte, for every shape of alert
(tests/render_golden.py lists them): a speed-up of the renderers (caches, fewer escapes) must not
move a single byte, whether a cache is cold or warm, whoever rendered before, from many threads,
and whatever a caller did to an earlier payload."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from factories import make_alert
from render_golden import EXPECTED, alert_from_dict, alert_to_dict, built_cases, cases, payload_digest

from triage.model import Alert
from triage.render import FORMATS, render

CASES = cases()
STORED: dict[str, dict[str, str]] = json.loads(EXPECTED.read_text(encoding="utf-8"))
_REWRITE = "if the change is intended: PYTHONPATH=. .venv/bin/python tests/render_golden.py --write"


def digests(alert: Alert) -> dict[str, str]:
    return {fmt: payload_digest(render(alert, fmt)) for fmt in FORMATS}


def moved(names: list[str]) -> list[str]:
    """(case, format) pairs whose payload is not the stored one."""
    return [
        f"{name} [{fmt}]"
        for name in names
        for fmt, digest in digests(CASES[name]).items()
        if STORED[name].get(fmt) != digest
    ]


def test_every_case_has_stored_payloads_for_every_format() -> None:
    assert set(STORED) == set(CASES)
    assert all(set(formats) == set(FORMATS) for formats in STORED.values())


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_alert_renders_exactly_the_stored_bytes(fmt: str) -> None:
    wrong = [name for name, alert in CASES.items() if payload_digest(render(alert, fmt)) != STORED[name][fmt]]
    assert wrong == [], _REWRITE


def test_warm_caches_and_another_order_give_the_same_bytes() -> None:
    names = list(CASES)
    moved(names)  # every cache warm
    assert moved(names[::-1]) == []
    assert moved(names[::2] + names[1::2]) == []


def test_an_equal_alert_built_anew_renders_the_same_bytes() -> None:
    # Caches keyed by value must not care whether the Guidance is the same object.
    for name, alert in CASES.items():
        assert digests(alert_from_dict(alert_to_dict(alert))) == STORED[name], name


def test_the_records_a_render_remembers_cannot_change_under_it() -> None:
    # The render cache keeps answers per Guidance (by identity, then by value): a Guidance or an
    # Alert changed in place after its first render would be served another alert's bytes.
    alert = make_alert()
    for record, name in ((alert.guidance, "severity"), (alert.guidance, "advice"), (alert, "count")):
        with pytest.raises(AttributeError):
            setattr(record, name, getattr(record, name))
    again = alert_from_dict(alert_to_dict(alert)).guidance
    assert again is not alert.guidance
    assert again == alert.guidance and hash(again) == hash(alert.guidance)


def test_threads_rendering_at_once_get_the_same_bytes() -> None:
    names = list(CASES) * 4
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda name: (name, digests(CASES[name])), names))
    assert [name for name, found in results if found != STORED[name]] == []


def _scribble(node: Any) -> None:
    """Change every dict and list of a payload in place, as a careless caller could."""
    if isinstance(node, dict):
        for value in node.values():
            _scribble(value)
        node["scribbled"] = True
        for key in [k for k in node if k != "scribbled"]:
            node[key] = "scribbled"
    elif isinstance(node, list):
        for value in node:
            _scribble(value)
        node.append("scribbled")


def test_changing_a_rendered_payload_does_not_change_the_next_one() -> None:
    for alert in CASES.values():
        for fmt in FORMATS:
            _scribble(render(alert, fmt))
    assert moved(list(CASES)) == []


def test_the_stored_alerts_read_back_equal() -> None:
    for alert in built_cases().values():
        assert alert_from_dict(alert_to_dict(alert)) == alert
