"""Pictures of alerts: each card as JSON, an HTML page and (with Chromium) a PNG.

Teams pages draw the card with Microsoft's own Adaptive Cards renderer (the `adaptivecards` npm
package from the repo's node_modules) under a Teams-like host config. Slack has no public
renderer, so Slack pages are an HTML approximation of how Block Kit shows the message, and say so.

    python -m tools.preview --demo --out DIR          the built-in demo alerts
    python -m tools.preview --readme --out docs/img   README's pictures, each with its card JSON

(`python -m triage render samples/ --out DIR` draws the alerts of event files.)
Only local files are loaded: every page forbids network access in its Content-Security-Policy.
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from string import Template
from typing import Any

from triage.destinations import slack, teams
from triage.model import Alert, Category, Context, Guidance, Incident, Match, Severity
from triage.render.content import payload_bytes
from triage.report import DailyReport, build, slack_message, teams_card
from triage.store.memory import MemoryStore

__all__ = [
    "README_PICTURES",
    "card_file_text",
    "demo_alerts",
    "find_adaptivecards",
    "find_chromium",
    "main",
    "png_is_blank",
    "png_size",
    "readme_cards",
    "screenshot",
    "write_previews",
    "write_readme_pictures",
    "write_teams_page",
]

log = logging.getLogger(__name__)

_WIDTH = {"teams": 880, "slack": 760}  # CSS pixels; Teams shows Full-width cards this wide
_AC_SCRIPT = "adaptivecards.min.js"
_TEMPLATES = Path(__file__).with_name("templates")
_CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # needed as root in containers; the pages are ours and load nothing remote
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--no-first-run",
    "--hide-scrollbars",
    "--mute-audio",
)
_CSP = (
    "default-src 'none'; script-src 'unsafe-inline' file:; style-src 'unsafe-inline'; "
    "img-src data:; font-src data:"
)


def write_previews(
    alerts: Iterable[Alert],
    out_dir: Path,
    formats: Sequence[str] = ("teams", "slack"),
    *,
    png: bool = True,
    scale: float = 1.0,
    progress: Callable[[str], None] | None = None,
) -> list[Path]:
    """Write `<n>-<kind>-<code>.<format>.json/.html/.png` per alert into `out_dir`; return the paths.

    PNGs need Chromium (`find_chromium`); without it only JSON and HTML are written and a warning
    says so. Teams pages need node_modules/adaptivecards (`npm install` at the repo root).
    `progress` is told how far the pictures are (each takes a browser start, about a second).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    chromium = find_chromium() if png else None
    if png and chromium is None:
        log.warning("Chromium not found (install the 'chromium' package): writing JSON and HTML, no PNG")
    written: list[Path] = []
    pictures: list[tuple[Path, int]] = []
    for number, alert in enumerate(alerts, start=1):
        stem = _stem(number, alert)
        for fmt in formats:
            if fmt == "teams":
                payload = teams.render(alert)
                page = _teams_page(alert.title, _clock(alert), payload, out_dir, written)
            elif fmt == "slack":
                payload = slack.render(alert)
                page = _slack_page(alert.title, _clock(alert), payload)
            else:
                raise ValueError(f"no preview for format {fmt!r}; choose teams or slack")
            json_path = out_dir / f"{stem}.{fmt}.json"
            json_path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            html_path = out_dir / f"{stem}.{fmt}.html"
            html_path.write_text(page, encoding="utf-8")
            written += [json_path, html_path]
            pictures.append((html_path, _WIDTH[fmt]))
    if progress is not None:
        progress(f"{len(pictures)} card(s) written as JSON and HTML")
    if chromium is not None and pictures:
        # Chromium spends most of its time starting up; two at a time halves the wall clock.
        with ThreadPoolExecutor(max_workers=2) as pool:
            shots = pool.map(
                lambda job: screenshot(job[0], job[0].with_suffix(".png"), width=job[1], scale=scale),
                pictures,
            )
            for done, picture in enumerate(shots, start=1):
                written.append(picture)
                if progress is not None:
                    progress(f"picture {done}/{len(pictures)}: {picture.name}")
    return written


def write_report_previews(
    report: DailyReport, out_dir: Path, *, png: bool = True, scale: float = 1.0
) -> list[Path]:
    """Write `report.teams.*` and `report.slack.*` (JSON, HTML, PNG) for a daily report."""
    out_dir.mkdir(parents=True, exist_ok=True)
    chromium = find_chromium() if png else None
    written: list[Path] = []
    title = "Daily report"
    when = report.end.strftime("%H:%M")
    for fmt in ("teams", "slack"):
        if fmt == "teams":
            payload = teams_card(report)
            page = _teams_page(title, when, payload, out_dir, written)
        else:
            payload = slack_message(report)
            page = _slack_page(title, when, payload)
        json_path = out_dir / f"report.{fmt}.json"
        json_path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        html_path = out_dir / f"report.{fmt}.html"
        html_path.write_text(page, encoding="utf-8")
        written += [json_path, html_path]
        if chromium is not None:
            written.append(
                screenshot(html_path, html_path.with_suffix(".png"), width=_WIDTH[fmt], scale=scale)
            )
    return written


# README's pictures: the file names in docs/img, each drawn from a sample event through today's
# pipeline (or a demo digest and the demo report), its card JSON written beside the picture.
README_PICTURES = ("teams-card", "slack-message", "teams-digest", "teams-report", "slack-report")
_SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def readme_cards() -> dict[str, tuple[str, str, str, dict[str, Any]]]:
    """Each README picture's (format, title, clock, payload), rendered now from the samples with
    the default settings (the environment's are left out: a picture shows the defaults)."""
    from triage.settings import Settings

    from .replay import alerts_from_files

    defaults = Settings.from_env({})
    [play] = alerts_from_files([str(_SAMPLES / "callbacks" / "play-failed-400-8535.json")], defaults)
    [sms] = alerts_from_files(
        [str(_SAMPLES / "eventgrid" / "sms-delivery-failed-4007-opt-out.json")], defaults
    )
    burst = demo_alerts()[3]
    report = demo_report()
    when = report.end.strftime("%H:%M")
    return {
        "teams-card": ("teams", play.title, _clock(play), teams.render(play)),
        "slack-message": ("slack", sms.title, _clock(sms), slack.render(sms)),
        "teams-digest": ("teams", burst.title, _clock(burst), teams.render(burst)),
        "teams-report": ("teams", "Daily report", when, teams_card(report)),
        "slack-report": ("slack", "Daily report", when, slack_message(report)),
    }


def card_file_text(payload: dict[str, Any]) -> str:
    """A payload as the .json file beside its picture holds it."""
    return json.dumps(payload, indent=2, ensure_ascii=False) + "\n"


def write_readme_pictures(out_dir: Path, *, scale: float = 2.0) -> list[Path]:
    """Write `<name>.png` and `<name>.json` into `out_dir` for every README picture (Chromium and
    node_modules/adaptivecards needed); the pages they are taken from are left in a temporary folder."""
    if find_chromium() is None:
        raise FileNotFoundError("Chromium not found: install 'chromium' or set ACS_TRIAGE_CHROMIUM")
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with tempfile.TemporaryDirectory() as pages:
        folder = Path(pages)
        for name, (fmt, title, when, payload) in readme_cards().items():
            if fmt == "teams":
                page = _teams_page(title, when, payload, folder, [])
            else:
                page = _slack_page(title, when, payload)
            html_path = folder / f"{name}.html"
            html_path.write_text(page, encoding="utf-8")
            written.append(screenshot(html_path, out_dir / f"{name}.png", width=_WIDTH[fmt], scale=scale))
            json_path = out_dir / f"{name}.json"
            json_path.write_text(card_file_text(payload), encoding="utf-8")
            written.append(json_path)
    return written


def demo_report() -> DailyReport:
    """A realistic day: counters of five failures over two days in an embedded store, read back by
    `triage.report.build` exactly as the timer does."""
    store = MemoryStore()
    end = datetime(2026, 11, 21, 8, tzinfo=UTC)
    day = [  # fingerprint, failures per hour today, per hour the day before
        ("PlayFailed|400|8535|contoso-acs-prod", 54, 37),
        ("SMSDeliveryReportReceived|4007|None|contoso-acs-prod", 25, 27),
        ("AddParticipantFailed|408|10057|contoso-acs-prod", 9, 0),
        ("CallDisconnected|410|3112|contoso-acs-eu", 4, 4),
        ("RecognizeFailed|400|8510|contoso-acs-eu", 1, 2),
    ]
    for hour in range(48):
        moment = end - timedelta(hours=48 - hour)
        today = hour >= 24
        store.add_hourly(
            moment, {f: (now if today else before) for f, now, before in day if (now if today else before)}
        )
    return build(store, end, timedelta(hours=24))


def _stem(number: int, alert: Alert) -> str:
    inc = alert.incident
    parts = [f"{number:02d}", inc.kind, *(str(c) for c in (inc.code, inc.subcode) if c is not None)]
    if alert.digest:
        parts.append("digest")
    return re.sub(r"[^a-z0-9]+", "-", "-".join(parts).lower()).strip("-")


# --- Chromium -----------------------------------------------------------------------------------


def find_chromium() -> str | None:
    """The Chromium/Chrome executable: $ACS_TRIAGE_CHROMIUM, else the first one on PATH."""
    configured = os.environ.get("ACS_TRIAGE_CHROMIUM")
    if configured:
        return configured if Path(configured).is_file() else shutil.which(configured)
    return next((found for name in _CHROMIUM_NAMES if (found := shutil.which(name))), None)


def _run_chromium(args: list[str], timeout: float = 90) -> str:
    chromium = find_chromium()
    if chromium is None:
        raise FileNotFoundError("Chromium not found: install 'chromium' or set ACS_TRIAGE_CHROMIUM")
    # A fresh profile per run: no state leaks between pictures, and runs can go in parallel.
    with tempfile.TemporaryDirectory(prefix="acs-triage-chromium-") as profile:
        done = subprocess.run(  # noqa: S603 - the operator's own browser, our own arguments
            [chromium, *_CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"chromium exited with {done.returncode}: {done.stderr.strip()[-500:]}")
    return done.stdout


def _content_height(page: Path, width: int) -> int:
    # The page writes its own height into <body data-height>; --dump-dom prints the DOM after scripts.
    dom = _run_chromium([f"--window-size={width},200", "--dump-dom", page.resolve().as_uri()])
    found = re.search(r'data-height="(\d+)"', dom)
    return int(found.group(1)) if found else 1200


def screenshot(page: Path, png: Path, *, width: int, height: int | None = None, scale: float = 1.0) -> Path:
    """Render the HTML file `page` to `png` with headless Chromium; height=None fits the content.

    A fitted height costs a second Chromium run (one to measure, one to draw).
    """
    if height is None:
        height = _content_height(page, width)
    _run_chromium(
        [
            f"--window-size={width},{height}",
            f"--force-device-scale-factor={scale:g}",
            f"--screenshot={png.resolve()}",
            page.resolve().as_uri(),
        ]
    )
    if not png.is_file():
        raise RuntimeError(f"chromium did not write {png}")
    return png


def _png_chunks(path: Path) -> Iterable[tuple[bytes, bytes]]:
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path} is not a PNG")
    offset = 8
    while offset + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        yield kind, data[offset + 8 : offset + 8 + length]
        offset += 12 + length


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) in pixels, from the PNG header."""
    for kind, chunk in _png_chunks(path):
        if kind == b"IHDR":
            width, height = struct.unpack(">II", chunk[:8])
            return width, height
    raise ValueError(f"{path} has no IHDR chunk")


def png_is_blank(path: Path) -> bool:
    """True when the picture is one flat colour (Chromium drew nothing).

    A flat image, whatever PNG filters the encoder chose, inflates to a handful of distinct byte
    values; anti-aliased text gives well over a hundred. Cheap, and no image library needed.
    """
    pixels = zlib.decompress(b"".join(chunk for kind, chunk in _png_chunks(path) if kind == b"IDAT"))
    return len(set(pixels)) < 16


# --- Teams page -------------------------------------------------------------------------------


def find_adaptivecards() -> Path | None:
    """node_modules/adaptivecards/dist/adaptivecards.min.js from the working directory or the repo."""
    relative = Path("node_modules", "adaptivecards", "dist", _AC_SCRIPT)
    for root in (Path.cwd(), Path(__file__).resolve().parents[1]):
        if (root / relative).is_file():
            return root / relative
    return None


def _teams_page(title: str, when: str, payload: dict[str, Any], out_dir: Path, written: list[Path]) -> str:
    script = out_dir / _AC_SCRIPT
    if not script.is_file():
        source = find_adaptivecards()
        if source is None:
            log.warning("node_modules/adaptivecards not found (run npm install): Teams pages show JSON only")
        else:
            shutil.copyfile(source, script)
            written.append(script)
    card = payload["attachments"][0]["content"]
    size = len(payload_bytes(payload))
    # "<" escaped so that no text inside the card can close the <script> element.
    card_json = json.dumps(card, ensure_ascii=False).replace("<", "\\u003c")
    return _template("teams.html").safe_substitute(
        csp=_CSP,
        title=html.escape(title),
        script=_AC_SCRIPT,
        host_config=(_TEMPLATES / "teams-host-config.json").read_text(encoding="utf-8"),
        card=card_json,
        when=when,
        size=f"{size:,}",
        limit=f"{teams.TEAMS_MAX_BYTES:,}",
    )


def write_teams_page(payload: dict[str, Any], out_dir: Path, title: str = "Teams card") -> Path:
    """One Teams request body as a page drawn by Microsoft's renderer (beside its script) in
    `out_dir`; its Action.OpenUrl buttons open their URL as Teams does."""
    out_dir.mkdir(parents=True, exist_ok=True)
    page = out_dir / "teams-card.html"
    page.write_text(_teams_page(title, "", payload, out_dir, []), encoding="utf-8")
    return page


def _template(name: str) -> Template:
    # $-placeholders, so the CSS and JavaScript braces in the pages need no escaping.
    return Template((_TEMPLATES / name).read_text(encoding="utf-8"))


def _clock(alert: Alert) -> str:
    moment = alert.last_seen or alert.incident.time
    return moment.astimezone(UTC).strftime("%H:%M") if moment else ""


# --- Slack page (an approximation) ------------------------------------------------------------

_EMOJI_DOT = {
    ":red_circle:": "#DD2E44",
    ":large_yellow_circle:": "#FDCB58",
    ":large_green_circle:": "#78B159",
}


def _emoji(text: str) -> str:
    for code, colour in _EMOJI_DOT.items():
        text = text.replace(code, f'<span class="dot" style="background:{colour}"></span>')
    return text


def _mrkdwn(text: str) -> str:
    # Slack-escaped text (&amp; &lt; &gt;) is already valid HTML text; only the quote is left to do.
    text = text.replace('"', "&quot;")
    text = re.sub(r"```\n?(.*?)\n?```", _preformatted, text, flags=re.DOTALL)
    text = re.sub(r"`([^`\n]+)`", r"<code>\1</code>", text)
    text = re.sub(r"(^|[\s(])\*([^*\n]+)\*(?=[\s).,:;!?]|$)", r"\1<b>\2</b>", text)
    text = re.sub(r"(^|[\s(])_([^_\n]+)_(?=[\s).,:;!?]|$)", r"\1<i>\2</i>", text)
    return _emoji(text).replace("\n", "<br>")


def _preformatted(match: re.Match[str]) -> str:
    # A code block keeps its spaces (the report's text bars line up in it); no markup inside.
    body = match.group(1).replace("*", "&#42;").replace("_", "&#95;").replace("`", "&#96;")
    return f'<pre class="block">{body}</pre>'


def _slack_block(block: dict[str, Any]) -> str:
    kind = block["type"]
    if kind == "header":
        return f'<div class="header">{_emoji(html.escape(block["text"]["text"]))}</div>'
    if kind == "section":
        parts = []
        if "text" in block:
            parts.append(f'<div class="text">{_mrkdwn(block["text"]["text"])}</div>')
        if block.get("fields"):
            cells = "".join(f'<div class="field">{_mrkdwn(f["text"])}</div>' for f in block["fields"])
            parts.append(f'<div class="fields">{cells}</div>')
        return f'<div class="section">{"".join(parts)}</div>'
    if kind == "context":
        items = "".join(f"<span>{_mrkdwn(e['text'])}</span>" for e in block["elements"])
        return f'<div class="context">{items}</div>'
    if kind == "actions":
        buttons = "".join(
            f'<span class="button">{html.escape(e["text"]["text"])}</span>' for e in block["elements"]
        )
        return f'<div class="actions">{buttons}</div>'
    return ""


def _slack_page(title: str, when: str, payload: dict[str, Any]) -> str:
    # A message without an attachment (the daily report) is drawn with an empty, uncoloured one.
    attachment = (payload.get("attachments") or [{"color": "transparent", "blocks": []}])[0]
    top = "".join(_slack_block(b) for b in payload["blocks"])
    inner = "".join(_slack_block(b) for b in attachment["blocks"])
    return _template("slack.html").safe_substitute(
        csp=_CSP,
        title=html.escape(title),
        when=when,
        top=top,
        color=html.escape(attachment["color"]),
        inner=inner,
        notification=html.escape(payload["text"]),
    )


# --- Demo alerts ------------------------------------------------------------------------------

_DOCS = (
    "https://learn.microsoft.com/en-us/azure/communication-services/resources/troubleshooting/"
    "voice-video-calling/troubleshooting-codes"
)
_SOURCE_CODES = (  # the page's title, as alerts name a source
    "Troubleshooting call end response codes for Calling SDK, Call Automation SDK, PSTN, Chat SDK, "
    "and SMS SDK"
)
_SERVER_CALL_ID = (
    "aHR0cHM6Ly9hcGkuZmxpZ2h0cHJveHkuc2t5cGUuY29tL2FwaS92Mi9jcC9jb252LW1hc28tMDMtcHJvZC1ha3MuY29udi5za3lwZS5j"
    "b20vY29udi9HX082RnM5N0RFV2NIbUY2RHA1TVNnP2k9MTAtMTI4LTEzNi0xOTA"
)


def _call_ids(n: int) -> dict[str, str]:
    return {
        "correlationId": f"1b541d21-bd0e-4695-a9ce-bf3290a8{n:04x}",
        "callConnectionId": f"0b004880-e406-40bf-8384-a4042a72{n:04x}",
        "serverCallId": _SERVER_CALL_ID,
    }


_T0 = datetime(2026, 9, 15, 11, 36, 13, tzinfo=UTC)


def _demo_alert(
    kind: str,
    context: Context,
    code: int | None,
    subcode: int | None,
    category: Category,
    *,
    message: str,
    advice: str,
    table: str,
    ids: dict[str, str],
    event_message: str = "",
    details: dict[str, str] | None = None,
    source: str = "",
    **alert_fields: Any,
) -> Alert:
    incident = Incident(
        kind=kind,
        event_type=f"Microsoft.Communication.{kind}",
        event_id=f"demo-{kind}-{code}-{subcode}",
        source=source or f"calling/callConnections/{ids.get('callConnectionId', '')}",
        resource="contoso-acs",
        time=_T0,
        context=context,
        code=code,
        subcode=subcode,
        message=event_message or message,
        ids=ids,
        details=details or {},
    )
    guidance = Guidance(
        code=code,
        subcode=subcode,
        message=message,
        category=category,
        severity=Severity.of(category),
        advice=advice,
        source=f"{_SOURCE_CODES} · {table}",
        match=Match.EXACT_IN_CONTEXT,
        docs_url=_DOCS,
    )
    return Alert(incident=incident, guidance=guidance, **alert_fields)


def demo_alerts() -> list[Alert]:
    """Four realistic alerts (codes and texts from the ACS troubleshooting tables) for pictures."""
    play = _demo_alert(
        "PlayFailed",
        "call-automation",
        400,
        8535,
        Category.UNEXPECTED_CLIENT,
        message="Action failed, file format is invalid.",
        advice="Play only accepts WAV audio:\n- mono (single channel)\n- 16-bit samples\n"
        "- 16 kHz sampling rate\nMake sure the file URL is publicly reachable, then retry the Play action.",
        table="Call Automation most common codes",
        ids={**_call_ids(1), "operationContext": "welcome-prompt"},
        details={"failedPlaySourceIndex": "0"},
    )
    disconnected = _demo_alert(
        "CallDisconnected",
        "call-automation",
        410,
        3112,
        Category.EXPECTED,
        message="Call setup failed due to network configuration problem on the client side.",
        advice="Check the client's network configuration (firewall, VPN, proxy) against the Azure "
        "Communication Services network requirements, then retry the call.",
        table="Calling End call codes and subcodes",
        event_message="Call setup failed due to network configuration problem on the client side, check "
        "the client's network configuration, and retry. DiagCode: 410#3112.@",
        ids={**_call_ids(2), "operationContext": "outbound-callback"},
    )
    sms = _demo_alert(
        "SMSDeliveryReportReceived",
        "sms",
        4007,
        None,
        Category.EXPECTED,
        message="The destination number opted out of receiving messages from you.",
        advice="Mark the number as opted out so that no further messages are sent to it.\n"
        "- Stop retries for this recipient\n- Honour START/STOP keywords in your opt-out list",
        table="SMS error codes",
        event_message="Message blocked: recipient opted out (4007).",
        ids={"messageId": "Outgoing_20260915113613a09b0cbf43049b03154668"},
        source="/subscriptions/…/providers/Microsoft.Communication/CommunicationServices/contoso-acs",
        details={
            "from": "+1425555••••",
            "to": "+1206555••••",
            "deliveryAttempts": "1",
            "tag": "appointment-reminder",
        },
    )
    burst = _demo_alert(
        "AddParticipantFailed",
        "teams-phone",
        408,
        10057,
        Category.EXPECTED,
        message="Call failed: the callee did not finish call setup, most likely it lost network or "
        "closed the app.",
        advice="Most common cause with Teams Phone: the client registers with a Custom Teams Endpoint "
        "token (8:orgid) instead of a dual persona token (8:acs), so it never receives the call.\n"
        "- Mint dual persona tokens for agents\n- Check that clients are connected and available",
        table="Teams Phone extensibility",
        event_message="addParticipants failed for participant 8:acs:(redacted) Underlying reason: "
        "Request Timeout. DiagCode: 408#10057.@",
        ids={**_call_ids(3), "operationContext": "agent-transfer"},
        count=9_999,
        digest=True,
        window_seconds=300,
        first_seen=_T0,
        last_seen=_T0 + timedelta(seconds=299),
        samples=tuple(
            {key: _call_ids(n)[key] for key in ("correlationId", "callConnectionId")} for n in range(4, 7)
        ),
    )
    return [play, disconnected, sms, burst]


# --- Command line -----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m tools.preview (--demo | --report) --out DIR [--format …] [--no-png] [--scale 2]`."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.preview",
        description="Render demo alerts (or a demo daily report) to JSON, HTML and PNG.",
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--demo", action="store_true", help="render the built-in demo alerts")
    what.add_argument("--report", action="store_true", help="render a demo daily report (Teams and Slack)")
    what.add_argument("--readme", action="store_true", help="README's pictures and their card JSON")
    parser.add_argument("--out", type=Path, required=True, help="directory for the .json/.html/.png files")
    parser.add_argument("--format", default="teams,slack", help="comma-separated: teams, slack")
    parser.add_argument("--no-png", action="store_true", help="skip Chromium, write JSON and HTML only")
    parser.add_argument("--scale", type=float, default=1.0, help="device pixel ratio of the PNGs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.readme:
        for path in write_readme_pictures(args.out, scale=args.scale if args.scale != 1.0 else 2.0):
            print(path)
        return 0
    if args.report:
        for path in write_report_previews(demo_report(), args.out, png=not args.no_png, scale=args.scale):
            print(path)
        return 0
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    alerts = demo_alerts()
    for path in write_previews(alerts, args.out, formats, png=not args.no_png, scale=args.scale):
        print(path)
    for number, alert in enumerate(alerts, start=1):
        print(
            f"{number:02d} {alert.title}: teams {len(payload_bytes(teams.render(alert))):,} bytes, "
            f"slack {len(payload_bytes(slack.render(alert))):,} bytes",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
