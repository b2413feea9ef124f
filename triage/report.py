"""The daily report: what failed most over a period, built from the store's hourly counters.

`CountHourly` is the pipeline's counting step (one store write per batch, one counter per
fingerprint). `build` reads two periods of counters (this one and the one before, for the change)
into a `DailyReport`; `teams_card`, `slack_message` and `text` draw it, the bar chart included
(Adaptive Card column widths, Block Kit text bars: no image to host). `triage.schedule.due`
decides from ACS_TRIAGE_REPORT_SCHEDULE (cron, UTC) whether a report is due; `Service.report_tick` claims the
scheduled time in the store so that it is posted once whichever instance's timer sees it first.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from msgspec import Struct

from .errors import ConfigurationError
from .policy import Batch
from .render import content
from .render.escape import event_text, slack_mrkdwn, slack_plain, teams_markdown, terminal
from .store import HourlyCounts, hour_of

__all__ = [
    "TOP",
    "CountHourly",
    "DailyReport",
    "Failure",
    "build",
    "parse_since",
    "slack_message",
    "teams_card",
    "text",
]

log = logging.getLogger("triage")

TOP = 5  # failures listed and charted
_BAR_CELLS = 20  # Slack text bar width, in full blocks
_EIGHTHS = " ▏▎▍▌▋▊▉"


class CountHourly:
    """The pipeline's counting step: the failures of the batch that got past dedup, counted per
    fingerprint in the hour they arrived: one store write per batch. If it cannot be written,
    the batch's dedup claims are released and the error raised, so Event Grid's retry counts them."""

    def __init__(self, store: HourlyCounts) -> None:
        self.store = store

    def __call__(self, batch: Batch) -> None:
        if not batch.candidates:
            return
        # `Candidate.fingerprint` written out: the pipeline knows nearly every candidate's, and a
        # list is built without a generator's resume and a property call an event.
        counts = Counter([c.known_fingerprint or c.facts.fingerprint for c in batch.candidates])
        # Events recovered from a delivery that died (Azure): the store leaves out those that
        # delivery had counted already, so each is counted once per hour it arrived in.
        recovered: dict[str, list[str]] = {}
        for c in batch.candidates:
            if c.recovered:
                recovered.setdefault(c.fingerprint, []).append(c.key)
        try:
            self.store.add_hourly(hour_of(batch.now), counts, recovered or None)
        except Exception:
            batch.release_keys([c.key for c in batch.candidates])
            raise


class Failure(Struct, frozen=True):
    """One (event, code, subcode) over the period, across resources."""

    kind: str
    code_text: str
    count: int
    previous: int  # the same failure in the period before

    @property
    def label(self) -> str:
        """'PlayFailed 400/8535'."""
        return f"{self.kind} {self.code_text}"


class DailyReport(Struct, frozen=True):
    """What the report says, before any format."""

    start: datetime
    end: datetime
    total: int
    previous_total: int
    top: tuple[Failure, ...]
    distinct: int  # how many (event, code, subcode) failed at all
    worst_resource: str | None
    worst_resource_count: int
    resources: int

    @property
    def hours(self) -> int:
        """The period's length in hours."""
        return int((self.end - self.start).total_seconds() // 3600)


def _code_text(code: str, subcode: str, status: str = "") -> str:
    # The fingerprint writes None for a missing code: show it as the alerts do. A status word
    # (email) is the failure across its recipient domains: the report counts them together.
    if status:
        return status
    if code == "None" and subcode == "None":
        return "no code"
    if subcode == "None":
        return code
    if code == "None":
        return f"?/{subcode}"
    return f"{code}/{subcode}"


def build(counts: HourlyCounts, end: datetime, period: timedelta) -> DailyReport:
    """The report of the hours in [end - period, end), compared with the period before."""
    end = hour_of(end)
    start = end - period
    now_by: Counter[tuple[str, str]] = Counter()
    before_by: Counter[tuple[str, str]] = Counter()
    by_resource: Counter[str] = Counter()
    for hour, fingerprint, count in counts.hourly(start - period, end):
        kind, code, subcode, resource, status = [*fingerprint.split("|", 5), "", "", "", ""][:5]
        key = (kind, _code_text(code, subcode, status))
        if hour >= start:
            now_by[key] += count
            by_resource[resource] += count
        else:
            before_by[key] += count
    ranked = sorted(now_by.items(), key=lambda item: (-item[1], item[0]))[:TOP]
    worst = by_resource.most_common(1)
    return DailyReport(
        start=start,
        end=end,
        total=sum(now_by.values()),
        previous_total=sum(before_by.values()),
        top=tuple(Failure(k, c, n, before_by.get((k, c), 0)) for (k, c), n in ranked),
        distinct=len(now_by),
        worst_resource=worst[0][0] if worst else None,
        worst_resource_count=worst[0][1] if worst else 0,
        resources=len(by_resource),
    )


def change(now: int, before: int) -> str:
    """'▲ 40 %', '▼ 12 %', 'no change', 'new' (nothing before), or '' when there is neither."""
    if before == 0:
        return "new" if now else ""
    delta = (now - before) * 100 / before
    if round(delta) == 0:
        return "no change"
    return f"{'▲' if delta > 0 else '▼'} {abs(delta):.0f} %"


def _period(report: DailyReport) -> str:
    start, end = (t.strftime("%Y-%m-%d %H:%M") for t in (report.start, report.end))
    return f"{start} – {end} UTC"


def _title(report: DailyReport) -> str:
    return f"ACS failures, last {content.format_window(report.hours * 3600)}"


def _total_line(report: DailyReport) -> str:
    """'1,234 (▲ 40 %, 881 in the 24 h before)'."""
    moved = change(report.total, report.previous_total)
    before = f"{content.format_count(report.previous_total)} in the {report.hours} h before"
    return f"{content.format_count(report.total)} ({moved + ', ' if moved else ''}{before})"


def _worst(report: DailyReport) -> str:
    if report.worst_resource is None:
        return "–"
    share = report.worst_resource_count * 100 / report.total if report.total else 0
    count = content.format_count(report.worst_resource_count)
    return f"{report.worst_resource}: {count} ({share:.0f} % of {report.resources} resource(s))"


def _row_note(failure: Failure) -> str:
    moved = change(failure.count, failure.previous)
    return f"{content.format_count(failure.count)}" + (f" · {moved}" if moved else "")


# -- Teams -----------------------------------------------------------------------------------------
def teams_card(report: DailyReport) -> dict[str, Any]:
    """The report as a Teams Workflows body: one Adaptive Card 1.4 with a bar per failure
    (a ColumnSet whose two column weights are the count and the rest of the largest count)."""

    def block(value: str, **props: Any) -> dict[str, Any]:
        return {"type": "TextBlock", "text": value, "wrap": True, **props}

    body: list[dict[str, Any]] = [
        {
            "type": "Container",
            "style": "emphasis",
            "bleed": True,
            "items": [
                block("DAILY REPORT · ACS", size="Small", weight="Bolder", color="Accent"),
                block(_title(report), size="Large", weight="Bolder", spacing="Small"),
                block(_period(report), size="Small", isSubtle=True, spacing="None"),
            ],
        },
        {
            "type": "FactSet",
            "spacing": "Medium",
            "facts": [
                {"title": "Failures", "value": teams_markdown(_total_line(report))},
                {"title": "Worst resource", "value": teams_markdown(event_text(_worst(report)))},
                {"title": "Kinds of failure", "value": f"{report.distinct} (event, code, subcode)"},
            ],
        },
    ]
    if report.top:
        body.append(block(f"**Top {len(report.top)} failures**", spacing="Medium"))
        largest = report.top[0].count
        for failure in report.top:
            body.append(
                {
                    "type": "ColumnSet",
                    "spacing": "Small",
                    "columns": [
                        {
                            "type": "Column",
                            "width": "stretch",
                            "items": [block(teams_markdown(event_text(failure.label)), size="Small")],
                        },
                        {
                            "type": "Column",
                            "width": "auto",
                            "items": [
                                block(teams_markdown(_row_note(failure)), size="Small", weight="Bolder")
                            ],
                        },
                    ],
                }
            )
            body.append(_teams_bar(failure.count, largest))
    else:
        body.append(block("No failures in this period.", spacing="Medium"))
    body.append(
        block(
            "Counted from every failure that got past dedup, per hour, in every instance.",
            size="Small",
            isSubtle=True,
            spacing="Medium",
        )
    )
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "msteams": {"width": "Full"},
        "body": body,
    }
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }


def _teams_bar(count: int, largest: int) -> dict[str, Any]:
    # Weights in whole per-mille keep the bar proportional without fractions in the JSON.
    filled = max(1, round(count * 1000 / largest)) if largest else 1
    columns: list[dict[str, Any]] = [
        {
            "type": "Column",
            "width": filled,
            "style": "attention",  # a container style every Teams theme fills
            "minHeight": "8px",
            "items": [{"type": "TextBlock", "text": " ", "wrap": True, "size": "Small"}],
        }
    ]
    if filled < 1000:
        columns.append(
            {
                "type": "Column",
                "width": 1000 - filled,
                "items": [{"type": "TextBlock", "text": " ", "wrap": True, "size": "Small"}],
            }
        )
    return {"type": "ColumnSet", "spacing": "None", "columns": columns}


# -- Slack ---------------------------------------------------------------------------------------
def slack_message(report: DailyReport) -> dict[str, Any]:
    """The report as a Slack incoming-webhook body: Block Kit with the chart as text bars in a
    code block (monospace keeps the bars aligned)."""
    title = _title(report)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": slack_plain(title)[:150], "emoji": True}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": slack_mrkdwn(_period(report))}]},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Failures*\n{slack_mrkdwn(_total_line(report))}"},
                {"type": "mrkdwn", "text": f"*Worst resource*\n{slack_mrkdwn(event_text(_worst(report)))}"},
            ],
        },
    ]
    if report.top:
        rows = _text_rows(report, slack_mrkdwn)
        chart = "\n".join(rows).replace("`", "ˋ")
        text, _ = content.fit(f"*Top {len(report.top)} failures*\n```\n{chart}\n```", 3000, str)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    else:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "No failures in this period."}})
    summary = f"{title}: {_total_line(report)}"
    return {"text": content.fit(summary, 400, slack_mrkdwn)[0], "blocks": blocks, "unfurl_links": False}


def _bar(count: int, largest: int) -> str:
    eighths = round(count * _BAR_CELLS * 8 / largest) if largest else 0
    eighths = max(eighths, 1) if count else 0
    return "█" * (eighths // 8) + (_EIGHTHS[eighths % 8] if eighths % 8 else "")


def _text_rows(report: DailyReport, escape: Any) -> list[str]:
    largest = report.top[0].count if report.top else 0
    labels = [content.fit(event_text(f.label), 40, str)[0] for f in report.top]
    width = max(len(label) for label in labels)
    return [
        f"{escape(label).ljust(width + len(escape(label)) - len(label))}  "
        f"{_bar(f.count, largest).ljust(_BAR_CELLS)}  {escape(_row_note(f))}"
        for label, f in zip(labels, report.top, strict=True)
    ]


# -- terminal ------------------------------------------------------------------------------------
def text(report: DailyReport) -> str:
    """The report as plain lines (`python -m triage report`)."""
    lines = [
        f"{_title(report)}  ({_period(report)})",
        f"  Failures:       {_total_line(report)}",
        f"  Worst resource: {terminal(event_text(_worst(report)))}",
    ]
    if report.top:
        lines.append(f"  Top {len(report.top)}:")
        lines += ["    " + row for row in _text_rows(report, terminal)]
    else:
        lines.append("  No failures in this period.")
    return "\n".join(lines)


def parse_since(value: str) -> timedelta:
    """'24h', '7d' → a period of whole hours (the counters are hourly)."""
    number, unit = value[:-1], value[-1:].lower()
    if not number.isdigit() or unit not in ("h", "d") or int(number) == 0:
        raise ConfigurationError(f"--since must be hours or days, like 24h or 7d, not {value!r}")
    hours = int(number) * (24 if unit == "d" else 1)
    if hours > 24 * 31:
        raise ConfigurationError("--since can reach back at most 31 days")
    return timedelta(hours=hours)
