"""The dead-letter queue over the API, for admin keys: list rejected commands, redrive them.

A redrive sends an entry's original bytes again, with its command_id, and waits for what
became of it. An entry whose command_id was applied already is not sent again: a second
redrive does nothing, and neither would the command processor, which applies a
command_id once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from contract import responses as s
from domain.errors import CommandRejected
from projections import dead_letters as dl
from projections.api.dependencies import Svc, Who
from projections.api.errors import ApiError
from projections.api.pages import ListBody, page
from projections.api.services import Services
from projections.api.vectors import until_materialized
from projections.api.writes import Written
from projections.auth import Principal
from projections.gateway import CommandTimeout
from projections.json_bodies import LimitedJsonRoute

router = APIRouter(route_class=LimitedJsonRoute)


def _admin(who: Principal) -> None:
    if not who.is_admin:
        raise ApiError(403, "forbidden", "the dead-letter queue is for keys for every namespace")


def _moment(name: str, text: str | None) -> datetime | None:
    """A query parameter's ISO 8601 time, which must name its time zone."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        message = f"{name}: an ISO 8601 time with a time zone (e.g. 2026-01-01T00:00:00Z)"
        raise ApiError(422, "validation_error", message)
    return moment


async def _entries(svc: Services) -> list[dl.DeadLetter]:
    gateway = svc.gateway
    return await dl.read_dead_letters(
        gateway.bootstrap_servers, gateway.topics, gateway.kafka_options
    )


@router.get("/v1/dlq", response_model=s.Page[s.DeadLetter])
async def list_dead_letters(
    who: Who,
    svc: Svc,
    code: str | None = None,
    command_type: str | None = None,
    since: Annotated[str | None, Query(json_schema_extra={"format": "date-time"})] = None,
    until: Annotated[str | None, Query(json_schema_extra={"format": "date-time"})] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
) -> Any:
    """Rejected commands, newest first, filtered by error code, command type and time."""
    _admin(who)
    filters = dl.Filters(code, command_type, _moment("since", since), _moment("until", until))
    shown, total = dl.listed(await _entries(svc), filters, limit, offset)
    applied = await svc.read(dl.applied_ids, shown)
    rows = [e.as_dict(e.command_id in applied) for e in shown]
    return page(rows, total, ListBody(limit=limit, offset=offset))


@router.post("/v1/dlq/redrive", response_model=s.RedriveAnswer)
async def redrive(body: s.RedriveRequest, who: Who, svc: Svc) -> Any:
    """Send chosen entries again, in the order given, each once (an offset given twice is
    answered once); each answer says what became of it."""
    _admin(who)
    offsets = list(dict.fromkeys(body.dlq_offsets))
    found = dl.chosen(await _entries(svc), offsets)
    applied = await svc.read(dl.applied_ids, list(found.values()))
    results = []
    for offset in offsets:
        entry = found.get(offset)
        if entry is None:
            results.append(dl.redrive_outcome(None, offset, "not_found", "no such entry"))
        elif entry.command_id is not None and entry.command_id in applied:
            results.append(dl.redrive_outcome(entry, offset, "already_applied"))
        else:
            results.append(await _send_again(svc, entry))
            if entry.command_id is not None and results[-1]["outcome"] == "applied":
                applied.add(entry.command_id)
    return {"results": results}


async def _send_again(svc: Services, entry: dl.DeadLetter) -> dict[str, Any]:
    if entry.truncated:
        message = "the DLQ kept only the start of this command (it was too large): not sent"
        return dl.redrive_outcome(entry, entry.dlq_offset, "rejected", message)
    try:
        sent = await svc.gateway.resend(entry.value, entry.key)
        if svc.materializer is not None:  # answered once searchable, as an API write is
            await until_materialized(svc, Written(sent.command_id, sent.position or 0))
    except CommandRejected as e:
        return dl.redrive_outcome(entry, entry.dlq_offset, "rejected", f"{e.code}: {e.message}")
    except (CommandTimeout, ApiError) as e:  # sent: look again later (GET /v1/dlq: applied)
        message = f"sent again; no outcome in time ({e}): see whether it is applied later"
        return dl.redrive_outcome(entry, entry.dlq_offset, "timeout", message)
    answer = dl.redrive_outcome(entry, entry.dlq_offset, "applied")
    return {**answer, "position": sent.position}
