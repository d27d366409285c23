"""Finding what a request names, as the caller may see it: a namespace, a resource by
ID, name or ref:, and what a retriever or taxonomy reads when it runs."""

from typing import Any

from domain.ids import Kind, kind_of
from projections import queries
from projections.api.errors import ApiError
from projections.api.services import Services
from projections.auth import Principal

Row = dict[str, Any]


async def visible_namespace(svc: Services, who: Principal, identifier: str) -> Row:
    row = await svc.read(queries.namespace, identifier)
    if row is None or not who.may_see(row["namespace_id"]):
        if kind_of(identifier) is Kind.NAMESPACE and who.may_see(identifier):
            await refuse_deleted(svc, Kind.NAMESPACE, identifier, identifier)
        raise ApiError(404, "not_found", f"namespace {identifier!r} not found")
    return row


async def refuse_deleted(svc: Services, kind: Kind, resource_id: str, namespace_id: str) -> None:
    """A 404 that says so, when the ID names a resource of this namespace that a delete
    removed (and how to bring it back); nothing when it does not."""
    event = f"{kind.value.title()}.Deleted"
    found = await svc.read(queries.deletion, resource_id, event)
    if found is not None and found[1] in (namespace_id, None):
        position = found[0]
        raise ApiError(
            404,
            "not_found",
            f"{kind.value} {resource_id!r} was deleted at position {position}; a clone with "
            f"as_of_position {position - 1} brings it back",
            deleted_at_position=position,
        )


def reachable(row: Row, ns: Row, who: Principal | None) -> bool:
    """Whether a resource found from namespace ``ns`` may be served: its own resources
    always; another namespace's (through a ref:) only to reads by a key that may see it."""
    if row["namespace_id"] == ns["namespace_id"]:
        return True
    return who is not None and who.may_see(row["namespace_id"])


async def reachable_resource(
    svc: Services, kind: Kind, ns: Row, identifier: str, who: Principal | None = None
) -> Row | None:
    """By ID, name or ref:; another namespace's only for reads by a key that sees it."""
    row = await svc.read(queries.resolve, kind, ns["namespace_id"], identifier)
    if row is not None and not reachable(row, ns, who):
        return None
    return row


async def find(
    svc: Services, kind: Kind, ns: Row, identifier: str, who: Principal | None = None
) -> Row:
    """As ``reachable_resource``; 404 if there is none."""
    row = await reachable_resource(svc, kind, ns, identifier, who)
    if row is None:
        raise ApiError(404, "not_found", f"{kind.value} {identifier!r} not found")
    return row


async def collections_of(svc: Services, ns: Row, ids: list[str]) -> dict[str, Row]:
    rows = {}
    for collection_id in ids:
        row = await svc.read(queries.resource, Kind.COLLECTION, ns["namespace_id"], collection_id)
        if row is not None:
            rows[collection_id] = row
    return rows


async def taxonomy_inputs(svc: Services, taxonomy: Row) -> tuple[dict[str, Row], dict[str, Row]]:
    """The retrievers and collections a taxonomy classifies with (in its namespace)."""
    home = {"namespace_id": taxonomy["namespace_id"]}
    retrievers: dict[str, Row] = {}
    for ret_id in _retriever_ids(taxonomy["config"]):
        retrievers[ret_id] = await find(svc, Kind.RETRIEVER, home, ret_id)
    collection_ids = {cid for r in retrievers.values() for cid in r["collection_ids"]}
    collection_ids |= _reference_collections(taxonomy["config"])
    return retrievers, await collections_of(svc, home, sorted(collection_ids))


def _retriever_ids(config: dict[str, Any]) -> set[str]:
    ids = {config["retriever_id"]} if config.get("retriever_id") else set()
    ids |= {
        n["retriever_id"] for n in config.get("hierarchical_nodes") or [] if n.get("retriever_id")
    }
    return ids


def _reference_collections(config: dict[str, Any]) -> set[str]:
    ids = set()
    if config.get("source_collection"):
        ids.add(config["source_collection"]["collection_id"])
    ids |= {n["collection_id"] for n in config.get("hierarchical_nodes") or []}
    return ids
