"""What a publish uploads: the files `git ls-files` lists (plus the local environments a developer
has) with .funcignore applied twice, by each tool's own matching rules: `azd deploy` reads it as
a .gitignore (git's rules, through pathspec), `func azure functionapp publish` with Core Tools'
own parser, whose rules are restated in `func_denies`. Both packages must hold what runs and
nothing else, and what runs must import only what ships: the Python files of the package, the
standard library, and the distributions requirements.txt installs (with their dependencies)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterable
from functools import cache
from importlib import metadata
from pathlib import Path, PurePosixPath

import pathspec
import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent

# Files that exist in a developer's folder without being tracked: they must never ship.
LOCAL_ENVIRONMENTS = [
    ".venv/lib/python3.11/site-packages/pydantic/__init__.py",
    ".venv-checkov/bin/checkov",
    ".venv-worker/lib/python3.13/site-packages/azure_functions_runtime/__init__.py",
    "node_modules/azurite/package.json",
    "docs/recipes/express/node_modules/express/index.js",
    "triage/node_modules/.package-lock.json",
    "__pycache__/function_app.cpython-313.pyc",
    "triage/__pycache__/settings.cpython-311.pyc",
    "triage/store/__pycache__/azure.cpython-313.pyc",
    "triage/render/stale.pyc",
    # azd's environment: the webhook URLs and the HMAC key given to `azd up`
    ".azure/prod/.env",
    ".azure/config.json",
    "triage/.azure/prod/.env",
    ".git",  # a git worktree's pointer to its repository (a file)
    ".git/config",
    "local.settings.json",
    "__azurite_db_table__.json",
    "out/teams/play-failed.png",
]
NOT_RUN_TIME = ("tools/", "tests/", "bench/", "docs/", "samples/", "infra/", "node_modules/", ".venv")


def funcignore_lines() -> list[str]:
    return (ROOT / ".funcignore").read_text(encoding="utf-8").splitlines()


@cache
def git_rules() -> pathspec.PathSpec:
    return pathspec.GitIgnoreSpec.from_lines(funcignore_lines())


def _func_pattern(pattern: str) -> re.Pattern[str]:
    """One .funcignore line as Core Tools compiles it: punctuation escaped, `**` any text (one
    character or more, slashes too), `*` any text within one folder; matched at the path's start."""
    escaped = re.sub(r"[-\[\]/{}()+?.\\^$|]", lambda m: "\\" + m.group(), pattern)
    return re.compile(escaped.replace("**", "(.+)").replace("*", "([^/]+)"))


@cache
def func_rules(lines: tuple[str, ...]) -> tuple[tuple[re.Pattern[str], ...], tuple[re.Pattern[str], ...]]:
    """(patterns that deny, patterns that accept again), as Core Tools reads .funcignore: lines
    trimmed, `#` lines and blank ones skipped, `!` negates, one leading `/` dropped."""
    deny: list[re.Pattern[str]] = []
    accept: list[re.Pattern[str]] = []
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        target = accept if line.startswith("!") else deny
        target.append(_func_pattern(line.removeprefix("!").removeprefix("/")))
    return tuple(deny), tuple(accept)


def func_denies(path: str, lines: Iterable[str] | None = None) -> bool:
    """Whether `func azure functionapp publish` leaves out `path` (relative, with forward slashes)."""
    deny, accept = func_rules(tuple(funcignore_lines() if lines is None else lines))
    return any(p.match(path) for p in deny) and not any(p.match(path) for p in accept)


RULES = {"azd": lambda path: bool(git_rules().match_file(path)), "func": func_denies}


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


def uploaded(paths: Iterable[str], tool: str = "azd") -> list[str]:
    denies = RULES[tool]
    return [p for p in paths if not denies(p)]


def shipped(tool: str = "azd") -> list[str]:
    return uploaded([*tracked_files(), *LOCAL_ENVIRONMENTS], tool)


def func_denies_of(lines: list[str], path: str) -> bool:
    return func_denies(path, lines)


def test_func_rules_as_restated_here_match_from_the_root_only() -> None:
    """The facts of Core Tools' parser this test relies on, shown on patterns of their own."""
    assert not func_denies_of(["node_modules/"], "docs/recipes/express/node_modules/express/index.js")
    assert func_denies_of(["node_modules/"], "node_modules/azurite/package.json")
    assert func_denies_of(["**/node_modules/"], "docs/recipes/express/node_modules/express/index.js")
    assert not func_denies_of(["**/node_modules/"], "node_modules/azurite/package.json")
    assert not func_denies_of(["*.pyc"], "triage/__pycache__/x.pyc")
    assert func_denies_of(["/tests/"], "tests/test_x.py")
    assert not func_denies_of(["tests/", "!tests/keep.py"], "tests/keep.py")
    # An unlisted folder ships whatever it holds: the reason .azure/ must be listed.
    assert not func_denies_of(["local.settings.json"], ".azure/prod/.env")


@pytest.mark.parametrize("tool", sorted(RULES))
def test_both_tools_upload_the_same_package(tool: str) -> None:
    assert shipped(tool) == shipped("azd")


@pytest.mark.parametrize("tool", sorted(RULES))
def test_no_environment_secret_or_local_cache_ships_under_either_tools_rules(tool: str) -> None:
    files = shipped(tool)
    assert not set(LOCAL_ENVIRONMENTS) & set(files)
    leaked = [
        p for p in files if ".azure/" in p or "node_modules/" in p or "__pycache__" in p or p.endswith(".pyc")
    ]
    assert leaked == []
    assert {"function_app.py", "host.json", "requirements.txt", "triage/service.py"} <= set(files)


def test_the_package_holds_the_app_its_settings_files_and_the_catalog() -> None:
    files = set(shipped())
    assert {"function_app.py", "host.json", "requirements.txt"} <= files
    assert "triage/__init__.py" in files
    assert {
        f"triage/store/azure/{module}.py"
        for module in ("__init__", "_core", "claims", "groups", "silences", "outbox")
    } <= files
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
            # A line for another Python (the worker of the deployed 3.13) is not this one's.
            if req.marker is None or req.marker.evaluate():
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
