"""The "Silence…" link, end to end without a browser: an alert goes through the real pipeline and
deliverer to the Teams-like and Slack-like sinks, its link is taken from the card as posted, and
the page is asked for through function_app's route on LocalHost (as the host calls it) and
through the local server (`python -m triage serve`) over a socket. The browser-driven version is
tests/test_silence_browser.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson
import pytest
import requests
from azurite_server import STORE_KINDS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_delivery_faults import App, FakeClock, sms_failures

import function_app
from tools.localhost import LocalServer
from tools.sinks import SlackSink, TeamsSink
from triage.errors import ConfigurationError
from triage.matchers import Matcher
from triage.redact import Redactor
from triage.settings import Settings
from triage.silence_link import LINK_LIFETIME, SilenceLinks
from triage.store import SilenceRule
from triage.store.memory import MemoryStore

LINK_KEY = "a-link-key-for-these-tests-only-0123456789"
PUBLIC_URL = "https://acs-triage.example"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def linked_app(make_app: Callable[..., App], store: Any, **destinations: str) -> App:
    return make_app(store, public_url=PUBLIC_URL, silence_link_key=LINK_KEY, **destinations)


def slack_link(sink: SlackSink) -> str:
    """The "Silence…" button's URL in the last message the Slack-like sink took."""
    message = sink.accepted[-1]
    buttons = [
        e for b in message["attachments"][0]["blocks"] if b["type"] == "actions" for e in b["elements"]
    ]
    [url] = [b["url"] for b in buttons if b["text"]["text"] == "Silence…"]
    return str(url)


def teams_link(sink: TeamsSink) -> str:
    """The "Silence…" action's URL in the last card the Teams-like sink took."""
    card = sink.accepted[-1]["attachments"][0]["content"]
    [url] = [a["url"] for a in card.get("actions", []) if a["title"] == "Silence…"]
    return str(url)


def path_of(url: str) -> str:
    assert url.startswith(PUBLIC_URL + "/api/silence/")
    return urlsplit(url).path


def form_fields(page: bytes, action: str = "silence") -> dict[str, str]:
    """The hidden fields of the page's form for `action` (the first one)."""
    text = page.decode()
    for form in re.findall(r"<form method=\"post\">(.*?)</form>", text):
        hidden = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', form))
        if hidden.get("action") == action:
            return hidden
    raise AssertionError(f"no {action} form")


def submit(app: App, path: str, page: bytes, **fields: str) -> tuple[int, bytes]:
    body = urlencode({**form_fields(page), **fields}).encode()
    status, _, answer = app.host.http("POST", path, dict(FORM), body)
    return status, answer


def silence_asked(**more: str) -> dict[str, str]:
    return {"duration": "4h", "hours": "", "comment": "new prompts being uploaded", "name": "alice", **more}


@pytest.fixture(name="alerted")
def alerted_fixture(
    make_app: Callable[..., App], slack: SlackSink, teams: TeamsSink
) -> Iterator[tuple[App, str]]:
    """An app whose first SMS failure reached Slack and Teams, and the link its Slack alert carried."""
    app = linked_app(make_app, MemoryStore(), slack_url=slack.url, teams_url=teams.url)
    assert app.post(sms_failures(1))["alerted"] == 1
    app.deliver()
    yield app, path_of(slack_link(slack))


class _Labels(HTMLParser):
    """Which form controls the page has and which of them a <label for> names."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[str] = []
        self.labelled: set[str] = set()
        self.buttons: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag in ("input", "textarea", "select") and found.get("type") != "hidden":
            self.controls.append(found.get("id") or "")
        if tag == "label" and found.get("for"):
            self.labelled.add(str(found["for"]))
        if tag == "button":
            self.buttons.append(found.get("type") or "")


# -- the link --------------------------------------------------------------------------------------
def test_each_teams_and_slack_alert_links_to_a_page_for_its_own_alert(
    alerted: tuple[App, str], teams: TeamsSink
) -> None:
    app, path = alerted
    for link in (path, path_of(teams_link(teams))):
        status, headers, page = app.host.http("GET", link, {}, b"")
        assert status == 200
        text = page.decode()
        assert "SMSDeliveryReportReceived" in text and "4007" in text and "contoso-acs-prod" in text
        assert headers["Content-Type"] == "text/html; charset=utf-8"
        assert headers["Cache-Control"] == "no-store" and headers["Referrer-Policy"] == "no-referrer"
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert "<script" not in text and "http" not in text.split("<main>")[1]  # no script, no link away


def test_the_page_labels_every_field_and_offers_one_hour_four_hours_a_day_and_a_custom_time(
    alerted: tuple[App, str],
) -> None:
    app, path = alerted
    _, _, page = app.host.http("GET", path, {}, b"")
    parsed = _Labels()
    parsed.feed(page.decode())
    assert parsed.controls and all(control in parsed.labelled for control in parsed.controls)
    assert parsed.buttons == ["submit"]
    text = page.decode()
    assert '<html lang="en">' in text and 'name="viewport"' in text
    for label in ("1 hour", "4 hours", "1 day", "Custom"):
        assert f">{label}</label>" in text
    assert 'max="168"' in text  # a custom silence: at most 7 days


def test_notices_and_the_other_destinations_carry_no_link(
    make_app: Callable[..., App], slack: SlackSink, clock: FakeClock
) -> None:
    app = linked_app(make_app, MemoryStore(), slack_url=slack.url)
    app.post(sms_failures(1))
    clock.advance(301)
    app.flush()  # quiet for a window: the resolved notice
    app.deliver()
    first, resolved = slack.accepted
    assert "Silence…" in orjson.dumps(first).decode()
    assert "Silence…" not in orjson.dumps(resolved).decode()


# -- silencing -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", STORE_KINDS)
def test_the_form_starts_a_silence_and_the_next_event_of_that_fingerprint_is_silenced(
    kind: str,
    make_store: Callable[[str], Any],
    make_app: Callable[..., App],
    slack: SlackSink,
    clock: FakeClock,
) -> None:
    store = make_store(kind)
    app = linked_app(make_app, store, slack_url=slack.url)
    app.post(sms_failures(1))
    app.deliver()
    path = path_of(slack_link(slack))
    _, _, page = app.host.http("GET", path, {}, b"")

    status, answer = submit(app, path, page, **silence_asked())
    assert status == 200
    assert "Silenced until 2026-11-20 13:30:00 UTC" in answer.decode()
    [silence] = store.list_silences(clock.now())
    assert (silence.ends - silence.starts, silence.created_by, silence.comment) == (
        timedelta(hours=4),
        "alice",
        "new prompts being uploaded",
    )
    assert silence.matcher.conditions() == {
        "kinds": ["SMSDeliveryReportReceived"],
        "codes": [4007],
        "resources": ["contoso-acs-prod"],
    }
    assert f"<strong>{silence.id}</strong>" in answer.decode()  # listed, with its Expire button
    assert form_fields(answer, "expire")["silence"] == silence.id

    clock.advance(1)  # within the 5 s the silences are cached: this instance already honours it
    assert app.post(sms_failures(1, start=1))["silenced"] == 1
    assert app.post(sms_failures(1, start=2, code=4010))["alerted"] == 1  # another fingerprint


@pytest.mark.parametrize(
    ("asked", "lasts"),
    [
        ({"duration": "1h"}, timedelta(hours=1)),
        ({"duration": "1d"}, timedelta(days=1)),
        ({"duration": "custom", "hours": "168"}, timedelta(days=7)),
        ({"duration": "custom", "hours": "2"}, timedelta(hours=2)),
    ],
)
def test_each_duration_the_page_offers_is_the_silence_s_length(
    asked: dict[str, str], lasts: timedelta, alerted: tuple[App, str]
) -> None:
    app, path = alerted
    _, _, page = app.host.http("GET", path, {}, b"")
    status, _ = submit(app, path, page, **silence_asked(**asked))
    assert status == 200
    [silence] = app.store.list_silences(app.clock.now())
    assert silence.ends - silence.starts == lasts


@pytest.mark.parametrize(
    ("asked", "problem"),
    [
        ({"duration": "custom", "hours": "169"}, "from 1 to 168"),
        ({"duration": "custom", "hours": "0"}, "from 1 to 168"),
        ({"duration": "custom", "hours": "1.5"}, "from 1 to 168"),
        ({"duration": "90d"}, "Choose how long"),
        ({"comment": "  "}, "Comment: say why"),
        ({"name": ""}, "Name: say who you are"),
        ({"name": "x" * 101}, "Name: at most 100"),
    ],
)
def test_a_form_that_is_not_complete_is_answered_400_with_the_problem_and_starts_nothing(
    asked: dict[str, str], problem: str, alerted: tuple[App, str]
) -> None:
    app, path = alerted
    _, _, page = app.host.http("GET", path, {}, b"")
    status, answer = submit(app, path, page, **silence_asked(**asked))
    assert status == 400
    assert problem in answer.decode() and 'role="alert"' in answer.decode()
    assert app.store.list_silences(app.clock.now()) == []
    # The same form, completed, still works: a refused form's token was not used up.
    assert submit(app, path, page, **silence_asked())[0] == 200


def test_a_form_sent_twice_is_refused_the_second_time_and_starts_one_silence(
    alerted: tuple[App, str],
) -> None:
    app, path = alerted
    _, _, page = app.host.http("GET", path, {}, b"")
    assert submit(app, path, page, **silence_asked())[0] == 200
    status, answer = submit(app, path, page, **silence_asked())
    assert status == 409 and "sent already" in answer.decode()
    assert len(app.store.list_silences(app.clock.now())) == 1


def test_the_expire_button_ends_the_silence_and_the_next_event_alerts_again(alerted: tuple[App, str]) -> None:
    app, path = alerted
    _, _, page = app.host.http("GET", path, {}, b"")
    _, started = submit(app, path, page, **silence_asked())
    [silence] = app.store.list_silences(app.clock.now())
    app.clock.advance(60)
    body = urlencode(form_fields(started, "expire")).encode()
    status, _, answer = app.host.http("POST", path, dict(FORM), body)
    assert status == 200 and f"Silence {silence.id} has ended" in answer.decode()
    assert app.store.list_silences(app.clock.now()) == []
    assert "<p>None.</p>" in answer.decode()
    assert app.post(sms_failures(1, start=1))["silenced"] == 0
    # The button pressed again changes nothing.
    assert app.host.http("POST", path, dict(FORM), body)[0] in (400, 409)


def test_a_link_cannot_expire_a_silence_of_other_alerts(alerted: tuple[App, str]) -> None:
    app, path = alerted
    other = SilenceRule(
        id="0ther5il",
        matcher=Matcher(kinds=["PlayFailed"]),
        starts=app.clock.now(),
        ends=app.clock.now() + timedelta(hours=1),
    )
    app.store.add_silence(other)
    _, _, page = app.host.http("GET", path, {}, b"")
    assert "0ther5il" not in page.decode()  # only the silences that hold this alert back are listed
    fields = {**form_fields(page), "action": "expire", "silence": "0ther5il"}
    status, answer = app.host.http("POST", path, dict(FORM), urlencode(fields).encode())[::2]
    assert status == 400 and "not in force for these alerts" in answer.decode()
    assert [s.id for s in app.store.list_silences(app.clock.now())] == ["0ther5il"]


# -- refusals ------------------------------------------------------------------------------------
def test_forged_altered_foreign_and_expired_tokens_answer_404_and_reveal_nothing(
    alerted: tuple[App, str], make_app: Callable[..., App]
) -> None:
    app, path = alerted
    token = path.rsplit("/", 1)[1]
    payload, mac = token.split(".")
    foreign = SilenceLinks(PUBLIC_URL, "another-key-of-another-app-0123456789abcdef")
    tokens = {
        "mac of another key": foreign.token(_facts(app, token), app.clock.now()),
        "mac altered": f"{payload}.{mac[:-2]}{'AB' if mac[-2:] != 'AB' else 'CD'}",
        "payload altered": f"{payload[:-3]}xyz.{mac}",
        "spelled otherwise": f"{payload}.{mac}=",
        "no mac": payload,
        "garbage": "not-a-token",
        "very long": "a" * 5000 + "." + mac,
    }
    answers = {name: app.host.http("GET", f"/api/silence/{t}", {}, b"") for name, t in tokens.items()}
    app.clock.advance(LINK_LIFETIME.total_seconds())  # the link's 24 h are over
    answers["expired"] = app.host.http("GET", path, {}, b"")
    for name, (status, _, body) in answers.items():
        assert (status, body) == (404, b"Not found\n"), name
    assert app.host.http("POST", path, dict(FORM), b"action=silence")[::2] == (404, b"Not found\n")


def _facts(app: App, token: str) -> Any:
    links = app.service.links
    assert links is not None
    found = links.read(token, app.clock.now())
    assert found is not None
    return found[0]


def test_without_links_configured_the_route_is_404_for_every_token(
    make_app: Callable[..., App], slack: SlackSink, alerted: tuple[App, str]
) -> None:
    _, path = alerted  # a token that is valid for an app with the key
    plain = make_app(MemoryStore(), slack_url=slack.url)
    assert plain.host.http("GET", path, {}, b"")[::2] == (404, b"Not found\n")
    plain.post(sms_failures(1, start=7))
    plain.deliver()
    assert "Silence…" not in orjson.dumps(slack.accepted[-1]).decode()


def test_a_form_token_of_another_page_or_a_forged_one_is_refused(
    alerted: tuple[App, str], make_app: Callable[..., App]
) -> None:
    app, path = alerted
    links = app.service.links
    assert links is not None
    other_link = links.token(
        _facts(app, path.rsplit("/", 1)[1])._replace(resource="other-acs"), app.clock.now()
    )
    _, _, other_page = app.host.http("GET", f"/api/silence/{other_link}", {}, b"")
    for form in (form_fields(other_page)["form"], "forged.token", ""):
        fields = {**silence_asked(), "action": "silence", "form": form}
        status, _, answer = app.host.http("POST", path, dict(FORM), urlencode(fields).encode())
        assert status == 403 and "not from this page" in answer.decode()
    assert app.store.list_silences(app.clock.now()) == []


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=600), content_type=st.sampled_from([FORM["Content-Type"], "text/plain", ""]))
def test_any_post_body_is_answered_with_a_4xx_never_a_5xx(
    body: bytes, content_type: str, alerted: tuple[App, str]
) -> None:
    app, path = alerted
    status = app.host.http("POST", path, {"Content-Type": content_type}, body)[0]
    assert 400 <= status < 500


# -- the local server ----------------------------------------------------------------------------
def _without_form_tokens(page: bytes) -> bytes:
    return re.sub(rb'name="form" value="[^"]*"', b'name="form" value=""', page)


def test_the_local_server_serves_the_route_exactly_as_the_function_app_does(alerted: tuple[App, str]) -> None:
    app, path = alerted
    function_app.configure(app.service)
    with LocalServer(tick_seconds=3600, timer_seconds=3600) as server:
        for method, target, body, headers in (
            ("GET", path, b"", {}),
            ("GET", path[:-3] + "xyz", b"", {}),
            ("POST", path, b"action=silence&form=x", dict(FORM)),
            ("PUT", path, b"", {}),
        ):
            status, host_headers, host_body = app.host.http(method, target, dict(headers), body)
            answer = requests.request(
                method, server.url + target, data=body, headers=headers, timeout=10, allow_redirects=False
            )
            assert answer.status_code == status, (method, target)
            assert _without_form_tokens(answer.content) == _without_form_tokens(host_body)
            for name, value in host_headers.items():
                assert answer.headers[name] == value


# -- settings ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"ACS_TRIAGE_PUBLIC_URL": PUBLIC_URL}, "ACS_TRIAGE_SILENCE_LINK_KEY is not set"),
        ({"ACS_TRIAGE_SILENCE_LINK_KEY": LINK_KEY}, "ACS_TRIAGE_PUBLIC_URL is not set"),
        (
            {"ACS_TRIAGE_PUBLIC_URL": PUBLIC_URL, "ACS_TRIAGE_SILENCE_LINK_KEY": "short"},
            "ACS_TRIAGE_SILENCE_LINK_KEY: is too short",
        ),
        (
            {"ACS_TRIAGE_PUBLIC_URL": "http://acs-triage.example", "ACS_TRIAGE_SILENCE_LINK_KEY": LINK_KEY},
            "ACS_TRIAGE_PUBLIC_URL: the app's public address must start with https://",
        ),
        (
            {"ACS_TRIAGE_PUBLIC_URL": PUBLIC_URL + "/?x=1", "ACS_TRIAGE_SILENCE_LINK_KEY": LINK_KEY},
            "without a query",
        ),
    ],
)
def test_link_settings_that_cannot_work_are_errors_naming_the_setting(
    env: dict[str, str], problem: str
) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(problem)) as caught:
        Settings.from_env({"ACS_TRIAGE_SLACK_URL": "https://hooks.slack.com/services/T/B/x", **env})
    assert LINK_KEY not in str(caught.value)


def test_the_link_key_is_redacted_from_logs() -> None:
    settings = Settings.from_env(
        {"ACS_TRIAGE_PUBLIC_URL": PUBLIC_URL + "/", "ACS_TRIAGE_SILENCE_LINK_KEY": LINK_KEY}
    )
    assert settings.public_url == PUBLIC_URL
    assert LINK_KEY not in Redactor.for_settings(settings).redact(f"key was {LINK_KEY}")
    assert LINK_KEY not in repr(settings)


def test_a_store_that_fails_is_a_503_page_and_a_form_it_refused_can_be_sent_again(
    alerted: tuple[App, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, path = alerted
    _, _, page = app.host.http("GET", path, {}, b"")

    def unavailable(*args: object, **kwargs: object) -> None:
        raise OSError("storage is down")

    with monkeypatch.context() as patched:
        patched.setattr(app.store, "add_silence", unavailable)
        status, answer = submit(app, path, page, **silence_asked())
        assert status == 503 and "Try again in a minute" in answer.decode()
        patched.setattr(app.store, "list_silences", unavailable)
        assert app.host.http("GET", path, {}, b"")[0] == 503
    # Nothing was half done: the same form, sent again, starts the silence.
    assert submit(app, path, page, **silence_asked())[0] == 200
    assert len(app.store.list_silences(app.clock.now())) == 1
