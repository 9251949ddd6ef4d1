"""Long durations as their two largest units, the way the dump, the UI and `ps` all print them."""

from __future__ import annotations


def two_units(seconds: float, *, separator: str = "", days_from_hours: int = 24) -> str:
    """A duration of a minute or more as its two largest units: "4m05s", "2h13m", "3d04h".

    `separator` goes between the two units ("4m 05s"); hours give way to days once they reach
    `days_from_hours` (48 keeps "36h 10m" for a day and a half).
    """
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{separator}{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < days_from_hours:
        return f"{hours}h{separator}{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{separator}{hours:02d}h"
