"""envbranch as child processes of a benchmark: their environment, starting and always
stopping them, checking they are still alive, waiting for what they should do, and what
they cost (CPU seconds, their PostgreSQL backends)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from consumers.command_processor import tracking_name
from envbranch.settings import Settings

T = TypeVar("T")


def wait_until(condition: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll ``condition`` every 50 ms until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


def child_env(bootstrap: str, data_dir: Path, prefix: str, **more: str) -> dict[str, str]:
    """This process's environment minus its envbranch and Kafka settings, pointed at
    ``bootstrap`` with a data directory and topic prefix of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENVBRANCH_", "KAFKA_"))}
    env.update(
        {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "ENVBRANCH_DATA_DIR": str(data_dir),
            "ENVBRANCH_TOPIC_PREFIX": prefix,
            "ENVBRANCH_EVENT_STORE": "sqlite",
            **more,
        }
    )
    return env


@contextmanager
def child(args: list[str], env: dict[str, str], workdir: Path, log: Path) -> Iterator[Any]:
    """A `python -m envbranch ...` child, run in ``workdir`` (Faust writes its
    <app-id>-data directory into the working directory); always stopped."""
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "envbranch", *args],
            env=env,
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def check_alive(process: Any, log: Path) -> None:
    """Raise, with the tail of its log, if the child has exited."""
    if process.poll() is not None:
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"child exited with {process.returncode}; log tail:\n{tail}")


def up_and_serving(process: Any, log: Path, url: str) -> str:
    """Once an `envbranch up` child has printed its admin API key and its API answers
    /v1/health: the key."""

    def admin_key() -> str | None:
        check_alive(process, log)
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("admin API key"):
                return line.rsplit(" ", 1)[-1]
        return None

    key = wait_until(admin_key, 60, "`envbranch up` to print the admin key")

    def healthy() -> bool:
        check_alive(process, log)
        try:
            return httpx.get(f"{url}/v1/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(healthy, 60, "the API to answer /v1/health")
    return key


def assigned_partitions(log: Path) -> set[int] | None:
    """The partitions a `envbranch -v serve command-processor` child was last given by its
    consumer group, read from its log (aiokafka logs every assignment at INFO); None
    before the first."""
    import re

    lines = [
        line
        for line in log.read_text(errors="replace").splitlines()
        if "Setting newly assigned partitions" in line
    ]
    if not lines:
        return None
    return {int(p) for p in re.findall(r"partition=(\d+)", lines[-1])}


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (from /proc/<pid>/stat; 0 for
    one that has gone). Threads are included; children are not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # The command name (field 2) may hold spaces: count fields after its closing ")".
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def tcp_ports_of(pid: int, remote_port: int) -> set[int]:
    """The local ports of a process's TCP connections to ``remote_port`` (from its socket
    file descriptors and /proc/net/tcp{,6})."""
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return set()
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            local, remote, inode = cols[1], cols[2], cols[9]
            if inode in inodes and int(remote.rsplit(":", 1)[1], 16) == remote_port:
                ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


def machine_cpu_seconds() -> float:
    """CPU seconds every process on the machine has used (busy time from /proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


def postgres_backends(conn: Any, pids: list[int], port: int = 5432) -> list[int]:
    """The PostgreSQL backends serving these processes' TCP connections to ``port``."""
    ports = sorted(set().union(*(tcp_ports_of(pid, port) for pid in pids)))
    rows = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE client_port = ANY(%s)", [ports]
    ).fetchall()
    return [int(row[0]) for row in rows]


# Per backend: in a transaction holding an EXCLUSIVE table lock in the schema (the
# eventsourcing recorder takes one on the events table for every insert transaction),
# or waiting for a lock.
LOCK_SAMPLE = """
SELECT a.pid, a.wait_event_type = 'Lock' AS waiting, EXISTS (
    SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE l.pid = a.pid AND l.granted AND l.mode = 'ExclusiveLock' AND n.nspname = %s
) AS holding
FROM pg_stat_activity a WHERE a.pid = ANY(%s)
"""


class LockSampler:
    """Samples, for some backends, whether the schema's exclusive insert lock is held and
    how many of them wait for a lock: how busy the store's one serial section is."""

    def __init__(self, conn: Any, schema: str, backends: list[int]) -> None:
        self.conn, self.schema, self.backends = conn, schema, backends
        self.samples = self.held = self.waiting = 0

    def sample(self) -> None:
        rows = self.conn.execute(LOCK_SAMPLE, [self.schema, self.backends]).fetchall()
        self.samples += 1
        self.held += any(holding for _, _, holding in rows)
        self.waiting += sum(bool(waiting) for _, waiting, _ in rows)

    def summary(self) -> dict[str, float]:
        n = max(self.samples, 1)
        return {"samples": self.samples, "held": self.held / n, "waiting": self.waiting / n}


@dataclass
class Stack:
    """docker-compose.yml's topology as children (processors named processor-<n>, started
    with -v so their logs say which partitions they hold), with the bench's own look at
    their event store, PostgreSQL and API."""

    processes: dict[str, Any]
    logs: dict[str, Path]
    settings: Settings
    cluster_id: str
    url: str
    partitions: int
    schema: str
    pg: Any = None  # the bench's own connection, for pg_stat_activity and pg_locks
    store: Any = None
    assignment: dict[str, set[int]] = field(default_factory=dict)

    @property
    def processors(self) -> list[str]:
        return [name for name in self.processes if name.startswith("processor")]

    def check(self) -> None:
        for name, process in self.processes.items():
            check_alive(process, self.logs[name])

    def positions(self) -> dict[int, int]:
        """The next offset to apply per partition, as stored by the processors."""
        topic = self.settings.topics.commands
        return {
            p: self.store.last_position(tracking_name(self.cluster_id, topic, p)) or 0
            for p in range(self.partitions)
        }

    def health(self) -> dict[str, Any]:
        self.check()
        try:
            answer = httpx.get(f"{self.url}/v1/health", timeout=5)
        except httpx.HTTPError:
            return {}
        return dict(answer.json()) if answer.status_code == 200 else {}

    def read_model_position(self) -> int:
        return int(self.health().get("read_model_position", 0))

    def read_model_caught_up(self) -> bool:
        health = self.health()
        last = self.store.recorder.max_notification_id() or 0
        return bool(health) and health["read_model_position"] == last

    def group_formed(self) -> dict[str, set[int]] | None:
        self.check()
        found = {name: assigned_partitions(self.logs[name]) for name in self.processors}
        held = [p for p in found.values() if p]
        if len(held) != len(found) or sum(map(len, held)) != self.partitions:
            return None
        if set().union(*held) != set(range(self.partitions)):
            return None
        return {name: set(p or ()) for name, p in found.items()}
