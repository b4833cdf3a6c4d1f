"""The wall clock, read in one place: each handler passes it to the pure code under it, and tests pass theirs."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

Seconds = Callable[[], float]  # epoch seconds, as time.time
Instant = Callable[[], datetime]  # an aware UTC datetime


def wall_clock_seconds() -> float:
    return time.time()


def wall_clock_now() -> datetime:
    return datetime.now(UTC)
