"""A clock that tests move by hand, in place of ``utc_now`` in the services."""

from __future__ import annotations

from datetime import datetime, timedelta


class Clock:
    """Returns the same aware moment until a test moves it."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("the clock needs an aware datetime")
        self.start = start
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def at(self, offset_s: float) -> datetime:
        """Set the clock ``offset_s`` seconds after its start (microsecond precision)."""
        self.now = self.start + timedelta(seconds=offset_s)
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now
