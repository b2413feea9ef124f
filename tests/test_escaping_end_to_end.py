"""Text from an event is attacker-controlled (anyone who can set an operationContext, or reach the
callback URL, chooses it). In the Slack and Teams alerts the app posts, none of it can ping a
channel, mention someone or plant a link."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from factories import make_alert, make_digest

import function_app
from samples import sample
from tools.localhost import LocalHost
from triage.events import to_incident
from triage.ingest import parse_body
from triage.model import Incident
from triage.render import render
from triage.service import Service
from triage.settings import Settings
from triage.store.memory import MemoryStore

HOSTILE = [
    "<!channel>",
    "<!here|here>",
    "<@U123>",
    "<#C024BE7LR>",
    "<http://evil.example|click>",
    "[click](http://evil.example)",
    "<at>x</at>",
    "&lt;at&gt;y&lt;/at&gt;",
    "![img](https://evil.example/p.png)",
    "www.evil.example",
]
TEXT = " ".join(HOSTILE)


def hostile_events() -> list[dict[str, Any]]:
    play = sample("callbacks/play-failed-400-8535.json")[0]
    play["id"] = "hostile-play"
    play["data"]["resultInformation"]["message"] = TEXT
    play["data"]["operationContext"] = TEXT
    add = sample("callbacks/add-participant-failed-408-10057.json")[0]
    add["id"] = "hostile-add"
    add["data"]["resultInformation"]["message"] = "\n# Severity: none\n- " + TEXT
    add["data"]["participant"] = {"rawId": TEXT, "kind": "communicationUser"}
    return [play, add]


def incidents() -> list[Incident]:
    body = json.dumps(hostile_events()).encode()
    found = [to_incident(raw, resource="contoso-acs") for raw in parse_body(body, None, 1 << 20).events]
    assert all(isinstance(i, Incident) for i in found)
    return [i for i in found if isinstance(i, Incident)]


def strings(node: Any) -> Iterator[str]:
    """Every string value of a JSON document (keys are ours, values may carry event text)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def assert_slack_is_inert(payload: dict[str, Any]) -> None:
    texts = list(strings(payload))
    for text in texts:
        # Slack gives meaning only to < >: without them nothing pings, mentions or links.
        assert "<" not in text and ">" not in text, text
        assert "http://evil" not in text and "https://evil" not in text, text
    assert payload.get("unfurl_links") is False and payload.get("unfurl_media") is False
    shown = " ".join(texts)
    assert "&lt;!channel&gt;" in shown and "&lt;@U123&gt;" in shown  # shown as typed, not dropped


def assert_teams_is_inert(payload: dict[str, Any]) -> None:
    card = payload["attachments"][0]["content"]
    assert "entities" not in card.get("msteams", {})  # no mention entities
    for action in card.get("actions", []):
        assert action["type"] == "Action.OpenUrl" and "evil" not in action["url"]
    texts = [t for t in strings(card) if t != card.get("$schema")]
    for text in texts:
        assert "<" not in text and ">" not in text, text  # no <at>, no HTML, no autolinks
        assert "](" not in text and "[click]" not in text, text  # no Markdown links or images
        assert "http://evil" not in text and "https://evil" not in text, text
        assert "&lt;" not in text, text  # an entity a client might decode back into <at>
    for line in "\n".join(texts).split("\n"):
        assert not line.lstrip().startswith(("# ", "- Severity", "# Severity")), line
    assert any("click" in t for t in texts)  # shown, defanged, not dropped


@pytest.mark.parametrize("index", [0, 1])
def test_event_text_cannot_ping_mention_or_link_in_slack(index: int) -> None:
    incident = incidents()[index]
    assert_slack_is_inert(render(make_alert(incident), "slack"))


@pytest.mark.parametrize("index", [0, 1])
def test_event_text_cannot_mention_or_link_in_a_teams_card(index: int) -> None:
    incident = incidents()[index]
    assert_teams_is_inert(render(make_alert(incident), "teams"))


def test_a_digest_of_hostile_events_is_inert_too() -> None:
    incident = incidents()[0]
    digest = make_digest(incident)
    assert_slack_is_inert(render(digest, "slack"))
    assert_teams_is_inert(render(digest, "teams"))


@pytest.fixture
def app() -> Iterator[MemoryStore]:
    store = MemoryStore()
    env = {
        "ACS_TRIAGE_TEAMS_URL": "https://teams.example.invalid/workflows/x?sig=y",
        "ACS_TRIAGE_SLACK_URL": "https://slack.example.invalid/services/T/B/z",
    }
    function_app.configure(Service(Settings.from_env(env), store))
    yield store
    function_app.configure(Service(Settings.from_env({}), MemoryStore()))


def test_the_alerts_the_app_queues_for_hostile_callbacks_are_inert(app: MemoryStore) -> None:
    status, _, _ = LocalHost(function_app.app).http(
        "POST", "/api/callbacks", {}, json.dumps(hostile_events()).encode()
    )
    assert status == 200
    by_destination: dict[str, list[dict[str, Any]]] = {}
    for message in app.outbox:
        by_destination.setdefault(message.destination, []).append(message.payload)
    assert len(by_destination["slack"]) == 2 and len(by_destination["teams"]) == 2
    for payload in by_destination["slack"]:
        assert_slack_is_inert(payload)
    for payload in by_destination["teams"]:
        assert_teams_is_inert(payload)
