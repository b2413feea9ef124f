"""Text from events is attacker-controllable: it must reach chat and terminals inert."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from triage.render import escape
from triage.render.content import fit
from triage.render.escape import (
    ELLIPSIS,
    clean,
    defang_urls,
    event_text,
    plain,
    slack_mrkdwn,
    slack_plain,
    teams_markdown,
    terminal,
    truncate,
)

GUID = "1b541d21-bd0e-4695-a9ce-bf3290a807bd"


# --- Slack mrkdwn -------------------------------------------------------------------------------


def test_slack_channel_ping_is_shown_as_text_not_sent_as_a_ping() -> None:
    assert (
        slack_mrkdwn("<!channel> <!here> <!everyone>") == "&lt;!channel&gt; &lt;!here&gt; &lt;!everyone&gt;"
    )


def test_slack_user_mention_and_masked_link_are_escaped() -> None:
    assert slack_mrkdwn("<@U123> <http://x|y>") == "&lt;@U123&gt; &lt;http://x|y&gt;"


def test_slack_ampersand_is_escaped_first_so_entities_in_events_stay_literal() -> None:
    assert slack_mrkdwn("&lt;!channel&gt; & co") == "&amp;lt;!channel&amp;gt; &amp; co"


def test_slack_leaves_ids_and_ordinary_text_unchanged() -> None:
    assert (
        slack_mrkdwn(f"correlationId {GUID}: file.wav (16 kHz)") == f"correlationId {GUID}: file.wav (16 kHz)"
    )


def test_slack_header_plain_text_keeps_no_angle_brackets() -> None:
    assert slack_plain("<!channel> a & b") == "‹!channel› a & b"


# --- Teams Markdown -----------------------------------------------------------------------------


def test_teams_markdown_link_cannot_be_formed() -> None:
    out = teams_markdown("[docs](http://evil.example)")
    assert "[" not in out and "]" not in out
    assert "docs" in out and "evil.example" in out


def test_teams_image_and_reference_links_cannot_be_formed() -> None:
    for text in ("![x](http://evil/p.png)", "[x][1]", "[1]: http://evil"):
        out = teams_markdown(text)
        assert "[" not in out and "]" not in out, text


def test_teams_at_mention_html_and_autolink_are_neutralised() -> None:
    out = teams_markdown("<at>Adele</at> <b>bold</b> <http://evil>")
    assert "<" not in out and ">" not in out
    assert "Adele" in out


def test_teams_entities_cannot_smuggle_a_mention() -> None:
    out = teams_markdown("&lt;at&gt;Adele&lt;/at&gt;")
    assert "&lt;" not in out and "&gt;" not in out


def test_teams_headings_lists_quotes_and_rules_are_neutralised_on_every_line() -> None:
    text = "# Heading\n- item\n* item\n+ item\n1. first\n2) second\n> quote\n---\n==="
    lines = teams_markdown(text).split("\n")
    assert lines[0].startswith("＃")
    assert [line[0] for line in lines[1:4]] == ["‐", "∗", "＋"]
    assert lines[4] == "1． first" and lines[5] == "2） second"
    assert lines[6].startswith("›")
    assert not lines[7].startswith("-") and not lines[8].startswith("=")


def test_teams_keeps_bold_italic_ids_and_ordinary_punctuation() -> None:
    text = f"**Note:** _file_ {GUID} (16-bit, 16 kHz) 8:acs:x #3 a-b"
    assert teams_markdown(text) == text


# --- event text ---------------------------------------------------------------------------------


def test_event_text_is_one_line_so_it_cannot_start_markdown_blocks_or_forge_rows() -> None:
    assert event_text("ok\n# Heading\r\n- item\n\nSeverity: none") == "ok # Heading - item Severity: none"


def test_event_text_defangs_urls_so_clients_do_not_autolink_them() -> None:
    assert event_text("see https://evil.example/x and www.evil.example") == (
        "see https[:]//evil.example/x and www[.]evil.example"
    )
    assert defang_urls("ftp://h") == "ftp[:]//h"


def test_clean_removes_terminal_escapes_bidi_overrides_and_zero_width_marks() -> None:
    assert clean("a\x1b[31mb\u202ec\u200bd\ufeff") == "a[31mbcd"
    assert clean("tab\tand\nnewline") == "tab\tand\nnewline"


def test_terminal_shows_control_characters_instead_of_obeying_them() -> None:
    assert terminal("a\x1b[2Jb\u202e") == "a\\x1b[2Jb\\u202e"


# --- shortening ---------------------------------------------------------------------------------


def test_truncate_ends_with_an_ellipsis_and_respects_the_limit() -> None:
    assert truncate("abcdef", 10) == "abcdef"
    assert truncate("abcdef", 4) == "abc" + ELLIPSIS
    assert truncate("abcdef", 0) == ""


def test_fit_never_cuts_an_escape_sequence_in_half() -> None:
    text, cut = fit("<" * 100, 20, slack_mrkdwn)
    assert cut and len(text) <= 20
    assert text.endswith(ELLIPSIS)
    assert text[:-1].replace("&lt;", "") == ""


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_no_event_text_reaches_slack_with_a_control_sequence(text: str) -> None:
    out = slack_mrkdwn(event_text(text))
    assert "<" not in out and ">" not in out and "\n" not in out
    assert "&" not in out.replace("&amp;", "").replace("&lt;", "").replace("&gt;", "")


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_no_event_text_reaches_teams_with_link_or_mention_syntax(text: str) -> None:
    out = teams_markdown(event_text(text))
    assert not set(out) & set("<>[]\n")
    assert "://" not in out


# --- plain text: what the renderers pass through without escaping ------------------------------

# Every character an escaper or a Markdown/mrkdwn reader gives a meaning to, with the plain ones.
_TRICKY = st.text(alphabet="ab19 .:/)-_+=*#&<>[]`~|!@,;wW\n\t\u202e\u200b\x1b", max_size=12)


@settings(max_examples=2_000, deadline=None)
@given(st.one_of(_TRICKY, st.text(max_size=12)))
def test_text_called_plain_is_left_unchanged_by_every_escaper(text: str) -> None:
    if plain(text):
        assert event_text(text) == text
        assert teams_markdown(text) == text
        assert slack_mrkdwn(text) == text
        assert slack_plain(text) == text


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(_TRICKY, st.text(max_size=12)), max_size=20))
def test_plain_answers_the_same_when_asked_again(texts: list[str]) -> None:
    # plain() remembers its answers: the second asking of each text comes from that memory.
    first = [plain(text) for text in texts]
    assert [plain(text) for text in reversed(texts)] == first[::-1]
    assert first == [escape._is_plain(text) for text in texts]


def test_plain_remembers_a_bounded_number_of_short_texts() -> None:
    for n in range(3 * escape._PLAIN_ENTRIES):
        assert plain(f"{GUID}-{n}")
        assert len(escape._PLAIN_ANSWERS) <= escape._PLAIN_ENTRIES
    long_text = "a" * (escape._PLAIN_CHARS + 1)
    assert plain(long_text)
    assert long_text not in escape._PLAIN_ANSWERS


def test_ids_times_and_names_are_plain() -> None:
    for text in (GUID, "2026-09-15 11:36:13 UTC", "contoso-acs", "Outgoing_20260915113613_ab12", "aHR0c+/=="):
        assert plain(text), text


def test_text_an_escaper_would_change_is_not_plain() -> None:
    for text in (
        "1. step",
        "12) step",
        "- item",
        "_",
        "a  b",
        " a",
        "http://x",
        "see WWW.x",
        "<!here>",
        "a&b",
        "",
    ):
        assert not plain(text), text
