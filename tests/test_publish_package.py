"""What a publish uploads: the files `git ls-files` lists (plus the local environments a developer
has) with .funcignore applied by git's own matching rules, as `func azure functionapp publish` and
`azd deploy` apply it. The package must hold what runs and nothing else, and what runs must import
only what ships: the Python files of the package, the standard library, and the distributions
requirements.txt installs (with their dependencies)."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable
from functools import cache
from importlib import metadata
from pathlib import Path, PurePosixPath

import pathspec
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent

# Files that exist in a developer's folder without being tracked: they must never ship.
LOCAL_ENVIRONMENTS = [
    ".venv/lib/python3.11/site-packages/pydantic/__init__.py",
    ".venv-checkov/bin/checkov",
    "node_modules/azurite/package.json",
    "docs/recipes/express/node_modules/express/index.js",
    "triage/__pycache__/settings.cpython-311.pyc",
    "local.settings.json",
    "__azurite_db_table__.json",
    "out/teams/play-failed.png",
]
NOT_RUN_TIME = ("tools/", "tests/", "bench/", "docs/", "samples/", "infra/", "node_modules/", ".venv")


@cache
def funcignore() -> pathspec.PathSpec:
    lines = (ROOT / ".funcignore").read_text(encoding="utf-8").splitlines()
    return pathspec.GitIgnoreSpec.from_lines(lines)


@cache
def tracked_files() -> tuple[str, ...]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return tuple(line for line in out.splitlines() if line and (ROOT / line).is_file())


def uploaded(paths: Iterable[str]) -> list[str]:
    return [p for p in paths if not funcignore().match_file(p)]


def shipped() -> list[str]:
    return uploaded([*tracked_files(), *LOCAL_ENVIRONMENTS])


def test_the_package_holds_the_app_its_settings_files_and_the_catalog() -> None:
    files = set(shipped())
    assert {"function_app.py", "host.json", "requirements.txt"} <= files
    assert "triage/__init__.py" in files
    assert "triage/store/azure.py" in files
    assert "triage/service.py" in files
    assert any(p.startswith("catalog/") and p.endswith(".toml") for p in files)


def test_the_compiled_catalog_the_app_loads_ships_beside_the_toml_files_it_is_checked_against() -> None:
    files = set(shipped())
    assert "catalog/compiled.json" in files
    assert {p for p in tracked_files() if p.startswith("catalog/") and p.endswith(".toml")} <= files


# The command line is a development tool (it imports tools/); the Function App never loads it.
def _command_line(path: str) -> bool:
    return path == "triage/__main__.py" or path.startswith("triage/cli/")


def test_every_runtime_file_that_is_tracked_ships_and_the_command_line_does_not() -> None:
    runtime = [
        p
        for p in tracked_files()
        if (p.startswith("triage/") and p.endswith(".py") and not _command_line(p))
        or (p.startswith("catalog/") and p.endswith(".toml"))
    ]
    assert runtime
    assert set(runtime) <= set(shipped())
    assert [p for p in tracked_files() if _command_line(p)]
    assert not [p for p in shipped() if _command_line(p)]


def test_nothing_from_tools_tests_bench_docs_or_local_environments_ships() -> None:
    leaked = [p for p in shipped() if p.startswith(NOT_RUN_TIME) or "__pycache__" in p]
    assert leaked == []
    assert not set(LOCAL_ENVIRONMENTS) & set(shipped())


def test_the_development_requirements_do_not_ship() -> None:
    files = shipped()
    assert "requirements-dev.txt" not in files
    assert "package.json" not in files


def _imports(path: Path, module: str) -> list[str]:
    """The absolute module names a file imports (relative imports resolved against `module`)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
                # `from . import x` may name a module: keep the deepest name that is one.
                found.extend(f"{target}.{alias.name}" for alias in node.names)
                found.append(target)
            elif node.module and node.module != "__future__":
                found.append(node.module)
    return found


def _normal(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _requirement_closure() -> set[str]:
    """Distribution names requirements.txt installs, with their run-time dependencies."""
    pending: list[tuple[str, frozenset[str]]] = []
    for raw in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            pending.append((_normal(req.name), frozenset(req.extras)))
    visited: set[tuple[str, frozenset[str]]] = set()
    names: set[str] = set()
    while pending:
        item = pending.pop()
        if item in visited:
            continue
        visited.add(item)
        name, extras = item
        dist = metadata.distribution(name)
        names.add(_normal(dist.metadata["Name"]))
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in (extras or {""})):
                pending.append((_normal(req.name), frozenset(req.extras)))
    return names


def _modules_of(distributions: set[str]) -> set[str]:
    """Every dotted package/module name the files of these distributions provide."""
    names: set[str] = set()
    for name in distributions:
        for file in metadata.distribution(name).files or []:
            parts = PurePosixPath(str(file)).parts
            if not parts or parts[0].endswith((".dist-info", ".data")) or ".." in parts:
                continue
            for depth in range(1, len(parts)):
                names.add(".".join(parts[:depth]))
            names.add(".".join([*parts[:-1], parts[-1].split(".")[0]]))
    return names


def test_the_runtime_imports_nothing_that_does_not_ship() -> None:
    files = [p for p in shipped() if p.endswith(".py")]
    local = {p[: -len("/__init__.py")].replace("/", ".") for p in files if p.endswith("__init__.py")}
    local |= {p[: -len(".py")].replace("/", ".") for p in files}
    installed = _modules_of(_requirement_closure())
    missing: dict[str, list[str]] = {}
    for path in files:
        module = path[: -len(".py")].replace("/", ".").removesuffix(".__init__")
        for name in _imports(ROOT / path, module):
            top = name.split(".")[0]
            if top in sys.stdlib_module_names:
                continue
            if top in {m.split(".")[0] for m in local}:
                ok = name in local or name.rpartition(".")[0] in local
            else:
                ok = name in installed or name.rpartition(".")[0] in installed
            if not ok:
                missing.setdefault(path, []).append(name)
    assert missing == {}


def test_the_publisher_client_of_azure_eventgrid_is_a_development_requirement_only() -> None:
    assert "azure-eventgrid" not in _requirement_closure()
    dev = (ROOT / "requirements-dev.txt").read_text(encoding="utf-8")
    assert "azure-eventgrid" in dev


def test_serving_a_callback_loads_no_development_module() -> None:
    """The dynamic side of the same rule: import the app and answer a request in a fresh
    interpreter, then look at what it loaded."""
    script = (
        "import sys, azure.functions as func, function_app\n"
        "from pathlib import Path\n"
        "body = Path('samples/callbacks/play-failed-400-8535.json').read_bytes()\n"
        "req = func.HttpRequest(method='POST', url='http://localhost/api/callbacks', headers={}, body=body)\n"
        "assert function_app.callbacks(req).status_code == 200\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    development = [m for m in out if m.split(".")[0] in {"tools", "tests", "bench", "pytest"}]
    development += [m for m in out if m.split(".")[:2] == ["triage", "cli"] or m == "azure.eventgrid"]
    assert "triage.service" in out
    assert development == []
    # The catalog is loaded from catalog/compiled.json: its file-format models (pydantic) are not.
    assert "triage.catalog" in out and "triage.catalog_files" not in out
