"""Crash at any moment: nothing lost, nothing written twice.

Real child processes killed with SIGKILL, a real broker, real stores.
"""

from __future__ import annotations

import collections
import dataclasses
from pathlib import Path

import pytest

from consumers.command_processor import tracking_name
from contract.commands import command_from_document
from domain.envelopes import Topics
from envbranch.bootstrap import open_event_store
from envbranch.broker import EmbeddedBroker, free_port
from envbranch.settings import Settings
from envbranch.topics import ensure_topics, topic_plan
from tests.support import (
    BackgroundStack,
    command,
    encode,
    events_until,
    produce,
    read_events,
    receipts,
    run,
    spawn,
    topic_size,
    wait_until,
)

COMMANDS = 2000
RECEIPT = "CommandReceipt.Accepted"


def stored_events(settings: Settings) -> list[tuple[int, str, str]]:
    """(position, event type, command_id) of every stored event."""
    app = open_event_store(settings)
    out = []
    for notification in app.recorder.select_notifications(1, 10**7):
        event = app.mapper.to_domain_event(notification)
        out.append((notification.id, type(event).__qualname__, event.command_id))
    app.close()
    return out


def stored_receipts(settings: Settings) -> int:
    app = open_event_store(settings)
    try:
        topic = "domain.aggregates:CommandReceipt.Accepted"
        return len(app.recorder.select_notifications(1, 10**7, topics=[topic]))
    finally:
        app.close()


@pytest.mark.slow
def test_kill_9_the_command_processor_with_2000_commands_in_flight_then_restart(
    settings: Settings, broker: EmbeddedBroker, topics: Topics, tmp_path: Path
) -> None:
    bootstrap = broker.bootstrap_servers
    settings = dataclasses.replace(
        settings, command_partitions=3, processor_group=f"{settings.topic_prefix}-processors"
    )
    run(ensure_topics(bootstrap, topic_plan(topics, 3)))
    commands = [
        command("namespaces.create", {"namespace_name": f"ns-{i:04d}"}) for i in range(COMMANDS)
    ]
    redelivered = commands[::40]  # the same command_ids published again
    sent = produce(bootstrap, topics.commands, [encode(c) for c in commands + redelivered])
    ends = {p: max(o for q, o in sent if q == p) + 1 for p in range(3)}

    log = open(tmp_path / "processor.log", "ab")  # noqa: SIM115
    processor = spawn(settings, bootstrap, "command-processor", log=log)
    try:
        wait_until(lambda: stored_receipts(settings) >= 200, 60, "the processor to get going")
        processor.kill()
        processor.wait()
        at_kill = stored_receipts(settings)
        assert at_kill < COMMANDS, "the processor finished before it could be killed"

        processor = spawn(settings, bootstrap, "command-processor", log=log)
        wait_until(lambda: stored_receipts(settings) == COMMANDS, 180, "every command applied")
        # It also went through the redelivered ones, to the end of every partition.
        app = open_event_store(settings)

        def positions() -> dict[int, int | None]:
            name = tracking_name
            return {p: app.last_position(name(broker.cluster_id, topics.commands, p)) for p in ends}

        try:
            wait_until(lambda: positions() == ends, 60, "the end of every partition")
        except AssertionError as e:
            raise AssertionError(f"{e}: {positions()} != {ends}") from None
        finally:
            app.close()
    finally:
        processor.kill()
        processor.wait()
        log.close()

    events = stored_events(settings)
    per_command = collections.Counter(command_id for _, _, command_id in events)
    assert set(per_command) == {c["command_id"] for c in commands}
    assert set(per_command.values()) == {3}, "each command's events exist exactly once"
    types = collections.Counter(event_type for _, event_type, _ in events)
    assert types["Namespace.Created"] == COMMANDS
    assert types[RECEIPT] == COMMANDS


def fill_store(settings: Settings, commands: int) -> int:
    """Apply commands straight to the store; returns the last position."""
    app = open_event_store(settings)
    for i in range(commands):
        doc = command("namespaces.create", {"namespace_name": f"filled-{i:05d}"})
        app.execute(command_from_document(doc))
    last = app.recorder.max_notification_id()
    app.close()
    return int(last)


@pytest.mark.slow
def test_kill_9_the_relay_mid_publish_then_restart_every_event_is_on_the_topic_once_in_order(
    sqlite_settings: Settings, bootstrap: str, created_topics: Topics, tmp_path: Path
) -> None:
    topics = created_topics
    total = fill_store(sqlite_settings, 4000)
    # Small pages: the relay takes long enough to be killed in the middle.
    sqlite_settings = dataclasses.replace(sqlite_settings, relay_page_size=20)
    log = open(tmp_path / "relay.log", "ab")  # noqa: SIM115
    relay = spawn(sqlite_settings, bootstrap, "relay", log=log)
    try:
        wait_until(lambda: topic_size(bootstrap, topics.events) > 0, 60, "the relay to publish")
        relay.kill()
        relay.wait()
        at_kill = topic_size(bootstrap, topics.events)
        assert at_kill < total, "the relay finished before it could be killed"

        relay = spawn(sqlite_settings, bootstrap, "relay", log=log)
        wait_until(lambda: topic_size(bootstrap, topics.events) >= total, 120, "every event")
    finally:
        relay.kill()
        relay.wait()
        log.close()
    positions = [e.position for e in read_events(bootstrap, topics)]
    assert positions == list(range(1, total + 1))


def test_a_broker_restarted_empty_gets_every_event_again_and_new_commands_still_apply(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    topics = sqlite_settings.topics
    port = free_port()
    first = [command("namespaces.create", {"namespace_name": f"before-{i}"}) for i in range(10)]
    later = [command("namespaces.create", {"namespace_name": f"after-{i}"}) for i in range(5)]
    broker = EmbeddedBroker(port=port, log_path=tmp_path / "broker.log")
    bootstrap = broker.start()
    run(ensure_topics(bootstrap, topic_plan(topics)))
    try:
        with BackgroundStack(sqlite_settings, bootstrap, ("command-processor", "relay")):
            produce(bootstrap, topics.commands, [encode(c) for c in first])
            before = events_until(bootstrap, topics, lambda ev: len(receipts(ev)) == len(first))

            broker.stop()
            broker = EmbeddedBroker(port=port, log_path=tmp_path / "broker.log")
            broker.start()
            # The relay re-creates the topics and publishes the whole log again.
            events_until(bootstrap, topics, lambda ev: len(ev) == len(before), 60, "the log again")
            # Commands sent to the new broker are applied, although their offsets
            # start at 0 again.
            produce(bootstrap, topics.commands, [encode(c) for c in later])
            events = events_until(
                bootstrap,
                topics,
                lambda ev: {c["command_id"] for c in later} <= set(receipts(ev)),
                60,
                "the commands sent after the restart",
            )
    finally:
        broker.stop()
    positions = [e.position for e in events]
    assert positions == list(range(1, len(events) + 1))
    assert len(receipts(events)) == len(first) + len(later)
