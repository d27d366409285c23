"""Wake-ups between the components of a process, and from PostgreSQL across processes.

In one process (``envbranch up``) the command processor wakes the relay when it stored
events, and the read-model projector wakes the API's writes waiting for their receipt,
so neither polls. Across processes, PostgreSQL's LISTEN/NOTIFY wakes the relay: the
store notifies a channel in every transaction that inserts events
(application.log_index.events_channel). Every
waiter also wakes on a timer, so a lost or missing signal costs latency, never progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading

log = logging.getLogger(__name__)


class Wakeup:
    """Wakes the tasks waiting on it, from any thread or event loop. Take a ``ticket``
    before checking for work, then ``wait`` with it: a notification in between is not
    lost."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = set()

    def ticket(self) -> int:
        return self._count

    def notify(self) -> None:
        with self._lock:
            self._count += 1
            waiters, self._waiters = self._waiters, set()
        for loop, future in waiters:
            with contextlib.suppress(RuntimeError):  # its loop has closed: nobody waits
                loop.call_soon_threadsafe(_resolve, future)

    async def wait(self, ticket: int, timeout: float) -> bool:
        """Until notified after ``ticket`` was taken, or ``timeout`` seconds; True if
        notified."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        waiter = (loop, future)
        with self._lock:
            if self._count != ticket:
                return True
            self._waiters.add(waiter)
        try:
            await asyncio.wait_for(future, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock:
                self._waiters.discard(waiter)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


# The wake-ups of this process's components (see the module's docstring).
events_stored = Wakeup()
read_model_applied = Wakeup()


async def listen_postgres(conninfo: str, channel: str, wakeup: Wakeup, stop: asyncio.Event) -> None:
    """Notify ``wakeup`` on every NOTIFY on ``channel`` until ``stop``; reconnects after a
    lost connection (polling covers the gap)."""
    import psycopg

    delay = 0.5
    while not stop.is_set():
        try:
            async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as db:
                await db.execute(f'LISTEN "{channel}"')
                delay = 0.5
                wakeup.notify()  # whatever was stored while nobody listened
                notifies = db.notifies()
                stopping = asyncio.ensure_future(stop.wait())
                try:
                    while not stop.is_set():
                        nxt = asyncio.ensure_future(anext(notifies))
                        await asyncio.wait([nxt, stopping], return_when=asyncio.FIRST_COMPLETED)
                        if not nxt.done():
                            nxt.cancel()
                            break
                        nxt.result()
                        wakeup.notify()
                finally:
                    stopping.cancel()
        except Exception as e:  # noqa: BLE001 - the database may be away: try again later
            log.warning("listening for new events failed (%r); again in %ss", e, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, 10.0)
