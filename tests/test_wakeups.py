"""Wake-ups: in one process from any thread, and from PostgreSQL's NOTIFY across
processes (the relay's way of hearing of events another process stored)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from contract.commands import command_from_document
from envbranch import bootstrap, signals
from envbranch.settings import Settings
from envbranch.signals import Wakeup
from tests.conftest import make_settings, postgres_schema
from tests.support import command


def test_a_notification_between_ticket_and_wait_is_not_lost() -> None:
    async def check() -> None:
        wakeup = Wakeup()
        ticket = wakeup.ticket()
        wakeup.notify()
        assert await wakeup.wait(ticket, timeout=5) is True
        assert await wakeup.wait(wakeup.ticket(), timeout=0.01) is False

    asyncio.run(check())


def test_a_notification_from_another_thread_wakes_every_waiter() -> None:
    async def check() -> None:
        wakeup = Wakeup()
        ticket = wakeup.ticket()
        waiters = [asyncio.create_task(wakeup.wait(ticket, timeout=30)) for _ in range(3)]
        await asyncio.sleep(0)  # let them start waiting
        threading.Thread(target=wakeup.notify).start()
        assert await asyncio.gather(*waiters) == [True, True, True]

    asyncio.run(check())


@pytest.fixture
def pg_settings(tmp_path: Path, topic_prefix: str) -> Iterator[Settings]:
    for postgres in postgres_schema():
        yield make_settings("postgres", tmp_path, topic_prefix, postgres)


def test_events_stored_by_another_writer_wake_a_relay_listening_on_postgres(
    pg_settings: Settings,
) -> None:
    relay_store = bootstrap.open_event_store(pg_settings)
    writer = bootstrap.open_event_store(pg_settings)

    class _Relay:
        app = relay_store

    async def check() -> None:
        stop = asyncio.Event()
        started = signals.events_stored.ticket()
        listening = asyncio.create_task(
            bootstrap.wake_relay_on_notify(pg_settings, _Relay(), stop)  # type: ignore[arg-type]
        )
        # It notifies once when it starts listening (whatever came before it).
        assert await signals.events_stored.wait(started, timeout=30), "not listening"
        ticket = signals.events_stored.ticket()
        doc = command("namespaces.create", {"namespace_name": "woken"})
        await asyncio.to_thread(writer.execute, command_from_document(doc))
        woken = await signals.events_stored.wait(ticket, timeout=30)
        stop.set()
        await listening
        assert woken, "no wake-up after another writer stored events"

    try:
        asyncio.run(check())
    finally:
        relay_store.close()
        writer.close()
