"""Writes: a request becomes a command on envbranch.commands, and the route answers once
the read model has applied it (read your writes) or with the processor's reason for
rejecting it."""

from typing import Any, NamedTuple

from pydantic import BaseModel

from domain.errors import CommandRejected
from projections import queries
from projections.api.errors import for_principal
from projections.api.services import Services
from projections.auth import Principal


class Written(NamedTuple):
    command_id: str
    position: int  # of the command's receipt in the read model


def fields(body: BaseModel) -> dict[str, Any]:
    """A request body as the command payload carries it."""
    return body.model_dump(mode="json", exclude_none=True)


async def write(
    svc: Services,
    type_: str,
    payload: dict[str, Any],
    who: Principal,
    command_id: str | None,
    key: str,
) -> Written:
    """Send the command ``type_`` and wait until the read model has applied it."""
    try:
        sent = await svc.gateway.execute(type_, payload, who.name, command_id=command_id, key=key)
    except CommandRejected as e:
        raise for_principal(e, who) from None
    assert sent.position is not None  # execute returns once the receipt was applied
    return Written(sent.command_id, sent.position)


async def created_by(svc: Services, command_id: str, *events: type) -> str | None:
    """The ID of the aggregate a command created with one of ``events`` (from its own
    events, not from a name: a name may have moved on since)."""
    types = [event.__qualname__ for event in events]
    return await svc.read(queries.created_by_command, command_id, types)


async def deleted_answer(
    svc: Services, kind: str, id_: str, name: str, written: Written
) -> dict[str, Any]:
    """The answer to a DELETE (contract.responses.Deleted), with the position of the
    delete event: a clone as of the position before it brings the resource back."""
    event = f"{kind.title()}.Deleted"
    position = await svc.read(queries.position_of, written.command_id, event)
    return {
        "message": f"{kind} {name!r} ({id_}) deleted",
        "kind": kind,
        "id": id_,
        "name": name,
        "command_id": written.command_id,
        "position": position if position is not None else written.position,
    }


async def earlier_delete(
    svc: Services, kind: str, command_id: str, identifier: str
) -> dict[str, Any] | None:
    """The answer a delete sent with this Idempotency-Key got, if it was applied (the
    resource is gone now, so a retry cannot find it again)."""
    deleted_id = await svc.read(queries.created_by_command, command_id, [f"{kind.title()}.Deleted"])
    if deleted_id is None:
        return None
    # the receipt's position is not needed: the answer gives the Deleted event's
    return await deleted_answer(svc, kind, deleted_id, identifier, Written(command_id, 0))
