"""The runtime package ships only the runtime: no development tool on the request path, and no
import of the root function_app.py from inside it."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def test_no_module_of_the_runtime_package_imports_function_app() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "triage").rglob("*.py"))
        if "function_app" in _imports(path)
    ]
    assert offenders == []


def test_a_request_through_the_function_app_loads_no_development_module() -> None:
    # A fresh interpreter: what one request really loads, not what this test session loaded.
    script = """
import json, sys
import azure.functions as func
import function_app
from triage.clock import utcnow
body = open("samples/callbacks/play-failed-400-8535.json", "rb").read()
for route in ("eventgrid", "callbacks"):
    fn = next(f for f in function_app.app.get_functions() if f.get_function_name() == route)
    req = func.HttpRequest(method="POST", url="http://localhost/api/" + route, headers={}, body=body)
    answer = fn.get_user_function()(req)
    assert answer.status_code == 200, answer.get_body()
    function_app.app.functions_bindings = {}
function_app.service().flush(utcnow())
tools = sorted(m for m in sys.modules if m == "tools" or m.startswith("tools."))
print(json.dumps({"tools": tools, "catalog": "triage.catalog" in sys.modules}))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    loaded = json.loads(out.stdout.splitlines()[-1])
    assert loaded["catalog"]  # the request went through the pipeline
    assert loaded["tools"] == []


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _internal_imports(path: Path, known: set[str]) -> set[str]:
    """Every triage module `path` imports: at the top, inside functions and under TYPE_CHECKING alike
    (a deferred import is still a dependency, it only moves the failure to the first call)."""
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("triage"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            if not base.startswith("triage"):
                continue
            # `from . import catalog` names a module; `from .catalog import lookup` names its contents.
            named = {f"{base}.{alias.name}" for alias in node.names} & known
            found |= named or {base}
    return found & known


def test_the_runtime_package_has_no_import_circle() -> None:
    # A package's __init__ may load its own implementations (the store opens its backends):
    # those edges point down the tree and are left out; every other circle is a design knot.
    paths = sorted((ROOT / "triage").rglob("*.py"))
    known = {_module_name(p) for p in paths}
    graph = {
        _module_name(p): {
            m
            for m in _internal_imports(p, known)
            if not (p.name == "__init__.py" and m.startswith(_module_name(p) + "."))
        }
        for p in paths
    }
    circles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        for following in sorted(graph[node]):
            if following in trail:
                circles.append([*trail[trail.index(following) :], following])
            elif following > trail[0]:  # each circle found once, from its smallest module
                visit(following, [*trail, following])

    for start in sorted(graph):
        visit(start, [start])
    assert circles == []


def test_the_circle_check_sees_imports_inside_functions() -> None:
    # The check above would pass vacuously if it could not see imports inside functions.
    path = ROOT / "triage" / "settings.py"
    assert "triage.schedule" in _internal_imports(path, {"triage.schedule", "triage.report"})
