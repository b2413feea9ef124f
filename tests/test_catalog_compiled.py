"""The compiled catalog (`catalog/compiled.json`), which the Function App loads instead of
validating the TOML files: it is what the TOML files give, every lookup answers from it exactly
as from the validated TOML files, and a stale, corrupt or foreign file is refused with the fix."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from triage import catalog
from triage.catalog import COMPILED_NAME, RUNTIME_TYPES, CatalogError, load_compiled
from triage.catalog_files import compile_catalog, read_files, runtime_files
from triage.cli.catalog import main
from triage.model import CONTEXTS, Category

REPO = Path(__file__).resolve().parent.parent
FIX = "python -m triage catalog build"
# Events with a meaning of their own to the catalog beside those the files name.
EVENTS = ("CallDisconnected", "SMSDeliveryReportReceived", "PlayFailed", "SomeFutureFailed")


@pytest.fixture
def catalog_copy(tmp_path: Path) -> Path:
    target = tmp_path / "catalog"
    shutil.copytree(REPO / "catalog", target)
    return target


@pytest.fixture
def fresh_catalog() -> Iterator[None]:
    """The loaded catalog is cached per process: drop it around a test that moves CATALOG_DIR."""
    catalog._catalog.cache_clear()
    yield
    catalog._catalog.cache_clear()


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


# -- it is what the TOML files give --------------------------------------------------------------------


def test_the_committed_compiled_catalog_is_what_the_toml_files_give() -> None:
    committed = (REPO / "catalog" / COMPILED_NAME).read_text(encoding="utf-8")
    assert committed == compile_catalog(REPO / "catalog"), f"stale: run `{FIX}` and commit {COMPILED_NAME}"


def test_the_loaded_catalog_equals_the_validated_toml_files_field_for_field() -> None:
    files, problems = read_files(REPO / "catalog")
    assert files is not None and problems == []
    assert load_compiled(REPO / "catalog") == runtime_files(files)


def test_every_field_of_the_file_format_reaches_the_runtime() -> None:
    from triage import catalog_files

    for name, kind in RUNTIME_TYPES.items():
        model = getattr(catalog_files, name)
        assert list(model.model_fields) == list(kind.__struct_fields__), name


def _keys(files: catalog.CatalogFiles) -> tuple[set[tuple[int | None, int | None]], list[str | None]]:
    """Every documented (code, subcode), every code and subcode alone, the edges of every code
    class and fallback class, and every event kind the files name."""
    entries = [e for t in files.tables for e in t.entry]
    codes: set[int | None] = {e.code for e in entries} | {0, 200, 799, 99_999}
    subcodes: set[int | None] = {e.subcode for e in entries} | {0, 1, 99_999}
    classes = [*files.classes.class_, *(c for f in files.fallbacks.fallback for c in f.class_)]
    for c in classes:
        codes |= {c.first - 1, c.first, c.last, c.last + 1}
    pairs = {(e.code, e.subcode) for e in entries}
    pairs |= {(c, None) for c in codes} | {(None, s) for s in subcodes}
    pairs |= {(200, s) for s in subcodes} | {(c, 0) for c in codes}
    events = {*EVENTS, *files.fallbacks.actions}
    for e in entries:
        events |= {*e.events, *(e.when.events if e.when else ())}
    return pairs, [None, *sorted(events)]


def _answers(files: catalog.CatalogFiles) -> list[object]:
    """What every public function answers, for every key: from whatever `_catalog()` gives."""
    pairs, events = _keys(files)
    found: list[object] = [
        ((code, subcode, context, event), catalog.lookup(code, subcode, context, event))
        for code, subcode in sorted(pairs, key=repr)
        for context in (None, *CONTEXTS)
        for event in events
    ]
    for table, e in ((t, e) for t in files.tables for e in t.entry):
        if e.when:  # the answer once an event met the row's conditions
            key = f"{table.id}:{catalog._code_text(e.code, e.subcode)}"
            found += [catalog.lookup(e.code, e.subcode, c, event, key) for c in CONTEXTS for event in events]
        if e.name:
            found += [catalog.lookup_name(e.name, context) for context in (None, *CONTEXTS)]
        if e.when:
            found += [
                catalog.documented_row(event, e.code, e.subcode, participant, f"{e.when.message} …")
                for event in events
                if event
                for participant in ("8:acs:1", "8:orgid:1", "4:+14255550123", "")
            ]
    found += [catalog.search(text) for text in ("call", "network", "opted out", "licence", "408", "zzz")]
    found += [catalog.category_advice(c) for c in Category]
    found.append(catalog.table_sizes())
    return found


def test_every_lookup_answers_as_the_catalog_built_from_the_toml_files(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compiled = load_compiled(REPO / "catalog")
    files, _ = read_files(REPO / "catalog")
    assert files is not None
    from_compiled = catalog._Catalog(compiled)
    # The indexes over the pydantic models themselves: how the catalog was loaded before the
    # compiled form (the runtime types repeat the models' attribute names, so both fit).
    from_toml = catalog._Catalog(files)  # type: ignore[arg-type]
    monkeypatch.setattr(catalog, "_catalog", lambda: from_compiled)
    answers = _answers(compiled)
    monkeypatch.setattr(catalog, "_catalog", lambda: from_toml)
    assert len(answers) > 50_000
    assert answers == _answers(compiled)


# -- refused with the fix ------------------------------------------------------------------------------


def test_a_compiled_catalog_older_than_its_toml_files_is_refused_with_the_fix(catalog_copy: Path) -> None:
    _edit(catalog_copy / "chat.toml", 'message = "', 'message = "Edited: ')
    with pytest.raises(CatalogError, match=rf"{COMPILED_NAME} is stale: .*{FIX}"):
        load_compiled(catalog_copy)


def test_an_added_or_removed_toml_file_makes_the_compiled_catalog_stale(catalog_copy: Path) -> None:
    (catalog_copy / "tips.toml").rename(catalog_copy / "tips-moved.toml")
    with pytest.raises(CatalogError, match="is stale"):
        load_compiled(catalog_copy)


def test_windows_line_ends_in_the_toml_files_do_not_make_it_stale(catalog_copy: Path) -> None:
    path = catalog_copy / "chat.toml"
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    assert load_compiled(catalog_copy) == load_compiled(REPO / "catalog")


def test_a_missing_or_truncated_compiled_catalog_is_refused_with_the_fix(catalog_copy: Path) -> None:
    path = catalog_copy / COMPILED_NAME
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CatalogError, match=rf"{COMPILED_NAME} cannot be read .*{FIX}"):
        load_compiled(catalog_copy)
    path.unlink()
    with pytest.raises(CatalogError, match=rf"{COMPILED_NAME} cannot be read .*{FIX}"):
        load_compiled(catalog_copy)


def test_a_compiled_catalog_of_another_layout_is_refused_with_the_fix(catalog_copy: Path) -> None:
    path = catalog_copy / COMPILED_NAME
    data = json.loads(path.read_text(encoding="utf-8"))
    data["fields"]["Entry"].append("severity")
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(CatalogError, match=rf"another layout .*{FIX}"):
        load_compiled(catalog_copy)


@pytest.mark.parametrize("text", ["[1, 2]", '"catalog"', '{"format": 1}', "{}"])
def test_json_that_is_no_compiled_catalog_of_this_layout_is_refused_with_the_fix(
    catalog_copy: Path, text: str
) -> None:
    (catalog_copy / COMPILED_NAME).write_text(text, encoding="utf-8")
    with pytest.raises(CatalogError, match=rf"another layout .*{FIX}"):
        load_compiled(catalog_copy)


def test_a_compiled_catalog_with_a_value_of_another_kind_is_refused_with_the_fix(
    catalog_copy: Path,
) -> None:
    path = catalog_copy / COMPILED_NAME
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    data["tables"][0][2] = "fax"  # a context the code does not know
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(CatalogError, match=rf"is corrupt .*tables.*{FIX}"):
        load_compiled(catalog_copy)


def test_a_compiled_catalog_with_a_damaged_row_is_refused_with_the_fix(catalog_copy: Path) -> None:
    path = catalog_copy / COMPILED_NAME
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    entries = data["tables"][0][-1]  # a table's last field: its entries
    entries[3] = entries[3][:5]
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(CatalogError, match=rf"is corrupt .*{FIX}"):
        load_compiled(catalog_copy)


# -- the commands ------------------------------------------------------------------------------------


def test_catalog_build_writes_what_the_edited_toml_files_say_and_check_sees_it(
    catalog_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit(catalog_copy / "chat.toml", 'message = "', 'message = "Edited: ')
    assert main(["catalog", "build", "--check", "--catalog", str(catalog_copy)]) == 1
    assert f"{COMPILED_NAME} is not current; run `{FIX}`" in capsys.readouterr().out
    assert main(["catalog", "build", "--catalog", str(catalog_copy)]) == 0
    assert f"wrote catalog/{COMPILED_NAME}" in capsys.readouterr().out
    assert main(["catalog", "build", "--check", "--catalog", str(catalog_copy)]) == 0
    chat = next(t for t in load_compiled(catalog_copy).tables if t.id == "chat")
    assert chat.entry[0].message.startswith("Edited: ")
    assert main(["catalog", "build", "--catalog", str(catalog_copy)]) == 0
    assert f"unchanged: catalog/{COMPILED_NAME}" in capsys.readouterr().out


def test_catalog_build_refuses_toml_files_that_do_not_pass_lint(
    catalog_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit(catalog_copy / "chat.toml", 'context = "chat"', 'context = "fax"')
    before = (catalog_copy / COMPILED_NAME).read_bytes()
    assert main(["catalog", "build", "--catalog", str(catalog_copy)]) == 1
    assert "chat.toml: table.0.context:" in capsys.readouterr().err
    assert (catalog_copy / COMPILED_NAME).read_bytes() == before


def test_catalog_lint_fails_when_the_compiled_catalog_is_stale(
    catalog_copy: Path,
    monkeypatch: pytest.MonkeyPatch,
    fresh_catalog: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _edit(catalog_copy / "chat.toml", 'message = "', 'message = "Edited: ')
    monkeypatch.setattr(catalog, "CATALOG_DIR", catalog_copy)
    assert main(["catalog", "lint"]) == 1
    assert f"{COMPILED_NAME} is stale" in capsys.readouterr().out
