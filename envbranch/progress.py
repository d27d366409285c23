"""One line of progress for work a person waits on (a replay, a deep copy, a reprocess).

On a terminal the line is redrawn in place (``\\r``); into a file or a pipe each change
is a line of its own, at most one per ``min_interval`` seconds (the last always shows),
so a log keeps the story without a line per batch.

    [############------------------]  41%  8200/20000 points  3,120 points/s  ETA 4s
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

# A rate over less than this many seconds is noise, not a rate.
MIN_RATE_SECONDS = 0.2


class ProgressLine:
    """Shows ``done`` of ``total`` ``unit`` (or only a percentage) on ``stream``.

    ``origin``: the count at which the work started now (0 for work this process does),
    or None to measure the rate from the first update (work observed from outside)."""

    def __init__(
        self,
        stream: TextIO,
        unit: str,
        *,
        in_place: bool | None = None,
        width: int = 30,
        min_interval: float = 0.0,
        origin: int | None = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.unit = unit
        self.in_place = stream.isatty() if in_place is None else in_place
        self.width = width
        self.min_interval = min_interval
        self.clock = clock
        self._origin = None if origin is None else (clock(), origin)
        self._shown: tuple[object, ...] | None = None
        self._printed_at: float | None = None
        self._pending = ""  # the latest line not yet printed (throttled)
        self._open = False  # an in-place line without its newline yet
        self._drawn = 0  # the length of the line drawn in place

    def update(
        self,
        done: int | None,
        total: int | None = None,
        percent: float | None = None,
        note: str = "",
    ) -> None:
        """Show a new state; unchanged states are not written again."""
        state = (done, total, percent, note)
        if state == self._shown:
            return
        self._shown = state
        now = self.clock()
        if self._origin is None and done is not None:
            self._origin = (now, done)
        text = self.render(done, total, percent, note, now)
        if self.in_place:
            self.stream.write("\r" + text + " " * max(self._drawn - len(text), 0))
            self._drawn, self._open = len(text), True
        elif self._printed_at is None or now - self._printed_at >= self.min_interval:
            self.stream.write(text + "\n")
            self._printed_at, self._pending = now, ""
        else:
            self._pending = text
        self.stream.flush()

    def finish(self) -> None:
        """End the line: its newline on a terminal, the last state held back elsewhere."""
        if self.in_place and self._open:
            self.stream.write("\n")
            self._open = False
        elif self._pending:
            self.stream.write(self._pending + "\n")
            self._pending = ""
        self.stream.flush()

    def render(
        self,
        done: int | None,
        total: int | None,
        percent: float | None,
        note: str,
        now: float,
    ) -> str:
        if percent is None:
            percent = 100.0 * done / total if done is not None and total else 100.0
        percent = min(max(percent, 0.0), 100.0)
        filled = int(self.width * percent / 100)
        text = f"[{'#' * filled}{'-' * (self.width - filled)}] {int(percent):3d}%"
        if done is not None and total is not None:
            text += f"  {done}/{total} {self.unit}"
        rate = self.rate(done, now)
        if rate is not None:
            text += f"  {rate:,.0f} {self.unit}/s"
            if total is not None and done is not None and total > done and rate > 0:
                text += f"  ETA {_duration((total - done) / rate)}"
        return text + (f"  {note}" if note else "")

    def rate(self, done: int | None, now: float) -> float | None:
        """Units per second since the origin, once that is long enough to mean something."""
        if self._origin is None or done is None:
            return None
        since, start = self._origin
        if now - since < MIN_RATE_SECONDS or done <= start:
            return None
        return (done - start) / (now - since)


def _duration(seconds: float) -> str:
    if seconds < 0.5:
        return "<1s"
    seconds = int(seconds + 0.5)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
