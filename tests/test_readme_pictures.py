"""README's pictures show what today's code renders: each picture in docs/img has the card JSON it
was taken from beside it, and that JSON must be what the code renders now."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.preview import README_PICTURES, card_file_text, png_is_blank, png_size, readme_cards

IMG = Path(__file__).resolve().parent.parent / "docs" / "img"
REDRAW = "redraw them: .venv/bin/python -m tools.preview --readme --out docs/img (and commit both files)"


@pytest.fixture(scope="module", name="cards")
def cards_fixture() -> dict[str, str]:
    return {name: card_file_text(payload) for name, (_, _, _, payload) in readme_cards().items()}


@pytest.mark.parametrize("name", README_PICTURES)
def test_the_committed_card_beside_each_picture_is_what_the_code_renders_now(
    name: str, cards: dict[str, str]
) -> None:
    committed = (IMG / f"{name}.json").read_text(encoding="utf-8")
    assert committed == cards[name], f"docs/img/{name}.png shows another card than the code renders; {REDRAW}"


@pytest.mark.parametrize("name", README_PICTURES)
def test_each_picture_is_a_drawn_card_at_twice_the_page_width(name: str) -> None:
    picture = IMG / f"{name}.png"
    width, height = png_size(picture)
    assert width in (2 * 880, 2 * 760) and height > 200
    assert not png_is_blank(picture)


def test_the_readme_shows_the_pictures_it_has() -> None:
    readme = (IMG.parent.parent / "README.md").read_text(encoding="utf-8")
    shown = {name for name in README_PICTURES if f"docs/img/{name}.png" in readme}
    assert shown >= {"teams-card", "slack-message", "teams-report", "slack-report"}
    assert sorted(p.stem for p in IMG.glob("*.png")) == sorted(README_PICTURES)
