"""Named time intervals in Alertmanager's shape, for routes' `mute_time_intervals` and
`active_time_intervals` (ACS_TRIAGE_TIME_INTERVALS):

    [{"name": "nights", "time_intervals": [{"times": [{"start_time": "00:00", "end_time": "08:00"}],
      "weekdays": ["monday:friday"], "location": "Europe/Berlin"}]}]

A time interval holds when every field it gives holds (`times`, `weekdays`, `days_of_month`,
`months`, `years`, read in its `location`, UTC by default); a named interval holds when any of
its time intervals does. Times are minutes of the day, the end excluded (`24:00` is midnight at
the day's end); ranges are `start:end`, both included; a day of the month may count from the
end (`-1` is the last day).
"""

# No `from __future__ import annotations`: pydantic reads the annotations as objects (cold start).

import calendar
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError, field_validator

from .config_json import json_list, problems

__all__ = ["NamedInterval", "TimeInterval", "muted_until", "parse_time_intervals"]

_WEEKDAYS = {name.lower(): n for n, name in enumerate(calendar.day_name)}  # monday → 0
_MONTHS = {name.lower(): n for n, name in enumerate(calendar.month_name) if name}  # january → 1
_MINUTE = timedelta(minutes=1)
# How far ahead the end of a muted period is looked for: a mute that never ends within it is
# reported as ending then (and a new period, with its own summary, starts).
HORIZON = timedelta(days=31)


def _minutes(text: str) -> int:
    hours, colon, minutes = text.partition(":")
    if not colon or not (hours.isdigit() and minutes.isdigit() and len(minutes) == 2):
        raise ValueError(f"{text!r} is not HH:MM")
    value = int(hours) * 60 + int(minutes)
    if int(minutes) >= 60 or value > 24 * 60:
        raise ValueError(f"{text!r} is not a time between 00:00 and 24:00")
    return value


def _range(text: str, names: dict[str, int], low: int, high: int, what: str) -> tuple[int, int]:
    """'monday:friday' → (0, 4); '5' → (5, 5); '-3:-1' → (-3, -1) (days of the month)."""
    parts = str(text).lower().split(":")
    if len(parts) > 2:
        raise ValueError(f"{text!r} is not a {what} or a range start:end")
    values: list[int] = []
    for raw in parts:
        part = raw.strip()
        if part in names:
            values.append(names[part])
        elif part.lstrip("-").isdigit() and low <= int(part) <= high and int(part) != 0:
            values.append(int(part))
        else:
            raise ValueError(f"{text!r}: {part!r} is not a {what}")
    start, end = values[0], values[-1]
    if (start < 0) == (end < 0) and start > end:
        raise ValueError(f"{text!r}: the range ends before it starts")
    return start, end


class TimeRange(BaseModel):
    """Minutes of the day, from `start_time` (included) to `end_time` (excluded)."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    start_time: str
    end_time: str

    @field_validator("start_time", "end_time")
    @classmethod
    def _clock(cls, value: str) -> str:
        _minutes(value)
        return value

    def span(self) -> tuple[int, int]:
        start, end = _minutes(self.start_time), _minutes(self.end_time)
        if start >= end:
            raise ValueError(f"{self.start_time}-{self.end_time}: the end must come after the start")
        return start, end


class TimeInterval(BaseModel):
    """One of Alertmanager's time intervals: every field given must hold."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    times: list[TimeRange] = []
    weekdays: list[str] = []
    days_of_month: list[str] = []
    months: list[str] = []
    years: list[str] = []
    location: str = "UTC"

    @field_validator("weekdays")
    @classmethod
    def _weekdays(cls, values: list[str]) -> list[str]:
        for value in values:
            _range(value, _WEEKDAYS, 0, -1, "weekday")
        return values

    @field_validator("days_of_month")
    @classmethod
    def _days(cls, values: list[str]) -> list[str]:
        for value in values:
            _range(str(value), {}, -31, 31, "day of the month")
        return [str(v) for v in values]

    @field_validator("months")
    @classmethod
    def _months(cls, values: list[str]) -> list[str]:
        for value in values:
            _range(str(value), _MONTHS, 1, 12, "month")
        return [str(v) for v in values]

    @field_validator("years")
    @classmethod
    def _years(cls, values: list[str]) -> list[str]:
        for value in values:
            _range(str(value), {}, 1, 9999, "year")
        return [str(v) for v in values]

    @field_validator("location")
    @classmethod
    def _location(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. Europe/Berlin, UTC)") from None
        return value

    # Parsed once: `holds` is asked minute by minute when a mute's end is looked for.
    _spans: tuple[tuple[int, int], ...] = PrivateAttr(default=())
    _weekday_ranges: tuple[tuple[int, int], ...] = PrivateAttr(default=())
    _day_ranges: tuple[tuple[int, int], ...] = PrivateAttr(default=())
    _month_ranges: tuple[tuple[int, int], ...] = PrivateAttr(default=())
    _year_ranges: tuple[tuple[int, int], ...] = PrivateAttr(default=())
    _zone: tzinfo = PrivateAttr(default=UTC)

    def model_post_init(self, context: Any, /) -> None:
        """Parse the ranges (each time range must end after it starts)."""
        self._spans = tuple(t.span() for t in self.times)
        self._weekday_ranges = tuple(_range(w, _WEEKDAYS, 0, -1, "weekday") for w in self.weekdays)
        self._day_ranges = tuple(_range(d, {}, -31, 31, "day of the month") for d in self.days_of_month)
        self._month_ranges = tuple(_range(m, _MONTHS, 1, 12, "month") for m in self.months)
        self._year_ranges = tuple(_range(y, {}, 1, 9999, "year") for y in self.years)
        self._zone = UTC if self.location.upper() == "UTC" else ZoneInfo(self.location)

    def holds(self, moment: datetime) -> bool:
        """Whether `moment` falls within this interval, read in its location."""
        local = moment.astimezone(self._zone)
        minute = local.hour * 60 + local.minute
        if self._spans and not any(start <= minute < end for start, end in self._spans):
            return False
        if self._weekday_ranges and not any(_in(local.weekday(), r) for r in self._weekday_ranges):
            return False
        if self._day_ranges:
            last = calendar.monthrange(local.year, local.month)[1]
            if not any(_in_days(local.day, last, r) for r in self._day_ranges):
                return False
        if self._month_ranges and not any(_in(local.month, r) for r in self._month_ranges):
            return False
        return not self._year_ranges or any(_in(local.year, r) for r in self._year_ranges)


def _in(value: int, bounds: tuple[int, int]) -> bool:
    return bounds[0] <= value <= bounds[1]


def _in_days(day: int, last: int, bounds: tuple[int, int]) -> bool:
    start, end = (b if b > 0 else last + 1 + b for b in bounds)
    return start <= day <= end


class NamedInterval(BaseModel):
    """A name and its time intervals: it holds when any of them does."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    name: str
    time_intervals: list[TimeInterval]

    def holds(self, moment: datetime) -> bool:
        """Whether any of its time intervals holds at `moment`."""
        return any(interval.holds(moment) for interval in self.time_intervals)


def parse_time_intervals(text: str | None, setting: str) -> dict[str, NamedInterval]:
    """ACS_TRIAGE_TIME_INTERVALS as {name: interval}. Raises ValueError naming the setting,
    the interval and what is wrong."""
    if not text:
        return {}
    document = json_list(text, setting, "{'name': …, 'time_intervals': […]}")
    found: dict[str, NamedInterval] = {}
    for index, item in enumerate(document):
        label = item.get("name") if isinstance(item, dict) else None
        try:
            interval = NamedInterval.model_validate(item)
        except ValidationError as exc:
            raise ValueError(f"{setting} interval {label or index + 1!r}: {problems(exc)}") from None
        if interval.name in found:
            raise ValueError(f"{setting}: the name {interval.name!r} is given twice")
        found[interval.name] = interval
    return found


def muted_until(muted: Any, now: datetime) -> datetime:
    """The first whole minute after `now` at which `muted(moment)` no longer holds (looked for
    up to HORIZON ahead: a mute without end within it ends there)."""
    moment = now.replace(second=0, microsecond=0) + _MINUTE
    end = now + HORIZON
    while moment < end and muted(moment):
        moment += _MINUTE
    return min(moment, end)
