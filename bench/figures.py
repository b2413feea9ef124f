"""A benchmark figure next to its same-run baseline, and the tables that show them.

The machine is shared and noisy: an absolute number alone says little, so every figure is
printed with a baseline measured in the same run and the ratio between the two.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Baseline", "Figure", "Samples", "markdown_table", "text_table"]


@dataclass(frozen=True, slots=True)
class Samples:
    """Repeated measurements of one thing (seconds, bytes, …), with the usual summaries."""

    values: tuple[float, ...]

    @property
    def best(self) -> float:
        return min(self.values)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def percentile(self, pct: float) -> float:
        """Nearest-rank percentile (p50, p99): a value that was actually measured."""
        ordered = sorted(self.values)
        rank = max(1, round(pct / 100 * len(ordered)))
        return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True, slots=True)
class Baseline:
    """What the figure is compared with, and the ratio figure/baseline as the reader should read it."""

    name: str
    value: float
    ratio: float
    ratio_label: str = "×"  # appended to the ratio: "× json.loads time"


@dataclass(frozen=True, slots=True)
class Figure:
    """One row of the table."""

    name: str
    value: float
    unit: str  # "events/s", "ms", "µs", "MB", "KB", "s", "" (a count)
    baselines: tuple[Baseline, ...]
    target: str = ""
    met: bool | None = None
    how: str = ""  # best of N / median / p50 … and the sizes involved


def fmt(value: float, unit: str) -> str:
    """A number for people: thousands separated, as many decimals as the unit deserves."""
    if unit in ("", "events/s", "events", "messages"):
        text = f"{value:,.0f}"
    elif unit in ("ms", "µs"):
        text = f"{value:,.1f}" if value < 100 else f"{value:,.0f}"
    elif unit in ("MB", "s"):
        text = f"{value:,.2f}"
    else:
        text = f"{value:,.1f}"
    return f"{text} {unit}".rstrip()


def _ratio(ratio: float) -> str:
    if ratio == 0:
        return "0"
    if abs(ratio) < 0.01:
        return f"{ratio:.2g}"
    return f"{ratio:.2f}" if ratio < 10 else f"{ratio:,.0f}"


def _cells(figure: Figure) -> list[str]:
    base = "; ".join(f"{b.name}: {fmt(b.value, figure.unit)}" for b in figure.baselines)
    ratios = "; ".join(f"{_ratio(b.ratio)}{b.ratio_label}" for b in figure.baselines)
    met = {True: "met", False: "MISSED", None: ""}[figure.met]
    return [figure.name, fmt(figure.value, figure.unit), base, ratios, figure.target, met, figure.how]


_HEADER = ["figure", "value", "baseline (same run)", "ratio", "target", "", "how"]


def text_table(figures: Sequence[Figure]) -> str:
    """A plain-text table for the terminal."""
    rows = [_HEADER, *(_cells(f) for f in figures)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_HEADER))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(figures: Sequence[Figure]) -> str:
    """The same table in Markdown (for README.md's Performance section)."""

    def row(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    lines = [row(_HEADER), "|" + "---|" * len(_HEADER)]
    lines += [row(_cells(f)) for f in figures]
    return "\n".join(lines)
