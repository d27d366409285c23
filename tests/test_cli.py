"""The command line, as a user runs it: `envbranch up`, `publish`, `events`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from envbranch.broker import answers_kafka
from tests.support import wait_until


def envbranch(*args: str, env: dict[str, str], stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "envbranch", *args],
        input=stdin,
        env=env,
        capture_output=True,
        timeout=120,
    )


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[tuple[dict[str, str], subprocess.Popen]]:
    """`envbranch up` in the background; yields the environment that points at it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENVBRANCH_", "KAFKA_"))}
    env["ENVBRANCH_DATA_DIR"] = str(tmp_path / "data")
    output = tmp_path / "up.log"
    with open(output, "wb") as log:
        up = subprocess.Popen(
            [sys.executable, "-m", "envbranch", "up"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        line = wait_until(
            lambda: next(
                (x for x in output.read_text().splitlines() if "bootstrap servers:" in x), None
            ),
            120,
            "envbranch up to print the bootstrap address",
        )
        bootstrap = line.rsplit(" ", 1)[-1]
        yield {**env, "KAFKA_BOOTSTRAP_SERVERS": bootstrap}, up
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()


def test_up_publish_and_events_work_together_and_up_stops_on_ctrl_c(
    embedded: tuple[dict[str, str], subprocess.Popen], tmp_path: Path
) -> None:
    env, up = embedded
    create = {"type": "namespaces.create", "body": {"namespace_name": "prod"}}
    accepted = envbranch("publish", env=env, stdin=json.dumps(create).encode())
    assert accepted.returncode == 0, accepted.stderr.decode()
    lines = accepted.stdout.decode().splitlines()
    assert lines[0].startswith("accepted ")
    events = [json.loads(line) for line in lines[1:]]
    assert [e["type"] for e in events] == [
        "Namespace.Created",
        "NamespaceName.Created",
        "CommandReceipt.Accepted",
    ]

    command_file = tmp_path / "again.json"
    command_file.write_text(json.dumps(create))
    rejected = envbranch("publish", str(command_file), env=env)
    assert rejected.returncode == 1
    assert rejected.stdout.decode().startswith("rejected ")
    assert '"code": "duplicate_name"' in rejected.stdout.decode()

    garbage = envbranch("publish", env=env, stdin=b"not json at all")
    assert garbage.returncode == 1
    assert '"code": "invalid_json"' in garbage.stdout.decode()

    table = envbranch("events", env=env)
    assert table.returncode == 0
    rows = table.stdout.decode().splitlines()
    assert rows[0].split()[:3] == ["POSITION", "OCCURRED_AT", "TYPE"]
    assert [row.split()[0] for row in rows[1:]] == ["1", "2", "3"]
    as_json = envbranch("events", "--json", env=env)
    assert [json.loads(x)["position"] for x in as_json.stdout.decode().splitlines()] == [1, 2, 3]

    host, port = env["KAFKA_BOOTSTRAP_SERVERS"].split(":")
    up.send_signal(signal.SIGINT)
    assert up.wait(60) == 0
    assert not answers_kafka(host, int(port)), "the embedded broker outlived envbranch up"


def test_commands_that_need_a_broker_say_how_to_find_one(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENVBRANCH_", "KAFKA_"))}
    result = envbranch("events", env=env)
    assert result.returncode != 0
    assert "KAFKA_BOOTSTRAP_SERVERS is not set" in result.stderr.decode()


def test_bad_settings_end_with_a_message_not_a_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "ENVBRANCH_EVENT_STORE": "mongo", "KAFKA_BOOTSTRAP_SERVERS": "x:1"}
    result = envbranch("serve", "relay", env=env)
    assert result.returncode == 2
    assert result.stderr.decode().strip() == (
        "envbranch: ENVBRANCH_EVENT_STORE must be sqlite or postgres, not 'mongo'"
    )


def test_keys_create_prints_a_key_that_the_read_model_accepts(tmp_path: Path) -> None:
    from envbranch.bootstrap import prepare_read_side
    from envbranch.settings import Settings

    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENVBRANCH_", "KAFKA_"))}
    env["ENVBRANCH_DATA_DIR"] = str(tmp_path)
    result = envbranch("keys", "create", "ci-bot", env=env)
    assert result.returncode == 0, result.stderr.decode()
    key = result.stdout.decode().strip()
    _, _, keys = prepare_read_side(Settings(data_dir=tmp_path))
    principal = keys.authenticate(key)
    assert principal is not None and principal.name == "ci-bot" and principal.is_admin
    missing = envbranch("keys", "create", "x", "--namespace", "nowhere", env=env)
    assert missing.returncode == 2
    assert "namespace 'nowhere' not found" in missing.stderr.decode()
