"""The read model of refs (with their full history) and of recorded evaluations."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from domain.envelopes import EventEnvelope

if TYPE_CHECKING:
    from projections.read_model import Projection

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS refs (ref_id TEXT PRIMARY KEY, namespace_id TEXT,
        ref_name TEXT, target_kind TEXT, target_id TEXT, target_namespace_id TEXT,
        created_at TEXT, updated_at TEXT, created_by TEXT, version INTEGER)""",
    # One row per thing that happened to a ref, refused promotions included.
    """CREATE TABLE IF NOT EXISTS ref_history (position INTEGER PRIMARY KEY, ref_id TEXT,
        namespace_id TEXT, ref_name TEXT, action TEXT, target_id TEXT,
        target_namespace_id TEXT, previous_target_id TEXT, reason TEXT, evaluation_id TEXT,
        detail TEXT, actor TEXT, command_id TEXT, occurred_at TEXT, version INTEGER)""",
    """CREATE TABLE IF NOT EXISTS evaluations (evaluation_id TEXT PRIMARY KEY,
        namespace_id TEXT, evaluation_set_id TEXT, set_type TEXT, k INTEGER, runs TEXT,
        agreement TEXT, position INTEGER, command_id TEXT, created_at TEXT, created_by TEXT)""",
    "CREATE INDEX IF NOT EXISTS refs_by_name ON refs (namespace_id, ref_name)",
    "CREATE INDEX IF NOT EXISTS ref_history_by_ref ON ref_history (ref_id, position)",
]
PROJECTED = {"refs": "ref_id", "ref_history": "position", "evaluations": "evaluation_id"}
JSON_COLUMNS = {"detail", "runs", "agreement"}


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def project_ref(cur: Projection, e: EventEnvelope, what: str) -> None:
    occurred_at = e.occurred_at.isoformat()
    d = e.data
    if what == "Created":
        cur.execute(
            "INSERT INTO refs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                e.aggregate_id,
                e.namespace_id,
                d["ref_name"],
                d["target_kind"],
                d["target_id"],
                d["target_namespace_id"],
                occurred_at,
                occurred_at,
                e.actor,
                e.aggregate_version,
            ],
        )
        target = (d["target_id"], d["target_namespace_id"])
        _history(cur, e, "create", *target, None, d["reason"], None, None)
    elif what == "Moved":
        cur.execute(
            "UPDATE refs SET target_id = ?, target_namespace_id = ?, updated_at = ?, "
            "version = ? WHERE ref_id = ?",
            [
                d["target_id"],
                d["target_namespace_id"],
                occurred_at,
                e.aggregate_version,
                e.aggregate_id,
            ],
        )
        detail = {"rolled_back_to": d["rolled_back_to"]} if d.get("rolled_back_to") else None
        _history(
            cur,
            e,
            d["action"],
            d["target_id"],
            d["target_namespace_id"],
            d["previous_target_id"],
            d["reason"],
            d.get("evaluation_id"),
            detail,
        )
    elif what == "PromotionRefused":
        current = cur.query("SELECT target_id FROM refs WHERE ref_id = ?", [e.aggregate_id])
        _history(
            cur,
            e,
            "promotion_refused",
            d["candidate_id"],
            None,
            current[0]["target_id"] if current else None,
            d["reason"],
            d["evaluation_id"],
            {"failures": d["failures"]},
        )


def _history(
    cur: Projection,
    e: EventEnvelope,
    action: str,
    target_id: str,
    target_namespace_id: str | None,
    previous_target_id: str | None,
    reason: str,
    evaluation_id: str | None,
    detail: dict[str, Any] | None,
) -> None:
    ref = cur.query("SELECT namespace_id, ref_name FROM refs WHERE ref_id = ?", [e.aggregate_id])
    cur.append(
        "ref_history",
        {
            "position": e.position,
            "ref_id": e.aggregate_id,
            "namespace_id": ref[0]["namespace_id"],
            "ref_name": ref[0]["ref_name"],
            "action": action,
            "target_id": target_id,
            "target_namespace_id": target_namespace_id,
            "previous_target_id": previous_target_id,
            "reason": reason,
            "evaluation_id": evaluation_id,
            "detail": None if detail is None else _json(detail),
            "actor": e.actor,
            "command_id": e.command_id,
            "occurred_at": e.occurred_at.isoformat(),
            "version": e.aggregate_version,
        },
    )


def project_evaluation(cur: Projection, e: EventEnvelope) -> None:
    d = e.data
    cur.append(
        "evaluations",
        {
            "evaluation_id": e.aggregate_id,
            "namespace_id": e.namespace_id,
            "evaluation_set_id": d["evaluation_set_id"],
            "set_type": d["set_type"],
            "k": d["k"],
            "runs": _json(d["runs"]),
            "agreement": _json(d.get("agreement")),
            "position": e.position,
            "command_id": e.command_id,
            "created_at": e.occurred_at.isoformat(),
            "created_by": e.actor,
        },
    )
