"""Make text safe to show in a chat message or a terminal.

Text that comes from an event (the event's message, IDs, details, even the resource name) is
attacker-controllable: whoever can call the callback URL or set an `operationContext` chooses it.
Shown raw it could ping a whole Slack channel (`<!channel>`), plant a disguised link
(`<http://evil|docs>`, `[docs](http://evil)`), forge Markdown structure (headings, lists, fake
labels on new lines), hide or reorder text with bidi controls, or drive a terminal with ANSI codes.

Every renderer passes event text through `event_text` first (one line, no links), then through
the target's escaper (`slack_mrkdwn`, `teams_markdown`, or `terminal` for the terminal).
Catalog text (Guidance) is trusted, but goes through the same escapers; renderers only add their
own deliberate formatting (bold labels, bullets) around escaped pieces.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, TypeVar, cast

__all__ = [
    "ELLIPSIS",
    "MEMO_CHARS",
    "MEMO_ENTRIES",
    "clean",
    "defang_urls",
    "event_text",
    "memo",
    "plain",
    "slack_mrkdwn",
    "slack_plain",
    "teams_markdown",
    "terminal",
    "truncate",
]

ELLIPSIS = "…"


# The same catalog texts (meaning, advice, titles) are escaped for every alert: remember the latest
# few thousand. Only short texts: event text is untrusted, and a cache of long texts is memory an
# attacker could fill.
MEMO_ENTRIES = 4096
MEMO_CHARS = 2048
_F = TypeVar("_F", bound=Callable[..., object])


def memo(function: _F) -> _F:
    """`function` (pure, its first argument a str) with its answers for short texts remembered."""
    cached = functools.lru_cache(maxsize=MEMO_ENTRIES)(function)

    @functools.wraps(function)
    def call(text: str, *args: Any) -> Any:
        return cached(text, *args) if len(text) <= MEMO_CHARS else function(text, *args)

    return cast(_F, call)


# C0/C1 controls (except tab and newline), DEL, and the Unicode bidi/invisible-format controls that
# can reorder or hide text ("Trojan Source") or smuggle zero-width marks into an ID.
_CONTROLS = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff]"
)
# Schemes and "www." are what chat clients turn into links by themselves, without any Markdown.
# The scheme is optional: "://" alone is broken too (a client may complete it).
_URL_SCHEME = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.\-]{1,31})?://")
_WWW = re.compile(r"\b(www)\.", re.IGNORECASE)

# Teams clients disagree on backslash escapes (MicrosoftDocs/msteams-docs#5793,
# microsoft/AdaptiveCards#4677), so markup characters are replaced by look-alikes that no
# Markdown dialect, HTML parser or mention parser gives a meaning to, on any client.
_TEAMS_LOOKALIKES = str.maketrans(
    {
        "<": "‹",  # no HTML, no <at>mention</at>, no <autolink>
        ">": "›",  # no blockquote
        "[": "［",  # no [text](url), no [ref]: url, no ![image](url)
        "]": "］",
    }
)
# An entity such as &lt;at&gt; would come back as "<at>" in a client that decodes entities.
_TEAMS_ENTITY = re.compile(r"&(?=#?[A-Za-z0-9]+;)")
# What makes a line a heading, list item or quote in Markdown (after up to three spaces).
_TEAMS_BLOCK_START = re.compile(r"^(\s{0,3})(#{1,6}(?=\s|$)|[-+*](?=\s|$)|\d{1,9}[.)](?=\s|$))")
# A line of only -, =, * or _ is a rule, or turns the line above into a heading.
_TEAMS_RULE = re.compile(r"^(\s{0,3})([-=*_])(?=[-=*_\s]*$)")
_BLOCK_LOOKALIKES = {"#": "＃", "-": "‐", "+": "＋", "*": "∗", ".": "．", ")": "）", "=": "＝", "_": "＿"}


# Text that no escaper here changes: ASCII letters, digits and inert punctuation, single-spaced,
# starting with a letter or digit but not as a numbered list item ("1. "), and no URL (checked
# apart: a lookahead over the whole text would double the cost). Most IDs, times and names are
# such text: the renderers pass it through without escaping, and without filling the escapers' caches.
_PLAIN = re.compile(r"(?!\d{1,9}\.(?: |$))[A-Za-z0-9][A-Za-z0-9_.:@/+=,;-]*(?: [A-Za-z0-9_.:@/+=,;-]+)*")


# plain()'s answers for short texts. Each alert asks about the same texts twice, once per renderer
# (its IDs, times, names), and about the same titles every time: a dictionary lookup is a fifth of
# the check. Emptied when full rather than kept in order (lru_cache's bookkeeping costs as much as
# the check); a flood of unique IDs costs one check each, and keeps at most 1024 texts of 512 characters.
_PLAIN_ENTRIES = 1024
_PLAIN_CHARS = 512
_PLAIN_ANSWERS: dict[str, bool] = {}


def plain(text: str) -> bool:
    """Whether every escaper here (`event_text`, `teams_markdown`, `slack_mrkdwn`, `slack_plain`)
    returns `text` unchanged."""
    answer = _PLAIN_ANSWERS.get(text)
    if answer is None:
        answer = _is_plain(text)
        if len(text) <= _PLAIN_CHARS:
            if len(_PLAIN_ANSWERS) >= _PLAIN_ENTRIES:
                _PLAIN_ANSWERS.clear()
            _PLAIN_ANSWERS[text] = answer
    return answer


def _is_plain(text: str) -> bool:
    return _PLAIN.fullmatch(text) is not None and "://" not in text and "www." not in text.lower()


def clean(text: str) -> str:
    """Remove control and invisible bidi characters; keep printable text, tabs and newlines."""
    if text.isprintable():  # every character _CONTROLS removes is non-printable: nothing to do
        return text
    return _CONTROLS.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def truncate(text: str, limit: int) -> str:
    """Cut `text` to at most `limit` characters, ending with an ellipsis when it was cut."""
    if len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    return text[: limit - 1].rstrip() + ELLIPSIS


def defang_urls(text: str) -> str:
    """Break URLs so that no client turns them into links: `https://x` → `https[:]//x`."""
    if "://" not in text and "www." not in text.lower():  # the regexes cannot match: skip them
        return text
    return _WWW.sub(r"\1[.]", _URL_SCHEME.sub(r"\1[:]//", text))


@memo
def event_text(text: str) -> str:
    """Prepare untrusted event text for any format: one clean line, URLs defanged.

    One line matters: a newline would let the event start a Markdown heading or list, or print a
    fake "Severity: none" row under ours.
    """
    return defang_urls(" ".join(clean(text).split()))


@memo
def slack_mrkdwn(text: str) -> str:
    """Escape text for Slack mrkdwn: `&`, `<`, `>` become entities, so nothing pings or links.

    Slack only gives `<` `>` a meaning (`<!channel>`, `<@U123>`, `<url|label>`); escaped, they
    are shown as typed.
    """
    return clean(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@memo
def slack_plain(text: str) -> str:
    """Text for a Slack plain_text object (the header): angle brackets become look-alikes.

    plain_text is not parsed for mentions or links, but Slack documents no escaping for it
    either, so instead of entities that might show up literally, nothing bracket-shaped is left.
    """
    return clean(text).replace("<", "‹").replace(">", "›")


@memo
def teams_markdown(text: str) -> str:
    """Neutralise Adaptive Card Markdown: no links, mentions, HTML, headings, lists or quotes.

    `<` `>` `[` `]` become look-alikes, entity-like `&…;` loses its `&`, and a line that would
    start a heading, list or quote starts with a look-alike of its marker instead. Bold and
    italics are left alone: they cannot link, ping or hide anything.
    """
    text = _TEAMS_ENTITY.sub("＆", clean(text).translate(_TEAMS_LOOKALIKES))
    if "\n" not in text:  # one line (event text always is): no split and join
        return _TEAMS_BLOCK_START.sub(_neutral_marker, _TEAMS_RULE.sub(_neutral_marker, text))
    return "\n".join(
        _TEAMS_BLOCK_START.sub(_neutral_marker, _TEAMS_RULE.sub(_neutral_marker, line))
        for line in text.split("\n")
    )


def _neutral_marker(match: re.Match[str]) -> str:
    indent, marker = match.group(1), match.group(2)
    # The last character makes the marker ("#", "-", the "." of "1."); swap only that one.
    return indent + marker[:-1] + _BLOCK_LOOKALIKES[marker[-1]]


def terminal(text: str) -> str:
    """Make text safe to print: control and bidi characters become visible escapes (`\\x1b`)."""
    return _CONTROLS.sub(_visible, text.replace("\r\n", "\n"))


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
