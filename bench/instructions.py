"""`python -m bench.instructions [EVENTS] [WINDOW]`: CPU instructions per event of the request
path, counted by valgrind's callgrind: the same count on every run of the same code, where times
on a shared machine move by half. For comparing two versions of the code, not a figure of the
table (instructions are not time: cache misses, which a smaller batch layout saves, do not count).

Two children run the same batch through `Service.handle_http` (a fresh in-memory store each
time, as the pipeline rows do), one twice and one not at all, after the same warm-up; the
difference, per event, is what the request path executes. Needs `valgrind` on the PATH.

`--samples DIR` builds the batch from another copy of `samples/` (for one, the samples as they
were at an earlier commit: `git archive COMMIT samples | tar -x -C DIR`), so that two versions
of the code are compared on the same events even after new sample kinds were added.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .corpus import ROOT

_CHILD = """
import sys, orjson, pathlib
import bench.corpus
from bench.corpus import mixed_events, pipeline_settings
from bench.throughput import request_call
events, window, runs = (int(a) for a in sys.argv[1:4])
if len(sys.argv) > 4:
    bench.corpus.SAMPLES = pathlib.Path(sys.argv[4])
body = orjson.dumps(mixed_events(events))
settings = pipeline_settings(window, max_body_bytes=max(len(body), 1 << 20))
request_call(settings, body)()
calls = [request_call(settings, body) for _ in range(runs)]
for call in calls:
    call()
"""
_COLLECTED = re.compile(r"Collected : (\d+)")


def instructions(events: int, window: int, runs: int, samples: Path | None = None) -> int:
    """Instructions a child executes with `runs` timed batches (callgrind's total), of events
    from `samples` (default: the repository's samples/)."""
    with tempfile.TemporaryDirectory() as folder:
        child = [sys.executable, "-c", _CHILD, str(events), str(window), str(runs)]
        if samples is not None:
            child.append(str(samples.resolve()))
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={folder}/out", *child],
            cwd=ROOT,
            env={**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            check=True,
        )
    found = _COLLECTED.search(done.stderr)
    if found is None:
        raise RuntimeError(f"callgrind said no total: {done.stderr[-500:]}")
    return int(found.group(1))


def main(argv: list[str]) -> int:
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    samples: Path | None = None
    if "--samples" in argv:
        at = argv.index("--samples")
        if at + 1 >= len(argv) or not Path(argv[at + 1]).is_dir():
            print("--samples needs a folder of sample events (a copy of samples/)", file=sys.stderr)
            return 2
        samples = Path(argv[at + 1])
        argv = argv[:at] + argv[at + 2 :]
    events = int(argv[0]) if argv else 5_000
    window = int(argv[1]) if len(argv) > 1 else 300
    total = instructions(events, window, 2, samples) - instructions(events, window, 0, samples)
    per_event = total / 2 / events
    where = f", samples from {samples}" if samples is not None else ""
    print(f"{per_event:,.0f} instructions per event ({events:,} mixed events, window {window} s{where})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
