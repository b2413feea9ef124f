"""The alerts whose rendered payloads are pinned byte for byte (tests/test_render_golden.py).

Two sources of alerts:
- built here from the factories: every shape a renderer has a branch for (digests, notices,
  hostile text, texts over every size limit, catalog answers with and without advice, docs link,
  flags and other meanings);
- every sample event as the pipeline turns it into an alert (masked), as a firing alert, a digest,
  a resolved and a silenced notice. These are stored as JSON (tests/payloads/render-golden-alerts.json)
  so that a change to the catalog or the pipeline does not move them: only the renderers do.

The expected payloads are stored as SHA-256 digests of the exact bytes each destination receives
(tests/payloads/render-golden.json), the full payloads would be megabytes. When a change to the
output is intended, rewrite both files and look at what moved:

    PYTHONPATH=. .venv/bin/python tests/render_golden.py --write [--dump DIR]

(--dump also writes every payload as a file, to diff a run before and after the change).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from factories import (
    T0,
    ids_for,
    make_alert,
    make_digest,
    make_guidance,
    make_huge_alert,
    make_incident,
    make_reminder,
)
from msgspec.structs import replace

from triage.codec import incident_from_dict, incident_to_dict
from triage.model import Alert, Category, Guidance, Match, Severity
from triage.render import FORMATS, payload_bytes, render

__all__ = ["EXPECTED", "SAMPLE_ALERTS", "cases", "payload_digest", "write"]

PAYLOADS = Path(__file__).resolve().parent / "payloads"
EXPECTED = PAYLOADS / "render-golden.json"
SAMPLE_ALERTS = PAYLOADS / "render-golden-alerts.json"

HOSTILE = (
    "<!channel> <!here|here> <@U123> <#C024BE7LR> <http://evil.example|click> [click](http://evil.example) "
    "<at>x</at> &lt;at&gt;y&lt;/at&gt; ![img](https://evil.example/p.png) www.evil.example `tick` *b* _i_ ~s~"
)
MARKDOWN_LINES = "\n# Severity: none\n- item\n1. step\n> quote\n---\n===\n+ plus\n12) twelve"
_MIXED_ADVICE = "1. first\n* star bullet\n• dot bullet\n· middle dot\r\nplain paragraph\n\n- <b>dash</b>"
_SILENCE_NOTE = "silence s-12 kind=PlayFailed by ops: planned work"
SILENCE_URL = "https://acs-triage.example/api/silence/eyJ0b2tlbiI6IDF9.c2lnbmF0dXJlLW9mLXRoaXMtbGluaw"
CONTROLS = "bidi \u202eevil\u202c zero\u200bwidth \x1b[2J ansi\r\nnext\rline \x00nul \ufeffbom"


def payload_digest(payload: dict[str, Any] | str) -> str:
    """SHA-256 of the exact bytes a destination receives (the text form: its UTF-8)."""
    data = payload.encode() if isinstance(payload, str) else payload_bytes(payload)
    return hashlib.sha256(data).hexdigest()


# --- alerts as JSON (the sample alerts are stored, not rebuilt) --------------------------------


def _guidance_to_dict(guide: Guidance) -> dict[str, Any]:
    return {
        "code": guide.code,
        "subcode": guide.subcode,
        "message": guide.message,
        "category": guide.category.value,
        "severity": guide.severity.value,
        "advice": guide.advice,
        "source": guide.source,
        "match": guide.match.value,
        "table": guide.table,
        "docs_url": guide.docs_url,
        "flags": list(guide.flags),
        "related": [_guidance_to_dict(g) for g in guide.related],
        "seeds": list(guide.seeds),
        "also": [_guidance_to_dict(g) for g in guide.also],
    }


def _guidance_from_dict(data: dict[str, Any]) -> Guidance:
    return Guidance(
        code=data["code"],
        subcode=data["subcode"],
        message=data["message"],
        category=Category(data["category"]),
        severity=Severity(data["severity"]),
        advice=data["advice"],
        source=data["source"],
        match=Match(data["match"]),
        table=data["table"],
        docs_url=data["docs_url"],
        flags=tuple(data["flags"]),
        related=tuple(_guidance_from_dict(g) for g in data["related"]),
        seeds=tuple(data["seeds"]),
        also=tuple(_guidance_from_dict(g) for g in data["also"]),
    )


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def alert_to_dict(alert: Alert) -> dict[str, Any]:
    """A JSON-ready dict; `alert_from_dict` reads it back equal."""
    data: dict[str, Any] = {
        "incident": incident_to_dict(alert.incident),
        "guidance": _guidance_to_dict(alert.guidance),
        "count": alert.count,
        "first_seen": _time(alert.first_seen),
        "last_seen": _time(alert.last_seen),
        "samples": [dict(s) for s in alert.samples],
        "digest": alert.digest,
        "window_seconds": alert.window_seconds,
        "status": alert.status,
        "note": alert.note,
    }
    if alert.silence_url:  # only where there is one: the stored sample alerts have none
        data["silence_url"] = alert.silence_url
    if alert.reminder:
        data["reminder"] = [alert.reminder_seconds, alert.burst_count, _time(alert.burst_started)]
    return data


def alert_from_dict(data: dict[str, Any]) -> Alert:
    """The inverse of `alert_to_dict`."""
    return Alert(
        incident=incident_from_dict(data["incident"]),
        guidance=_guidance_from_dict(data["guidance"]),
        count=data["count"],
        first_seen=datetime.fromisoformat(data["first_seen"]) if data["first_seen"] else None,
        last_seen=datetime.fromisoformat(data["last_seen"]) if data["last_seen"] else None,
        samples=tuple(data["samples"]),
        digest=data["digest"],
        window_seconds=data["window_seconds"],
        status=data["status"],
        note=data["note"],
        silence_url=data.get("silence_url", ""),
        **_reminder_from(data.get("reminder")),
    )


def _reminder_from(stored: list[Any] | None) -> dict[str, Any]:
    if stored is None:
        return {}
    every, count, started = stored
    return {"reminder_seconds": every, "burst_count": count, "burst_started": datetime.fromisoformat(started)}


# --- the cases ------------------------------------------------------------------------------------


def _variants(name: str, alert: Alert) -> dict[str, Alert]:
    """A firing alert, its digest, and its resolved and silenced notices."""
    first = alert.incident.time or T0
    digest = replace(
        alert,
        count=9_999,
        digest=True,
        window_seconds=300,
        first_seen=first,
        last_seen=first + timedelta(seconds=299),
        samples=tuple(ids_for(alert.incident.context, str(i + 2)) for i in range(4)),
    )
    resolved = replace(digest, status="resolved", count=312, samples=())
    silenced = replace(
        digest,
        status="silenced",
        count=17,
        samples=(),
        note=_SILENCE_NOTE,
    )
    return {name: alert, f"{name}/digest": digest, f"{name}/resolved": resolved, f"{name}/silenced": silenced}


def built_cases() -> dict[str, Alert]:
    """Every shape the renderers have a branch for, from the factories."""
    also = tuple(
        make_guidance(
            400,
            8535,
            message=f"Other meaning {i}: the play source {'is long ' * i}",
            source=f"Troubleshooting codes · Table {i}",
            table=f"t{i}",
        )
        for i in range(7)
    )
    hostile_incident = make_incident(
        kind="PlayFailed",
        message=HOSTILE + MARKDOWN_LINES,
        resource="contoso-acs [x](http://evil) <!channel>",
        ids={"correlationId": HOSTILE, "operationContext": "[click](https://evil.example)", "`id`": "a`b`c"},
        details={"<at>k</at>": "- item", "participant": "4:+14255550123", "sip": MARKDOWN_LINES},
    )
    cases: dict[str, Alert] = {
        **_variants("default", make_alert()),
        **_variants("hostile", make_alert(hostile_incident)),
        **_variants("controls", make_alert(make_incident(message=CONTROLS, ids={"correlationId": CONTROLS}))),
        **_variants(
            "sms",
            make_alert(make_incident("SMSDeliveryReportReceived", context="sms", code=4007, subcode=None)),
        ),
        "bare": make_alert(
            make_incident(ids={}, details={}, message=""), make_guidance(advice="", docs_url="")
        ),
        "no-code": make_alert(make_incident(code=None, subcode=None, time=None)),
        "subcode-only": make_alert(make_incident(code=None, subcode=8535)),
        "warning": make_alert(guidance=make_guidance(category=Category.EXPECTED)),
        "success": make_alert(guidance=make_guidance(category=Category.SUCCESS, severity=Severity.NONE)),
        "unknown-match": make_alert(guidance=make_guidance(match=Match.UNKNOWN, source="")),
        "code-class-match": make_alert(guidance=make_guidance(match=Match.CODE_CLASS)),
        "same-message": make_alert(make_incident(message="  action FAILED; file format is invalid  ")),
        "hostile-catalog": make_alert(
            guidance=make_guidance(
                message="Use [the docs](http://evil) <at>x</at> # not a heading",
                advice=_MIXED_ADVICE,
                source="Page <x> · Table [y]",
                flags=("source typo: category spelled 'UnxpectedClientError'", "<!here> flag"),
                also=also,
            )
        ),
        "docs-http": make_alert(guidance=make_guidance(docs_url="http://learn.microsoft.com/x")),
        "docs-javascript": make_alert(guidance=make_guidance(docs_url="javascript:alert(1)")),
        "docs-space": make_alert(guidance=make_guidance(docs_url="https://a.example/x y")),
        "many-flags": make_alert(guidance=make_guidance(flags=tuple(f"flag {i}" for i in range(12)))),
        "many-ids-details": make_alert(
            make_incident(
                ids={f"id{i}": f"v{i}" for i in range(35)},
                details={f"d{i}": f"detail {i}" for i in range(25)},
            )
        ),
        "long-ids": make_alert(make_incident(ids={f"id{i}": "z" * 5_000 for i in range(12)})),
        "hundreds-of-ids": make_alert(
            make_incident(ids={f"id{i:04d}": f"{i:04d}-" + "z" * 100 for i in range(1_000)})
        ),
        "multibyte": make_alert(guidance=make_guidance(advice="通話" * 20_000, message="失敗" * 5_000)),
        "emoji": make_alert(make_incident(message="call 📞 failed ✗ — ümlaut", resource="contoso-äcs")),
        "long-resource": make_alert(make_incident(resource="r" * 400)),
        "long-advice-line": make_alert(guidance=make_guidance(advice="- " + "word " * 1_000)),
        "huge": make_huge_alert(),
        "huge-flags": make_huge_alert(flags=tuple(f"flag {i} " + "f" * 700 for i in range(9))),
        "digest-one": make_digest(count=1, window_seconds=0, samples=1),
        "digest-no-window": replace(make_digest(count=5, samples=0), window_seconds=0),
        "digest-hours": make_digest(count=123_456, window_seconds=5_400, samples=7),
        "reminder": make_reminder(make_digest(count=42, samples=3)),
        "reminder-one": make_reminder(make_digest(count=1, samples=1), burst_count=1, every_seconds=5_400),
        "resolved-once": replace(make_alert(), status="resolved", first_seen=T0, last_seen=T0),
        "silenced-no-note": replace(make_alert(), status="silenced", count=3, first_seen=T0, last_seen=T0),
        # A "Silence…" link (ACS_TRIAGE_PUBLIC_URL set): beside the docs link, alone, on a card
        # shortened to fit, on a digest.
        "silence-link": replace(make_alert(), silence_url=SILENCE_URL),
        "silence-link-no-docs": replace(
            make_alert(make_incident(ids={}, details={}, message=""), make_guidance(advice="", docs_url="")),
            silence_url=SILENCE_URL,
        ),
        "silence-link-huge": replace(make_huge_alert(), silence_url=SILENCE_URL),
        "silence-link-digest": replace(make_digest(count=12, samples=3), silence_url=SILENCE_URL),
        "silenced-long-note": replace(
            make_alert(), status="silenced", count=2, first_seen=T0, last_seen=T0, note=HOSTILE * 40
        ),
    }
    return cases


def sample_cases() -> dict[str, Alert]:
    """The stored sample alerts (with their digest and notices)."""
    stored = json.loads(SAMPLE_ALERTS.read_text(encoding="utf-8"))
    cases: dict[str, Alert] = {}
    for name, data in stored.items():
        cases.update(_variants(name, alert_from_dict(data)))
    return cases


def cases() -> dict[str, Alert]:
    """Every pinned alert by name."""
    return {**built_cases(), **sample_cases()}


def write(dump: Path | None = None) -> None:
    """Store the sample alerts as the pipeline makes them today, and every case's payload digests."""
    from tools.replay import alerts_from_files

    # Every sample, and the events the masking tests keep next to these files.
    events = [
        PAYLOADS.parent.parent / "samples",
        *(p for p in PAYLOADS.glob("*.json") if p not in (EXPECTED, SAMPLE_ALERTS)),
    ]
    stored: dict[str, Any] = {}
    for alert in alerts_from_files([str(p) for p in sorted(events)]):
        name = f"sample/{alert.incident.kind}-{alert.code_text}-{alert.incident.context}"
        while name in stored:
            name += "+"
        stored[name] = alert_to_dict(alert)
    SAMPLE_ALERTS.write_text(json.dumps(stored, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    expected: dict[str, dict[str, str]] = {}
    for name, alert in cases().items():
        expected[name] = {}
        for fmt in FORMATS:
            payload = render(alert, fmt)
            expected[name][fmt] = payload_digest(payload)
            if dump:
                path = dump / fmt / (name.replace("/", "__") + ".json")
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(payload.encode() if isinstance(payload, str) else payload_bytes(payload))
    EXPECTED.write_text(json.dumps(expected, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--write", action="store_true", help="rewrite the stored alerts and digests")
    parser.add_argument("--dump", type=Path, help="also write every payload under this directory")
    args = parser.parse_args()
    if not args.write:
        parser.error("say --write: the stored files are the specification the test holds the renderers to")
    write(args.dump)
