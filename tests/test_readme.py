"""README.md works as written: every command in its ```bash blocks runs here, against loopback
stand-ins, and must exit as the README says (0, or the `# exit N` its comment states).

How a block is run, section by section (`## …`), in the repository's folder:
- a block whose first line is `# needs Azure…` is not run (it needs a subscription); the marker is
  visible to readers, and only a few blocks that call Azure may carry it;
- `./dev test` is this suite itself and is not run again from inside it;
- `serve` and `tools.sinks` run until stopped: they are started in the background and stay up for
  the rest of their section, as in a second terminal;
- `export NAME=VALUE` holds for the rest of the section;
- fixed ports become free ones; `sqlite:acs-triage.sqlite3`, `--out out/` and `--out docs/img`
  a temporary folder;
  nothing else of a command is changed. The environment has no ACS_TRIAGE_* setting, no
  local.settings.json, and no .venv/bin on PATH (a bare `python` there would hide a README line
  that only works inside the venv).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from required import skip_or_fail

from tools.preview import find_chromium

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
AZURE_MARKER = "# needs Azure"
SELF = "./dev test"  # the command running this test
LONG_RUNNING = ("triage serve", "tools.sinks")
MAX_LINES = 350

_BLOCK = re.compile(r"^```bash\n(.*?)^```", re.DOTALL | re.MULTILINE)
_EXIT = re.compile(r"#\s*exit (\d+)\b")


@dataclass
class Section:
    """One `## ` section of README.md and its bash blocks (the part before the first is "top")."""

    title: str
    blocks: list[list[str]] = field(default_factory=list)


def commands(block: str) -> list[str]:
    """The block's commands: continuation lines joined, blank and comment-only lines left out."""
    joined = re.sub(r"\s*\\\n\s*", " ", block)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


def sections() -> list[Section]:
    found: list[Section] = []
    for part in re.split(r"(?m)^(?=## )", README.read_text(encoding="utf-8")):
        title = part.splitlines()[0].removeprefix("## ").strip() if part.startswith("## ") else "top"
        section = Section(title)
        for match in _BLOCK.finditer(part):
            body = match.group(1)
            if body.lstrip().startswith(AZURE_MARKER):
                continue
            section.blocks.append(commands(body))
        if section.blocks:
            found.append(section)
    return found


def expected_exit(command: str) -> int:
    found = _EXIT.search(command)
    return int(found.group(1)) if found else 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class Runner:
    """Runs one section's commands as a reader would, with the substitutions the docstring lists."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.ports: dict[str, str] = {}
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("ACS_TRIAGE_") and k != "AzureWebJobsStorage"
        }
        self.env["ACS_TRIAGE_LOCAL_SETTINGS"] = ""  # no developer's local.settings.json
        self.env["PATH"] = os.pathsep.join(
            p for p in self.env.get("PATH", "").split(os.pathsep) if ".venv" not in Path(p).parts
        )
        self.env.pop("VIRTUAL_ENV", None)
        self.background: list[subprocess.Popen[str]] = []

    def localize(self, command: str) -> str:
        def port(match: re.Match[str]) -> str:
            number = match.group(2)
            self.ports.setdefault(number, str(free_port()))
            return match.group(1) + self.ports[number]

        command = re.sub(r"(--port |127\.0\.0\.1:)(\d{4,5})\b", port, command)
        command = command.replace("sqlite:acs-triage.sqlite3", f"sqlite:{self.tmp / 'acs-triage.sqlite3'}")
        command = command.replace("--out docs/img", f"--out {self.tmp / 'img'}")  # not the committed ones
        return command.replace("--out out/", f"--out {self.tmp / 'out'}/")

    def run(self, command: str) -> None:
        if command.startswith(SELF):
            return
        local = self.localize(command)
        if local.startswith("export "):
            name, _, value = local.removeprefix("export ").split("#")[0].strip().partition("=")
            self.env[name] = shlex.split(value)[0] if value else ""
            return
        if "tools.preview" in local and find_chromium() is None:
            skip_or_fail("Chromium not found: README's picture command cannot run")
        if any(word in local for word in LONG_RUNNING):
            self.start(local)
            return
        result = subprocess.run(
            ["bash", "-c", local],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == expected_exit(command), (
            f"README command failed as written: {command}\n--- stdout\n{result.stdout[-3000:]}"
            f"\n--- stderr\n{result.stderr[-3000:]}"
        )

    def start(self, command: str) -> None:
        found = re.search(r"--port (\d+)", command)
        assert found, f"a long-running README command must name its port: {command}"
        process = subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.background.append(process)
        deadline = time.monotonic() + 60
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", int(found.group(1)))) == 0:
                    return
            if process.poll() is not None:
                said = process.stderr.read() if process.stderr else ""
                pytest.fail(f"README command exited early: {command}\n{said}")
            assert time.monotonic() < deadline, f"README command did not start listening: {command}"
            time.sleep(0.2)

    def stop(self) -> None:
        for process in self.background:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=10)


@pytest.fixture(name="runner")
def runner_fixture(tmp_path: Path) -> Iterator[Runner]:
    runner = Runner(tmp_path)
    yield runner
    runner.stop()


SECTIONS = sections()


@pytest.mark.parametrize("section", SECTIONS, ids=[s.title for s in SECTIONS])
def test_every_command_of_the_readme_runs_as_written(section: Section, runner: Runner) -> None:
    for block in section.blocks:
        for command in block:
            runner.run(command)


def test_the_readme_starts_with_its_two_commands_and_stays_short() -> None:
    text = README.read_text(encoding="utf-8")
    first = _BLOCK.search(text)
    assert first is not None
    assert [c.split("#")[0].strip() for c in commands(first.group(1))] == ["./dev replay", SELF]
    assert len(text.splitlines()) <= MAX_LINES


def test_only_blocks_that_call_azure_are_left_out() -> None:
    marked = [
        m.group(1)
        for m in _BLOCK.finditer(README.read_text(encoding="utf-8"))
        if m.group(1).startswith(AZURE_MARKER)
    ]
    assert len(marked) <= 3
    for body in marked:
        assert any(re.search(r"\b(azd|func azure)\b|azurewebsites\.net", c) for c in commands(body)), body


def test_every_readme_command_runs_in_the_repository_or_its_venv() -> None:
    # `python -m triage` outside the venv fails with ModuleNotFoundError: the README says ./dev.
    for section in SECTIONS:
        for block in section.blocks:
            for command in block:
                assert not re.match(r"(python3?|pip) ", command), command


def test_the_runner_reads_exit_codes_and_keeps_the_rest_of_a_command() -> None:
    assert expected_exit("./dev triage doctor   # exit 1: no destination") == 1
    assert expected_exit("./dev replay") == 0
    assert commands("a \\\n   --b c   # note\n# only a comment\n\nd\n") == ["a --b c   # note", "d"]


def test_the_format_list_the_readme_gives_is_every_kind_replay_takes() -> None:
    from triage.destinations import names

    [line] = [
        line
        for line in README.read_text(encoding="utf-8").splitlines()
        if line.startswith("`--format` takes")
    ]
    assert set(re.findall(r"`(\w+)`", line)) - {"replay"} == set(names())
