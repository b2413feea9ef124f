"""What the benchmarks run in fresh processes: `python -m bench.child MODE [ARGS]`, one JSON line out.

Modes:
  modules import|first-request   third-party modules that the step loads (in load order)
  usage                          third-party packages whose code runs while the Service is built
                                 and while it answers its first request
  steps                          milliseconds of import, Service build and first request, in process
  rss pipeline|json PATH         peak RSS growth (KB) while one body is put through the request
                                 path, or through json.loads (Linux: reads /proc/self)

Only the standard library is imported at the top of this module, so that the snapshot of
`sys.modules` taken before a step holds nothing the step itself would load.
"""

from __future__ import annotations

import json
import os
import sys
import sysconfig
from types import FrameType
from typing import Any

from bench.endpoints import SLACK_URL, TEAMS_URL

# The steps of a cold start, as source text: run as they are by `python -c` (coldstart.py times
# them) and run here, step by step, to see what they load and use.
# Never contacted: the pipeline only renders into the outbox; `.invalid` cannot resolve anyway.
IMPORT = "import function_app\n"
BUILD = f"""
from triage.service import Service
from triage.settings import Settings
from triage.store.memory import MemoryStore
service = Service(
    Settings.from_env({{"ACS_TRIAGE_TEAMS_URL": {TEAMS_URL!r}, "ACS_TRIAGE_SLACK_URL": {SLACK_URL!r}}}),
    MemoryStore(),
)
function_app.configure(service)
"""
REQUEST = """
with open("samples/callbacks/play-failed-400-8535.json", "rb") as sample:
    body = sample.read()
answer = service.handle_http("callbacks", "POST", {"Content-Type": "application/json"}, {}, body)
if answer.status != 200 or b'"alerted":1' not in answer.body:
    raise SystemExit(f"the first request was answered {answer.status}: {answer.body!r}")
"""
FIRST_REQUEST = IMPORT + BUILD + REQUEST
STEPS = {"import": IMPORT, "first-request": FIRST_REQUEST}
OURS = ("triage", "function_app", "bench")


def _site_dirs() -> list[str]:
    paths = sysconfig.get_paths()
    return sorted({os.path.realpath(paths[k]) for k in ("purelib", "platlib")})


def package_of(module: str) -> str:
    """The package a module belongs to, as people name it: `azure.functions`, `pydantic`."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "azure" and len(parts) > 1 else parts[0]


def _third_party_origin(origin: str | None, sites: list[str]) -> bool:
    if not origin:
        return False
    real = os.path.realpath(origin)
    return any(real.startswith(site + os.sep) for site in sites)


def modules(step: str) -> list[str]:
    """Third-party modules (installed in site-packages) that `step` loads, in load order."""
    sites = _site_dirs()
    before = set(sys.modules)
    exec(compile(STEPS[step], f"<{step}>", "exec"), {"__name__": "__bench__"})
    loaded: list[str] = []
    for name, module in list(sys.modules.items()):
        if name in before or module is None or getattr(module, "__name__", None) != name:
            continue  # aliases (requests.packages.*) are the same module under another name
        spec = getattr(module, "__spec__", None)
        if spec is not None and _third_party_origin(spec.origin, sites):
            loaded.append(name)
    return loaded


def _package_of_file(filename: str, sites: list[str]) -> str | None:
    real = os.path.realpath(filename)
    for site in sites:
        if real.startswith(site + os.sep):
            rel = os.path.relpath(real, site).split(os.sep)
            first = rel[0].split(".")[0]
            return f"azure.{rel[1].split('.')[0]}" if first == "azure" and len(rel) > 1 else first
    return None


def _packages_run(source: str, name: str, namespace: dict[str, Any], sites: list[str]) -> list[str]:
    """Run `source` in `namespace`; the third-party packages whose code ran meanwhile."""
    seen: set[str] = set()
    files: dict[str, str | None] = {}

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            filename = frame.f_code.co_filename
            if filename not in files:
                files[filename] = _package_of_file(filename, sites)
            package = files[filename]
        elif event == "c_call":
            owner = getattr(arg, "__self__", None)
            module = getattr(arg, "__module__", None) or getattr(type(owner), "__module__", None)
            package = package_of(module) if isinstance(module, str) else None
            if package is not None and (package in sys.stdlib_module_names or package == "builtins"):
                package = None
        else:
            return
        if package is not None and not package.startswith(OURS):
            seen.add(package)

    code = compile(source, f"<{name}>", "exec")
    sys.setprofile(profile)
    try:
        exec(code, namespace)
    finally:
        sys.setprofile(None)
    return sorted(seen)


def usage() -> dict[str, list[str]]:
    """Third-party packages whose code runs in each step after the import."""
    sites = _site_dirs()
    namespace: dict[str, Any] = {"__name__": "__bench__"}
    exec(compile(IMPORT, "<import>", "exec"), namespace)
    return {
        step: _packages_run(source, step, namespace, sites)
        for step, source in (("build", BUILD), ("request", REQUEST))
    }


def steps() -> dict[str, float]:
    """Milliseconds of each step of a cold start, timed inside one fresh process."""
    import time

    namespace: dict[str, Any] = {"__name__": "__bench__"}
    out: dict[str, float] = {}
    for step, source in (("import", IMPORT), ("build", BUILD), ("request", REQUEST)):
        code = compile(source, f"<{step}>", "exec")
        start = time.perf_counter()
        exec(code, namespace)
        out[step] = (time.perf_counter() - start) * 1000
    return out


def _status_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key == field:
                return int(value.split()[0])
    raise LookupError(field)


def _peak_growth(call: Any) -> dict[str, int]:
    """Peak RSS growth (KB) during `call`: Linux lets a process reset its high-water mark
    (`5` into /proc/self/clear_refs), so the peak seen is this call's alone."""
    with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
        clear.write("5")
    before = _status_kb("VmRSS")
    result = call()
    peak = _status_kb("VmHWM")
    del result
    return {"before_kb": before, "peak_kb": peak, "delta_kb": peak - before}


def rss(mode: str, path: str) -> dict[str, int]:
    """Peak RSS growth while one body goes through the request path (after a warm-up on a small
    batch, as in a warm worker) or through json.loads."""
    with open(path, "rb") as source:
        body = source.read()
    if mode == "json":
        return _peak_growth(lambda: json.loads(body))

    from datetime import UTC, datetime

    import orjson

    from bench.corpus import mixed_events, pipeline_settings
    from triage.service import Service
    from triage.store.memory import MemoryStore

    settings = pipeline_settings(max_body_bytes=max(len(body), 1_048_576))
    now = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    headers = {"Content-Type": "application/json"}
    warm = Service(settings, MemoryStore())
    warm.handle_http("eventgrid", "POST", headers, {}, orjson.dumps(mixed_events(64)), now=now)
    service = Service(settings, MemoryStore())

    def run() -> object:
        answer = service.handle_http("eventgrid", "POST", headers, {}, body, now=now)
        if answer.status != 200:
            raise SystemExit(f"the pipeline answered {answer.status}: {answer.body[:200]!r}")
        return answer

    return _peak_growth(run)


def main(argv: list[str]) -> int:
    mode, *args = argv
    out: object
    if mode == "modules":
        out = modules(args[0])
    elif mode == "usage":
        out = usage()
    elif mode == "steps":
        out = steps()
    elif mode == "rss":
        out = rss(args[0], args[1])
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
