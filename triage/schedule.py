"""ACS_TRIAGE_REPORT_SCHEDULE: the cron expression the daily report keeps, checked and read.

A leaf module (errors only), so that `settings` can check the expression without importing the
report and, through it, the pipeline that imports `settings`. croniter is imported only when a
schedule is set.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from .errors import ConfigurationError

__all__ = ["check_schedule", "due"]

_CATCH_UP = timedelta(hours=1)  # a timer tick this late still posts the scheduled report


def check_schedule(expression: str) -> str:
    """A cron expression the report timer can keep (5 fields, UTC, at most once an hour: the
    minute is one number); raises ConfigurationError naming the setting otherwise."""
    from croniter import croniter

    fields = expression.split()
    if len(fields) != 5 or not croniter.is_valid(expression):
        raise ConfigurationError(
            f"ACS_TRIAGE_REPORT_SCHEDULE is not a 5-field cron expression: {expression!r}; "
            "e.g. '0 8 * * *' for 08:00 UTC every day, '0 8 * * 1-5' on weekdays"
        )
    if not fields[0].isdigit():
        raise ConfigurationError(
            f"ACS_TRIAGE_REPORT_SCHEDULE: the minute field must be one number (the report is at most "
            f"hourly), not {fields[0]!r}; e.g. '0 8 * * *'"
        )
    return expression


def due(expression: str, now: datetime) -> datetime | None:
    """The scheduled time a report is due for at `now`: the latest one at or before `now`, if it
    is less than an hour old (a late timer tick still posts it); else None."""
    from croniter import croniter

    latest: datetime = croniter(expression, now + timedelta(microseconds=1)).get_prev(datetime)
    return latest if now - latest < _CATCH_UP else None
