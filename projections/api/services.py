"""What the routes work with: built once by ``create_app`` and kept on ``app.state``."""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from contract import responses as s
from projections.auth import ApiKeys
from projections.gateway import CommandGateway
from projections.sql import Database
from projections.vectors.materializer import VectorMaterializer
from projections.vectors.retrieval import RetrieverRunner

T = TypeVar("T")


class ProcessHealth(Protocol):
    """The components of this process (envbranch.readiness.Readiness)."""

    def not_ready(self) -> list[str]: ...

    def event_store_position(self) -> int | None: ...

    def components(self, store_position: int | None) -> list[s.ComponentHealth]: ...


@dataclass(frozen=True)
class Services:
    db: Database  # the read model
    gateway: CommandGateway
    keys: ApiKeys
    # The vector store (and a runner of retrievers on it), if this process has one.
    materializer: VectorMaterializer | None
    runner: RetrieverRunner | None
    process: ProcessHealth | None  # None: no components to report on
    timeout: float  # how long a write waits for the vector processor

    async def read(self, query: Callable[..., T], *args: Any) -> T:
        """``query(db, *args)`` on the read model, off the event loop."""
        return await asyncio.to_thread(query, self.db, *args)
