"""Settings come from environment variables; bad values are named in the error."""

from __future__ import annotations

from pathlib import Path

import pytest

from envbranch.settings import Settings


def test_defaults_are_the_embedded_stack() -> None:
    settings = Settings.from_env({})
    assert settings.kafka_bootstrap_servers is None
    assert settings.data_dir == Path(".envbranch")
    assert settings.event_store == "sqlite"
    assert settings.topics.commands == "envbranch.commands"
    assert settings.topics.events == "envbranch.events"
    assert settings.topics.dlq == "envbranch.commands.dlq"
    assert settings.processor_group == "envbranch-command-processor"


def test_every_variable_is_read() -> None:
    settings = Settings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "kafka:9092",
            "ENVBRANCH_DATA_DIR": "/data",
            "ENVBRANCH_EVENT_STORE": "PostgreS",
            "POSTGRES_HOST": "db",
            "ENVBRANCH_COMMAND_PARTITIONS": "6",
            "ENVBRANCH_MAX_COMMAND_BYTES": "2048",
            "ENVBRANCH_TOPIC_PREFIX": "staging",
            "ENVBRANCH_PROCESSOR_GROUP": "",
        }
    )
    assert settings.kafka_bootstrap_servers == "kafka:9092"
    assert settings.data_dir == Path("/data")
    assert settings.event_store == "postgres"
    assert settings.postgres == {"POSTGRES_HOST": "db"}
    assert settings.command_partitions == 6
    assert settings.max_command_bytes == 2048
    assert settings.topics.events == "staging.events"
    assert settings.processor_group is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ENVBRANCH_EVENT_STORE": "mongo"}, "ENVBRANCH_EVENT_STORE must be sqlite or postgres"),
        ({"ENVBRANCH_COMMAND_PARTITIONS": "three"}, "ENVBRANCH_COMMAND_PARTITIONS must be a whole"),
        ({"ENVBRANCH_COMMAND_PARTITIONS": "0"}, "ENVBRANCH_COMMAND_PARTITIONS must be at least 1"),
        ({"ENVBRANCH_MAX_COMMAND_BYTES": "-5"}, "ENVBRANCH_MAX_COMMAND_BYTES must be at least 1"),
        ({"ENVBRANCH_FETCH_MAX_WAIT_MS": "0"}, "ENVBRANCH_FETCH_MAX_WAIT_MS must be at least 1"),
        ({"ENVBRANCH_MAX_BATCH_COMMANDS": "x"}, "ENVBRANCH_MAX_BATCH_COMMANDS must be a whole"),
    ],
)
def test_a_bad_value_is_refused_with_the_variable_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings.from_env(env)


def test_fetches_wait_briefly_on_the_embedded_broker_longer_on_a_cluster_unless_set() -> None:
    assert Settings.from_env({}).fetch_wait_ms == 5  # it holds every fetch the whole wait
    cluster = {"KAFKA_BOOTSTRAP_SERVERS": "kafka:9092"}
    assert Settings.from_env(cluster).fetch_wait_ms == 100
    assert Settings.from_env({**cluster, "ENVBRANCH_FETCH_MAX_WAIT_MS": "500"}).fetch_wait_ms == 500
    assert Settings.from_env({"ENVBRANCH_MAX_BATCH_COMMANDS": "50"}).max_batch_commands == 50
