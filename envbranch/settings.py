"""Settings, read from environment variables (the same names in docker-compose.yml)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from pydantic import SecretStr

from domain.envelopes import Topics

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
POSTGRES_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# Values shown as "***" wherever settings are printed or logged.
SECRET_VARIABLES = ("POSTGRES_PASSWORD", "KAFKA_SASL_PASSWORD", "KAFKA_SSL_KEY_PASSWORD")


@dataclass(frozen=True)
class KafkaSecurity:
    """How every Kafka client of envbranch connects to KAFKA_BOOTSTRAP_SERVERS
    (``envbranch.connections`` turns it into client options)."""

    protocol: str = "PLAINTEXT"  # KAFKA_SECURITY_PROTOCOL
    sasl_mechanism: str | None = None  # with SASL_*: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    # With SSL and SASL_SSL: the CA that signed the brokers' certificates (unset: the
    # system's), and a client certificate and key for brokers that ask for one.
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_key_password: SecretStr | None = None

    @property
    def uses_sasl(self) -> bool:
        return self.protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @classmethod
    def from_env(cls, env: Mapping[str, str], cluster: bool = True) -> KafkaSecurity:
        """The KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_* and KAFKA_SSL_* variables, checked
        together: a variable that the protocol would ignore is an error, not a surprise."""
        protocol = (env.get("KAFKA_SECURITY_PROTOCOL") or "PLAINTEXT").strip().upper()
        if protocol not in SECURITY_PROTOCOLS:
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL must be one of {', '.join(SECURITY_PROTOCOLS)}, "
                f"not {protocol!r}"
            )
        if protocol != "PLAINTEXT" and not cluster:
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_BOOTSTRAP_SERVERS: "
                "the embedded broker speaks PLAINTEXT only"
            )
        plain = cls(protocol=protocol)
        if plain.uses_sasl:
            sasl = _sasl(env, protocol)
        else:
            sasl = _refuse_unused(env, protocol, "KAFKA_SASL_", "SASL_SSL or SASL_PLAINTEXT")
        if plain.uses_tls:
            tls = _tls_files(env)
        else:
            tls = _refuse_unused(env, protocol, "KAFKA_SSL_", "SSL or SASL_SSL")
        return cls(protocol=protocol, **sasl, **tls)  # type: ignore[arg-type]


def _sasl(env: Mapping[str, str], protocol: str) -> dict[str, object]:
    mechanism = (env.get("KAFKA_SASL_MECHANISM") or "PLAIN").strip().upper()
    if mechanism not in SASL_MECHANISMS:
        raise ValueError(
            f"KAFKA_SASL_MECHANISM must be one of {', '.join(SASL_MECHANISMS)}, not {mechanism!r}"
        )
    for name in ("KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"):
        if not env.get(name):
            raise ValueError(f"KAFKA_SECURITY_PROTOCOL={protocol} needs {name}, which is not set")
    return {
        "sasl_mechanism": mechanism,
        "sasl_username": env["KAFKA_SASL_USERNAME"],
        "sasl_password": SecretStr(env["KAFKA_SASL_PASSWORD"]),
    }


def _tls_files(env: Mapping[str, str]) -> dict[str, object]:
    found: dict[str, object] = {}
    for name in ("KAFKA_SSL_CAFILE", "KAFKA_SSL_CERTFILE", "KAFKA_SSL_KEYFILE"):
        if env.get(name):
            found[name.removeprefix("KAFKA_").lower()] = readable_file(name, env[name])
    if "ssl_keyfile" in found and "ssl_certfile" not in found:
        raise ValueError("KAFKA_SSL_KEYFILE is set without KAFKA_SSL_CERTFILE, the certificate")
    if env.get("KAFKA_SSL_KEY_PASSWORD"):
        if "ssl_certfile" not in found:
            raise ValueError("KAFKA_SSL_KEY_PASSWORD is set without KAFKA_SSL_CERTFILE")
        found["ssl_key_password"] = SecretStr(env["KAFKA_SSL_KEY_PASSWORD"])
    return found


def _refuse_unused(
    env: Mapping[str, str], protocol: str, prefix: str, needs: str
) -> dict[str, object]:
    """Nothing, or ValueError for a variable the protocol would silently ignore."""
    for name in sorted(env):
        if name.startswith(prefix) and env[name]:
            raise ValueError(
                f"{name} is set, but KAFKA_SECURITY_PROTOCOL is {protocol}: "
                f"it takes effect only with {needs}"
            )
    return {}


def readable_file(variable: str, value: str) -> Path:
    """``value`` as a path to a file this process can read; ValueError naming ``variable``."""
    path = Path(value).expanduser()
    if not path.exists():
        raise ValueError(f"{variable}={value}: there is no such file")
    if not path.is_file():
        raise ValueError(f"{variable}={value}: not a file")
    if not os.access(path, os.R_OK):
        raise ValueError(f"{variable}={value}: this process may not read it")
    return path


def _postgres(env: Mapping[str, str]) -> dict[str, str]:
    """The POSTGRES_* variables, with the TLS ones checked (POSTGRES_SSLMODE and the
    certificate files, which libpq takes as sslmode, sslrootcert, sslcert, sslkey)."""
    postgres = {k: v for k, v in env.items() if k.startswith("POSTGRES_")}
    mode = postgres.get("POSTGRES_SSLMODE", "").strip().lower()
    if mode:
        if mode not in POSTGRES_SSLMODES:
            raise ValueError(
                f"POSTGRES_SSLMODE must be one of {', '.join(POSTGRES_SSLMODES)}, not {mode!r}"
            )
        postgres["POSTGRES_SSLMODE"] = mode
    for name in ("POSTGRES_SSLROOTCERT", "POSTGRES_SSLCERT", "POSTGRES_SSLKEY"):
        value = postgres.get(name)
        if value and not (name == "POSTGRES_SSLROOTCERT" and value == "system"):
            postgres[name] = str(readable_file(name, value))
        if value and mode == "disable":
            raise ValueError(f"{name} is set, but POSTGRES_SSLMODE is disable: TLS is off")
    if bool(postgres.get("POSTGRES_SSLCERT")) != bool(postgres.get("POSTGRES_SSLKEY")):
        raise ValueError("POSTGRES_SSLCERT and POSTGRES_SSLKEY go together: set both or neither")
    return postgres


def masked(name: str, value: object) -> object:
    """``value`` as it may be shown: a secret variable's value becomes "***"."""
    if isinstance(value, dict):
        return {k: masked(k, v) for k, v in value.items()}
    if value and (name.upper() in SECRET_VARIABLES or isinstance(value, SecretStr)):
        return "***"
    return value


@dataclass(frozen=True, repr=False)
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
    # /metrics of a process without the API (which serves it itself), on api_host
    metrics_port: int | None = None
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
    # How the Kafka clients authenticate and encrypt (KAFKA_SECURITY_PROTOCOL ...).
    kafka_security: KafkaSecurity = field(default_factory=KafkaSecurity)
    # The Qdrant server's API key (QDRANT_API_KEY), sent with every request to QDRANT_URL.
    qdrant_api_key: SecretStr | None = None

    def __repr__(self) -> str:
        # Passwords and keys never show, not even in a traceback or a debug log.
        shown = (f"{f.name}={masked(f.name, getattr(self, f.name))!r}" for f in fields(self))
        return f"Settings({', '.join(shown)})"

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
        bootstrap = env.get("KAFKA_BOOTSTRAP_SERVERS") or None
        qdrant_url, qdrant_api_key = _qdrant(env)
        return cls(
            kafka_bootstrap_servers=bootstrap,
            data_dir=Path(env.get("ENVBRANCH_DATA_DIR", ".envbranch")),
            event_store=store,
            postgres=_postgres(env),
            command_partitions=_positive_int(env, "ENVBRANCH_COMMAND_PARTITIONS", 1),
            max_command_bytes=_positive_int(env, "ENVBRANCH_MAX_COMMAND_BYTES", 1024 * 1024),
            topic_prefix=env.get("ENVBRANCH_TOPIC_PREFIX") or "envbranch",
            processor_group=env.get(
                "ENVBRANCH_PROCESSOR_GROUP", "envbranch-command-processor"
            ).strip()
            or None,
            api_host=env.get("ENVBRANCH_API_HOST") or "127.0.0.1",
            api_port=_positive_int(env, "ENVBRANCH_API_PORT", 8420),
            metrics_port=(
                _positive_int(env, "ENVBRANCH_METRICS_PORT", 9464)
                if env.get("ENVBRANCH_METRICS_PORT")
                else None
            ),
            command_timeout=float(_positive_int(env, "ENVBRANCH_COMMAND_TIMEOUT", 30)),
            read_model_schema=env.get("ENVBRANCH_READ_MODEL_SCHEMA") or "envbranch_read",
            qdrant_url=qdrant_url,
            qdrant_api_key=qdrant_api_key,
            relay_page_size=_positive_int(env, "ENVBRANCH_RELAY_PAGE_SIZE", 500),
            digest_interval=_positive_int(env, "ENVBRANCH_DIGEST_INTERVAL", 1000),
            fetch_max_wait_ms=(
                _positive_int(env, "ENVBRANCH_FETCH_MAX_WAIT_MS", 5)
                if env.get("ENVBRANCH_FETCH_MAX_WAIT_MS")
                else None
            ),
            max_batch_commands=_positive_int(env, "ENVBRANCH_MAX_BATCH_COMMANDS", 500),
            kafka_security=KafkaSecurity.from_env(env, cluster=bootstrap is not None),
        )

    @property
    def api_url(self) -> str:
        return f"http://{self.api_host}:{self.api_port}"


def _qdrant(env: Mapping[str, str]) -> tuple[str | None, SecretStr | None]:
    url = (env.get("QDRANT_URL") or "").strip() or None
    if url is not None and not url.startswith(("http://", "https://")):
        raise ValueError(f"QDRANT_URL must start with http:// or https://, not {url!r}")
    key = env.get("QDRANT_API_KEY") or None
    if key is not None and url is None:
        raise ValueError(
            "QDRANT_API_KEY is set, but QDRANT_URL is not: the key is for a Qdrant server "
            "(without QDRANT_URL the vectors stay in Qdrant Edge, under the data directory)"
        )
    return url, None if key is None else SecretStr(key)


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
