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
