"""Creates envbranch's topics with the partition counts meant for them.

The events topic has one partition: its order is the store's position order,
the system's version clock.
"""

from __future__ import annotations

import logging
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from domain.envelopes import Topics

log = logging.getLogger(__name__)


def topic_plan(topics: Topics, command_partitions: int = 1) -> dict[str, int]:
    return {topics.commands: command_partitions, topics.events: 1, topics.dlq: 1}


async def ensure_topics(
    bootstrap_servers: str,
    partitions: dict[str, int],
    replication_factor: int = 1,
    kafka_options: dict[str, Any] | None = None,
) -> None:
    """Create the missing topics; refuse an events topic with more than one partition.
    ``kafka_options``: aiokafka's security options (``envbranch.connections``)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **(kafka_options or {}))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, count, replication_factor)
            for name, count in partitions.items()
            if name not in existing
        ]
        if missing:
            await admin.create_topics(missing)
            log.info("created topics %s", ", ".join(t.name for t in missing))
        for name in (n for n in partitions if n.endswith(".events")):
            described = await admin.describe_topics([name])
            count = len(described[0]["partitions"])
            if count != 1:
                raise RuntimeError(
                    f"{name} has {count} partitions; it needs exactly 1 to keep "
                    "events in position order"
                )
    finally:
        await admin.close()
