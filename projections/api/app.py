"""The API's one assembly: its services on ``app.state``, its error handlers, and the
routers of every family of operations, in the order the OpenAPI document lists them."""

from fastapi import FastAPI

from projections.api import (
    api_keys,
    checkpoints,
    console,
    dead_letters,
    diffs,
    health,
    history,
    metrics,
    namespaces,
    releases,
    resources,
    tasks,
    vectors,
)
from projections.api.errors import add_error_handlers
from projections.api.openapi_errors import document_errors
from projections.api.services import ProcessHealth, Services
from projections.auth import ApiKeys
from projections.gateway import CommandGateway
from projections.json_bodies import LimitedJsonRoute
from projections.sql import Database
from projections.vectors.materializer import VectorMaterializer
from projections.vectors.retrieval import RetrieverRunner

ROUTERS = (
    namespaces,
    resources,
    tasks,
    history,
    api_keys,
    vectors,
    releases,
    diffs,
    checkpoints,
    dead_letters,
    health,
    metrics,
    console,
)


def create_app(
    db: Database,
    gateway: CommandGateway,
    keys: ApiKeys,
    materializer: VectorMaterializer | None = None,
    process: ProcessHealth | None = None,
) -> FastAPI:
    app = FastAPI(
        title="envbranch",
        version="0.1.0",
        description="Environment branching for AI retrieval pipelines.",
        on_startup=[gateway.start],
        on_shutdown=[gateway.stop],
    )
    app.router.route_class = LimitedJsonRoute
    app.state.services = Services(
        db=db,
        gateway=gateway,
        keys=keys,
        materializer=materializer,
        runner=RetrieverRunner(materializer.cow) if materializer is not None else None,
        process=process,
        timeout=gateway.timeout,
    )
    add_error_handlers(app)
    for family in ROUTERS:
        document_errors(family.router)  # the same answers each time: safe to repeat
        app.include_router(family.router)
    metrics.watch(app)
    return app
