"""Cold start: a fresh `python -c "import function_app"` (and import + first request) against
the floor, a fresh process that imports only the third-party modules the same step loads.

Each time runs from starting the process until it says the step is done (its exit is left out:
a worker never pays it). The floor is found, not written down: `python -m bench.child modules
STEP` lists the modules from site-packages that appear in `sys.modules` during the step. The
ratio app/floor is then what our own code adds: our module bodies, the standard-library modules
only we use, and the work of the first request. Then `-X importtime` says where our import time
goes, and a profile hook says which third-party packages the first request actually runs.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .child import FIRST_REQUEST, IMPORT, OURS, package_of
from .corpus import ROOT
from .figures import Baseline, Figure, Samples

__all__ = ["TARGETS", "ColdStart", "ImportCosts", "coldstart_figures", "measure"]

# Issue 16: import + first request within 1.2× the floor; the import alone within 1.3×.
TARGETS = {"import": 1.3, "first-request": 1.2}
_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)$")
# The site hook that setuptools installs runs in every process; it is not a dependency.
_SITE_HOOKS = {"_distutils_hack"}


@functools.cache
def _pycache() -> str:
    """A byte-code cache of this run's own, removed at exit."""
    path = tempfile.mkdtemp(prefix="acs-triage-bench-pycache-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def clean_env() -> dict[str, str]:
    """The environment for child processes, without a developer's own settings or storage.

    Every module's byte code is cached (in a folder of this run's, so the repository gets no
    __pycache__) and the warm-up writes it, as in a Python installation: a developer's
    PYTHONDONTWRITEBYTECODE would otherwise have every child compile our modules while the
    floor's, byte-compiled by pip, load from cache. `compile_ms` says what compiling costs."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ACS_TRIAGE_", "PYTHONDONTWRITEBYTECODE")) and k != "AzureWebJobsStorage"
    }
    env["PYTHONPYCACHEPREFIX"] = _pycache()
    return env


# Imports the app, answers the first request, then compiles the source of every module of ours
# that this loaded: what a host that cannot write byte code pays on top, at every cold start.
_COMPILE = """
import json, sys, time
from pathlib import Path
ours = [m.__file__ for n, m in list(sys.modules.items())
        if n.split(".")[0] in ("triage", "function_app") and getattr(m, "__file__", None)]
start = time.perf_counter()
for path in ours:
    compile(Path(path).read_bytes(), path, "exec")
print(json.dumps([len(ours), (time.perf_counter() - start) * 1000]))
"""


# Registered before the step runs, so that it is the last exit handler: what follows it is
# the interpreter's own finalization (modules cleared, a last collection, every object freed).
_EXIT_MARK = """
import atexit as _atexit, time as _time
_atexit.register(lambda: print("exit-mark", _time.monotonic(), flush=True))
"""


def exit_ms(source: str, runs: int) -> Samples:
    """Ms (per run) a fresh process running `source` spends after its last exit handler: left out
    of the cold-start times (see `_timed`), never paid by a worker, which does not exit.
    (time.monotonic is one clock for every process on the machine.)"""
    found: list[float] = []
    for _ in range(runs):
        out = _python("-c", _EXIT_MARK + source).stdout
        ended = time.monotonic()
        mark = next(line for line in out.splitlines() if line.startswith("exit-mark "))
        found.append((ended - float(mark.split()[1])) * 1000)
    return Samples(tuple(found))


def compile_ms(runs: int) -> tuple[int, float]:
    """How many of our modules the first request loads, and the median ms to compile them."""
    found = [_json_answer("-c", FIRST_REQUEST + _COMPILE) for _ in range(runs)]
    return int(found[0][0]), Samples(tuple(float(ms) for _, ms in found)).median


def run_child(*args: str) -> Any:
    """`python -m bench.child ARGS` in the repository; its JSON answer."""
    return _json_answer("-m", "bench.child", *args)


def _json_answer(*args: str) -> Any:
    """`python ARGS` in the repository; the JSON on the last line it prints."""
    return json.loads(_python(*args).stdout.strip().splitlines()[-1])


def _python(*args: str) -> subprocess.CompletedProcess[str]:
    """`python ARGS` in the repository, in the children's environment: what it printed, on
    stdout and stderr. Raises, with the end of its stderr, if it failed."""
    done = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"python {' '.join(args)[:200]} failed: {done.stderr.strip()[-2000:]}")
    return done


def floor_source(modules: Sequence[str]) -> str:
    """Source that imports exactly these modules, in this order."""
    lines = [f"import {name}" for name in modules if all(p.isidentifier() for p in name.split("."))]
    odd = [name for name in modules if not all(p.isidentifier() for p in name.split("."))]
    if odd:
        lines += ["import importlib", *(f"importlib.import_module({name!r})" for name in odd)]
    return "\n".join(lines) + "\n"


# Said by every cold-start child once its step is done: the clock stops there.
_READY = "\nimport sys as _sys\n_sys.stdout.write('ready\\n')\n_sys.stdout.flush()\n"


def _timed(source: str) -> float:
    """Seconds from starting a fresh process running `source` until it says the step is done:
    the interpreter's start, the imports and the step, not the interpreter's exit, which a
    worker never pays (it answers requests and does not exit; `exit_ms` shows that part)."""
    with tempfile.TemporaryFile() as errors:  # a file, not a pipe: a chatty child never blocks
        start = time.perf_counter()
        with subprocess.Popen(
            [sys.executable, "-c", source + _READY],
            cwd=ROOT,
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=errors,
        ) as child:
            assert child.stdout is not None
            said = child.stdout.readline()
            elapsed = time.perf_counter() - start
            child.communicate(timeout=120)
        if child.returncode != 0 or said != b"ready\n":
            errors.seek(0)
            failure = errors.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"a cold-start process failed: {failure}")
    return elapsed


@dataclass(frozen=True, slots=True)
class ImportCosts:
    """Where `import function_app` spends its time (medians over a few -X importtime runs, ms)."""

    total: float
    own_self: dict[str, float]  # our modules' own bodies
    pulled_in: dict[tuple[str, str], float]  # (our module, package it imports) → cumulative
    brings: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # … and what that loads


@dataclass(frozen=True, slots=True)
class ColdStart:
    """Wall times (s) of fresh processes, and what the floors import."""

    runs: int
    samples: dict[str, Samples]
    floor_modules: dict[str, list[str]]
    used: dict[str, list[str]] = field(default_factory=dict)
    costs: ImportCosts | None = None
    steps: dict[str, Samples] = field(default_factory=dict)  # ms of each step, timed in process
    compiled: tuple[int, float] | None = None  # our modules loaded, median ms to compile them
    exits: dict[str, Samples] = field(default_factory=dict)  # ms after the last exit handler: app, floor

    def ratio(self, step: str) -> float:
        return self.samples[f"app {step}"].median / self.samples[f"floor {step}"].median


def _parse_importtime(stderr: str) -> ImportCosts:
    """One -X importtime report → where the time went (ms)."""
    # depth, name, cumulative µs, packages in the subtree
    stack: list[tuple[int, str, int, set[str]]] = []
    own: dict[str, float] = defaultdict(float)
    pulled: dict[tuple[str, str], float] = defaultdict(float)
    brings: dict[tuple[str, str], set[str]] = defaultdict(set)
    total = 0.0
    for line in stderr.splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        self_us, cum_us, indent, name = int(match[1]), int(match[2]), match[3], match[4]
        depth = len(indent) // 2
        # The report is post-order: the children of this line are the deeper lines just above it.
        children: list[tuple[int, str, int, set[str]]] = []
        while stack and stack[-1][0] > depth:
            children.append(stack.pop())
        subtree = {package_of(name)}.union(*(c[3] for c in children))
        if name.startswith(OURS):
            own[name] += self_us / 1000
            for _, child, child_cum, child_packages in children:
                if not child.startswith(OURS):
                    pair = (name, package_of(child))
                    pulled[pair] += child_cum / 1000
                    brings[pair] |= {p for p in child_packages if not p.startswith(OURS)}
        if name == "function_app":
            total = cum_us / 1000
        stack.append((depth, name, cum_us, subtree))
    return ImportCosts(total, dict(own), dict(pulled), {k: sorted(v) for k, v in brings.items()})


def import_costs(runs: int) -> ImportCosts:
    """Median over `runs` of `python -X importtime -c "import function_app"`."""
    totals: list[float] = []
    own: dict[str, list[float]] = defaultdict(list)
    pulled: dict[tuple[str, str], list[float]] = defaultdict(list)
    brings: dict[tuple[str, str], set[str]] = defaultdict(set)
    for _ in range(runs):
        one = _parse_importtime(_python("-X", "importtime", "-c", IMPORT).stderr)
        totals.append(one.total)
        for key, value in one.own_self.items():
            own[key].append(value)
        for pair, value in one.pulled_in.items():
            pulled[pair].append(value)
        for pair, names in one.brings.items():
            brings[pair].update(names)

    def med(values: list[float]) -> float:
        return Samples(tuple(values + [0.0] * (runs - len(values)))).median

    return ImportCosts(
        total=med(totals),
        own_self={k: med(v) for k, v in own.items()},
        pulled_in={k: med(v) for k, v in pulled.items()},
        brings={k: sorted(v) for k, v in brings.items()},
    )


def measure(runs: int, *, analyse: bool = True) -> ColdStart:
    """Median wall time of `runs` fresh processes per step, start to step done (after one warm-up
    each), in turns."""
    floor_modules = {
        step: [str(m) for m in run_child("modules", step)] for step in ("import", "first-request")
    }
    sources = {
        "app import": IMPORT,
        "floor import": floor_source(floor_modules["import"]),
        "app first-request": FIRST_REQUEST,
    }
    same_floor = floor_modules["first-request"] == floor_modules["import"]
    if not same_floor:
        sources["floor first-request"] = floor_source(floor_modules["first-request"])
    for source in sources.values():  # warm-up: byte-code caches, the page cache
        _timed(source)
    times: dict[str, list[float]] = {name: [] for name in sources}
    for _ in range(runs):
        for name, source in sources.items():
            times[name].append(_timed(source))
    samples = {name: Samples(tuple(values)) for name, values in times.items()}
    if same_floor:  # the first request loads nothing more: one floor serves both figures
        samples["floor first-request"] = samples["floor import"]
    used: dict[str, list[str]] = {}
    costs = None
    compiled = None
    steps: dict[str, Samples] = {}
    exits: dict[str, Samples] = {}
    if analyse:
        used = {str(k): [str(p) for p in v] for k, v in run_child("usage").items()}
        analysis_runs = max(1, min(7, runs // 2))
        costs = import_costs(analysis_runs)
        timed = [run_child("steps") for _ in range(analysis_runs)]
        steps = {step: Samples(tuple(float(t[step]) for t in timed)) for step in timed[0]}
        compiled = compile_ms(analysis_runs)
        floor_first = sources.get("floor first-request", sources["floor import"])
        exits = {"app": exit_ms(FIRST_REQUEST, analysis_runs), "floor": exit_ms(floor_first, analysis_runs)}
    return ColdStart(runs, samples, floor_modules, used, costs, steps, compiled, exits)


def packages(modules: Sequence[str]) -> dict[str, int]:
    """Modules per package, in first-load order."""
    counts: dict[str, int] = {}
    for name in modules:
        counts[package_of(name)] = counts.get(package_of(name), 0) + 1
    return counts


def _normal(package: str) -> str:
    return package.lstrip("_")  # pydantic_core's C module reports itself as `_pydantic_core`


def findings(result: ColdStart, top: int = 8) -> list[str]:
    """What the floor holds, where our import time goes, and what the first request never runs."""
    loaded = packages(result.floor_modules["import"])
    lines = ["cold-start floor = what `import function_app` loads from site-packages (package: modules):"]
    lines.append("  " + ", ".join(f"{p} ({n})" for p, n in loaded.items()))
    extra = [m for m in result.floor_modules["first-request"] if m not in set(result.floor_modules["import"])]
    lines.append(
        f"cold-start floor of import + first request: the same plus {len(extra)} modules "
        f"({', '.join(packages(extra)) or 'none'})"
    )
    build = {_normal(p) for p in result.used.get("build", [])} - _SITE_HOOKS
    request = {_normal(p) for p in result.used.get("request", [])} - _SITE_HOOKS
    if result.used:
        lines.append(
            f"third-party code run while the Service is built: {', '.join(sorted(build & set(loaded)))}"
        )
        lines.append(f"third-party code run by the first request: {', '.join(sorted(request & set(loaded)))}")
    if result.steps:
        lines.append(
            "in one fresh process (median of "
            f"{len(next(iter(result.steps.values())).values)}): "
            + ", ".join(f"{step} {samples.median:.0f} ms" for step, samples in result.steps.items())
            + " (build = Settings + Service(); request = the first POST, catalog load included)"
        )
    if result.compiled:
        count, ms = result.compiled
        floor = result.samples["floor first-request"].median * 1000
        lines.append(
            f"byte code: the children load every module's from a cache, as an installation does; compiling "
            f"the {count} that the first request loads takes {ms:.0f} ms (+{ms / floor:.2f}× the floor), "
            "paid at every cold start by a host that cannot cache byte code (PYTHONDONTWRITEBYTECODE, "
            "a read-only folder)"
        )
    if result.exits:
        app_exit, floor_exit = result.exits["app"], result.exits["floor"]
        wall = result.samples["app first-request"].median - result.samples["floor first-request"].median
        lines.append(
            f"interpreter exit, left out of the times above (each stops when its child says the step "
            f"is done; after the last exit handler, median of {len(app_exit.values)}): import + first "
            f"request {app_exit.median:.0f} ms, its floor {floor_exit.median:.0f} ms, "
            f"{app_exit.median - floor_exit.median:+.0f} ms beside the {wall * 1000:.0f} ms over the "
            "floor: finalization (modules cleared, objects freed), which a worker answering requests "
            "does not pay; whole-process wall times, as measured until 2026-11-30, included it"
        )
    costs = result.costs
    if costs is None:
        return lines
    own_total = sum(costs.own_self.values())
    lines.append(
        f"-X importtime: import function_app {costs.total:.0f} ms (median); our own module bodies "
        f"{own_total:.0f} ms, the largest:"
    )
    for name, ms in sorted(costs.own_self.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {ms:6.1f} ms  {name}")
    lines.append("imports our modules trigger (cumulative; what the subtree loads; is any of it run?):")
    for (importer, package), ms in sorted(costs.pulled_in.items(), key=lambda kv: -kv[1])[:top]:
        third = [p for p in costs.brings.get((importer, package), []) if p in loaded]
        if package in sys.stdlib_module_names or not third:
            verdict = "standard library"
        elif package == "azure.functions":
            verdict = "the Functions host's own package, loaded by the worker anyway: not a candidate"
        elif not set(third) & (build | request):
            verdict = "never run by build + first request: LAZY-IMPORT CANDIDATE"
        elif not set(third) & request:
            verdict = (
                "run only while the Service is built, not by requests: CANDIDATE (lazy import + lazy use)"
            )
        else:
            verdict = "run by the first request: needed"
        brought = f" [{', '.join(third)}]" if third else ""
        lines.append(f"  {ms:6.1f} ms  {importer} -> {package}{brought}: {verdict}")
    return lines


def coldstart_figures(runs: int, *, analyse: bool = True) -> tuple[list[Figure], list[str]]:
    """Figures: import and import + first request, each against its floor."""
    result = measure(runs, analyse=analyse)
    figures = []
    for step, label in (
        ("import", 'python -c "import function_app"'),
        ("first-request", "import + first request"),
    ):
        app, floor = result.samples[f"app {step}"], result.samples[f"floor {step}"]
        ratio = result.ratio(step)
        figures.append(
            Figure(
                name=f"cold start: {label}",
                value=app.median * 1000,
                unit="ms",
                baselines=(
                    Baseline(
                        f"floor ({len(result.floor_modules[step])} third-party modules)",
                        floor.median * 1000,
                        ratio,
                        "× floor",
                    ),
                ),
                target=f"≤ {TARGETS[step]:g}× floor",
                met=ratio <= TARGETS[step],
                how=f"median of {runs} fresh processes after a warm-up (best {app.best * 1000:.0f} ms "
                f"vs {floor.best * 1000:.0f} ms)",
            )
        )
    return figures, findings(result)
