"""The "Silence…" link in a browser, end to end: Debian's Chromium (headless, driven by Playwright,
no browser downloaded) opens a Teams card as Microsoft's renderer draws it, clicks "Silence…",
fills the page in and sends it; the next event of that fingerprint is silenced. Everything runs on
loopback: the local server (`python -m triage serve`'s LocalServer), the Teams-like sink, and the
card page as a file.

Without Chromium or the adaptivecards package these tests skip, unless ACS_TRIAGE_REQUIRE_TOOLS=1.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
from required import skip_or_fail
from test_delivery_faults import sms_failures

import function_app
from tools import preview
from tools.localhost import LocalServer
from tools.sinks import TeamsSink
from triage.clock import utcnow
from triage.service import Service
from triage.settings import Settings
from triage.silence_link import LINK_LIFETIME
from triage.store.sqlite import SqliteStore

pytestmark = pytest.mark.chromium

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package; Playwright's own browsers are never fetched
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LINK_KEY = "a-link-key-for-the-browser-test-0123456789"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait(condition: Callable[[], Any], seconds: float = 15.0) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("timed out")


class Running:
    """The local server with "Silence…" links on, and where its alerts go."""

    def __init__(self, server: LocalServer, teams: TeamsSink, service: Service) -> None:
        self.server = server
        self.teams = teams
        self.service = service

    def post(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        answer = requests.post(
            f"{self.server.url}/api/eventgrid",
            data=orjson.dumps(events),
            headers={"Content-Type": "application/json", "aeg-event-type": "Notification"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        report: dict[str, Any] = answer.json()
        return report


@pytest.fixture(name="running")
def running_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Running]:
    monkeypatch.setattr(function_app, "_service", None)
    port = _free_port()
    with TeamsSink() as teams:
        settings = Settings.from_env(
            {
                "ACS_TRIAGE_TEAMS_URL": teams.url,
                "ACS_TRIAGE_PUBLIC_URL": f"http://127.0.0.1:{port}",
                "ACS_TRIAGE_SILENCE_LINK_KEY": LINK_KEY,
                "ACS_TRIAGE_STORE": f"sqlite:{tmp_path / 'state.db'}",
            }
        )
        service = Service(settings, SqliteStore(str(tmp_path / "state.db")))
        function_app.configure(service)
        with LocalServer(port=port, tick_seconds=0.1, timer_seconds=3600) as server:
            yield Running(server, teams, service)
        service.store.close()


@pytest.fixture(name="browser", scope="module")
def browser_fixture() -> Iterator[Any]:
    if not CHROMIUM.is_file():
        skip_or_fail("Debian's chromium (/usr/bin/chromium)")
    if preview.find_adaptivecards() is None:
        skip_or_fail("node_modules/adaptivecards (npm ci)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(name="page")
def page_fixture(browser: Any) -> Iterator[Any]:
    # A phone's screen: the page must work at this size.
    context = browser.new_context(viewport={"width": 375, "height": 740})
    # Loopback and the card's own file only: anything else is refused before it leaves the machine.
    context.route(
        "**/*",
        lambda route: (
            route.continue_()
            if route.request.url.startswith(("http://127.0.0.1", "file://"))
            else route.abort()
        ),
    )
    yield context.new_page()
    context.close()


def open_from_the_card(running: Running, page: Any, tmp_path: Path) -> Any:
    """The first alert's Teams card drawn by Microsoft's renderer; "Silence…" clicked: the page it opened."""
    assert running.post(sms_failures(1))["alerted"] == 1
    card = _wait(lambda: running.teams.accepted and running.teams.accepted[-1])
    page.goto(preview.write_teams_page(card, tmp_path / "card").as_uri())
    button = page.locator(".ac-pushButton", has_text="Silence…")  # the renderer's action button
    with page.context.expect_page() as opened:
        button.click()
    silence_page = opened.value
    silence_page.wait_for_load_state()
    return silence_page


_CONTRAST = """(element) => {
  function channel(c) { c /= 255; return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); }
  function luminance(rgb) {
    const [r, g, b] = rgb.match(/\\d+(\\.\\d+)?/g).slice(0, 3).map(Number);
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  }
  let node = element, background = "rgba(0, 0, 0, 0)";
  while (node && (background === "rgba(0, 0, 0, 0)" || background === "transparent")) {
    background = getComputedStyle(node).backgroundColor; node = node.parentElement;
  }
  if (background === "rgba(0, 0, 0, 0)") background = "rgb(255, 255, 255)";
  const a = luminance(getComputedStyle(element).color), b = luminance(background);
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}"""


def test_silence_from_a_rendered_teams_card_and_the_next_event_is_silenced(
    running: Running, page: Any, tmp_path: Path
) -> None:
    silence_page = open_from_the_card(running, page, tmp_path)
    assert silence_page.url.startswith(f"{running.server.url}/api/silence/")
    assert silence_page.get_by_role("heading", level=1).inner_text() == "Silence alerts like this one"
    which = silence_page.locator("dl").inner_text()
    assert "SMSDeliveryReportReceived" in which and "4007" in which and "contoso-acs-prod" in which

    # Usable on a phone: nothing wider than the screen; the CSP let the page's own style apply.
    assert silence_page.evaluate("document.documentElement.scrollWidth") <= 375
    submit = silence_page.get_by_role("button", name="Silence", exact=True)
    assert submit.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(11, 92, 173)"

    silence_page.get_by_label("4 hours").check()
    silence_page.get_by_label("Comment").fill("new prompts being uploaded")
    silence_page.get_by_label("Your name").fill("alice")
    silence_page.keyboard.press("Tab")  # from the name field to the button, as a keyboard user would
    assert silence_page.evaluate("document.activeElement.textContent") == "Silence"
    assert submit.evaluate("b => getComputedStyle(b).outlineStyle") == "solid"  # focus is visible
    submit.click()

    status = silence_page.get_by_role("status")
    assert status.inner_text().startswith("Silenced until ")
    [silence] = running.service.store.list_silences(utcnow())
    assert (silence.ends - silence.starts, silence.created_by) == (timedelta(hours=4), "alice")
    assert silence_page.get_by_role("button", name=f"Expire silence {silence.id}").is_visible()
    for selector in ("h1", "dd", "label", "button", ".hint", "[role=status]"):
        for element in silence_page.locator(selector).element_handles():
            assert element.evaluate(_CONTRAST) >= 4.5, selector  # WCAG AA for normal text

    report = running.post(sms_failures(1, start=1))
    assert (report["silenced"], report["alerted"]) == (1, 0)

    # Expire, from the same page: the next event is no longer held back (it joins its burst's
    # digest: the first alert's grouping window still runs).
    silence_page.get_by_role("button", name=f"Expire silence {silence.id}").click()
    assert f"Silence {silence.id} has ended" in silence_page.get_by_role("status").inner_text()
    report = running.post(sms_failures(1, start=2))
    assert (report["silenced"], report["grouped"]) == (0, 1)


def test_a_replayed_form_an_expired_link_and_a_forged_link_are_refused(
    running: Running, page: Any, tmp_path: Path
) -> None:
    silence_page = open_from_the_card(running, page, tmp_path)
    link = silence_page.url
    sent: list[Any] = []
    silence_page.on("request", lambda request: sent.append(request) if request.method == "POST" else None)
    silence_page.get_by_label("1 hour").check()
    silence_page.get_by_label("Comment").fill("maintenance")
    silence_page.get_by_label("Your name").fill("bob")
    silence_page.get_by_role("button", name="Silence", exact=True).click()
    assert silence_page.get_by_role("status").inner_text().startswith("Silenced until ")
    [posted] = sent

    replay = silence_page.request.post(
        link, data=posted.post_data, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert replay.status == 409 and "sent already" in replay.text()
    assert len(running.service.store.list_silences(utcnow())) == 1

    links = running.service.links
    assert links is not None
    facts = links.read(link.rsplit("/", 1)[1], utcnow())
    assert facts is not None
    expired = links.url(facts[0], utcnow() - LINK_LIFETIME - timedelta(seconds=1))
    token = link.rsplit("/", 1)[1]
    forged = f"{link.rsplit('/', 1)[0]}/{token[:-4]}{'AAAA' if not token.endswith('AAAA') else 'BBBB'}"
    for target in (expired.replace(links.public_url, running.server.url), forged):
        answer = page.goto(target)
        assert answer is not None and answer.status == 404
        assert page.content().count("Not found") == 1 and "4007" not in page.content()
