"""The time code under test sees. Tests never read the wall clock: they take the `clock` fixture
(tests/conftest.py), which starts at a fixed instant and moves only when a test moves it, and pass it to
the handlers, which take their clock as an argument. `.ci/run` runs the suite a second time under a shifted
wall clock (faketime) to prove it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

# An ordinary Monday afternoon, the day most fixed timestamps in the Lambda tests fall on.
DEFAULT_START = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)


class Clock:
    """Callable as `time.time` (epoch seconds); `now()` as `datetime.now(UTC)`."""

    def __init__(self, start: datetime = DEFAULT_START) -> None:
        self.instant = start

    def __call__(self) -> float:
        return self.instant.timestamp()

    def now(self) -> datetime:
        return self.instant

    def set(self, instant: datetime) -> None:
        self.instant = instant

    def advance(self, delta: timedelta) -> None:
        self.instant += delta
