"""Calendar helpers shared by the generator, the readers and the analysis."""

from __future__ import annotations

import calendar
import datetime as dt

STUDY_START = dt.date(2014, 1, 1)
STUDY_END = dt.date(2018, 12, 31)
EARLIEST_PLAUSIBLE = dt.date(2010, 1, 1)
BASELINE_LOOKBACK_DAYS = 90

# Follow-up windows in months after implantation, inclusive. analysis.md fixes month_12
# (9-15 months); the others are set here so that neighbouring windows do not overlap.
FOLLOW_UP_WINDOWS: dict[str, tuple[int, int]] = {
    "month_3": (2, 4),
    "month_6": (5, 8),
    "month_12": (9, 15),
    "month_24": (18, 30),
    "month_36": (31, 42),
}


def add_months(day: dt.date, months: int) -> dt.date:
    """The same day ``months`` calendar months later, clamped to the month's last day."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def in_follow_up_window(timepoint: str, implant: dt.date, day: dt.date) -> bool:
    """Whether a follow-up dated ``day`` lies in its timepoint's window after ``implant``."""
    low, high = FOLLOW_UP_WINDOWS[timepoint]
    return add_months(implant, low) <= day <= add_months(implant, high)
