"""Refs: named pointers (``production``, ``staging``) that consumers resolve at call time.

Moving a ref is the whole deployment, and every move is an event, so a ref's
history says where it pointed, since when, who moved it and why; a rollback is
one more move, to a target it had before, and can itself be rolled back.

A target can be deleted after a ref points at it (or its namespace can). The ref keeps
its history, but a deleted target is never served nor pointed at again: resolving the
ref refuses ("points at ..., which was deleted"), and so do moving or promoting it to a
deleted target and rolling it back to an entry whose target is deleted since. Moving it
to a live target is how it is mended. Whether a target is deleted is the application's
to find out (``gone`` below says how, or None when the target is live).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from domain.base import Aggregate
from domain.errors import CommandRejected, ErrorCode


class Ref(Aggregate):
    """A named pointer, owned by one namespace, to a namespace or a resource."""

    class Created(Aggregate.Created):
        namespace_id: str
        ref_name: str
        target_kind: str
        target_id: str
        target_namespace_id: str
        reason: str

        def apply(self, aggregate: Ref) -> None:
            aggregate.history.append(
                _entry(self, "create", self.target_id, self.target_namespace_id, self.reason)
            )

    class Moved(Aggregate.Event):
        """The ref points somewhere else: a plain move, a promotion or a rollback."""

        action: str  # "move" | "promote" | "rollback"
        target_id: str
        target_namespace_id: str
        previous_target_id: str
        reason: str
        evaluation_id: str | None
        rolled_back_to: dict[str, Any] | None

        def apply(self, aggregate: Ref) -> None:
            aggregate.target_id = self.target_id
            aggregate.target_namespace_id = self.target_namespace_id
            aggregate.history.append(
                _entry(self, self.action, self.target_id, self.target_namespace_id, self.reason)
            )

    class PromotionRefused(Aggregate.Event):
        """A promotion whose gate failed: recorded for the audit; the ref stays put."""

        candidate_id: str
        evaluation_id: str
        failures: list[dict[str, Any]]
        reason: str

    def __init__(
        self,
        namespace_id: str,
        ref_name: str,
        target_kind: str,
        target_id: str,
        target_namespace_id: str,
        reason: str,
    ) -> None:
        self.namespace_id = namespace_id
        self.ref_name = ref_name
        self.target_kind = target_kind
        self.target_id = target_id
        self.target_namespace_id = target_namespace_id
        # every target the ref has had, oldest first: action, target, reason, time, version
        self.history: list[dict[str, Any]] = []

    @staticmethod
    def id_for(namespace_id: str, ref_name: str) -> str:
        return f"ref:{namespace_id}:{ref_name}"

    @classmethod
    def create(
        cls,
        namespace_id: str,
        ref_name: str,
        target_kind: str,
        target_id: str,
        target_namespace_id: str,
        reason: str,
    ) -> Ref:
        return cls._create(
            cls.Created,
            id=cls.id_for(namespace_id, ref_name),
            namespace_id=namespace_id,
            ref_name=ref_name,
            target_kind=target_kind,
            target_id=target_id,
            target_namespace_id=target_namespace_id,
            reason=reason,
        )

    def move_to(self, target_id: str, target_namespace_id: str, reason: str) -> None:
        self._move("move", target_id, target_namespace_id, reason)

    def promote(
        self, candidate_id: str, candidate_namespace_id: str, evaluation_id: str, reason: str
    ) -> None:
        self._move("promote", candidate_id, candidate_namespace_id, reason, evaluation_id)

    def refuse_promotion(
        self, candidate_id: str, evaluation_id: str, failures: list[dict[str, Any]], reason: str
    ) -> None:
        self.trigger_event(
            self.PromotionRefused,
            candidate_id=candidate_id,
            evaluation_id=evaluation_id,
            failures=failures,
            reason=reason,
        )

    def resolve(self, gone: str | None) -> str:
        """The ID the ref points at; refused if its target is ``gone`` (deleted)."""
        if gone is not None:
            raise CommandRejected(
                ErrorCode.NOT_FOUND,
                f"ref {self.ref_name!r} points at {gone}: move it to a live target",
                field="ref_name",
                ref_name=self.ref_name,
                target_id=self.target_id,
            )
        return self.target_id

    def roll_back(
        self, to: dict[str, Any], entry: dict[str, Any], reason: str, gone: str | None = None
    ) -> None:
        """Point at what ``entry`` of the history pointed at; ``to`` says how it was chosen.
        Refused if that target is ``gone`` (deleted since)."""
        if gone is not None:
            raise CommandRejected(
                ErrorCode.NOT_FOUND,
                f"cannot roll ref {self.ref_name!r} back to {entry['target_id']}: it would "
                f"point at {gone}",
                field=f"body.{next(iter(to))}",
                ref_name=self.ref_name,
                target_id=entry["target_id"],
            )
        self._move(
            "rollback",
            entry["target_id"],
            entry["target_namespace_id"],
            reason,
            rolled_back_to={**to, "version": entry["version"]},
        )

    # --- choosing an earlier target ----------------------------------------

    def previous_entry(self) -> dict[str, Any]:
        """What the ref pointed at before its latest move (a rollback counts as a move)."""
        if len(self.history) < 2:
            raise CommandRejected(
                ErrorCode.NOTHING_TO_DO,
                f"ref {self.ref_name!r} has never moved: there is no previous target",
                field="body.to",
            )
        return self.history[-2]

    def entry_at_time(self, moment: datetime) -> dict[str, Any]:
        """The history entry in force at ``moment``."""
        earlier = [e for e in self.history if e["at"] <= moment]
        if not earlier:
            raise CommandRejected(
                ErrorCode.NOTHING_TO_DO,
                f"ref {self.ref_name!r} did not exist at {moment.isoformat()}: it was created "
                f"at {self.history[0]['at'].isoformat()}",
                field="body.time",
            )
        return earlier[-1]

    def entry_at_position(self, position: int, positions: dict[int, int]) -> dict[str, Any]:
        """The history entry in force at a log position; ``positions`` maps this ref's
        versions to the positions their events were stored at."""
        earlier = [e for e in self.history if positions.get(e["version"], position + 1) <= position]
        if not earlier:
            first = positions.get(self.history[0]["version"])
            raise CommandRejected(
                ErrorCode.NOTHING_TO_DO,
                f"ref {self.ref_name!r} did not exist at position {position}: it was created "
                f"at position {first}",
                field="body.position",
            )
        return earlier[-1]

    def _move(
        self,
        action: str,
        target_id: str,
        target_namespace_id: str,
        reason: str,
        evaluation_id: str | None = None,
        rolled_back_to: dict[str, Any] | None = None,
    ) -> None:
        if target_id == self.target_id:
            raise CommandRejected(
                ErrorCode.NOTHING_TO_DO,
                f"ref {self.ref_name!r} already points at {target_id}",
                field="body",
                target_id=target_id,
            )
        self.trigger_event(
            self.Moved,
            action=action,
            target_id=target_id,
            target_namespace_id=target_namespace_id,
            previous_target_id=self.target_id,
            reason=reason,
            evaluation_id=evaluation_id,
            rolled_back_to=rolled_back_to,
        )


def _entry(
    event: Aggregate.Event, action: str, target_id: str, target_namespace_id: str, reason: str
) -> dict[str, Any]:
    return {
        "action": action,
        "target_id": target_id,
        "target_namespace_id": target_namespace_id,
        "reason": reason,
        "at": event.timestamp,
        "version": event.originator_version,
    }


class Checkpoint(Aggregate):
    """A request, in the log itself, that every read model record a digest of its tables
    at exactly this position: what ``envbranch replay --verify`` proves a rebuild against."""

    class Requested(Aggregate.Created):
        reason: str

    def __init__(self, reason: str) -> None:
        self.reason = reason

    @classmethod
    def request(cls, reason: str) -> Checkpoint:
        return cls._create(cls.Requested, id=f"chk:{uuid.uuid4().hex}", reason=reason)
