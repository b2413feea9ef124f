"""The seed documents, re-read by tools/seeds.py, against the catalog.

The seeds live outside the repository (`$ACS_TRIAGE_SEEDS`, else `<repo>/../shared/seeds`). Without
them these tests skip, unless `ACS_TRIAGE_REQUIRE_SEEDS=1` (CI sets it): then they fail.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from tools.seeds import SeedError, SeedRow, check_seeds, default_seeds_dir, normalize, parse_seed, read_seeds
from triage.catalog import category_advice
from triage.model import Category

# Rows per (seed, table) as the documents stand. A change means the seeds changed: review the
# catalog against them, then update these numbers.
EXPECTED_ROWS = {
    ("000", "create-callagent"): 11,
    ("001", "calling-sdk"): 45,
    ("001", "calling-sdk-codes"): 14,  # 480 … 606, with 490/491/496/497/498 and 503/504 split
    ("001", "call-end"): 37,
    ("001", "call-end-codes"): 14,
    ("001", "call-automation"): 14,
    ("001", "generic-4xx"): 14,
    ("001", "generic-5xx"): 5,
    ("001", "generic-6xx"): 1,
    ("001", "generic-subcodes"): 118,
    ("001", "pstn-0"): 3,
    ("001", "pstn-4xx"): 13,
    ("001", "pstn-5xx"): 2,
    ("001", "pstn-603"): 1,
    ("001", "chat"): 4,
    ("001", "sms"): 16,
    ("001", "tips"): 4,
    ("002", "teams-phone-5804xx"): 3,
    ("002", "teams-phone"): 10,
    ("003", "info-calling-sdk"): 17,
    ("003", "info-call-automation"): 11,
    ("003", "chat"): 4,
    ("003", "sms"): 16,
    ("003", "tips"): 4,
}


@pytest.fixture(scope="module")
def seeds_dir() -> Path:
    path = default_seeds_dir()
    if not any(path.glob("[0-9][0-9][0-9]_*.txt")):
        message = f"no seed documents in {path} (set ACS_TRIAGE_SEEDS)"
        if os.environ.get("ACS_TRIAGE_REQUIRE_SEEDS") == "1":
            pytest.fail(message + "; ACS_TRIAGE_REQUIRE_SEEDS=1 requires them")
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def rows(seeds_dir: Path) -> list[SeedRow]:
    return list(read_seeds(seeds_dir))


def _find(rows: list[SeedRow], table: str, code: int | None, subcode: int | None = None) -> SeedRow:
    found = [r for r in rows if r.table_id == table and r.code == code and r.subcode == subcode]
    assert len(found) == 1, f"{table} {code}/{subcode}: {len(found)} rows"
    return found[0]


def test_parser_finds_every_table_with_its_row_count(rows: list[SeedRow]) -> None:
    counts = Counter((r.seed_file[:3], r.table_id) for r in rows)
    assert dict(counts) == EXPECTED_ROWS


def test_every_seed_row_is_answered_by_lookup_with_its_own_text_from_its_own_table(seeds_dir: Path) -> None:
    assert check_seeds(seeds_dir) == []


def test_every_row_has_text(rows: list[SeedRow]) -> None:
    assert all(len(r.text) >= 3 for r in rows)


def test_source_typos_are_parsed_as_written(rows: list[SeedRow]) -> None:
    assert _find(rows, "pstn-4xx", 497, 560487).text.startswith("- The caller terminated the call request.")
    assert _find(rows, "pstn-4xx", 486, 60486).text.startswith("The called number was busy")
    misspelled = [r.subcode for r in rows if r.category_as_written == "UnxpectedClientError"]
    assert misspelled == [3100, 3101, 3111]


def test_category_word_is_removed_from_the_text(rows: list[SeedRow]) -> None:
    row = _find(rows, "call-end", 410, 3112)
    assert row.category_as_written == "ExpectedError"
    assert "ExpectedError" not in row.text
    assert row.text == (
        "Call setup failed due to network configuration problem on the client side, check the client's"
        " network configuration, and retry."
        " Learn more details about a call ending with a subcode of 3112 here."
    )


def test_a_category_on_its_own_line_is_found(rows: list[SeedRow]) -> None:
    row = _find(rows, "pstn-0", 0, 560000)
    assert row.category_as_written == "Success"
    assert row.text == "Normal PSTN call end: - User ended the call. - Call ended by media agent."


def test_multi_code_line_is_one_row_per_code(rows: list[SeedRow]) -> None:
    network = [r for r in rows if r.table_id == "calling-sdk-codes" and r.text.startswith("Local endpoint")]
    assert [r.code for r in network] == [490, 491, 496, 497, 498]
    assert len({r.text for r in network}) == 1


def test_teams_phone_string_code_and_setup_sections(rows: list[SeedRow]) -> None:
    named = [r for r in rows if r.name]
    assert [(r.name, r.code) for r in named] == [("UserLicenseNotPresentForbidden", 403)]
    no_code = [r for r in rows if r.table_id == "teams-phone" and r.code is None]
    assert len(no_code) == 3  # consent blocked, and the two "No Incoming Call notification" problems
    assert _find(rows, "teams-phone", 400, 8523).text.startswith("Invalid request: SourceCallerIdNumber")
    assert [r.subcode for r in rows if r.table_id == "teams-phone-5804xx"] == [580406, 580462, 580464]


def test_category_advice_is_seed_000s_last_section(seeds_dir: Path) -> None:
    text = next(seeds_dir.glob("000_*.txt")).read_text(encoding="utf-8")
    section = text.split("## How to mitigate or resolve", 1)[1]
    advice = normalize(category_advice(Category.UNKNOWN))
    for line in filter(None, (normalize(x) for x in section.splitlines())):
        assert line in advice


def test_normalize_reduces_markdown_to_words() -> None:
    text = "Add the **license** and see [Prerequisites](../x.md#p).\n```csharp\nvar a = `b`;\n```\n"
    assert normalize(text) == "Add the license and see Prerequisites. var a = b;"


def test_an_unknown_document_is_an_error() -> None:
    with pytest.raises(SeedError, match="unknown document"):
        parse_seed("999_0.txt", "# Something else\n| 1 | 2 |\n")


def test_the_flat_parser_ends_a_table_at_a_heading() -> None:
    text = (
        "Troubleshooting call end response codes for Calling SDK\n\nChat SDK error codes\n\n"
        "Code Message Advice\n401 Unauthorized Check the token.\nsecond line\n\nNext heading\n\n"
        "403 Not a row: the table ended\n"
    )
    assert parse_seed("001_a.txt", text) == [
        SeedRow("001_a.txt", "chat", 401, None, "Unauthorized Check the token. second line")
    ]


def test_read_seeds_needs_documents(tmp_path: Path) -> None:
    with pytest.raises(SeedError, match="no seed documents"):
        list(read_seeds(tmp_path))
