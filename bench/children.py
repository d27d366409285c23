"""envbranch as child processes of a benchmark: their environment, starting and always
stopping them, checking they are still alive, and waiting for what they should do."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

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
