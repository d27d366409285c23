"""What happened: a resource's lineage (what it was cloned from, what was cloned from
it) and the audit log of every event."""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from contract import responses as s
from domain.ids import kind_of
from domain.json_limits import MAX_INT
from domain.values import INT64
from projections import queries
from projections.api.dependencies import Svc, Who
from projections.api.errors import ApiError
from projections.api.pages import ListBody, page
from projections.json_bodies import LimitedJsonRoute

router = APIRouter(route_class=LimitedJsonRoute)

# What GET /v1/lineage/{identifier} takes: the ID of a resource that can be cloned.
LINEAGE_ID = f"^({'|'.join(kind.prefix for kind in queries.TABLE)})_[0-9a-f]{{32}}$"


def int64_query(ge: int) -> Any:
    """A query parameter that fits 64 bits, as the JSON bodies' integers do."""
    return Query(ge=ge, le=MAX_INT, json_schema_extra=INT64)


@router.get("/v1/lineage/{identifier}", response_model=s.Lineage)
async def get_lineage(
    identifier: Annotated[str, Path(json_schema_extra={"pattern": LINEAGE_ID})],
    who: Who,
    svc: Svc,
) -> Any:
    kind = kind_of(identifier)
    if kind is None or kind not in queries.TABLE:
        prefixes = ", ".join(f"{k.prefix}_" for k in queries.TABLE)
        message = f"lineage takes a resource ID ({prefixes})"
        raise ApiError(422, "validation_error", message)
    row = await svc.read(queries.resource_by_id, kind, identifier)
    if row is None or not who.may_see(row["namespace_id"]):
        raise ApiError(404, "not_found", f"{kind.value} {identifier!r} not found")
    ancestors, descendants = await svc.read(queries.lineage, identifier)
    return {
        "resource_id": identifier,
        "ancestors": [e for e in ancestors if who.may_see(e["namespace_id"])],
        "descendants": [e for e in descendants if who.may_see(e["namespace_id"])],
    }


@router.get("/v1/audit", response_model=s.Page[s.AuditEntry])
async def get_audit(
    who: Who,
    svc: Svc,
    resource_id: str | None = None,
    actor: str | None = None,
    type: str | None = None,  # noqa: A002 - the query parameter's name
    command_id: str | None = None,
    from_position: Annotated[int | None, int64_query(ge=0)] = None,
    to_position: Annotated[int | None, int64_query(ge=0)] = None,
    since: str | None = None,
    until: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, int64_query(ge=0)] = 0,
) -> Any:
    filters = {
        "resource_id": resource_id,
        "actor": actor,
        "type": type,
        "command_id": command_id,
        "from_position": from_position,
        "to_position": to_position,
        "since": since,
        "until": until,
    }
    scope = None if who.namespaces is None else sorted(who.namespaces)
    rows, total = await svc.read(queries.audit, scope, filters, limit, offset)
    return page(rows, total, ListBody(limit=limit, offset=offset))
