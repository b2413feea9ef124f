"""Routes as lanes: which route takes an alert, and how it times it (Alertmanager's names).

A `Lane` is one route's treatment of the alerts it takes: where they go (`to`), what one burst
is (`group_by`, default the fingerprint: kind, code, subcode, resource), its digest window
(`group_interval`, default ACS_TRIAGE_GROUP_WINDOW_SECONDS; 0: every failure alerts alone), how
often a burst still firing is reminded of (`repeat_interval`, see policy.Digests) and when it
is muted (`mute_time_intervals`, or outside `active_time_intervals`). An alert no rule takes is
in the default lane (ACS_TRIAGE_DEFAULT_ROUTE, else every destination); with no rules at all,
everything is.

A burst's key in the store says its lane: the fingerprint itself in the default lane (as before
routes had timing, so groups already open keep their keys), `route:<name>|<values>` in a route's.
A muted lane counts what it holds back in a store silence `mute:<name>:<end>` whose summary the
flush posts when the muted period ends.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from .matchers import Matcher
from .model import Facts, Incident, Severity

if TYPE_CHECKING:
    from .destinations import Destination
    from .settings import Route, Settings

__all__ = ["MUTE_PREFIX", "ROUTE_PREFIX", "Lane", "Routing", "tracker_key"]

ROUTE_PREFIX = "route:"
MUTE_PREFIX = "mute:"
_SEVERITY_RANK = {Severity.NONE: 0, Severity.WARNING: 1, Severity.ERROR: 2}


class Lane:
    """One route's treatment of the alerts it takes (see the module's docstring)."""

    __slots__ = (
        "_asked",
        "_muted_until",
        "group_by",
        "matcher",
        "muted",
        "name",
        "names",
        "plain",
        "quiet",
        "repeat",
        "route",
        "window",
    )

    def __init__(
        self,
        name: str,
        names: tuple[str, ...] | None,
        window: timedelta,
        quiet: timedelta,
        *,
        group_by: tuple[str, ...] | None = None,
        muted: Callable[[datetime], bool] | None = None,
        route: Route | None = None,
        repeat: timedelta = timedelta(0),
    ) -> None:
        self.name = name  # "" for the default lane
        self.names = names  # destination names; None: the default route's
        self.window = window
        self.quiet = quiet
        self.repeat = repeat  # repeat_interval (0: no reminders)
        self.group_by = group_by
        self.muted = muted
        self.route = route
        self.matcher = Matcher.model_validate(route.conditions()) if route is not None else None
        self.plain = not name and group_by is None  # its keys are the fingerprints themselves
        self._muted_until: datetime | None = None  # the end of the muted period last found
        self._asked: tuple[datetime, datetime | None] | None = None  # the last `now` and its answer

    def key(self, facts: Facts | Incident, fingerprint: str) -> str:
        """The key of the burst `facts` belong to in this lane."""
        if self.group_by is None:
            return f"{ROUTE_PREFIX}{self.name}|{fingerprint}" if self.name else fingerprint
        values = "|".join(str(getattr(facts, label)) for label in self.group_by)
        return f"{ROUTE_PREFIX}{self.name}|{values}"

    def muted_until(self, now: datetime) -> datetime | None:
        """When the muted period `now` falls in ends, or None when the lane is not muted now.
        Asked once per event of a batch, with the batch's one `now`: answered once per `now`."""
        if self.muted is None:
            return None
        if self._asked is not None and self._asked[0] == now:
            return self._asked[1]
        until: datetime | None = None
        if self.muted(now):
            if self._muted_until is None or not now < self._muted_until:
                from .intervals import muted_until  # only a route with time intervals needs it

                self._muted_until = muted_until(self.muted, now)
            until = self._muted_until
        self._asked = (now, until)
        return until

    def mute_id(self, until: datetime) -> str:
        """The store silence that counts what this lane holds back until `until`."""
        return f"{MUTE_PREFIX}{self.name}:{until.strftime('%Y%m%dT%H%MZ')}"


def tracker_key(key: str, incident: Incident) -> str:
    """What an incident tracker keys a burst by, when not its fingerprint: the burst's key when
    its route groups by other labels (one PagerDuty alert for every code of it); '' otherwise."""
    if not key.startswith(ROUTE_PREFIX):
        return ""
    values = key.split("|", 1)[1] if "|" in key else ""
    return "" if values == incident.fingerprint else key


class Routing:
    """The lanes the settings describe, and which of them take an alert."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        window = timedelta(seconds=settings.group_window_seconds)
        quiet = timedelta(seconds=settings.quiet_seconds)
        self.default = Lane(
            "",
            None,
            window,
            quiet,
            repeat=timedelta(seconds=settings.repeat_seconds(int(window.total_seconds()))),
        )
        self.lanes: dict[str, Lane] = {}
        for route in settings.routes:
            interval = window if route.group_interval is None else timedelta(seconds=route.group_interval)
            self.lanes[route.name] = Lane(
                route.name,
                tuple(route.to),
                interval,
                interval or quiet,
                group_by=tuple(route.group_by) if route.group_by else None,
                muted=_mute(settings, route),
                route=route,
                repeat=timedelta(
                    seconds=settings.repeat_seconds(int(interval.total_seconds()), route.repeat_interval)
                ),
            )
        self.unrouted = 0  # alerts no rule took, since this process started (/api/health)

    def lanes_for(self, incident: Facts | Incident, severity: Severity) -> list[Lane]:
        """The lanes of the routes that take an alert of `incident` at `severity`: rules in
        order, the first that matches wins unless it says `continue`; none: the default lane."""
        settings = self.settings
        if not settings.routes:
            return [self.default]
        found: list[Lane] = []
        rank = _SEVERITY_RANK[severity]
        for route in settings.routes:
            if rank < _SEVERITY_RANK[route.min_severity] or not route.matches(incident):
                continue
            found.append(self.lanes[route.name])
            if not route.continue_:
                break
        return found or [self.default]

    def lane_of_key(self, key: str, incident: Incident) -> Lane | None:
        """The lane a stored burst or mute key names, if that route still exists and takes it."""
        if key.startswith(ROUTE_PREFIX):
            name = key[len(ROUTE_PREFIX) :].split("|", 1)[0]
        elif key.startswith(MUTE_PREFIX):
            name = key[len(MUTE_PREFIX) :].rsplit(":", 1)[0]
        else:
            return None
        lane = self.lanes.get(name)
        if lane is not None and lane.route is not None and lane.route.matches(incident):
            return lane
        return None

    def timing(self) -> list[str]:
        """One line per lane saying how it times its bursts (for `doctor`), e.g. 'route oncall:
        digests every 10 min, a reminder every 4 h while a burst still fires'."""
        lanes = [(f"route {lane.name}", lane) for lane in self.lanes.values()]
        what = "alerts no route matches" if self.settings.routes else "every alert"
        lines: list[str] = []
        for name, lane in [*lanes, (f"default route ({what})", self.default)]:
            if not lane.window:
                lines.append(f"{name}: every failure alerts on its own (no digests, no reminders)")
                continue
            every = _span(lane.window)
            reminder = (
                f"a reminder every {_span(lane.repeat)} while a burst still fires"
                if lane.repeat
                else "no reminders (repeat_interval 0)"
            )
            lines.append(f"{name}: digests every {every}, {reminder}")
        return lines

    def repeat_of(self, key: str, incident: Incident) -> timedelta:
        """The repeat interval of the lane whose burst `key` is (a stored burst's key)."""
        lane = self.lane_of_key(key, incident)
        return (lane or self.default).repeat

    def destinations(self, lanes: list[Lane], status: str) -> list[Destination]:
        """Where an alert of these lanes goes (in order, each once). Resolved notices without
        ACS_TRIAGE_SEND_RESOLVED go only to incident trackers, whose incidents must close."""
        settings = self.settings
        names: list[str] = []
        everywhere = False
        for lane in lanes:
            chosen = lane.names if lane.names is not None else tuple(settings.default_route)
            if not chosen:
                everywhere = True
            names.extend(n for n in chosen if n not in names)
        found = list(settings.destinations.values()) if everywhere else settings.destinations_for(names)
        if status == "resolved" and not settings.send_resolved:
            found = [d for d in found if d.kind.keeps_incidents]
        return found


def _span(span: timedelta) -> str:
    """'10 min', '4 h', '1 h 30 min' (the words alerts use)."""
    from .render.content import format_window

    return format_window(int(span.total_seconds()))


def _mute(settings: Settings, route: Route) -> Callable[[datetime], bool] | None:
    """Whether `route` is muted at a moment: in any of its mute intervals, or (when it names
    active intervals) in none of those."""
    mutes = [settings.time_intervals[n] for n in route.mute_time_intervals if n in settings.time_intervals]
    actives = [
        settings.time_intervals[n] for n in route.active_time_intervals if n in settings.time_intervals
    ]
    if not mutes and not actives:
        return None

    def muted(moment: datetime) -> bool:
        if any(interval.holds(moment) for interval in mutes):
            return True
        return bool(actives) and not any(interval.holds(moment) for interval in actives)

    return muted
