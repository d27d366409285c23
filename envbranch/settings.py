"""Settings, read from environment variables (the same names in docker-compose.yml)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from domain.envelopes import Topics


@dataclass(frozen=True)
class Settings:
    # Kafka: a cluster's bootstrap servers, or None for the embedded broker.
    kafka_bootstrap_servers: str | None = None
    data_dir: Path = Path(".envbranch")
    # "sqlite" (under data_dir) or "postgres" (configured by the POSTGRES_* variables).
    event_store: str = "sqlite"
    postgres: dict[str, str] = field(default_factory=dict)
    command_partitions: int = 1
    max_command_bytes: int = 1024 * 1024
    topic_prefix: str = "envbranch"
    # Join a consumer group (several processors share the partitions) or, when
    # empty, read every partition alone and start without a group join.
    processor_group: str | None = "envbranch-command-processor"
    api_host: str = "127.0.0.1"
    api_port: int = 8420
    # How long a write through the API waits for the read model before answering 504.
    command_timeout: float = 30.0
    read_model_schema: str = "envbranch_read"
    # Events the relay reads from the store and publishes per Kafka request.
    relay_page_size: int = 500
    # The read model records a digest of its tables every this many positions.
    digest_interval: int = 1000
    # A Qdrant server; unset: Qdrant Edge in-process under data_dir (one process only).
    qdrant_url: str | None = None
    # How long a consumer's fetch waits for data, in ms. Kafka answers as soon as data
    # arrives, so a long wait costs nothing there but fewer idle fetches; the embedded
    # broker (Tansu) holds every fetch for the whole wait, so there each hop costs up to
    # this much latency. Unset: 5 with the embedded broker, 100 with KAFKA_BOOTSTRAP_SERVERS.
    fetch_max_wait_ms: int | None = None
    # At most this many commands are stored in one transaction (group commit).
    max_batch_commands: int = 500

    @property
    def fetch_wait_ms(self) -> int:
        if self.fetch_max_wait_ms is not None:
            return self.fetch_max_wait_ms
        return 5 if self.kafka_bootstrap_servers is None else 100

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        store = env.get("ENVBRANCH_EVENT_STORE", "sqlite").strip().lower()
        if store not in ("sqlite", "postgres"):
            raise ValueError(f"ENVBRANCH_EVENT_STORE must be sqlite or postgres, not {store!r}")
        return cls(
            kafka_bootstrap_servers=env.get("KAFKA_BOOTSTRAP_SERVERS") or None,
            data_dir=Path(env.get("ENVBRANCH_DATA_DIR", ".envbranch")),
            event_store=store,
            postgres={k: v for k, v in env.items() if k.startswith("POSTGRES_")},
            command_partitions=_positive_int(env, "ENVBRANCH_COMMAND_PARTITIONS", 1),
            max_command_bytes=_positive_int(env, "ENVBRANCH_MAX_COMMAND_BYTES", 1024 * 1024),
            topic_prefix=env.get("ENVBRANCH_TOPIC_PREFIX") or "envbranch",
            processor_group=env.get(
                "ENVBRANCH_PROCESSOR_GROUP", "envbranch-command-processor"
            ).strip()
            or None,
            api_host=env.get("ENVBRANCH_API_HOST") or "127.0.0.1",
            api_port=_positive_int(env, "ENVBRANCH_API_PORT", 8420),
            command_timeout=float(_positive_int(env, "ENVBRANCH_COMMAND_TIMEOUT", 30)),
            read_model_schema=env.get("ENVBRANCH_READ_MODEL_SCHEMA") or "envbranch_read",
            qdrant_url=env.get("QDRANT_URL") or None,
            relay_page_size=_positive_int(env, "ENVBRANCH_RELAY_PAGE_SIZE", 500),
            digest_interval=_positive_int(env, "ENVBRANCH_DIGEST_INTERVAL", 1000),
            fetch_max_wait_ms=(
                _positive_int(env, "ENVBRANCH_FETCH_MAX_WAIT_MS", 5)
                if env.get("ENVBRANCH_FETCH_MAX_WAIT_MS")
                else None
            ),
            max_batch_commands=_positive_int(env, "ENVBRANCH_MAX_BATCH_COMMANDS", 500),
        )

    @property
    def api_url(self) -> str:
        return f"http://{self.api_host}:{self.api_port}"


def _positive_int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, not {raw!r}") from None
    if value < 1:
        raise ValueError(f"{name} must be at least 1, not {value}")
    return value
