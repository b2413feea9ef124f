"""One event is the unit of failure: whatever one item of a valid batch holds (bytes that are not
UTF-8, a number out of range, NaN or a lone surrogate escape, nesting past every parser, values
of the wrong type), that item alone is refused with its reason, the batch answers 200 and every
other event counts exactly as it would without it. Posted over a socket to the local server, on
both routes."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import function_app
from samples import SAMPLES
from tools.localhost import LocalServer
from triage.service import Service
from triage.settings import Settings
from triage.store.memory import MemoryStore

ENV = {
    "ACS_TRIAGE_TEAMS_URL": "https://teams.example.invalid/workflows/x?sig=y",
    "ACS_TRIAGE_MAX_BODY_BYTES": "1048576",
}
COUNTS = ("alerted", "grouped", "duplicates", "successes", "skipped", "invalid", "silenced")


def events_of(folder: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in sorted((Path(SAMPLES) / folder).glob("*.json")):
        if path.name == "subscription-validation.json":
            continue
        doc = json.loads(path.read_text(encoding="utf-8"))
        out += doc if isinstance(doc, list) else [doc]
    # Events acs-triage reads (a subscription-deleted notice's data is never looked at).
    return [e for e in out if str(e.get("type") or e.get("eventType")).startswith("Microsoft.Communication.")]


# Each route gets the events it is sent in Azure: Event Grid schema SMS reports on /eventgrid,
# Call Automation CloudEvents on /callbacks.
ROUTES = {"eventgrid": events_of("eventgrid"), "callbacks": events_of("callbacks")}


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    function_app.configure(Service(Settings.from_env(ENV), MemoryStore()))
    # Nothing is delivered: the outbox loop and the timer never run during the test.
    with LocalServer(port=0, tick_seconds=3600, timer_seconds=3600) as running:
        yield running
    function_app.configure(Service(Settings.from_env({}), MemoryStore()))


def post(server: LocalServer, route: str, body: bytes) -> requests.Response:
    """POST `body` to a fresh Service (an empty store), so two posts are counted alike."""
    function_app.configure(Service(Settings.from_env(ENV), MemoryStore()))
    return requests.post(
        f"{server.url}/api/{route}", data=body, headers={"Content-Type": "application/json"}, timeout=30
    )


def batch_bytes(items: list[bytes]) -> bytes:
    return b"[" + b",".join(items) + b"]"


# -- corruptions, made on the item's bytes ------------------------------------------------------
# Each takes the item's JSON bytes and hypothesis' draw, and gives the corrupted bytes. The data
# object of both schemas is written last by json.dumps of the samples' order, or not: the
# corruptions look for `"data": {` and work inside it, where only the event's own reading sees it.
Corruption = Callable[[bytes, st.DrawFn], bytes | None]  # None: not for this item


def inside_data(item: bytes, insert: bytes) -> bytes:
    """`insert` (a `"key": value, ` pair) as the first member of the item's data object."""
    at = item.index(b'"data": {') + len(b'"data": {')
    return item[:at] + insert + item[at:]


def not_utf8(item: bytes, draw: st.DrawFn) -> bytes:
    bad = draw(st.sampled_from([b"\xff", b"\xc0", b"\xc3(", b"\xed\xa0\x80", b"\xe2\x82", b"\x80abc"]))
    where = draw(st.sampled_from(["data", "subject"]))
    if where == "subject" and b'"subject": "' in item:
        at = item.index(b'"subject": "') + len(b'"subject": "')
        return item[:at] + bad + item[at:]
    return inside_data(item, b'"note": "' + bad + b'", ')


def out_of_range(item: bytes, draw: st.DrawFn) -> bytes:
    # (an integer of 400 digits is no such number: it is read exactly; one of 5,000 is past reach)
    number = draw(st.sampled_from([b"1e400", b"-1e999", b"1" + b"0" * 5_000, b"2.5E+309"]))
    return inside_data(item, b'"extra": ' + number + b", ")


def too_deep(item: bytes, draw: st.DrawFn) -> bytes:
    # Past msgspec and orjson whatever the recursion limit (hypothesis raises it while it runs).
    depth = draw(st.sampled_from([20_000, 60_000]))
    opening, closing = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
    inner = opening * depth + (b"1" if opening != b"[" else b"") + closing * depth
    return inside_data(item, b'"extra": ' + inner + b", ")


_READ_VALUE = re.compile(rb'("(?:code|deliveryStatus)": )(-?\d+|"[^"]*")')


def wrong_type(item: bytes, draw: st.DrawFn) -> bytes | None:
    value = draw(st.sampled_from([b'{"x": 1}', b"[1, 2]", b'[{"y": null}]']))
    # A value the event's reading needs (its code, the SMS delivery status) of another type.
    if _READ_VALUE.search(item):
        return _READ_VALUE.sub(lambda m: m.group(1) + value, item, count=1)
    if b'"specversion"' not in item:
        return None  # (an event type of its own fields: another corruption is drawn)
    # A Call Automation event without a code: a result that is no object (one of unknown keys
    # would be an object still).
    other = draw(st.sampled_from([b"[1, 2]", b'"text"', b"42"]))
    return inside_data(item, b'"resultInformation": ' + other + b", ")


def not_json(item: bytes, draw: st.DrawFn) -> bytes:
    # What Python's json writes and reads but JSON does not allow (nor our parsers).
    value = draw(st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b'"\\ud800"', b'"x\\udc00"']))
    return inside_data(item, b'"extra": ' + value + b", ")


CORRUPTIONS: dict[str, Corruption] = {
    "values JSON does not allow": not_json,
    "bytes that are not UTF-8": not_utf8,
    "a number out of range": out_of_range,
    "nesting past every parser": too_deep,
    "a value of the wrong type": wrong_type,
}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    route=st.sampled_from(sorted(ROUTES)),
    picks=st.lists(st.integers(min_value=0, max_value=1_000), min_size=2, max_size=6),
    victim=st.integers(min_value=0, max_value=5),
    corruption=st.sampled_from(sorted(CORRUPTIONS)),
    data=st.data(),
)
def test_one_corrupted_event_is_refused_alone_and_the_rest_of_its_batch_counts(
    server: LocalServer, *, route: str, picks: list[int], victim: int, corruption: str, data: st.DataObject
) -> None:
    pool = ROUTES[route]
    items = []
    for pick in picks:
        event = json.loads(json.dumps(pool[pick % len(pool)]))
        event["id"] = str(uuid.uuid4())  # every example's events are new to the store
        items.append(event)
    victim %= len(items)
    encoded = [json.dumps(item).encode() for item in items]
    corrupted = list(encoded)
    damaged = CORRUPTIONS[corruption](encoded[victim], data.draw)
    assume(damaged is not None)
    assert damaged is not None
    corrupted[victim] = damaged
    others = encoded[:victim] + encoded[victim + 1 :]

    response = post(server, route, batch_bytes(corrupted))
    assert response.status_code == 200, response.text[:500]
    mixed = response.json()
    alone = post(server, route, batch_bytes(others)).json()

    assert mixed["received"] == len(items)
    assert mixed["invalid"] == alone["invalid"] + 1, (corruption, mixed)
    for key in COUNTS:
        if key != "invalid":
            assert mixed[key] == alone[key], (key, corruption, alone, mixed)
    listed = [r for r in mixed["rejected"] if r.get("id") == items[victim]["id"] or r.get("index") == victim]
    assert listed and listed[0]["reason"], mixed["rejected"]


def test_an_answer_lists_twenty_rejections_and_counts_the_rest(server: LocalServer) -> None:
    # About a megabyte of `{}` items: the answer stays small, however many there are.
    count = 1_048_000 // 3
    response = post(server, "eventgrid", b"[" + b",".join([b"{}"] * count) + b"]")
    assert response.status_code == 200
    doc = response.json()
    assert doc["received"] == doc["invalid"] == count
    assert len(doc["rejected"]) == 20 and doc["rejected_unlisted"] == count - 20
    assert [r["index"] for r in doc["rejected"]] == list(range(20))
    assert len(response.content) < 4_000
