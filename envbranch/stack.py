"""Runs envbranch's processes: one per container (docker-compose) or all in one (embedded).

The read-model projector and the vector materializer are Faust agents; when
either is among the components, the Faust worker owns the event loop and the
other components run as its tasks, so the API, the processors and the agents
share one process, and with it the Qdrant Edge store only one process may open.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import prometheus_client
import uvicorn

from envbranch import bootstrap
from envbranch.connections import kafka_options
from envbranch.readiness import Readiness, StartupFailed
from envbranch.settings import Settings
from envbranch.topics import ensure_topics, topic_plan
from projections import metrics
from projections.vectors.materializer import VectorMaterializer

log = logging.getLogger(__name__)

COMPONENTS = ("command-processor", "relay", "projector", "vectors", "api")
FAUST = {"projector", "vectors"}  # the components that are Faust agents
# How long `envbranch up` waits for every component before giving up, in seconds.
READY_TIMEOUT = 120.0


def bind_api_socket(settings: Settings) -> socket.socket:
    """Take the API's address before anything else starts: a port in use is then one clear
    error, not a stack that comes up without its API. The API listens on it later."""
    host, port = settings.api_host, settings.api_port
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY on accepted connections only when the
    # listening socket says it is TCP; without it every response waits ~40 ms for an ACK.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise StartupFailed(
                f"the API port {port} on {host} is already in use; choose another with "
                "ENVBRANCH_API_PORT (or envbranch up --api-port)"
            ) from None
        raise StartupFailed(
            f"the API cannot listen on {host}:{port} ({e.strerror}); "
            "change ENVBRANCH_API_HOST or ENVBRANCH_API_PORT (or envbranch up --api-port)"
        ) from None
    return sock


class _ServerInALoop(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, listening: asyncio.Event) -> None:
        super().__init__(config)
        self.listening = listening

    # The process's owner (asyncio.run or the Faust worker) handles the signals.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.listening.set()


async def serve_api(
    settings: Settings,
    bootstrap_servers: str,
    stop: asyncio.Event,
    materializer: VectorMaterializer | None = None,
    readiness: Readiness | None = None,
    api_socket: socket.socket | None = None,
) -> None:
    readiness = readiness or Readiness(["api"])
    api_socket = api_socket or bind_api_socket(settings)
    app = bootstrap.build_api(settings, bootstrap_servers, materializer, readiness)
    config = uvicorn.Config(
        app, host=settings.api_host, port=settings.api_port, log_level="warning", lifespan="on"
    )
    server = _ServerInALoop(config, readiness.event("api"))

    async def serve() -> None:
        try:
            await server.serve(sockets=[api_socket])
        except SystemExit:  # uvicorn's answer to a failed startup; it logged why
            raise RuntimeError("the API did not start") from None
        if not stop.is_set():
            raise RuntimeError("the API stopped")

    serving = asyncio.create_task(serve())
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([serving, stopping], return_when=asyncio.FIRST_COMPLETED)
        if serving.done():
            serving.result()
    finally:
        server.should_exit = True
        stopping.cancel()
        await asyncio.gather(serving, stopping, return_exceptions=True)
        api_socket.close()


async def run_components(
    settings: Settings,
    bootstrap_servers: str,
    components: Iterable[str],
    stop: asyncio.Event,
    ready: asyncio.Event | None = None,
    materializer: VectorMaterializer | None = None,
    *,
    readiness: Readiness | None = None,
    api_socket: socket.socket | None = None,
    on_ready: Callable[[], None] | None = None,
    ready_timeout: float = READY_TIMEOUT,
) -> None:
    """Run the named components (not the projector) until ``stop`` is set or one fails.

    ``ready`` is set once the topics exist, so nothing is published into a topic
    the broker would otherwise create with its own partition count. Each component sets
    its event in ``readiness`` once it does its job; ``on_ready`` is called once all have,
    and StartupFailed raised (and everything stopped) if they have not within
    ``ready_timeout`` seconds."""
    components = list(components)
    readiness = readiness or Readiness(components)
    plan = topic_plan(settings.topics, settings.command_partitions)
    security = kafka_options(settings.kafka_security)
    await ensure_topics(bootstrap_servers, plan, kafka_options=security)
    if ready is not None:
        ready.set()

    async def recreate_topics() -> None:  # after a broker came back empty
        await ensure_topics(bootstrap_servers, plan, kafka_options=security)

    runners: list[Any] = []
    for name in components:
        if name == "command-processor":
            processor = bootstrap.command_processor(
                settings, bootstrap_servers, readiness, recreate_topics
            )
            runners.append(processor.run(stop))
        elif name == "relay":
            relay = bootstrap.relay(settings, bootstrap_servers, readiness, recreate_topics)
            runners.append(relay.run(stop))
            runners.append(bootstrap.wake_relay_on_notify(settings, relay, stop))
        elif name == "api":
            runners.append(
                serve_api(settings, bootstrap_servers, stop, materializer, readiness, api_socket)
            )
        else:
            raise ValueError(f"unknown component {name!r}; known: {', '.join(COMPONENTS)}")
    if on_ready is not None:
        runners.append(announce_when_ready(readiness, on_ready, ready_timeout))
    tasks = [asyncio.create_task(runner) for runner in runners]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)


def run(
    settings: Settings,
    bootstrap_servers: str,
    components: Iterable[str],
    *,
    api_socket: socket.socket | None = None,
    on_ready: Callable[[], None] | None = None,
    ready_timeout: float = READY_TIMEOUT,
) -> None:
    """Run the components in this process until SIGINT or SIGTERM.

    ``on_ready`` is called once every component is ready; if they are not within
    ``ready_timeout`` seconds, everything stops and StartupFailed names the ones that
    were not. The API listens on ``api_socket`` (default: bound here, before the rest
    starts)."""
    components = list(components)
    unknown = [c for c in components if c not in COMPONENTS]
    if unknown:
        raise ValueError(f"unknown component {unknown[0]!r}; known: {', '.join(COMPONENTS)}")
    if "api" in components and api_socket is None:
        api_socket = bind_api_socket(settings)
    readiness = Readiness(components, bootstrap.event_store_position(settings))
    metrics.add_source("components", lambda: readiness.samples(settings.topics.events))
    if settings.metrics_port is not None and "api" not in components:
        # the API serves /metrics itself; the other components on a port of their own
        serve_metrics(settings)
    if FAUST & set(components):
        _run_in_faust_worker(
            settings, bootstrap_servers, components, readiness, api_socket, on_ready, ready_timeout
        )
        return

    async def main() -> None:
        stop = asyncio.Event()
        stop_on_signals(stop)
        await run_components(
            settings,
            bootstrap_servers,
            components,
            stop,
            readiness=readiness,
            api_socket=api_socket,
            on_ready=on_ready,
            ready_timeout=ready_timeout,
        )

    asyncio.run(main())


def serve_metrics(settings: Settings) -> None:
    """/metrics of a process without the API, on ENVBRANCH_METRICS_PORT (a thread)."""
    assert settings.metrics_port is not None
    try:
        prometheus_client.start_http_server(settings.metrics_port, settings.api_host)
    except OSError as e:
        raise StartupFailed(
            f"cannot serve /metrics on {settings.api_host}:{settings.metrics_port} "
            f"(ENVBRANCH_METRICS_PORT): {e.strerror or e}"
        ) from None


async def announce_when_ready(
    readiness: Readiness, on_ready: Callable[[], None], timeout: float
) -> None:
    await readiness.wait(timeout)
    on_ready()


def _run_in_faust_worker(
    settings: Settings,
    bootstrap_servers: str,
    components: list[str],
    readiness: Readiness,
    api_socket: socket.socket | None,
    on_ready: Callable[[], None] | None,
    ready_timeout: float,
) -> None:
    import faust  # slow to import: only where it runs

    # The events topic must exist before the agents subscribe to it.
    plan = topic_plan(settings.topics, settings.command_partitions)
    asyncio.run(
        ensure_topics(bootstrap_servers, plan, kafka_options=kafka_options(settings.kafka_security))
    )
    app, materializer = bootstrap.faust_app(settings, bootstrap_servers, components, readiness)
    agents = [c for c in components if c in FAUST]

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]  # mode's handler type
    async def agents_assigned(_: faust.App, assigned: set[Any], **__: Any) -> None:
        # The agents share the app's consumer, and the events topic has one partition.
        has_events = any(tp.topic == settings.topics.events for tp in assigned)
        for name in agents:
            if has_events:
                readiness.event(name).set()
            else:
                readiness.event(name).clear()

    level = "info" if log.isEnabledFor(logging.INFO) else "warning"
    worker = faust.Worker(app, loglevel=level, quiet=True, redirect_stdouts=False)
    worker.spinner = None  # it writes terminal escapes into stdout, even into a pipe
    failures: list[BaseException] = []

    def fail(error: BaseException) -> None:
        """Stop the worker as Ctrl-C does; ``error`` is raised once it has stopped."""
        failures.append(error)
        worker._schedule_shutdown(signal.SIGTERM)

    others = [c for c in components if c not in FAUST]
    if others:

        @app.task
        async def run_others() -> None:
            try:
                await run_components(
                    settings,
                    bootstrap_servers,
                    others,
                    asyncio.Event(),
                    materializer=materializer,
                    readiness=readiness,
                    api_socket=api_socket,
                )
            except Exception as e:  # noqa: BLE001 - raised again once the worker has stopped
                fail(e)

    if on_ready is not None:

        async def announce() -> None:
            try:
                await announce_when_ready(readiness, on_ready, ready_timeout)
            except Exception as e:  # noqa: BLE001 - StartupFailed, or the banner failed
                fail(e)

        # Not an app task: those start only once the agents have their partition, and the
        # deadline has to cover that too.
        worker.loop.create_task(announce())
    try:
        worker.execute_from_commandline()
    except SystemExit as e:
        if e.code and not failures:  # the worker crashed; it logged why
            raise
    finally:
        if api_socket is not None:
            api_socket.close()
    if failures:
        raise failures[0]


def stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
