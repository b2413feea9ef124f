"""Shared test setup. Tests only ever talk to loopback; nothing here reaches Azure, Slack or Teams."""

from __future__ import annotations

import os

import pytest

# Settings come from the environment: make sure a developer's own ACS_TRIAGE_* values
# (a real webhook URL above all) can never leak into a test run.
for _key in [
    k
    for k in os.environ
    if k.startswith("ACS_TRIAGE_")
    and k
    not in {
        "ACS_TRIAGE_SEEDS",
        "ACS_TRIAGE_REQUIRE_SEEDS",
        "ACS_TRIAGE_REQUIRE_TOOLS",
    }
]:
    del os.environ[_key]
os.environ.pop("AzureWebJobsStorage", None)
# Nor a developer's local.settings.json, which the command line reads: no file, in this process
# and in every command it starts (a test that wants one names it).
os.environ["ACS_TRIAGE_LOCAL_SETTINGS"] = ""


def require_tools() -> bool:
    """In CI (ACS_TRIAGE_REQUIRE_TOOLS=1) a missing node/chromium/azurite is a failure, not a skip."""
    return os.environ.get("ACS_TRIAGE_REQUIRE_TOOLS") == "1"


def skip_or_fail(reason: str) -> None:
    """Skip locally when a tool is missing; fail in CI where .ci/run installs every tool."""
    if require_tools():
        pytest.fail(f"required tool missing in CI: {reason}")
    pytest.skip(reason)
