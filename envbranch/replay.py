"""Rebuild the read model from the event store up to a position, and prove it equal.

``replay`` applies the stored events 1..until to a fresh SQLite read model in a
directory of its own, never touching the live one. With a live read model to
verify against, the rebuild records digests at exactly the positions where the
live model recorded them (every ``digest_interval`` positions and at each
``Checkpoint.Requested``) and compares them table by table. Verifying is strict:
the live model must have recorded a digest at ``until`` itself, so a replay is
only ever called equal at a point where both sides were measured.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import NamedTuple, TextIO

from application.environments import Environments
from domain.envelopes import EventEnvelope, envelope_of
from envbranch.progress import ProgressLine
from projections.read_model import DIGEST_INTERVAL, ReadModel, record_digests
from projections.sql import Database

READ_MODEL_FILE = "read_model.sqlite3"
PAGE_SIZE = 500

Progress = Callable[[int, int], None]


class ReplayError(ValueError):
    """A replay that cannot start: bad input, or nothing to verify against."""


class Mismatch(NamedTuple):
    """A table whose digest differs between the live read model and the rebuild."""

    position: int
    table: str
    live_digest: str | None
    rebuilt_digest: str | None


@dataclass
class ReplayReport:
    until: int
    events_applied: int
    into: Path
    verified_positions: list[int] = field(default_factory=list)
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No table differed at any verified position."""
        return not self.mismatches


def last_position(app: Environments) -> int:
    return int(app.recorder.max_notification_id() or 0)


def resolve_until(app: Environments, until: str | None) -> int:
    """The position a replay stops at: ``until`` as digits, or an ISO-8601 time with a
    timezone (the last position of the log's prefix whose events occurred at or before
    it), or None for the log's last position."""
    last = last_position(app)
    if until is None:
        if last == 0:
            raise ReplayError("the event store is empty: there is nothing to replay")
        return last
    text = until.strip()
    if text.isdigit():
        position = int(text)
        if position < 1:
            raise ReplayError("positions start at 1: --until must be at least 1")
        if position > last:
            raise ReplayError(
                f"position {position} is beyond the end of the event log "
                f"(its last position is {last})"
            )
        return position
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ReplayError(
            f"--until must be a position (digits) or an ISO-8601 time with a timezone "
            f"(e.g. 2025-01-31T12:00:00Z), not {until!r}"
        ) from None
    if moment.tzinfo is None:
        raise ReplayError(
            f"the time {until!r} has no timezone: add one (e.g. {text}Z or {text}+02:00)"
        )
    if last == 0:
        raise ReplayError("the event store is empty: there is nothing to replay")
    found = 0
    first: datetime | None = None
    for envelope in envelopes(app, 1, last):
        if first is None:
            first = envelope.occurred_at
        if envelope.occurred_at > moment:
            break  # the log is in position order: the prefix ends here
        found = envelope.position
    if found == 0:
        when = first.isoformat() if first is not None else "?"
        raise ReplayError(f"{until!r} is before the first event (which occurred at {when})")
    return found


def envelopes(
    app: Environments, start: int, stop: int, page_size: int = PAGE_SIZE
) -> Iterator[EventEnvelope]:
    """The stored events at positions start..stop, read a page at a time."""
    while start <= stop:
        page = app.recorder.select_notifications(start, page_size, stop=stop)
        if not page:
            return
        for notification in page:
            envelope = envelope_of(notification.id, app.mapper.to_domain_event(notification))
            # Through the bytes the relay publishes: the live model read exactly these.
            yield EventEnvelope.from_bytes(envelope.to_bytes())
        start = page[-1].id + 1


def check_verifiable(live: ReadModel, until: int) -> list[int]:
    """The live digest positions up to ``until``; ReplayError unless one is ``until``."""
    reached = live.position()
    if reached < until:
        raise ReplayError(
            f"the live read model has not reached position {until} yet (it stands at "
            f"{reached}): wait for it to catch up, or replay to a recorded position at most "
            f"{reached}"
        )
    positions = live.digest_positions()
    if until not in positions:
        index = bisect.bisect_left(positions, until)
        below = str(positions[index - 1]) if index > 0 else "none"
        above = str(positions[index]) if index < len(positions) else "none"
        raise ReplayError(
            f"the live read model recorded no digest at position {until}, so a replay cannot "
            f"be verified there; nearest recorded positions: {below} below, {above} above. "
            "Replay until one of those, or record one now with `envbranch checkpoint` "
            "and replay until its position"
        )
    return [p for p in positions if p <= until]


def latest_digest_position(live: ReadModel) -> int:
    """The last position at which the live read model recorded digests."""
    positions = live.digest_positions()
    if not positions:
        raise ReplayError(
            "the live read model has recorded no digest yet: record one with "
            "`envbranch checkpoint`, then replay with --verify"
        )
    return positions[-1]


def replay(
    app: Environments,
    into: Path,
    until: int,
    verify_against: ReadModel | None = None,
    progress: Progress | None = None,
    *,
    page_size: int = PAGE_SIZE,
    digest_interval: int | None = None,
) -> ReplayReport:
    """Apply the events 1..``until`` to a new read model in ``into`` (which must not hold
    one yet); with ``verify_against``, compare the digests at every position the live read
    model recorded up to ``until`` (which must be one of them)."""
    last = last_position(app)
    if until < 1 or until > last:
        raise ReplayError(
            f"position {until} is outside the event log (positions 1..{last})"
            if last
            else "the event store is empty: there is nothing to replay"
        )
    target = into / READ_MODEL_FILE
    if target.exists() or (into.exists() and not into.is_dir()):
        raise ReplayError(
            f"{into} already holds a read model ({target.name}): choose a new --into directory"
            if target.exists()
            else f"{into} exists and is not a directory"
        )
    checkpoints: list[int] = []
    if verify_against is not None:
        checkpoints = check_verifiable(verify_against, until)
    if digest_interval is None:
        digest_interval = (
            verify_against.digest_interval if verify_against is not None else DIGEST_INTERVAL
        )

    into.mkdir(parents=True, exist_ok=True)
    db = Database(sqlite_path=target)
    try:
        rebuilt = ReadModel(db, digest_interval)
        rebuilt.create()
        # into an empty read model: its secondary indexes are made once it has caught up
        catching_up = rebuilt.begin_catch_up()
        applied = _apply_all(app, rebuilt, until, set(checkpoints), progress, page_size)
        if catching_up:
            rebuilt.end_catch_up()
        report = ReplayReport(until=until, events_applied=applied, into=into)
        if verify_against is not None:
            report.verified_positions = checkpoints
            report.mismatches = compare(verify_against, rebuilt, checkpoints)
        return report
    finally:
        db.close()


def _apply_all(
    app: Environments,
    rebuilt: ReadModel,
    until: int,
    checkpoints: set[int],
    progress: Progress | None,
    page_size: int,
) -> int:
    applied = 0

    def flush(chunk: list[EventEnvelope]) -> None:
        nonlocal applied
        if not chunk:
            return
        applied += rebuilt.apply(chunk)
        position = chunk[-1].position
        if position in checkpoints and not rebuilt.recorded_digests(position):
            # The live model recorded here (e.g. with another digest interval): so do we.
            with rebuilt.db.transaction() as cur:
                record_digests(cur, position)
        chunk.clear()
        if progress is not None:
            progress(position, until)

    chunk: list[EventEnvelope] = []
    for envelope in envelopes(app, 1, until, page_size):
        chunk.append(envelope)
        if envelope.position in checkpoints or len(chunk) >= page_size:
            flush(chunk)
    flush(chunk)
    if progress is not None:
        progress(until, until)
    return applied


def compare(live: ReadModel, rebuilt: ReadModel, positions: list[int]) -> list[Mismatch]:
    """Every (position, table) whose digests differ between the two read models."""
    mismatches = []
    for position in positions:
        a, b = live.recorded_digests(position), rebuilt.recorded_digests(position)
        # A table the live model did not record then came with a later version (e.g.
        # bucket_objects): only a rebuild has it for positions before that version.
        for table in sorted(a.keys() if a else b.keys()):
            if a.get(table) != b.get(table):
                mismatches.append(Mismatch(position, table, a.get(table), b.get(table)))
    return mismatches


class ProgressBar(ProgressLine):
    """``[#####-----]  52%  5200/10000 events  4,100 events/s`` on a stream: redrawn in
    place (``in_place``, a terminal), else a line per change, ``min_interval`` apart."""

    def __init__(
        self,
        stream: TextIO,
        width: int = 30,
        *,
        in_place: bool = True,
        min_interval: float = 0.0,
    ) -> None:
        super().__init__(
            stream, "events", in_place=in_place, width=width, min_interval=min_interval
        )

    def __call__(self, done: int, total: int) -> None:
        self.update(done, total)
        if done >= total:
            self.finish()
