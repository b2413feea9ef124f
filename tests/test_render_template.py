"""Alerts rendered from a template per shape (triage.render.template) are byte for byte what the
full render serializes to: every pinned alert at its first, second and later sightings; generated
alerts of a template's shape (new values of every kind, new fields no layout reads); alerts of
another shape (each field of the shape changed in turn); values a renderer changes (escaped, cut,
empty); cards near Teams' size limit; many threads at once; and the pipeline's outbox."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from factories import T0, make_alert, make_guidance, make_incident
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgspec.structs import replace
from render_golden import cases

from samples import all_samples
from triage.destinations import kind, teams
from triage.destinations.teams import TEAMS_MAX_BYTES
from triage.ingest import parse_body
from triage.model import Alert
from triage.pipeline import Triage
from triage.render import FORMATS, payload_bytes, render
from triage.render import template as tmpl
from triage.render.template import SLOT_CHARS, render_json
from triage.settings import Settings
from triage.store import OutboxMessage
from triage.store.memory import MemoryStore

CASES = cases()
BASES = list(CASES.values())  # digests and notices too: they must never take a firing alert's template
FIRING = [a for a in BASES if a.status == "firing" and not a.digest]
TEMPLATED = [fmt for fmt in FORMATS if kind(fmt).template is not None]


def full(alert: Alert, fmt: str) -> bytes:
    rendered = render(alert, fmt)
    return payload_bytes(rendered if isinstance(rendered, dict) else {"text": rendered})


def used_templates(fmt: str) -> int:
    return sum(1 for known in tmpl._KNOWN.values() if known.templates.get(fmt) is not None)


def sight(alerts: list[Alert]) -> None:
    """Render each alert for every templated kind as two alerts of its shape: a template is
    built on a shape's second alert (another object; one alert is rendered once per kind)."""
    for alert in alerts:
        for copy in (replace(alert), replace(alert)):
            for fmt in TEMPLATED:
                render_json(copy, fmt)


@pytest.fixture(autouse=True)
def fresh_templates() -> None:
    tmpl._KNOWN.clear()
    tmpl._SLOTS.clear()
    tmpl._ESCAPED.clear()
    tmpl._ESCAPED_SLOTS.clear()
    tmpl._Last.entry = None


def test_teams_and_slack_are_templated() -> None:
    assert set(TEMPLATED) == {"teams", "slack"}


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_pinned_alert_first_second_and_later_sightings(fmt: str) -> None:
    for name, alert in CASES.items():
        expected = full(alert, fmt)
        for sighting in range(3):
            assert render_json(replace(alert), fmt) == expected, (name, sighting)


@pytest.mark.parametrize("fmt", TEMPLATED)
def test_most_pinned_firing_alerts_are_cut_into_templates(fmt: str) -> None:
    """The fast path runs (a test of equality alone would pass if it never did)."""
    sight(FIRING)
    assert used_templates(fmt) >= len(FIRING) // 2


# Values of every kind an event may carry. Most are shown as they stand (IDs, masked numbers,
# quotes and backslashes that JSON escapes, non-BMP text), so that most generated alerts take the
# template; the rest each make some renderer change them (markup, links, controls, line breaks:
# put into the template as each kind escapes them; backticks, empty or too long: rendered in full).
_AS_THEY_STAND = st.sampled_from(
    [
        "3f2b1c9e-8d7a-4b6c-9e5f-1a2b3c4d5e6f",
        "+1 ••••••0199",
        "4:+44 ••••••0123",
        "#0",
        "1 (0 sent)",
        '"quoted"',
        "back\\slash",
        "😀 call",
        "é·…—",
        "a" * 150,
        "8:acs:…c5d6",
        "100% %b %s",
    ]
) | st.from_regex(r"[A-Za-z0-9][A-Za-z0-9 ._:+-]{0,40}", fullmatch=True)
_CHANGED = st.sampled_from(
    [
        "<!channel>", "[x](http://evil.example)", "www.evil.example", "`tick`", "tab\there", "line\nbreak",
        "\u202eevil", "&lt;at&gt;", "- item", "1. one", "# head", " ", "", "a" * 201, "b" * 450, "c" * 520,
    ]
) | st.text(max_size=40)  # fmt: skip
_TIMES = st.none() | st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


def _with(alert: Alert, **fields: Any) -> Alert:
    return replace(alert, incident=alert.incident._replace(**fields))


def _renamed_first(names: dict[str, str]) -> dict[str, str]:
    return {f"{k}2" if n == 0 else k: v for n, (k, v) in enumerate(names.items())}


# One field of an alert's shape changed: an alert so changed must not take the base's template.
_SHAPE_CHANGES: dict[str, Callable[[Alert], Alert]] = {
    "kind": lambda a: _with(a, kind=a.incident.kind + "X"),
    "code": lambda a: _with(a, code=(a.incident.code or 0) + 1),
    "subcode": lambda a: _with(a, subcode=(a.incident.subcode or 0) + 1),
    "resource": lambda a: _with(a, resource=a.incident.resource + "-2"),
    "context": lambda a: _with(a, context="pstn" if a.incident.context != "pstn" else "sms"),
    # An e-mail's status word and recipient domain are in its headline ("Bounced (@fabrikam.example)").
    "status": lambda a: _with(a, status=a.incident.status + "Bounced"),
    "scope": lambda a: _with(a, status=a.incident.status or "Bounced", scope=a.incident.scope + "x.example"),
    "an ID's name": lambda a: _with(a, ids=_renamed_first(a.incident.ids)),
    "one more ID": lambda a: _with(a, ids={**a.incident.ids, "extraId": "x1"}),
    "a detail's name": lambda a: _with(a, details={"other": "7", **a.incident.details}),
    "count": lambda a: replace(a, count=a.count + 1),
    "window": lambda a: replace(a, window_seconds=a.window_seconds + 60),
    "note": lambda a: replace(a, note=a.note + "n"),
    "guidance": lambda a: replace(a, guidance=replace(a.guidance, message=a.guidance.message + " (2)")),
    "a silence link or none": lambda a: replace(a, silence_url="" if a.silence_url else _LINK + "abc.def"),
}
_LINK = "https://acs-triage.example/api/silence/"
# A "Silence…" link differs per alert: put in as it stands, or (too long, not URL-safe) in full.
_LINKS = st.from_regex(r"[A-Za-z0-9_-]{1,300}\.[A-Za-z0-9_-]{43}", fullmatch=True).map(
    lambda t: _LINK + t
) | st.sampled_from([_LINK + "a" * 2000, _LINK + 'quote"d', _LINK + "sp ace", _LINK + "%25"])


@st.composite
def relative(draw: st.DrawFn, base: Alert) -> Alert:
    """`base` with new values where its shape has values and new fields no layout reads; and
    sometimes one value that a renderer changes, or one field of the shape changed."""
    inc = base.incident
    ids = {name: draw(_AS_THEY_STAND) for name in inc.ids}
    details = {name: draw(_AS_THEY_STAND) for name in inc.details}
    message = draw(st.sampled_from([inc.message, base.guidance.message]) | _AS_THEY_STAND)
    change = draw(st.sampled_from(["none", "value", "shape"]))
    if change == "value":
        slots = [*(("ids", k) for k in ids), *(("details", k) for k in details), ("message", "")]
        where, name = draw(st.sampled_from(slots))
        value = draw(_CHANGED)
        if where == "ids":
            ids[name] = value
        elif where == "details":
            details[name] = value
        else:
            message = value
    seen = draw(_TIMES)
    incident = inc._replace(
        time=draw(_TIMES),
        ids=ids,
        details=details,
        message=message,
        event_id=draw(st.text(max_size=20)),
        source=draw(st.text(max_size=20)),
    )
    alert = replace(base, incident=incident, first_seen=seen, last_seen=seen)
    if base.silence_url:
        alert = replace(alert, silence_url=draw(_LINKS))
    if change == "shape":
        alert = _SHAPE_CHANGES[draw(st.sampled_from(sorted(_SHAPE_CHANGES)))](alert)
    return alert


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), which=st.integers(0, len(BASES) - 1))
def test_generated_relatives_of_an_alert_render_exactly_as_in_full(data: st.DataObject, which: int) -> None:
    base = BASES[which]
    sight([base])  # the shape's template
    alert = data.draw(relative(base))
    for fmt in TEMPLATED:
        assert render_json(alert, fmt) == full(alert, fmt)


@pytest.mark.parametrize("change", sorted(_SHAPE_CHANGES))
def test_an_alert_of_another_shape_does_not_take_the_template(change: str) -> None:
    sight(FIRING)
    for base in FIRING:
        alert = _SHAPE_CHANGES[change](base)
        for fmt in TEMPLATED:
            assert render_json(alert, fmt) == full(alert, fmt), base.incident.kind


_CHANGED_VALUES = [
    "<!channel>",
    "AT&T",  # only Slack escapes a lone "&"
    "`tick`",
    "",
    " ",
    "- item",
    "# head",
    "line\nbreak",
    "a" * 201,
    "b" * 450,
    "c" * 520,
]


@pytest.mark.parametrize("value", _CHANGED_VALUES)
def test_a_value_a_renderer_changes_renders_exactly_as_in_full(value: str) -> None:
    sight(FIRING)
    for base in FIRING:
        inc = base.incident
        for alert in (
            _with(base, ids={**inc.ids, next(iter(inc.ids), "id"): value}),
            _with(base, details={**inc.details, next(iter(inc.details), "detail"): value}),
            _with(base, message=value),
        ):
            for fmt in TEMPLATED:
                assert render_json(alert, fmt) == full(alert, fmt), base.incident.kind


@pytest.mark.parametrize(
    ("value", "in_teams", "in_slack"),
    [
        ("<004e0000-0000-0040-0080-000000000001@notify.contoso.example>", "‹004e", "&lt;004e"),
        ("AT&T", "AT&T", "AT&amp;T"),
        ("- item", "‐ item", "- item"),
    ],
)
def test_a_value_the_escapers_change_takes_the_template_escaped_as_each_kind_shows_it(
    value: str, in_teams: str, in_slack: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An e-mail's message id in angle brackets is in every alert of its burst: the alerts keep
    their shape's template, each kind's escaping put in where the value stands."""
    base = make_alert(make_incident(ids={"internetMessageId": "m-0", "correlationId": "c-0"}))
    sight([base])
    in_full: list[str] = []
    monkeypatch.setattr(tmpl, "_full", lambda alert, found: in_full.append(found.name) or b"")
    for n in range(3):
        alert = _with(base, ids={"internetMessageId": value, "correlationId": f"c-{n}"})
        for fmt, shown in (("teams", in_teams), ("slack", in_slack)):
            made = render_json(alert, fmt)
            assert made == full(alert, fmt)
            assert orjson.dumps(shown)[1:-1] in made
    assert in_full == []  # every one from its template


def test_a_new_guidance_object_equal_to_the_old_one_gives_the_same_bytes() -> None:
    first = make_alert(make_incident(), make_guidance())
    again = make_alert(make_incident(ids={**first.incident.ids, "correlationId": "other"}), make_guidance())
    assert first.guidance is not again.guidance
    for fmt in TEMPLATED:
        for alert in (first, replace(first), again, replace(again), replace(first)):
            assert render_json(alert, fmt) == full(alert, fmt)


def test_a_catalog_text_with_percent_signs_is_kept_as_it_is() -> None:
    guidance = make_guidance(message="Only 50% of %s calls", advice="Retry at 100%b.\n- %% stays")
    alerts = [make_alert(make_incident(ids={"correlationId": f"c-{n}%"}), guidance) for n in range(3)]
    for alert in alerts:
        for fmt in TEMPLATED:
            assert render_json(alert, fmt) == full(alert, fmt)
    assert used_templates("teams") == used_templates("slack") == 1


def test_near_teams_size_limit_the_shortened_card_is_sent_as_in_full() -> None:
    """Marked values are short; real ones of the same shape may take the card over the limit,
    where Teams' renderer shortens it: those are rendered in full."""
    names = [f"id{n:03d}" for n in range(120)]
    guidance = make_guidance()  # the catalog hands out one object per answer

    def alert(length: int) -> Alert:
        ids = {name: f"{name}-" + "x" * (length - len(name) - 1) for name in names}
        return make_alert(
            make_incident(ids=ids, time=datetime(2026, 9, 15, tzinfo=UTC) + timedelta(seconds=length)),
            guidance,
        )

    render_json(alert(20), "teams")
    render_json(alert(20), "teams")
    assert used_templates("teams") == 1
    fullest = []
    for length in range(150, SLOT_CHARS + 1, 5):
        expected = full(alert(length), "teams")
        assert render_json(alert(length), "teams") == expected
        assert len(expected) < TEAMS_MAX_BYTES
        fullest.append(len(payload_bytes(teams._fullest(alert(length)))))
    # Some fit as they are (from the template), some had to be shortened (in full).
    assert min(fullest) < TEAMS_MAX_BYTES <= max(fullest)


def test_the_pipeline_queues_the_same_payloads_as_the_full_render() -> None:
    """Every sample failure, three events each (the third is rendered from its template), with
    grouping off: each queued payload reads back as the full render of its alert."""
    config = Settings.from_env(
        {
            "ACS_TRIAGE_GROUP_WINDOW_SECONDS": "0",
            "ACS_TRIAGE_TEAMS_URL": "https://teams.example.invalid/workflows/abc?sig=s3cret",
            "ACS_TRIAGE_SLACK_URL": "https://slack.example.invalid/services/T/B/x",
        }
    )
    store = MemoryStore()
    triage = Triage(config, store)
    items = []
    for path in all_samples():
        doc = orjson.loads(path.read_bytes())
        first = doc[0] if isinstance(doc, list) else doc
        items += [{**first, "id": f"{path.stem}-{n}"} for n in range(3)]
    report = triage.handle(parse_body(orjson.dumps(items), None, 10 << 20).events, T0)
    queued = store.outbox
    assert report.alerted > 40 and len(queued) == 2 * report.alerted
    for n, alert in enumerate(report.alerts):
        for message in queued[2 * n : 2 * n + 2]:
            assert orjson.dumps(message.payload) == full(alert, message.destination)
    assert used_templates("teams") > 10 and used_templates("slack") > 10


def test_a_message_carrying_json_text_reads_back_as_its_dict() -> None:
    payload = {"text": "é `x`", "n": [1, None]}
    message = OutboxMessage("id", "slack", orjson.Fragment(orjson.dumps(payload)), "fp")
    assert OutboxMessage.decode(message.encode()) == OutboxMessage("id", "slack", payload, "fp")
    assert message.payload_dict() == payload


def test_many_threads_rendering_alerts_in_turn_get_their_own_bytes() -> None:
    """Each alert is rendered for Teams then Slack, as the outbox does, from eight threads at once:
    the shape remembered for the last alert and the templates are shared."""
    alerts = [
        _with(base, ids={k: f"{v[:40]}-{n}" for k, v in base.incident.ids.items()})
        for n in range(6)
        for base in FIRING
    ]

    def each(alert: Alert) -> bool:
        return all(render_json(alert, fmt) == full(alert, fmt) for fmt in TEMPLATED)

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(each, alerts * 3))
    assert used_templates("teams") and used_templates("slack")


def test_alerts_with_silence_links_take_their_shape_s_template_each_with_its_own_link() -> None:
    base = replace(make_alert(), silence_url=_LINK + "first.token")
    sight([base])
    for n in range(3):
        alert = replace(base, silence_url=f"{_LINK}{n}{'x' * n}.tok-en_{n}")
        for fmt in TEMPLATED:
            assert render_json(alert, fmt) == full(alert, fmt)
            assert alert.silence_url.encode() in render_json(alert, fmt)
    assert all(used_templates(fmt) == 1 for fmt in TEMPLATED)  # the fast path ran
    without = replace(base, silence_url="")
    for fmt in TEMPLATED:
        assert render_json(without, fmt) == full(without, fmt)
        assert b"/api/silence/" not in render_json(without, fmt)
