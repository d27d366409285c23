"""Which components of this process are ready, how far behind each is, and waiting for all.

A component is ready once it does its job: the API listens, the command processor has its
partitions and has sought to the positions in the store, the relay knows the events
topic's tail, and each Faust agent has its partition of the events topic. Each component
sets its own asyncio.Event; `envbranch up` prints its banner once every one is set, and
/v1/health/ready answers 200 from then on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from aiokafka import TopicPartition

from contract import responses as s
from projections import metrics

WAITING_FOR = {
    "api": "the HTTP server to listen",
    "command-processor": "its partitions of the commands topic",
    "relay": "the last position on the events topic",
    "projector": "its partition of the events topic",
    "vectors": "its partition of the events topic",
}

# Per partition: the next offset to process, and the end offset as last fetched (or None).
PartitionProgress = Callable[[], list[tuple[TopicPartition, int, int | None]]]


class StartupFailed(Exception):
    """The stack did not come up; the message says why and what to change."""


@dataclass
class _Component:
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    position: Callable[[], int] | None = None  # the last event position it has handled
    partitions: PartitionProgress | None = None


class Readiness:
    """The components of one process: their readiness events and how to read their progress.

    ``store_position`` reads the event store's last position (blocking), against which the
    components that follow the events topic measure their lag."""

    def __init__(
        self, names: Iterable[str], store_position: Callable[[], int] | None = None
    ) -> None:
        self._components = {name: _Component() for name in names}
        self._store_position = store_position

    def event(self, name: str) -> asyncio.Event:
        """What the component sets once it is ready (and clears when it no longer is)."""
        return self._components[name].ready

    def follow(
        self,
        name: str,
        *,
        position: Callable[[], int] | None = None,
        partitions: PartitionProgress | None = None,
    ) -> None:
        """Where the component has got to, read whenever the health report is asked for."""
        self._components[name].position = position
        self._components[name].partitions = partitions

    def not_ready(self) -> list[str]:
        return [name for name, c in self._components.items() if not c.ready.is_set()]

    async def wait(self, timeout: float) -> None:
        """Return once every component is ready; after ``timeout`` seconds, raise
        StartupFailed naming the ones that are not and what each is waiting for."""
        waits = [c.ready.wait() for c in self._components.values()]
        try:
            await asyncio.wait_for(asyncio.gather(*waits), timeout)
        except TimeoutError:
            missing = ", ".join(f"{n} (waiting for {WAITING_FOR[n]})" for n in self.not_ready())
            raise StartupFailed(f"not ready after {timeout:g}s: {missing}") from None

    def event_store_position(self) -> int | None:
        """The event store's last position (blocking), or None if this process cannot tell."""
        return None if self._store_position is None else self._store_position()

    def samples(self, events_topic: str) -> list[metrics.Sample]:
        """Each component's position and lag as /metrics reports them (blocking)."""
        try:
            store = self.event_store_position()
        except Exception:  # noqa: BLE001 - the store is away: positions without their lag
            store = None
        found: list[metrics.Sample] = []
        for name, component in self._components.items():
            try:
                c = self._health(name, component, store)
            except Exception:  # noqa: BLE001 - one component's position: the rest still show
                continue
            if c.partitions is not None:
                for p in c.partitions:
                    found += metrics.lag(c.name, p.topic, p.partition, p.end, p.position)
            elif c.position is not None:
                found += metrics.lag(c.name, events_topic, 0, store, c.position)
        return found

    def components(self, store_position: int | None) -> list[s.ComponentHealth]:
        """Each component's state and lag (blocking: positions may be read from databases)."""
        return [self._health(name, c, store_position) for name, c in self._components.items()]

    @staticmethod
    def _health(name: str, c: _Component, store_position: int | None) -> s.ComponentHealth:
        ready = c.ready.is_set()
        health = s.ComponentHealth(
            name=name,
            state="ready" if ready else "starting",
            waiting_for=None if ready else WAITING_FOR[name],
        )
        if c.position is not None:
            health.position = c.position()
            if store_position is not None:
                health.lag = max(0, store_position - health.position)
        if c.partitions is not None:
            health.partitions = [
                s.PartitionLag(
                    topic=tp.topic,
                    partition=tp.partition,
                    position=position,
                    end=end,
                    lag=None if end is None else max(0, end - position),
                )
                for tp, position, end in c.partitions()
            ]
            known = [p.lag for p in health.partitions if p.lag is not None]
            health.lag = sum(known) if known else None
        return health
