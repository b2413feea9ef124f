"""`python -m triage catalog sync PAGE…`: the catalog follows the Learn pages. Tested on edited
copies of the seed pages against a copy of the catalog: a changed message, an added row, a removed
row and a new table are each reported by table and code, written, and found again by `lookup`."""

from __future__ import annotations

import os
import shutil
import tomllib
from pathlib import Path

import pytest

from tools.seeds import check_seeds, default_seeds_dir
from triage.cli.catalog import main

REPO = Path(__file__).resolve().parent.parent
SEED_003 = "003_82b23087768919e6.txt"
SEED_000 = "000_2fa7e0829c1b24b8.txt"
EMAIL_TABLE = """
## Email SDK error codes

| Error code | Description | Action to take |
| -------- | ---------------| ---------------|
| 4901 | Email sender domain not verified | Verify the domain before sending |
"""


@pytest.fixture
def pages(tmp_path: Path) -> Path:
    seeds = default_seeds_dir()
    if not (seeds / SEED_003).is_file():
        if os.environ.get("ACS_TRIAGE_REQUIRE_SEEDS") == "1":
            pytest.fail(f"no seed documents in {seeds}; ACS_TRIAGE_REQUIRE_SEEDS=1 requires them")
        pytest.skip(f"no seed documents in {seeds} (set ACS_TRIAGE_SEEDS)")
    target = tmp_path / "pages"
    target.mkdir()
    for seed in (SEED_000, SEED_003):
        shutil.copy(seeds / seed, target / seed)
    return target


@pytest.fixture
def catalog_dir(tmp_path: Path) -> Path:
    target = tmp_path / "catalog"
    shutil.copytree(REPO / "catalog", target)
    return target


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _edit_sms_page(page: Path) -> None:
    """Seed 003 with a changed row (4006), an added row (4011), a removed row (4005), a new table."""
    _edit(
        page,
        "| 4006 | The Destination/To number isn't reachable|",
        "| 4006 | The Destination/To number is unreachable|",
    )
    _edit(
        page,
        "| 9999 |",
        "| 4011 | Message is blocked by the sender's policy | Review your policy |\n| 9999 |",
    )
    _edit(page, "| 4005 | Message is blocked by Destination carrier|  |\n", "")
    _edit(page, "## Related information", EMAIL_TABLE + "\n## Related information")


def _sms_entries(catalog_dir: Path) -> dict[int, dict[str, object]]:
    data = tomllib.loads((catalog_dir / "sms.toml").read_text(encoding="utf-8"))
    return {e["code"]: e for e in data["table"][0]["entry"]}


def test_sync_of_unchanged_pages_reports_nothing_and_check_passes(
    pages: Path, catalog_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = {p.name: p.read_text() for p in catalog_dir.iterdir()}
    assert main(["catalog", "sync", str(pages), "--check", "--catalog", str(catalog_dir)]) == 0
    assert "the catalog matches every row of these pages" in capsys.readouterr().out
    assert {p.name: p.read_text() for p in catalog_dir.iterdir()} == before


def test_check_names_changed_added_removed_rows_and_a_new_table_and_changes_nothing(
    pages: Path, catalog_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit_sms_page(pages / SEED_003)
    before = {p.name: p.read_text() for p in catalog_dir.iterdir()}
    assert main(["catalog", "sync", str(pages), "--check", "--catalog", str(catalog_dir)]) == 1
    out = capsys.readouterr().out
    assert (
        "~ changed sms 4006: \"The Destination/To number isn't reachable Try resending the message at a"
        " later time\" → 'The Destination/To number is unreachable Try resending the message at a later time'"
    ) in out
    assert '+ added sms 4011: "Message is blocked by the sender\'s policy Review your policy"' in out
    assert f"- removed sms 4005 from {SEED_003}: 'Message blocked by Destination carrier.'" in out
    assert "+ new table email-sdk-error-codes (1 rows" in out
    assert "+ added email-sdk-error-codes 4901: 'Email sender domain not verified Verify the domain" in out
    assert {p.name: p.read_text() for p in catalog_dir.iterdir()} == before


def test_sync_writes_the_rows_keeps_notes_flags_and_categories_and_the_catalog_stays_valid(
    pages: Path, catalog_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit_sms_page(pages / SEED_003)
    _edit(
        pages / SEED_000,
        "Failed to create CallAgent, an instance of CallAgent associated with this identity already exists.",
        "Failed to create CallAgent, this identity already has a CallAgent.",
    )
    old = _sms_entries(catalog_dir)
    assert main(["catalog", "sync", str(pages), "--catalog", str(catalog_dir)]) == 0
    out = capsys.readouterr().out
    assert "wrote sms.toml" in out and "wrote email-sdk-error-codes.toml" in out
    assert "~ changed create-callagent 409/40228" in out
    new = _sms_entries(catalog_dir)
    # seed 003's words changed: its wording is updated, seed 001's words and our category stay
    wording = [w for w in new[4006]["wording"] if w["seed"] == SEED_003]  # type: ignore[union-attr]
    assert wording[0]["message"] == "The Destination/To number is unreachable"
    assert new[4006]["message"] == old[4006]["message"]
    assert (new[4006]["category"], new[4006]["category_origin"]) == ("ExpectedError", "catalog")
    assert new[4001]["flags"] == old[4001]["flags"]
    # 4005 is still on seed 001's page: kept, for that page only
    assert new[4005]["seeds"] == ["001_ba7421ad63927b8c.txt"]
    assert new[4011]["message"] == "Message is blocked by the sender's policy Review your policy"
    assert (catalog_dir / "sms.toml").read_text().startswith("# SMS error codes: the DeliveryStatusDetails")
    # A second sync finds nothing left to do, and every edited row is answered with its words.
    assert main(["catalog", "sync", str(pages), "--check", "--catalog", str(catalog_dir)]) == 0
    # The compiled form the Function App loads was rebuilt with the TOML files it comes from.
    assert "wrote catalog/compiled.json" in out
    assert main(["catalog", "build", "--check", "--catalog", str(catalog_dir)]) == 0
    assert main(["catalog", "lint"]) == 0  # the repository's own catalog was not touched
    capsys.readouterr()


def test_the_repositorys_catalog_matches_the_seed_pages() -> None:
    seeds = default_seeds_dir()
    if not any(seeds.glob("[0-9][0-9][0-9]_*.txt")):
        pytest.skip(f"no seed documents in {seeds}")
    assert main(["catalog", "sync", str(seeds), "--check"]) == 0
    assert check_seeds(seeds) == []


def test_a_page_the_catalog_does_not_know_is_an_error_naming_its_title(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "other.md"
    page.write_text("---\ntitle: Email troubleshooting\n---\n# Email\n", encoding="utf-8")
    assert main(["catalog", "sync", str(page), "--check"]) == 1
    assert "title 'Email troubleshooting' is no page in pages.toml" in capsys.readouterr().err
