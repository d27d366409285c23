"""GET /metrics: Prometheus' text format, for admin keys (it names every namespace's
tasks; Prometheus sends the key as a bearer token: ``authorization: {credentials: KEY}``).

Besides what the process's components report (projections.metrics), the API reports what
it can see: the dead-letter queue's size, the tasks in the read model (those in progress
with their progress), and the points in each vector store it serves from.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fastapi import APIRouter, FastAPI, Response

from projections import metrics
from projections.api.dependencies import Who
from projections.api.errors import ApiError
from projections.api.services import Services
from projections.json_bodies import LimitedJsonRoute
from projections.vectors.store import VectorStore

router = APIRouter(route_class=LimitedJsonRoute)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@router.get("/metrics", include_in_schema=False)
async def scrape(who: Who) -> Response:
    if not who.is_admin:
        raise ApiError(403, "forbidden", "/metrics is for keys for every namespace")
    return Response(await asyncio.to_thread(metrics.scrape), media_type=CONTENT_TYPE)


def watch(app: FastAPI) -> None:
    """Report ``app``'s samples from its start to its end."""
    name = f"api-{id(app)}"
    counts = _Counts()

    async def start() -> None:
        metrics.add_source(name, lambda: samples(app.state.services, counts))

    async def stop() -> None:
        metrics.remove_source(name)

    app.router.on_startup.append(start)
    app.router.on_shutdown.append(stop)


class _Counts:
    """The points in each vector store, counted at most every ``EVERY`` seconds: a count
    waits for the store's lock, which writes take too."""

    EVERY = 15.0

    def __init__(self) -> None:
        self.at = -self.EVERY
        self.found: dict[str, int] = {}

    def of(self, store: VectorStore) -> dict[str, int]:
        if time.monotonic() - self.at >= self.EVERY:
            self.found = {name: store.count(name) for name in store.list_stores()}
            self.at = time.monotonic()
        return self.found


def samples(svc: Services, points: _Counts) -> list[metrics.Sample]:
    found: list[metrics.Sample] = []
    entries = svc.gateway.dlq_entries()
    if entries is not None:
        found.append(("envbranch_dlq_entries", {}, float(entries)))
    running = svc.db.query(
        "SELECT task_id, task_type, progress FROM tasks WHERE status = 'IN_PROGRESS'"
    )
    counts = svc.db.query("SELECT task_type, status, COUNT(*) AS n FROM tasks GROUP BY 1, 2")
    found += metrics.task_samples(running, counts, _progress)
    if svc.materializer is not None:
        for name, n in points.of(svc.materializer.vectors).items():
            found.append(("envbranch_vector_points", {"store": name}, float(n)))
    return found


def _progress(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value
