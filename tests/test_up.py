"""`envbranch up` says it is up only when it is: every component ready, the API answering."""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from envbranch.bootstrap import build_api
from envbranch.broker import EmbeddedBroker, free_port
from envbranch.readiness import Readiness
from envbranch.settings import Settings
from envbranch.stack import COMPONENTS
from tests.support import wait_until

BANNER = "envbranch is up."


def up_env(workdir: Path, bootstrap: str | None, api_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENVBRANCH_", "KAFKA_"))}
    env.update(
        ENVBRANCH_DATA_DIR=str(workdir / "data"),
        ENVBRANCH_TOPIC_PREFIX=f"up{uuid.uuid4().hex[:8]}",
        ENVBRANCH_API_PORT=str(api_port),
    )
    if bootstrap is not None:
        env["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
    return env


class Up:
    """`envbranch up` as a child process whose output is read line by line as it comes."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "envbranch", "up", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)  # the output ended

    def next_line(self, timeout: float) -> str | None:
        """The next line of output, or None if none came within ``timeout`` seconds."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            return None
        if line is None:
            raise AssertionError(f"envbranch up exited ({self.process.wait()}): {self.output}")
        self.output.append(line)
        return line

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(10)


def knock_until_banner(up: Up, url: str, timeout: float = 120) -> str:
    """Read the output as it comes and, between lines, knock on the API the way an
    impatient client would; return the banner line the moment it is printed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):  # before the banner anything goes
            httpx.get(f"{url}/v1/health/live", timeout=0.5)
        line = up.next_line(timeout=0.01)
        if line is not None and line.startswith(BANNER):
            return line
    raise AssertionError(f"no banner within {timeout}s: {up.output}")


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port that something else is listening on."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    try:
        yield holder.getsockname()[1]
    finally:
        holder.close()


def run_up(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "envbranch", "up", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def answers(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_a_client_that_connects_the_moment_up_says_it_is_up_gets_an_answer(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    up = Up(up_env(tmp_path, broker.bootstrap_servers, port))
    try:
        banner = knock_until_banner(up, url)
        # The first request after the banner, with no retry: everything is ready.
        ready = httpx.get(f"{url}/v1/health/ready", timeout=10)
        assert ready.status_code == 200, ready.text
        assert ready.json() == {"status": "ready"}
        health = httpx.get(f"{url}/v1/health", timeout=10).json()
        assert health["status"] == "ok"
        states = {c["name"]: c["state"] for c in health["components"]}
        assert states == {name: "ready" for name in COMPONENTS}
        assert health["read_model_position"] == health["event_store_position"] == 0
        assert health["read_model_lag"] == 0
        [processor] = [c for c in health["components"] if c["name"] == "command-processor"]
        assert [p["partition"] for p in processor["partitions"]] == [0]
        assert banner.endswith(broker.bootstrap_servers)
        assert any(line.startswith("admin API key") for line in up.output)
    finally:
        up.stop()


def test_up_with_the_api_port_taken_exits_non_zero_with_one_line_naming_the_setting(
    taken_port: int, tmp_path: Path
) -> None:
    broker_port = free_port()
    env = up_env(tmp_path, None, taken_port)  # the embedded broker too: nothing may outlive up
    result = run_up(env, "--port", str(broker_port))
    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert "ENVBRANCH_API_PORT" in line and "--api-port" in line and str(taken_port) in line
    assert BANNER not in result.stdout
    assert "admin API key" not in result.stdout
    assert not answers(broker_port), "the embedded broker outlived envbranch up"


def test_api_port_flag_overrides_envbranch_api_port(
    broker: EmbeddedBroker, taken_port: int, tmp_path: Path
) -> None:
    port = free_port()
    up = Up(up_env(tmp_path, broker.bootstrap_servers, taken_port), "--api-port", str(port))
    try:
        knock_until_banner(up, f"http://127.0.0.1:{port}")
        api = wait_until(lambda: (line := up.next_line(1)) and line.startswith("  API:") and line)
        assert api == f"  API: http://127.0.0.1:{port}/v1 (OpenAPI at http://127.0.0.1:{port}/docs)"
        live = httpx.get(f"http://127.0.0.1:{port}/v1/health/live", timeout=10)
        assert live.status_code == 200 and live.json() == {"status": "live"}
    finally:
        up.stop()


def test_up_not_ready_in_time_names_what_it_waits_for_and_exits_non_zero(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    env = up_env(tmp_path, broker.bootstrap_servers, free_port())
    result = run_up(env, "--ready-timeout", "0.01")
    assert result.returncode == 1
    # the last word is the reason (a client stopped mid-connect may log before it)
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("envbranch: not ready after 0.01s: "), result.stderr
    assert "projector (waiting for its partition of the events topic)" in line
    assert BANNER not in result.stdout and "admin API key" not in result.stdout


# --- the health endpoints, against the app itself --------------------------------------


def test_ready_answers_503_until_every_component_is_ready_while_live_answers_at_once(
    tmp_path: Path,
) -> None:
    readiness = Readiness(["command-processor", "relay", "api"], store_position=lambda: 7)
    readiness.follow("relay", position=lambda: 5)
    app = build_api(Settings(data_dir=tmp_path), "127.0.0.1:1", None, readiness)
    client = TestClient(app)  # no auth, no lifespan: no broker

    assert client.get("/v1/health/live").json() == {"status": "live"}
    not_ready = client.get("/v1/health/ready")
    assert not_ready.status_code == 503
    error = not_ready.json()["error"]
    assert error["type"] == "not_ready"
    assert error["details"] == {"components": ["command-processor", "relay", "api"]}
    report = client.get("/v1/health")
    assert report.status_code == 200
    assert report.json()["status"] == "starting"
    relay = next(c for c in report.json()["components"] if c["name"] == "relay")
    assert relay["state"] == "starting" and relay["waiting_for"]

    readiness.event("command-processor").set()
    readiness.event("relay").set()
    assert client.get("/v1/health/ready").json()["error"]["details"] == {"components": ["api"]}

    readiness.event("api").set()
    ready = client.get("/v1/health/ready")
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}
    health = client.get("/v1/health").json()
    assert health["status"] == "ok"
    assert health["read_model_position"] == 0
    assert health["event_store_position"] == 7 and health["read_model_lag"] == 7
    relay = next(c for c in health["components"] if c["name"] == "relay")
    assert relay == {
        "name": "relay",
        "state": "ready",
        "waiting_for": None,
        "position": 5,
        "lag": 2,
        "partitions": None,
    }
