"""Runs envbranch's processes: one at a time (docker-compose) or all in one (embedded)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterable

from consumers.command_processor import CommandProcessor, ProcessorConfig
from consumers.relay import Relay, RelayConfig
from envbranch.event_store import open_event_store
from envbranch.settings import Settings
from envbranch.topics import ensure_topics, topic_plan

log = logging.getLogger(__name__)

COMPONENTS = ("command-processor", "relay")


async def run_components(
    settings: Settings,
    bootstrap_servers: str,
    components: Iterable[str],
    stop: asyncio.Event,
    ready: asyncio.Event | None = None,
) -> None:
    """Run the named components until ``stop`` is set or one of them fails.

    ``ready`` is set once the topics exist, so nothing is published into a topic
    the broker would otherwise create with its own partition count."""
    topics = settings.topics
    await ensure_topics(bootstrap_servers, topic_plan(topics, settings.command_partitions))
    if ready is not None:
        ready.set()

    async def recreate_topics() -> None:  # after a broker came back empty
        await ensure_topics(bootstrap_servers, topic_plan(topics, settings.command_partitions))

    runners = []
    for name in components:
        if name == "command-processor":
            processor = CommandProcessor(
                open_event_store(settings),
                ProcessorConfig(
                    bootstrap_servers,
                    topics=topics,
                    group_id=settings.processor_group,
                    max_command_bytes=settings.max_command_bytes,
                ),
                ensure_topics=recreate_topics,
            )
            runners.append(processor.run(stop))
        elif name == "relay":
            relay = Relay(
                open_event_store(settings),
                RelayConfig(bootstrap_servers, topics=topics),
                ensure_topic=recreate_topics,
            )
            runners.append(relay.run(stop))
        else:
            raise ValueError(f"unknown component {name!r}; known: {', '.join(COMPONENTS)}")
    tasks = [asyncio.create_task(runner) for runner in runners]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)


def stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
