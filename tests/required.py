"""Tools some tests need (node, Azurite, Chromium, Python 3.13): skipped locally when missing,
a failure in CI. Its own module, not conftest, so that helper modules a test's child process
imports (azurite_server) need not import conftest, which registers their fixtures."""

from __future__ import annotations

import os

import pytest


def require_tools() -> bool:
    """In CI (ACS_TRIAGE_REQUIRE_TOOLS=1) a missing node/chromium/azurite is a failure, not a skip."""
    return os.environ.get("ACS_TRIAGE_REQUIRE_TOOLS") == "1"


def skip_or_fail(reason: str) -> None:
    """Skip locally when a tool is missing; fail in CI where .ci/run installs every tool."""
    if require_tools():
        pytest.fail(f"required tool missing in CI: {reason}")
    pytest.skip(reason)
