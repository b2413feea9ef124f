"""Proof with Microsoft's renderer and a real browser.

Every card we can produce is parsed by the `adaptivecards` npm package (one node process for all
of them) and must come back with zero errors; one card is drawn by headless Chromium and must not
be blank. Without node or Chromium these tests skip, unless ACS_TRIAGE_REQUIRE_TOOLS=1 (CI), where
a missing tool is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from factories import (
    make_alert,
    make_daily_report,
    make_digest,
    make_guidance,
    make_huge_alert,
    make_incident,
    make_reminder,
)
from msgspec.structs import replace
from render_golden import SILENCE_URL

from tools import preview
from tools.replay import SAMPLES, alerts_from_files
from triage.destinations import teams
from triage.model import Category, Severity
from triage.report import teams_card

REPO = Path(__file__).resolve().parents[1]
CHECKER = REPO / "tests" / "cardcheck" / "check_cards.js"


def need(what: str, found: object) -> None:
    """Skip when a tool is missing, or fail when CI promised it (ACS_TRIAGE_REQUIRE_TOOLS=1)."""
    if found:
        return
    if os.environ.get("ACS_TRIAGE_REQUIRE_TOOLS") == "1":
        pytest.fail(f"{what} is required (ACS_TRIAGE_REQUIRE_TOOLS=1) but was not found")
    pytest.skip(f"{what} not found")


def every_kind_of_card() -> dict[str, dict[str, Any]]:
    """Teams bodies for every shape of alert: demo alerts, digests, the worst case, hostile text."""
    alerts = {f"demo-{i}": alert for i, alert in enumerate(preview.demo_alerts(), start=1)}
    alerts |= {
        "factory-error": make_alert(),
        "factory-digest": make_digest(count=9_999, samples=5),
        "factory-reminder": make_reminder(make_digest(count=9_999, samples=5)),
        "reminder-huge": make_reminder(make_digest(make_huge_alert().incident, make_huge_alert().guidance)),
        "no-docs-no-ids": make_alert(
            make_incident(ids={}, details={}, message=""), make_guidance(docs_url="")
        ),
        "success-severity-none": make_alert(
            guidance=make_guidance(category=Category.SUCCESS, severity=Severity.NONE)
        ),
        "hostile-text": make_alert(
            make_incident(
                message="[x](http://evil) <at>Adele</at> <!channel> # H\n- item",
                ids={"operationContext": "<b>op</b>"},
            )
        ),
        "huge": make_huge_alert(),
        "silence-link": replace(make_alert(), silence_url=SILENCE_URL),
        "silence-link-no-docs": replace(
            make_alert(guidance=make_guidance(docs_url="")), silence_url=SILENCE_URL
        ),
        "silence-link-huge": replace(make_huge_alert(), silence_url=SILENCE_URL),
    }
    # Real alerts with "Also documented as" and a fallback's advice, through the whole pipeline.
    for name in (
        "callbacks/add-participant-failed-408-10057.json",
        "eventgrid/sms-delivery-failed-4999-unlisted.json",
        # CallEnded, email, WhatsApp, Job Router: their details, the SMTP code, the fallbacks
        "eventgrid/call-ended-490-4502.json",
        "eventgrid/email-bounced-550-5.1.1.json",
        "cloudevents/whatsapp-failed-131047.json",
        "eventgrid/router-job-classification-failed.json",
    ):
        alerts[name] = alerts_from_files([str(SAMPLES / name)])[0]
    cards = {name: teams.render(alert) for name, alert in alerts.items()}
    # The daily report's card, bar chart included: full, empty, and with hostile event names.
    cards |= {
        "report": teams_card(make_daily_report()),
        "report-one-failure": teams_card(make_daily_report(failures=1)),
        "report-empty": teams_card(make_daily_report(failures=0)),
        "report-hostile": teams_card(make_daily_report(hostile=True)),
    }
    return cards


# A card the renderer must reject, so a silent checker cannot pass for a clean one.
BROKEN = {
    "type": "AdaptiveCard",
    "version": "1.4",
    "body": [{"type": "Table"}, {"type": "TextBlock", "text": "x", "size": "Huge"}],
    "actions": [{"type": "Action.OpenUrl"}],
}


@pytest.fixture(scope="module")
def renderer_report() -> dict[str, dict[str, Any]]:
    node = shutil.which("node")
    need("node", node)
    need("node_modules/adaptivecards (npm install)", (REPO / "node_modules" / "adaptivecards").is_dir())
    items = [{"name": name, "payload": body} for name, body in every_kind_of_card().items()]
    items.append({"name": "broken", "payload": BROKEN})
    done = subprocess.run(
        [str(node), str(CHECKER)],
        input=json.dumps(items),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )
    assert done.returncode in (0, 1), done.stderr
    return {result["name"]: result for result in json.loads(done.stdout)}


@pytest.mark.node
def test_every_card_passes_microsofts_renderer_with_zero_errors(
    renderer_report: dict[str, dict[str, Any]],
) -> None:
    failures = {name: r["errors"] for name, r in renderer_report.items() if name != "broken" and r["errors"]}
    assert failures == {}
    assert len(renderer_report) == len(every_kind_of_card()) + 1


@pytest.mark.node
def test_renderer_check_reports_a_broken_card(renderer_report: dict[str, dict[str, Any]]) -> None:
    events = {e["event"] for e in renderer_report["broken"]["errors"]}
    assert {"UnknownElementType", "InvalidPropertyValue", "PropertyCantBeNull"} <= events


def test_every_card_also_passes_our_teams_rules() -> None:
    # The renderer lets Action.Submit, other versions and unwrapped text through; teams.lint does not.
    assert {name: teams.lint(body) for name, body in every_kind_of_card().items() if teams.lint(body)} == {}


@pytest.mark.chromium
def test_card_renders_to_a_picture_that_is_not_blank(tmp_path: Path) -> None:
    need("chromium", preview.find_chromium())
    need("node_modules/adaptivecards (npm install)", preview.find_adaptivecards())
    written = preview.write_previews([make_alert()], tmp_path, ("teams",), png=False)
    page = next(p for p in written if p.suffix == ".html")
    assert (tmp_path / "adaptivecards.min.js").is_file()  # the page draws with Microsoft's renderer
    png = preview.screenshot(page, tmp_path / "card.png", width=880, height=700)  # the one Chromium run
    assert png.stat().st_size > 5_000
    assert preview.png_size(png) == (880, 700)
    assert not preview.png_is_blank(png)


def test_previews_write_json_and_html_per_alert_and_format(tmp_path: Path) -> None:
    written = preview.write_previews([make_alert(), make_digest()], tmp_path, png=False)
    names = {p.name for p in written}
    assert {
        "01-playfailed-400-8535.teams.json",
        "01-playfailed-400-8535.slack.html",
        "02-playfailed-400-8535-digest.teams.html",
        "02-playfailed-400-8535-digest.slack.json",
    } <= names
    page = (tmp_path / "01-playfailed-400-8535.slack.html").read_text(encoding="utf-8")
    assert "approximation of Slack" in page
    body = json.loads((tmp_path / "01-playfailed-400-8535.teams.json").read_text(encoding="utf-8"))
    assert body == teams.render(make_alert())


def test_preview_pages_cannot_be_broken_out_of_by_event_text(tmp_path: Path) -> None:
    hostile = make_alert(make_incident(message="</script><script>alert(1)</script><img src=x>"))
    preview.write_previews([hostile], tmp_path, png=False)
    for page in tmp_path.glob("*.html"):
        html = page.read_text(encoding="utf-8")
        assert "<script>alert" not in html and "<img" not in html
