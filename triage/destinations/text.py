"""Alert → a few plain lines for the terminal (`replay --format text`).

Nothing is shortened. Event text is kept on one line and its control characters are shown as
escapes (`\x1b`), so an event cannot drive the terminal or forge extra lines.
"""

from __future__ import annotations

from .. import report
from ..model import Alert
from ..render import content
from ..render.escape import event_text, terminal
from . import Kind

__all__ = ["KIND", "render"]

_LABEL_WIDTH = 12
_MAX_SAMPLES = 5


def render(alert: Alert) -> str:
    """A compact multi-line description of `alert`, ending without a newline."""
    if alert.status != "firing":
        headline, details = content.notice(alert)
        return f"{_event(headline)}\n  {_event(details)}"
    inc, guide = alert.incident, alert.guidance
    label = content.SEVERITY_LABEL[alert.severity].upper()
    lines = [f"{label}  {_event(content.headline(alert))}"]
    digest = content.digest_line(alert)
    if digest:
        lines.append(f"  {digest}")
    lines.append(_row("What", terminal(guide.message)))
    said = content.event_message(alert)
    if said:
        lines.append(_row("Event says", _event(said)))
    facts = [(t, v) for t, v in content.summary_facts(alert) if t not in ("Event", "Resource")]
    lines += [_row(title, _event(value)) for title, value in facts]
    lines += _block("IDs", [f"{_event(k)}={_event(v)}" for k, v in inc.ids.items()])
    lines += _block("Details", [f"{_event(k)}={_event(v)}" for k, v in inc.details.items()])
    if alert.digest and alert.samples:
        shown = alert.samples[:_MAX_SAMPLES]
        rows = [" ".join(f"{_event(k)}={_event(v)}" for k, v in s.items()) for s in shown]
        lines += _block(f"Samples ({len(shown)} of {content.format_count(alert.count)})", rows)
    advice = [("- " if a.bullet else "") + terminal(a.text) for a in content.advice_lines(guide.advice)]
    lines += _block("Advice", advice)
    lines += _block(content.ALSO_TITLE, [terminal(line) for line in content.also_documented(guide)])
    url = content.docs_url(guide)
    if url:
        lines.append(_row("Docs", url))
    lines.append(_row("Catalog", terminal(" · ".join([content.catalog_note(guide), *guide.flags]))))
    return "\n".join(lines)


def _event(text: str) -> str:
    # Escape first so a control character shows up as "\x1b" instead of vanishing.
    return event_text(terminal(text))


def _row(title: str, value: str) -> str:
    return f"  {(title + ':').ljust(_LABEL_WIDTH - 1)} {value}"


def _block(title: str, rows: list[str]) -> list[str]:
    if not rows:
        return []
    indent = " " * (_LABEL_WIDTH + 2)
    return [_row(title, rows[0]), *(indent + row for row in rows[1:])]


# Printed by `replay`, never posted.
KIND = Kind(name="text", render=render, send_interval=0.0, postable=False, report=report.text)
