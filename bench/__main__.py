"""`python -m bench [--quick] [--markdown] [--only NAME ...] [--profile]`: run the benchmarks and
print one table, every figure next to a baseline measured in the same run."""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .figures import Figure, markdown_table, text_table

SECTIONS = ("pipeline", "scaling", "http", "handshake", "coldstart", "storm", "memory", "azure", "soak")


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much of each bench to run."""

    batch: int = 5_000  # events per batch: Event Grid's maximum
    batch_bytes: int = 1_048_576  # Event Grid's size limit
    repeat_grouped: int = 11
    repeat_ungrouped: int = 3
    handshake_calls: int = 20_000
    coldstart_runs: int = 15
    coldstart_analysis: bool = True
    storm_events: int = 10_000
    storm_window: int = 2
    rss: bool = True
    scaling_budget: int = 60_000  # events per batch size (at least 3 batches each)
    http_rounds: int = 5
    azure_batches: int = 7
    soak_seconds: float = 150.0


FULL = Sizes()
QUICK = Sizes(
    repeat_grouped=3,
    repeat_ungrouped=1,
    handshake_calls=3_000,
    coldstart_runs=5,
    coldstart_analysis=False,
    scaling_budget=20_000,
    http_rounds=2,
    azure_batches=3,
    soak_seconds=30.0,
)

Section = Callable[[Sizes], tuple[list[Figure], list[str]]]


def _pipeline(s: Sizes) -> tuple[list[Figure], list[str]]:
    from .throughput import throughput_figures

    return throughput_figures(
        {"batch": s.batch, "bytes": s.batch_bytes},
        {"grouped": s.repeat_grouped, "ungrouped": s.repeat_ungrouped},
    )


def _scaling(s: Sizes) -> tuple[list[Figure], list[str]]:
    from .scaling import scaling_figures

    return scaling_figures(budget=s.scaling_budget)


def _http(s: Sizes) -> tuple[list[Figure], list[str]]:
    from .overhttp import http_figures

    return http_figures(s.batch, rounds=s.http_rounds)


def _handshake(s: Sizes) -> tuple[list[Figure], list[str]]:
    from .handshake import handshake_figures

    return handshake_figures(s.handshake_calls)


def _coldstart(s: Sizes) -> tuple[list[Figure], list[str]]:
    from .coldstart import coldstart_figures

    return coldstart_figures(s.coldstart_runs, analyse=s.coldstart_analysis)


def _storm(s: Sizes) -> tuple[list[Figure], list[str]]:
    from .storm import storm_figures

    return storm_figures(s.storm_events, s.storm_window)


def _memory(s: Sizes) -> tuple[list[Figure], list[str]]:
    from .memory import memory_figures

    return memory_figures(s.batch_bytes, rss=s.rss)


def _azure(s: Sizes) -> tuple[list[Figure], list[str]]:
    from .azure import azure_figures

    return azure_figures(s.azure_batches)


def _soak(s: Sizes) -> tuple[list[Figure], list[str]]:
    from .soak import soak_figures

    return soak_figures(s.soak_seconds)


RUNNERS: dict[str, Section] = {
    "pipeline": _pipeline,
    "scaling": _scaling,
    "http": _http,
    "handshake": _handshake,
    "coldstart": _coldstart,
    "storm": _storm,
    "memory": _memory,
    "azure": _azure,
    "soak": _soak,
}


def caption(quick: bool) -> str:
    """Where and when the table was measured."""
    today = datetime.datetime.now(datetime.UTC).date().isoformat()
    mode = "`python -m bench --quick`" if quick else "`python -m bench`"
    return (
        f"Measured {today} with {mode}: Python {platform.python_version()}, {os.cpu_count()} cores, "
        "a shared (noisy) machine; every figure is next to a baseline measured in the same run."
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="fewer repetitions, no import analysis: about 30 s"
    )
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown (for README.md)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, metavar="NAME", help=f"run only {SECTIONS}")
    parser.add_argument(
        "--profile", action="store_true", help="print cProfile hot spots of the request path instead"
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL

    if args.profile:
        from .hotspots import profile

        print(profile(sizes.batch, group_window_seconds=300))
        print(profile(sizes.batch, group_window_seconds=0))
        return 0

    figures: list[Figure] = []
    details: list[str] = []
    for name in args.only or SECTIONS:
        print(f"bench: {name} …", file=sys.stderr, flush=True)
        start = time.perf_counter()
        section_figures, section_details = RUNNERS[name](sizes)
        figures += section_figures
        details += section_details
        print(f"bench: {name} done in {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)

    print(caption(args.quick) + "\n")
    print(markdown_table(figures) if args.markdown else text_table(figures))
    if details:
        print()
        bullet = args.markdown  # Markdown: each detail a list item, indented lines continue it
        print("\n".join(f"- {line}" if bullet and not line[:1].isspace() else line for line in details))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
