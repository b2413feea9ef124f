"""A stand-in for `az` and `azd`, for the hook tests (tests/test_hooks.py): installed on PATH under
both names, it answers the commands the hooks use from a JSON file describing the Azure it
pretends to be (FAKE_AZURE_WORLD), changes that file as Azure would change, and logs each call.

A subscription-scoped az command without --subscription fails: the hooks must say where they
work (azd's subscription), never rely on az's default one."""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

# Options that take several words (up to the next option).
MULTI = {"--included-event-types"}


def options(words: list[str]) -> tuple[list[str], dict[str, Any]]:
    """(command words, options): a flag alone is True; MULTI options take a list."""
    command: list[str] = []
    found: dict[str, Any] = {}
    index = 0
    while index < len(words) and not words[index].startswith("--"):
        command.append(words[index])
        index += 1
    while index < len(words):
        name = words[index]
        values = []
        index += 1
        while index < len(words) and not words[index].startswith("--"):
            values.append(words[index])
            index += 1
        found[name] = values if name in MULTI else (values[0] if values else True)
    return command, found


def fail(message: str, code: int = 1) -> int:
    print(f"ERROR: {message}", file=sys.stderr)
    return code


def az(world: dict[str, Any], words: list[str]) -> int:
    command, opt = options(words)
    if command[:2] != ["account", "show"] and "--subscription" not in opt:
        return fail(f"az {' '.join(command)} without --subscription would use az's default subscription")
    if opt.get("--subscription") not in world["logged_in"]:
        return fail("Please run 'az login' to setup account.")
    topics: list[dict[str, Any]] = world["topics"]
    subscriptions: list[dict[str, Any]] = world["subscriptions"]

    def topic_named(name: str) -> dict[str, Any] | None:
        group = opt.get("--resource-group")
        return next((t for t in topics if t["name"] == name and t["resourceGroup"] == group), None)

    match command:
        case ["account", "show"]:
            return 0
        case ["eventgrid", "system-topic", "list"]:
            assert opt["--query"] == "[].[name, resourceGroup, source]", opt["--query"]
            for t in topics:
                if t["subscription"] == opt["--subscription"]:
                    print(f"{t['name']}\t{t['resourceGroup']}\t{t['source']}")
            return 0
        case ["eventgrid", "system-topic", "create"]:
            assert opt["--topic-type"] == "Microsoft.Communication.CommunicationServices"
            assert opt["--location"] == "global"
            if any(t["source"].lower() == opt["--source"].lower() for t in topics):
                return fail("Only one system topic is allowed per source.")
            topics.append(
                {
                    "name": opt["--name"],
                    "resourceGroup": opt["--resource-group"],
                    "subscription": opt["--subscription"],
                    "source": opt["--source"],
                    "principalId": str(uuid.uuid4()) if opt.get("--mi-system-assigned") else None,
                }
            )
            return 0
        case ["eventgrid", "system-topic", ("show" | "update" | "delete") as verb]:
            topic = topic_named(opt["--name"])
            if topic is None:
                return fail("ResourceNotFound", 3)
            if verb == "show":
                assert opt["--query"] == "identity.principalId"
                print(topic["principalId"] or "")
            elif verb == "update" and opt.get("--mi-system-assigned"):
                topic["principalId"] = str(uuid.uuid4())
            elif verb == "delete":
                assert opt.get("--yes"), "delete asks for confirmation without --yes"
                topics.remove(topic)
            return 0
        case ["eventgrid", "system-topic", "event-subscription", verb]:
            topic = topic_named(opt["--system-topic-name"])
            if topic is None:
                return fail("ResourceNotFound: system topic", 3)
            mine = [s for s in subscriptions if s["topic"] == topic["name"]]
            if verb == "list":
                assert opt["--query"] == "length(@)"
                print(len(mine))
                return 0
            existing = next((s for s in mine if s["name"] == opt["--name"]), None)
            if verb in ("show", "update", "delete") and existing is None:
                return fail("ResourceNotFound: event subscription", 3)
            if verb == "delete":
                assert opt.get("--yes"), "delete asks for confirmation without --yes"
                subscriptions.remove(existing)  # type: ignore[arg-type]
            elif verb in ("create", "update"):
                assert opt["--deadletter-identity"] == "systemassigned"
                record = existing or {"topic": topic["name"], "name": opt["--name"]}
                record |= {
                    "endpoint": opt["--endpoint"],
                    "types": opt["--included-event-types"],
                    "deadletter": opt["--deadletter-identity-endpoint"],
                }
                if verb == "create":
                    record |= {
                        "schema": opt["--event-delivery-schema"],
                        "attempts": opt["--max-delivery-attempts"],
                        "ttl": opt["--event-ttl"],
                    }
                    subscriptions.append(record)
            return 0
        case ["role", "assignment", "create"]:
            world["roles"].append(
                {"principal": opt["--assignee-object-id"], "role": opt["--role"], "scope": opt["--scope"]}
            )
            return 0
        case ["functionapp", "keys", "list"]:
            assert opt["--query"] == "functionKeys.default"
            print(world["function_key"])
            return 0
    return fail(f"the fake has no 'az {' '.join(command)}'", 2)


def azd(world: dict[str, Any], words: list[str]) -> int:
    match words:
        case ["env", "get-values"]:
            for key, value in world["env"].items():
                escaped = (
                    value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$").replace("`", "\\`")
                )
                print(f'{key}="{escaped}"')
            return 0
        case ["env", "set", key, value]:
            world["env"][key] = value
            return 0
    return fail(f"the fake has no 'azd {' '.join(words)}'", 2)


def main() -> int:
    tool, words = sys.argv[1], sys.argv[2:]
    path = Path(os.environ["FAKE_AZURE_WORLD"])
    world = json.loads(path.read_text())
    world.setdefault("calls", []).append([tool, *words])
    code = (az if tool == "az" else azd)(world, words)
    path.write_text(json.dumps(world, indent=1))
    return code


if __name__ == "__main__":
    sys.exit(main())
