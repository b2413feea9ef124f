"""The azd hooks (scripts/): shellcheck-clean, and their logic run against a fake `az` and `azd`
on PATH (tests/fake_azure.py) that keep an Azure of topics, subscriptions and role assignments
in a JSON file. The hooks make and remove the Event Grid topic and subscription (they live in the
ACS resource's group, which azd must never touch), in azd's subscription, with dead-lettering."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from required import skip_or_fail

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "scripts"
SUBSCRIPTION = "8d2f5b1c-4a3e-4f6b-9c1d-2e7a9b0c3d4e"
ACS_GROUP = "rg-communication"
ACS_ID = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{ACS_GROUP}/providers/"
    "Microsoft.Communication/communicationServices/contoso-acs"
)
DEADLETTER = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-triage/providers/Microsoft.Storage/storageAccounts/"
    "stacstriageabc/blobServices/default/containers/eventgrid-deadletter"
)
FUNCTION_KEY = "function-key-never-printed-0123456789"
SMS = "Microsoft.Communication.SMSDeliveryReportReceived"


def azd_environment(token: str = "abc123") -> dict[str, str]:
    """What `azd provision` leaves in the azd environment (infra/main.bicep's outputs)."""
    return {
        "AZURE_ENV_NAME": "prod",
        "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
        "AZURE_RESOURCE_GROUP": "rg-triage",
        "AZURE_FUNCTION_APP_NAME": f"func-acstriage-{token}",
        "AZURE_FUNCTION_APP_HOSTNAME": f"func-acstriage-{token}.azurewebsites.net",
        "ACS_RESOURCE_ID": ACS_ID,
        "ACS_SYSTEM_TOPIC_SUBSCRIPTION_ID": SUBSCRIPTION,
        "ACS_SYSTEM_TOPIC_RESOURCE_GROUP": ACS_GROUP,
        "ACS_TRIAGE_DEADLETTER_CONTAINER_ID": DEADLETTER,
    }


@dataclass
class Run:
    code: int
    out: str

    def ok(self) -> Run:
        assert self.code == 0, self.out
        return self


class FakeAzure:
    """An Azure (and an azd environment) as a JSON file, with az and azd on PATH answering from it."""

    def __init__(self, tmp_path: Path, *, with_az: bool = True) -> None:
        self.path = tmp_path / "world.json"
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        for tool in ("az", "azd") if with_az else ("azd",):
            stub = self.bin / tool
            # -S: the fake needs the standard library only, and each hook calls it a dozen times
            stub.write_text(
                f'#!/bin/sh\nexec "{sys.executable}" -S "{REPO / "tests" / "fake_azure.py"}" {tool} "$@"\n'
            )
            stub.chmod(0o755)
        self.save(
            {
                "env": azd_environment(),
                "logged_in": [SUBSCRIPTION],
                "topics": [],
                "subscriptions": [],
                "roles": [],
                "function_key": FUNCTION_KEY,
            }
        )

    @property
    def world(self) -> dict[str, Any]:
        world: dict[str, Any] = json.loads(self.path.read_text())
        return world

    def save(self, world: dict[str, Any]) -> None:
        self.path.write_text(json.dumps(world))

    def change(self, **parts: Any) -> None:
        self.save(self.world | parts)

    def set_env(self, **values: str) -> None:
        world = self.world
        world["env"] |= values
        self.save(world)

    def run(self, hook: str) -> Run:
        env = {"PATH": f"{self.bin}:/usr/bin:/bin", "FAKE_AZURE_WORLD": str(self.path), "HOME": str(self.bin)}
        done = subprocess.run(
            ["sh", str(SCRIPTS / f"{hook}.sh")],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return Run(done.returncode, done.stdout + done.stderr)

    def az_calls(self) -> list[list[str]]:
        return [call[1:] for call in self.world.get("calls", []) if call[0] == "az"]


@pytest.fixture
def azure(tmp_path: Path) -> FakeAzure:
    return FakeAzure(tmp_path)


def test_the_hook_scripts_pass_shellcheck() -> None:
    if shutil.which("shellcheck") is None:
        skip_or_fail("shellcheck is not installed (./dev test installs Debian's)")
    scripts = sorted(str(p.relative_to(REPO)) for p in SCRIPTS.glob("*.sh"))
    assert scripts == ["scripts/hooklib.sh", "scripts/postdeploy.sh", "scripts/predown.sh"]
    done = subprocess.run(
        ["shellcheck", "-x", *scripts, "dev"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout


def test_first_deploy_makes_the_topic_with_an_identity_and_subscribes_sms_with_dead_letters(
    azure: FakeAzure,
) -> None:
    run = azure.run("postdeploy").ok()
    world = azure.world
    [topic] = world["topics"]
    assert (topic["resourceGroup"], topic["source"], topic["subscription"]) == (
        ACS_GROUP,
        ACS_ID,
        SUBSCRIPTION,
    )
    assert topic["principalId"]
    assert world["roles"] == [
        {"principal": topic["principalId"], "role": "Storage Blob Data Contributor", "scope": DEADLETTER}
    ]
    [subscription] = world["subscriptions"]
    assert subscription["name"] == "acs-triage-abc123"
    assert subscription["types"] == [SMS]
    assert (
        subscription["endpoint"]
        == f"https://func-acstriage-abc123.azurewebsites.net/api/eventgrid?code={FUNCTION_KEY}"
    )
    assert subscription["deadletter"] == DEADLETTER
    assert (subscription["schema"], subscription["attempts"], subscription["ttl"]) == (
        "eventgridschema",
        "30",
        "1440",
    )
    assert world["env"]["ACS_TRIAGE_TOPIC_MADE"] == "true"
    assert world["env"]["ACS_TRIAGE_TOPIC_GROUP"] == ACS_GROUP
    assert FUNCTION_KEY not in run.out


def test_every_az_call_names_azds_subscription(azure: FakeAzure) -> None:
    # az's default subscription is another one: the fake refuses calls without --subscription.
    azure.run("postdeploy").ok()
    azure.run("predown").ok()
    calls = azure.az_calls()
    assert len(calls) > 8
    for call in calls:
        assert call[call.index("--subscription") + 1] == SUBSCRIPTION, call


def test_a_second_deploy_updates_the_subscription_with_the_event_types_chosen(azure: FakeAzure) -> None:
    azure.run("postdeploy").ok()
    azure.set_env(
        ACS_TRIAGE_EVENT_TYPES=f"{SMS},Microsoft.Communication.CallEnded,"
        "Microsoft.Communication.EmailDeliveryReportReceived,Microsoft.Communication.AdvancedMessageDeliveryStatusUpdated"
    )
    azure.run("postdeploy").ok()
    world = azure.world
    assert len(world["topics"]) == 1 and len(world["subscriptions"]) == 1
    assert world["subscriptions"][0]["types"] == [
        SMS,
        "Microsoft.Communication.CallEnded",
        "Microsoft.Communication.EmailDeliveryReportReceived",
        "Microsoft.Communication.AdvancedMessageDeliveryStatusUpdated",
    ]
    assert world["env"]["ACS_TRIAGE_TOPIC_MADE"] == "true"  # still ours: predown may remove it


def test_an_event_type_the_app_does_not_read_is_refused_before_anything_is_made(azure: FakeAzure) -> None:
    azure.set_env(ACS_TRIAGE_EVENT_TYPES=f"{SMS},Microsoft.Communication.ChatMessageReceived")
    run = azure.run("postdeploy")
    assert run.code == 1
    assert (
        "ACS_TRIAGE_EVENT_TYPES: Microsoft.Communication.ChatMessageReceived is not an event type" in run.out
    )
    assert azure.world["topics"] == [] and azure.world["subscriptions"] == []


def test_the_resources_own_topic_is_used_given_an_identity_and_never_deleted(azure: FakeAzure) -> None:
    theirs = {
        "name": "contoso-acs-events",
        "resourceGroup": "rg-events",
        "subscription": SUBSCRIPTION,
        "source": ACS_ID.lower(),  # ARM ids compare without case
        "principalId": None,
    }
    azure.change(topics=[theirs])
    azure.run("postdeploy").ok()
    world = azure.world
    [topic] = world["topics"]
    assert topic["name"] == "contoso-acs-events" and topic["principalId"]
    assert world["roles"][0]["principal"] == topic["principalId"]
    assert world["subscriptions"][0]["topic"] == "contoso-acs-events"
    assert world["env"]["ACS_TRIAGE_TOPIC_MADE"] == "false"
    azure.run("predown").ok()
    assert azure.world["subscriptions"] == []
    assert [t["name"] for t in azure.world["topics"]] == ["contoso-acs-events"]


def test_down_removes_the_subscription_and_the_topic_it_made_and_renames_the_next_vault(
    azure: FakeAzure,
) -> None:
    azure.run("postdeploy").ok()
    run = azure.run("predown").ok()
    world = azure.world
    assert world["subscriptions"] == [] and world["topics"] == []
    assert world["env"]["ACS_TRIAGE_VAULT_GENERATION"] == "2"
    assert "removed the system topic" in run.out
    azure.run("postdeploy").ok()  # the next `azd up` starts over cleanly
    azure.run("predown").ok()
    assert azure.world["env"]["ACS_TRIAGE_VAULT_GENERATION"] == "3"


def test_two_environments_on_one_acs_resource_keep_apart_and_the_topic_outlives_the_first_down(
    azure: FakeAzure,
) -> None:
    azure.run("postdeploy").ok()
    prod_env = azure.world["env"]
    staging_env = azure_environment_of(prod_env, token="stg456")
    azure.change(env=staging_env)
    azure.run("postdeploy").ok()
    assert sorted(s["name"] for s in azure.world["subscriptions"]) == [
        "acs-triage-abc123",
        "acs-triage-stg456",
    ]
    azure.change(env=prod_env)
    run = azure.run("predown").ok()
    assert [s["name"] for s in azure.world["subscriptions"]] == ["acs-triage-stg456"]
    assert len(azure.world["topics"]) == 1
    assert "1 other subscription(s) use it" in run.out


def azure_environment_of(env: dict[str, str], token: str) -> dict[str, str]:
    """Another azd environment's values on the same Azure (topic state as postdeploy left it)."""
    return azd_environment(token) | {k: v for k, v in env.items() if k.startswith("ACS_TRIAGE_TOPIC")}


def test_down_without_a_deploy_only_renames_the_next_vault(azure: FakeAzure) -> None:
    run = azure.run("predown").ok()
    assert azure.az_calls() == []
    assert azure.world["env"]["ACS_TRIAGE_VAULT_GENERATION"] == "2"
    assert "nothing to remove" in run.out


def test_az_logged_in_elsewhere_stops_the_hook_with_what_to_run(azure: FakeAzure) -> None:
    azure.change(logged_in=["00000000-0000-0000-0000-000000000000"])
    for hook in ("postdeploy", "predown"):
        if hook == "predown":
            azure.set_env(ACS_TRIAGE_TOPIC_NAME="evgt-acstriage-abc123", ACS_TRIAGE_TOPIC_GROUP=ACS_GROUP)
        run = azure.run(hook)
        assert run.code == 1
        assert f"az is not logged in to subscription {SUBSCRIPTION} (azd's): run 'az login'" in run.out
    assert [call[:2] for call in azure.az_calls()] == [["account", "show"]] * 2


def test_without_az_the_hook_says_to_install_it(tmp_path: Path) -> None:
    if shutil.which("az", path="/usr/bin:/bin"):
        pytest.skip("this machine has az in /usr/bin")
    run = FakeAzure(tmp_path, with_az=False).run("postdeploy")
    assert run.code == 1 and "the Azure CLI (az) is not installed" in run.out


def test_a_missing_output_names_it_and_says_to_provision(azure: FakeAzure) -> None:
    world = azure.world
    del world["env"]["ACS_TRIAGE_DEADLETTER_CONTAINER_ID"]
    azure.save(world)
    run = azure.run("postdeploy")
    assert run.code == 1
    assert (
        "ACS_TRIAGE_DEADLETTER_CONTAINER_ID is not in the azd environment; run 'azd provision' first"
        in run.out
    )


def _az_commands(text: str, pattern: str) -> set[str]:
    return {" ".join(m.split()) for m in re.findall(pattern, text)}


def _code(*paths: Path) -> str:
    """The scripts without their comment lines."""
    lines = [line for path in paths for line in path.read_text().splitlines()]
    return "\n".join(line for line in lines if not line.lstrip().startswith("#"))


def test_the_windows_hooks_run_the_same_az_commands_with_the_same_options() -> None:
    """pwsh cannot run here: the PowerShell hooks are held to the POSIX ones, command by command."""
    for hook in ("postdeploy", "predown"):
        posix = _code(SCRIPTS / f"{hook}.sh", SCRIPTS / "hooklib.sh")
        windows = _code(SCRIPTS / f"{hook}.ps1", SCRIPTS / "hooklib.ps1")
        command = r"\baz ((?:[a-z][a-z-]* )+)"
        assert _az_commands(posix, command) == _az_commands(windows, command), hook
        flags = r"(?<![\w-])(--[a-z-]+)"
        assert set(re.findall(flags, posix)) == set(re.findall(flags, windows)), hook
        for name in re.findall(r"\b(ACS_TRIAGE_[A-Z_]+|AZURE_[A-Z_]+)", posix):
            assert name in windows, (hook, name)


def test_the_hooks_offer_exactly_the_event_types_the_app_reads() -> None:
    from triage.events import SUBSCRIBABLE_EVENT_TYPES

    sh = re.search(r'^ALLOWED_EVENT_TYPES="([^"]*)"', (SCRIPTS / "hooklib.sh").read_text(), re.M)
    ps1 = re.search(r"\$AllowedEventTypes = @\((.*?)\)", (SCRIPTS / "hooklib.ps1").read_text(), re.S)
    assert sh is not None and ps1 is not None
    assert sh.group(1).split() == list(SUBSCRIBABLE_EVENT_TYPES)
    assert re.findall(r"'([^']+)'", ps1.group(1)) == list(SUBSCRIBABLE_EVENT_TYPES)
