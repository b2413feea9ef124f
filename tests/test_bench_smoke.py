"""The benchmarks (`python -m bench`) work, run at their smallest sizes.

Only structure is checked: every figure is there with a same-run baseline, and the storm loses
or double-counts no event and draws no 429. No timing is asserted: the machine is shared, and
figures are read from `python -m bench`, never from a test.
"""

from __future__ import annotations

import shutil

import pytest
from required import skip_or_fail

from bench.azure import azure_figures
from bench.coldstart import coldstart_figures
from bench.figures import Figure, markdown_table, text_table
from bench.handshake import handshake_figures
from bench.instructions import instructions
from bench.memory import memory_figures
from bench.overhttp import http_figures
from bench.scaling import scaling_figures
from bench.storm import count_of, run
from bench.throughput import throughput_figures


def assert_complete(figures: list[Figure], count: int) -> None:
    assert len(figures) == count
    for figure in figures:
        assert figure.name and figure.baselines, figure
        assert all(b.name and b.value >= 0 for b in figure.baselines), figure


def test_pipeline_figures_stand_next_to_json_loads_and_orjson_loads() -> None:
    figures, details = throughput_figures({"batch": 60, "bytes": 30_000}, {"grouped": 1, "ungrouped": 1})
    assert_complete(figures, 4)
    assert all(
        f.value > 0 and [b.name for b in f.baselines] == ["json.loads", "orjson.loads"] for f in figures
    )
    assert figures[0].met is not None  # the one with the targets says whether it met them
    assert any(d.startswith("stage costs") for d in details)
    render_line = next(d for d in details if d.startswith("render, µs per alert"))
    assert "teams " in render_line and "slack " in render_line and "both as queued " in render_line
    assert "| figure |" in markdown_table(figures)
    assert text_table(figures).startswith("figure")


def test_handshake_figures_give_p50_and_p99_for_both_handshakes_and_both_ways_in() -> None:
    figures, _ = handshake_figures(60)
    assert_complete(figures, 8)
    assert {f.name.rsplit(", ", 1)[1] for f in figures} == {"p50", "p99"}


def test_cold_start_compares_with_a_floor_of_third_party_imports_and_finds_where_time_goes() -> None:
    figures, findings = coldstart_figures(1)
    assert_complete(figures, 2)
    assert all(f.met is not None and f.baselines[0].value > 0 for f in figures)
    text = "\n".join(findings)
    assert "azure.functions" in text and "pydantic" in text  # the floor lists what function_app loads
    assert "-X importtime" in text
    assert "byte code: " in text  # what compiling our modules costs a host that cannot cache it
    assert "interpreter exit, left out of the times above" in text  # finalization, which no worker pays


def test_storm_counts_every_event_exactly_once_without_a_429() -> None:
    storm = run(300, group_window_seconds=1, max_bytes=64 * 1024)
    assert storm.batches > 1
    assert storm.counted == storm.answered == 300
    assert storm.uncounted == 0
    assert storm.throttled == 0 and storm.refused == 0
    assert 1 <= storm.messages < 300


def test_a_digest_payload_counts_its_headline_number_and_a_single_alert_counts_one() -> None:
    assert count_of({"text": "Warning: 1,234× PlayFailed 400/8535 on acs in 2 s. The file…"}) == 1234
    assert count_of({"text": "Warning: PlayFailed 400/8535 on acs. The file…"}) == 1


def test_memory_figures_compare_the_pipeline_with_json_loads() -> None:
    figures, _ = memory_figures(30_000)
    assert_complete(figures, 2)
    assert figures[0].value > 0


def test_cost_per_event_is_given_for_each_batch_size_with_the_spread_on_the_largest() -> None:
    figures, _ = scaling_figures((20, 80), budget=80)
    assert_complete(figures, 2)
    assert all(f.value > 0 and f.unit == "µs" for f in figures)
    assert figures[-1].met is not None and "largest / smallest" in figures[-1].how


def test_serve_over_http_is_compared_with_a_stdlib_server_by_process_cpu() -> None:
    figures, _ = http_figures(events=50, rounds=1, per_round=2)
    assert_complete(figures, 1)
    assert figures[0].baselines[0].name == "stdlib server + json.loads"
    assert figures[0].met is not None


def test_instructions_per_event_are_counted_by_callgrind() -> None:
    if shutil.which("valgrind") is None:
        skip_or_fail("valgrind is not installed (bench.instructions)")
    # The same child with batches and without: what the batches executed is the difference.
    assert instructions(50, 300, 1) > instructions(50, 300, 0) > 0


@pytest.mark.azurite
def test_the_azure_store_is_compared_with_its_floor_on_an_azurite_of_its_own() -> None:
    figures, details = azure_figures(1)
    names = [f.name for f in figures]
    assert names[1:] == [
        "azure store, 1,000 events across 300 groups",
        "azure store, storage requests per 100 events",
        "azure store, expired dedup keys purged per second",
    ]
    assert names[0].startswith("azure store, 1 MB batch (") and names[0].endswith(" mixed events)")
    for floored in figures[:2]:
        [floor] = floored.baselines
        assert floor.name == "floor" and floor.ratio_label == "× floor" and floor.value > 0
    assert 0 < figures[2].value < 100  # a batch costs a few requests per 100 events, not one per event
    assert any("storage requests per batch" in line for line in details)
