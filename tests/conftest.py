"""Shared test setup. Tests only ever talk to loopback; nothing here reaches Azure, Slack or Teams."""

from __future__ import annotations

import os

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


# The fixtures most test files share, registered once for the whole suite (one Azurite per test
# process, not one per module that imports it): the Azurite stores, and the fake clock, app and
# Slack/Teams stand-ins of the delivery harness. Imported once the environment is cleaned above.
from azurite_server import azure_store_fixture, azurite_fixture, make_store_fixture  # noqa: F401, E402
from test_delivery_faults import (  # noqa: F401, E402
    clock_fixture,
    make_app_fixture,
    slack_fixture,
    teams_fixture,
)
