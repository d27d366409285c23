"""The embedded broker: starts on a loopback port, answers Kafka, stops cleanly, fails clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from envbranch.broker import BrokerError, EmbeddedBroker, answers_kafka, free_port, tansu_binary


def test_the_embedded_broker_answers_kafka_requests_until_stopped(tmp_path: Path) -> None:
    broker = EmbeddedBroker(log_path=tmp_path / "broker.log")
    bootstrap = broker.start()
    assert bootstrap == f"127.0.0.1:{broker.port}"
    assert answers_kafka("127.0.0.1", broker.port)
    process = broker._process
    broker.stop()
    assert process is not None and process.poll() is not None
    assert not answers_kafka("127.0.0.1", broker.port)
    broker.stop()  # stopping twice is harmless


def test_each_start_serves_a_new_log_with_a_new_cluster_id() -> None:
    port = free_port()
    with EmbeddedBroker(port=port) as first:
        first_id = first.cluster_id
    with EmbeddedBroker(port=port) as second:
        assert second.cluster_id != first_id


def test_nothing_answers_kafka_on_a_closed_port() -> None:
    assert not answers_kafka("127.0.0.1", free_port(), timeout=0.5)


def test_a_missing_binary_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALF_TANSU_BIN", "/nonexistent/tansu")
    monkeypatch.setenv("PATH", "")
    with pytest.raises(BrokerError, match="no Tansu broker binary"):
        tansu_binary()


def test_a_broker_that_exits_at_once_is_reported_with_its_exit_code(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    failing = tmp_path / "tansu"
    failing.write_text("#!/bin/sh\necho 'cannot start' >&2\nexit 3\n")
    failing.chmod(0o755)
    monkeypatch.setenv("CALF_TANSU_BIN", str(failing))
    broker = EmbeddedBroker(log_path=tmp_path / "broker.log")
    with pytest.raises(BrokerError, match="exited with 3 before answering"):
        broker.start(timeout=10)
    assert "cannot start" in (tmp_path / "broker.log").read_text()
