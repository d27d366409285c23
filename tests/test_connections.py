"""Production connections: Kafka over SASL and TLS, PostgreSQL TLS, a Qdrant API key.

What this machine allows is tested for real. The embedded Tansu's ``--authentication``
refuses every SASL login (its storage keeps no SCRAM credentials, and it offers no PLAIN)
and has no TLS listener: against it the tests show that a wrong password, or none, stops
a component at once with the reason. A correct password is shown by the stack itself
running through ``tests.kafka_gate``, a listener that checks SCRAM passwords (and speaks
TLS, with client certificates) in front of a plain Tansu, as a Kafka cluster would.
PostgreSQL on 127.0.0.1 has no TLS: ``sslmode=disable`` connects, ``require`` is refused
with the server's reason.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import SecretStr

from contract.sender import CommandSender
from domain.envelopes import Topics
from envbranch.broker import answers_kafka, free_port, tansu_binary
from envbranch.connections import (
    ConnectionRefused,
    _servers,
    check_kafka,
    check_postgres,
    check_qdrant,
    describe_kafka,
    faust_credentials,
    kafka_options,
    librdkafka_config,
)
from envbranch.settings import KafkaSecurity, Settings
from envbranch.topics import ensure_topics, topic_plan
from tests.conftest import POSTGRES, postgres_schema
from tests.kafka_gate import KafkaGate
from tests.support import wait_until

PASSWORD = "s3cret-Pa55word"  # must never appear in any output
WRONG = "not-the-Pa55word"
USERS = {"envbranch": PASSWORD}


# --- certificates and brokers ----------------------------------------------------------


@dataclass
class Certs:
    ca: Path
    server: Path
    server_key: Path
    client: Path
    client_key: Path
    other_ca: Path  # a CA that signed nothing here

    def server_tls(self, client_certificates: bool = False) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.server, self.server_key)
        if client_certificates:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(self.ca)
        return context


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    d = tmp_path_factory.mktemp("certs")
    for ca in ("ca", "other-ca"):
        _openssl(
            *("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-keyout", str(d / f"{ca}.key"), "-out", str(d / f"{ca}.pem")),
            *("-subj", f"/CN=envbranch test {ca}"),
        )
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        _openssl(
            *("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / f"{name}.key")),
            *("-out", str(d / f"{name}.csr"), "-subj", f"/CN={name}"),
        )
        _openssl(
            *("x509", "-req", "-in", str(d / f"{name}.csr"), "-days", "2"),
            *("-CA", str(d / "ca.pem"), "-CAkey", str(d / "ca.key"), "-CAcreateserial"),
            *("-out", str(d / f"{name}.pem"), "-extfile", str(d / "san.ext")),
        )
    return Certs(
        d / "ca.pem",
        d / "server.pem",
        d / "server.key",
        d / "client.pem",
        d / "client.key",
        d / "other-ca.pem",
    )


@contextmanager
def tansu(*extra: str, advertised_port: int | None = None) -> Iterator[int]:
    """A Tansu broker of its own (``extra``: e.g. --authentication); yields its port."""
    port = free_port()
    listen = f"tcp://127.0.0.1:{port}"
    advertised = f"tcp://127.0.0.1:{advertised_port or port}"
    process = subprocess.Popen(
        [
            tansu_binary(),
            "broker",
            "--listener-url",
            listen,
            "--advertised-listener-url",
            advertised,
        ]
        + list(extra),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        env={**os.environ, "RUST_LOG": "warn"},
    )
    try:
        wait_until(lambda: answers_kafka("127.0.0.1", port), 30, "Tansu to answer")
        yield port
    finally:
        process.terminate()
        process.wait(10)


@contextmanager
def gated_kafka(
    users: dict[str, str] | None, tls: ssl.SSLContext | None = None
) -> Iterator[tuple[str, KafkaGate]]:
    """A plain Tansu behind a gate that wants SASL (``users``) and TLS (``tls``)."""
    gate_port = free_port()
    with tansu(advertised_port=gate_port) as port:
        gate = KafkaGate(("127.0.0.1", port), gate_port, users or {}, tls).start()
        try:
            yield f"127.0.0.1:{gate_port}", gate
        finally:
            gate.stop()


def sasl(password: str = PASSWORD, certs: Certs | None = None, **more: object) -> KafkaSecurity:
    return KafkaSecurity(
        protocol="SASL_SSL" if certs else "SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="envbranch",
        sasl_password=SecretStr(password),
        ssl_cafile=certs.ca if certs else None,
        **more,  # type: ignore[arg-type]
    )


def security_env(security: KafkaSecurity) -> dict[str, str]:
    """The environment variables that say ``security``."""
    env = {"KAFKA_SECURITY_PROTOCOL": security.protocol}
    if security.uses_sasl:
        assert security.sasl_password is not None
        env.update(
            KAFKA_SASL_MECHANISM=str(security.sasl_mechanism),
            KAFKA_SASL_USERNAME=str(security.sasl_username),
            KAFKA_SASL_PASSWORD=security.sasl_password.get_secret_value(),
        )
    for name, path in (
        ("KAFKA_SSL_CAFILE", security.ssl_cafile),
        ("KAFKA_SSL_CERTFILE", security.ssl_certfile),
        ("KAFKA_SSL_KEYFILE", security.ssl_keyfile),
    ):
        if path is not None:
            env[name] = str(path)
    return env


def stack_env(workdir: Path, bootstrap: str, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENVBRANCH_", "KAFKA_"))}
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        ENVBRANCH_DATA_DIR=str(workdir / "data"),
        ENVBRANCH_TOPIC_PREFIX=f"conn{uuid.uuid4().hex[:8]}",
        ENVBRANCH_API_PORT=str(free_port()),
        **more,
    )
    return env


def envbranch(env: dict[str, str], *args: str, deadline: float = 60) -> tuple[int, str, float]:
    """Run ``envbranch ARGS``; (exit code, stdout and stderr, seconds it took)."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "envbranch", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=deadline,
    )
    return done.returncode, done.stdout + done.stderr, time.monotonic() - started


# --- the stack through a cluster that wants SASL over TLS ---------------------------------


def test_the_whole_stack_runs_on_a_cluster_that_wants_scram_over_tls(
    certs: Certs, tmp_path: Path
) -> None:
    security = sasl(certs=certs)
    with gated_kafka(USERS, certs.server_tls()) as (bootstrap, gate):
        env = stack_env(tmp_path, bootstrap, **security_env(security))
        log = tmp_path / "up.log"
        with open(log, "wb") as out:
            up = subprocess.Popen(
                [sys.executable, "-m", "envbranch", "-v", "up"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            key = wait_until(lambda: _admin_key(log, up), 120, "envbranch up to be up")
            url = f"http://127.0.0.1:{env['ENVBRANCH_API_PORT']}"
            from envbranch import Client

            with Client(url, key) as client:
                client.namespaces.create({"namespace_name": "prod"})
                client.buckets.create(
                    {"bucket_name": "docs", "bucket_schema": {"properties": {}}}, namespace="prod"
                )
                client.collections.create(
                    {
                        "collection_name": "docs",
                        "source": {"type": "bucket", "bucket_ids": ["docs"]},
                        "feature_extractor": {"feature_extractor_name": "text_extractor"},
                    },
                    namespace="prod",
                )
                documents = [{"document_id": f"d{i}", "text": f"doc {i}"} for i in range(20)]
                client.collections.write_documents("docs", documents, namespace="prod")
                # The deep copy's progress comes back from the vector processor as commands.
                started = client.namespaces.clone("prod", {"namespace_name": "staging"})
                task = client.tasks.wait(started.task_id, timeout=120)
            assert task.status == "COMPLETED", task
            assert (task.progress or {}).get("points_copied") == 20
        finally:
            up.terminate()
            up.wait(60)
        output = log.read_text(errors="replace")
        assert gate.log.failed == []
        assert gate.log.unauthenticated_requests == []  # every client of the stack logged in
        assert len(gate.log.authenticated) >= 5
        assert {user for user, _ in gate.log.authenticated} == {"envbranch"}
        assert "SASL_SSL, SCRAM-SHA-512 as 'envbranch'" in output  # the startup log line
        assert PASSWORD not in output


def _admin_key(log: Path, process: subprocess.Popen[bytes]) -> str | None:
    text = log.read_text(errors="replace")
    if process.poll() is not None:
        raise AssertionError(f"envbranch up exited with {process.returncode}:\n{text[-3000:]}")
    if "envbranch is up" not in text:
        return None
    return next(
        (ln.rsplit(" ", 1)[-1] for ln in text.splitlines() if ln.startswith("admin API key")),
        None,
    )


# --- refused at start: at once, with the reason ------------------------------------------


@pytest.mark.parametrize("broker", ["tansu --authentication", "a cluster checking passwords"])
def test_a_wrong_password_stops_a_component_at_once_naming_the_refusal(
    broker: str, tmp_path: Path
) -> None:
    cluster = (
        _tansu_bootstrap("--authentication")
        if broker.startswith("tansu")
        else _gate_bootstrap(USERS)
    )
    command = tmp_path / "command.json"
    command.write_text('{"type": "namespaces.create", "body": {"namespace_name": "x"}}')
    with cluster as bootstrap:
        env = stack_env(tmp_path, bootstrap, **security_env(sasl(WRONG)))
        code, output, took = envbranch(env, "-v", "serve", "command-processor", "relay")
        published = envbranch(env, "publish", str(command))
    assert published[0] == 1 and "refused SASL authentication" in published[1]
    assert code == 1, output
    assert took < 30, f"took {took:.1f}s"
    assert "refused SASL authentication of user 'envbranch' with SCRAM-SHA-512" in output
    assert "check KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD" in output
    assert "Traceback" not in output
    assert WRONG not in output


def test_a_client_without_credentials_is_told_that_the_cluster_wants_them(
    tmp_path: Path,
) -> None:
    with _tansu_bootstrap("--authentication") as bootstrap:
        code, output, took = envbranch(stack_env(tmp_path, bootstrap), "serve", "relay")
    assert code == 1, output
    assert took < 30
    assert "closed the connection when asked for metadata" in output
    assert "set KAFKA_SECURITY_PROTOCOL (now PLAINTEXT)" in output


@contextmanager
def _tansu_bootstrap(*extra: str) -> Iterator[str]:
    with tansu(*extra) as port:
        yield f"127.0.0.1:{port}"


@contextmanager
def _gate_bootstrap(users: dict[str, str]) -> Iterator[str]:
    with gated_kafka(users) as (bootstrap, _):
        yield bootstrap


def test_tls_failures_name_the_variable_to_change(certs: Certs) -> None:
    with gated_kafka(USERS, certs.server_tls()) as (bootstrap, _):
        untrusted = sasl(certs=certs)
        untrusted = KafkaSecurity(**{**untrusted.__dict__, "ssl_cafile": certs.other_ca})
        with pytest.raises(ConnectionRefused, match="TLS certificate is not trusted") as e:
            asyncio.run(check_kafka(bootstrap, untrusted))
        assert "set KAFKA_SSL_CAFILE to the CA that signed it" in str(e.value)
    with _tansu_bootstrap() as plain:  # a listener without TLS
        started = time.monotonic()
        tls_only = KafkaSecurity(protocol="SSL", ssl_cafile=certs.ca)
        with pytest.raises(ConnectionRefused, match="no TLS handshake within 2"):
            asyncio.run(check_kafka(plain, tls_only, timeout=2))
        assert time.monotonic() - started < 10


def test_a_cluster_that_cannot_be_reached_is_named_with_each_server() -> None:
    port = free_port()
    with pytest.raises(ConnectionRefused, match="cannot reach Kafka") as e:
        asyncio.run(check_kafka(f"127.0.0.1:{port},nowhere.invalid:9092", KafkaSecurity()))
    assert f"127.0.0.1:{port}" in str(e.value)
    assert "nowhere.invalid:9092" in str(e.value)


# --- the clients, with the same settings: aiokafka, Faust, librdkafka ---------------------


def test_mutual_tls_with_scram_for_the_projects_clients_and_for_librdkafka(
    certs: Certs,
) -> None:
    security = sasl(certs=certs, ssl_certfile=certs.client, ssl_keyfile=certs.client_key)
    with gated_kafka(USERS, certs.server_tls(client_certificates=True)) as (bootstrap, gate):
        asyncio.run(check_kafka(bootstrap, security))
        topics = Topics(f"mtls{uuid.uuid4().hex[:6]}")
        values = asyncio.run(_send_and_read(bootstrap, topics, kafka_options(security)))
        assert values == [b'{"command_id": "c1", "type": "t", "body": {}, "actor": "a"}']
        # librdkafka (confluent-kafka) with the README's settings for the same cluster
        from confluent_kafka import Producer

        producer = Producer({"bootstrap.servers": bootstrap, **librdkafka_config(security)})
        delivered: list[object] = []
        producer.produce(topics.commands, b"from librdkafka", on_delivery=_collect(delivered))
        assert producer.flush(30) == 0
        assert delivered == [None]  # no delivery error
    assert gate.log.failed == [] and gate.log.unauthenticated_requests == []


def test_tls_without_sasl_for_the_projects_clients(certs: Certs) -> None:
    security = KafkaSecurity(protocol="SSL", ssl_cafile=certs.ca)
    with gated_kafka(None, certs.server_tls()) as (bootstrap, _):
        asyncio.run(check_kafka(bootstrap, security))
        values = asyncio.run(_send_and_read(bootstrap, Topics("tlsonly"), kafka_options(security)))
        assert len(values) == 1


async def _send_and_read(bootstrap: str, topics: Topics, options: dict[str, object]) -> list[bytes]:
    await ensure_topics(bootstrap, topic_plan(topics), kafka_options=options)
    sender = CommandSender(bootstrap, topics, kafka_options=options)
    await sender.start()
    try:
        await sender.send("t", {}, "a", command_id="c1", key=None)
    finally:
        await sender.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, **options)  # type: ignore[arg-type]
    await consumer.start()
    try:
        tp = TopicPartition(topics.commands, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        batch = await consumer.getmany(tp, timeout_ms=10_000)
        return [record.value for record in batch.get(tp, [])]
    finally:
        await consumer.stop()


def _collect(into: list[object]):  # type: ignore[no-untyped-def]
    return lambda error, _message: into.append(error)


def test_each_protocol_becomes_the_options_of_every_client(certs: Certs) -> None:
    assert kafka_options(KafkaSecurity()) == {}
    assert faust_credentials(KafkaSecurity()) is None
    assert librdkafka_config(KafkaSecurity()) == {"security.protocol": "plaintext"}

    plain = kafka_options(sasl())
    assert plain == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "envbranch",
        "sasl_plain_password": PASSWORD,
    }
    mutual = sasl(certs=certs, ssl_certfile=certs.client, ssl_keyfile=certs.client_key)
    options = kafka_options(mutual)
    assert options["security_protocol"] == "SASL_SSL"
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [
        ((("commonName", "envbranch test ca"),),)
    ]

    credentials = faust_credentials(mutual)
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    assert credentials_to_aiokafka_auth(credentials) == {
        **{k: v for k, v in options.items()},
        "ssl_context": options["ssl_context"],
    }
    assert PASSWORD not in repr(credentials)
    tls_only = faust_credentials(KafkaSecurity(protocol="SSL", ssl_cafile=certs.ca))
    assert credentials_to_aiokafka_auth(tls_only)["security_protocol"] == "SSL"

    assert librdkafka_config(mutual) == {
        "security.protocol": "sasl_ssl",
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": "envbranch",
        "sasl.password": PASSWORD,
        "ssl.ca.location": str(certs.ca),
        "ssl.certificate.location": str(certs.client),
        "ssl.key.location": str(certs.client_key),
    }


def test_a_file_that_is_no_certificate_is_named(tmp_path: Path, certs: Certs) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ValueError, match=f"KAFKA_SSL_CAFILE={junk}: not a PEM CA certificate"):
        kafka_options(KafkaSecurity(protocol="SSL", ssl_cafile=junk))
    bad_pair = KafkaSecurity(protocol="SSL", ssl_certfile=certs.client, ssl_keyfile=junk)
    with pytest.raises(ValueError, match="KAFKA_SSL_CERTFILE=.* with KAFKA_SSL_KEYFILE="):
        kafka_options(bad_pair)


# --- the variables -----------------------------------------------------------------------

CLUSTER = {"KAFKA_BOOTSTRAP_SERVERS": "kafka:9093"}


def test_the_security_variables_are_read(certs: Certs) -> None:
    env = {
        **CLUSTER,
        "KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
        "KAFKA_SASL_MECHANISM": "scram-sha-256",
        "KAFKA_SASL_USERNAME": "envbranch",
        "KAFKA_SASL_PASSWORD": PASSWORD,
        "KAFKA_SSL_CAFILE": str(certs.ca),
        "KAFKA_SSL_CERTFILE": str(certs.client),
        "KAFKA_SSL_KEYFILE": str(certs.client_key),
        "POSTGRES_SSLMODE": "Verify-Full",
        "POSTGRES_SSLROOTCERT": str(certs.ca),
        "POSTGRES_SSLCERT": str(certs.client),
        "POSTGRES_SSLKEY": str(certs.client_key),
        "QDRANT_URL": "https://qdrant.example:6333",
        "QDRANT_API_KEY": "qdrant-key",
    }
    settings = Settings.from_env(env)
    security = settings.kafka_security
    assert (security.protocol, security.sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-256")
    assert security.sasl_password is not None
    assert security.sasl_password.get_secret_value() == PASSWORD
    assert security.ssl_cafile == certs.ca and security.ssl_keyfile == certs.client_key
    assert settings.postgres["POSTGRES_SSLMODE"] == "verify-full"
    assert settings.qdrant_api_key is not None
    assert settings.qdrant_api_key.get_secret_value() == "qdrant-key"
    assert (
        Settings.from_env(
            {**CLUSTER, "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"}
            | {"KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"}
        ).kafka_security.sasl_mechanism
        == "PLAIN"
    )  # as aiokafka, Faust and Kafka's PLAIN users


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"KAFKA_SECURITY_PROTOCOL": "TLS"},
            "KAFKA_SECURITY_PROTOCOL must be one of PLAINTEXT, SSL",
        ),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "SASL_SSL needs KAFKA_SASL_USERNAME"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "u"},
            "SASL_SSL needs KAFKA_SASL_PASSWORD",
        ),
        (
            {
                "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "KAFKA_SASL_MECHANISM": "GSSAPI",
                "KAFKA_SASL_USERNAME": "u",
                "KAFKA_SASL_PASSWORD": "p",
            },
            "KAFKA_SASL_MECHANISM must be one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512",
        ),
        (
            {"KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"},
            "KAFKA_SASL_PASSWORD is set, but KAFKA_SECURITY_PROTOCOL is PLAINTEXT",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_USERNAME": "u"}
            | {"KAFKA_SASL_PASSWORD": "p", "KAFKA_SSL_CAFILE": "/etc/hostname"},
            "KAFKA_SSL_CAFILE is set, but KAFKA_SECURITY_PROTOCOL is SASL_PLAINTEXT",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": "/no/such/ca.pem"},
            "KAFKA_SSL_CAFILE=/no/such/ca.pem: there is no such file",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": "/tmp"},
            "KAFKA_SSL_CAFILE=/tmp: not a file",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_KEYFILE": "/etc/hostname"},
            "KAFKA_SSL_KEYFILE is set without KAFKA_SSL_CERTFILE",
        ),
        ({"POSTGRES_SSLMODE": "on"}, "POSTGRES_SSLMODE must be one of disable, allow, prefer"),
        (
            {"POSTGRES_SSLMODE": "require", "POSTGRES_SSLROOTCERT": "/no/ca.pem"},
            "POSTGRES_SSLROOTCERT=/no/ca.pem: there is no such file",
        ),
        (
            {"POSTGRES_SSLMODE": "disable", "POSTGRES_SSLROOTCERT": "/etc/hostname"},
            "POSTGRES_SSLROOTCERT is set, but POSTGRES_SSLMODE is disable",
        ),
        (
            {"POSTGRES_SSLCERT": "/etc/hostname"},
            "POSTGRES_SSLCERT and POSTGRES_SSLKEY go together",
        ),
        ({"QDRANT_URL": "qdrant:6333"}, "QDRANT_URL must start with http:// or https://"),
        ({"QDRANT_API_KEY": "k"}, "QDRANT_API_KEY is set, but QDRANT_URL is not"),
    ],
)
def test_a_bad_security_setting_is_refused_naming_the_variable(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        Settings.from_env({**CLUSTER, **env})


def test_the_embedded_broker_is_plaintext_only() -> None:
    with pytest.raises(ValueError, match="SSL needs KAFKA_BOOTSTRAP_SERVERS"):
        Settings.from_env({"KAFKA_SECURITY_PROTOCOL": "SSL"})


def test_a_bad_setting_stops_the_cli_with_the_variable_named(tmp_path: Path) -> None:
    env = stack_env(tmp_path, "127.0.0.1:9", KAFKA_SECURITY_PROTOCOL="SASL_SSL")
    code, output, _ = envbranch(env, "serve", "relay")
    assert code == 2
    assert "envbranch: KAFKA_SECURITY_PROTOCOL=SASL_SSL needs KAFKA_SASL_USERNAME" in output


def test_no_password_or_key_shows_in_the_settings_or_their_description(certs: Certs) -> None:
    settings = Settings.from_env(
        {
            **CLUSTER,
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_USERNAME": "envbranch",
            "KAFKA_SASL_PASSWORD": PASSWORD,
            "KAFKA_SSL_CAFILE": str(certs.ca),
            "KAFKA_SSL_CERTFILE": str(certs.client),
            "KAFKA_SSL_KEY_PASSWORD": "key-Pa55",
            "POSTGRES_PASSWORD": "pg-Pa55",
            "QDRANT_URL": "https://qdrant:6333",
            "QDRANT_API_KEY": "qdrant-Pa55",
        }
    )
    shown = repr(settings) + str(settings) + describe_kafka(settings.kafka_security)
    for secret in (PASSWORD, "key-Pa55", "pg-Pa55", "qdrant-Pa55"):
        assert secret not in shown
    assert "'POSTGRES_PASSWORD': '***'" in repr(settings)
    assert "qdrant_api_key='***'" in repr(settings)
    assert describe_kafka(settings.kafka_security) == (
        f"SASL_SSL, PLAIN as 'envbranch', CA {certs.ca}, client certificate {certs.client}"
    )


# --- PostgreSQL over TLS, or refused with the reason ------------------------------------


def test_postgres_sslmode_disable_connects_and_require_is_refused_with_the_reason(
    tmp_path: Path, bootstrap: str
) -> None:
    from envbranch.bootstrap import open_event_store, read_model_database

    for postgres in postgres_schema():
        plain = {**postgres, "POSTGRES_SSLMODE": "disable"}
        check_postgres(plain)
        settings = Settings(data_dir=tmp_path, event_store="postgres", postgres=plain)
        store = open_event_store(settings)  # eventsourcing's pool, with sslmode from us
        assert store.factory.datastore.pool.kwargs["sslmode"] == "disable"  # type: ignore[attr-defined]
        assert store.recorder.max_notification_id() in (None, 0)
        store.close()
        db = read_model_database(settings)
        assert db.query("SELECT 1 AS one") == [{"one": 1}]
        db.close()

        started = time.monotonic()
        tls = {**postgres, "POSTGRES_SSLMODE": "require"}
        with pytest.raises(ConnectionRefused) as e:
            check_postgres(tls)
        assert time.monotonic() - started < 10
        assert "POSTGRES_SSLMODE=require" in str(e.value)
        assert "server does not support SSL, but SSL was required" in str(e.value)

        env = stack_env(tmp_path, bootstrap, ENVBRANCH_EVENT_STORE="postgres", **tls)
        code, output, took = envbranch(env, "serve", "command-processor")
        assert code == 1, output
        assert "cannot connect to PostgreSQL at 127.0.0.1:5432" in output
        assert "server does not support SSL, but SSL was required" in output
        assert "Traceback" not in output


def test_postgres_variables_for_tls_reach_the_connections(certs: Certs) -> None:
    from projections.sql import libpq_tls

    settings = Settings.from_env(
        {
            "POSTGRES_SSLMODE": "verify-full",
            "POSTGRES_SSLROOTCERT": str(certs.ca),
            "POSTGRES_SSLCERT": str(certs.client),
            "POSTGRES_SSLKEY": str(certs.client_key),
            "POSTGRES_PASSWORD": "x",
        }
    )
    assert libpq_tls(settings.postgres) == {
        "sslmode": "verify-full",
        "sslrootcert": str(certs.ca),
        "sslcert": str(certs.client),
        "sslkey": str(certs.client_key),
    }
    assert POSTGRES  # the server of the other tests: no TLS, so verify-full is only built


# --- Qdrant's API key --------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")
@pytest.mark.filterwarnings("ignore:Failed to obtain server version")
def test_the_qdrant_api_key_goes_with_every_request() -> None:
    seen: list[str | None] = []

    class Qdrant(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            seen.append(self.headers.get("api-key"))
            body = json.dumps({"result": {"collections": []}, "status": "ok", "time": 0})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Qdrant)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        from envbranch.bootstrap import open_vectors

        url = f"http://127.0.0.1:{server.server_address[1]}"
        settings = Settings.from_env({"QDRANT_URL": url, "QDRANT_API_KEY": "qdrant-key"})
        store = open_vectors(settings)
        store._client.get_collections()  # type: ignore[attr-defined]
        assert seen and set(seen) == {"qdrant-key"}
        assert httpx.get(url + "/collections").status_code == 200  # the stub itself answers
    finally:
        server.shutdown()


@pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")
def test_a_refused_qdrant_key_stops_the_start_with_the_reason() -> None:
    class Refusing(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(401 if self.headers.get("api-key") != "right" else 200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"result": {"collections": []}, "status": "ok", "time": 0}')

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(ConnectionRefused, match=r"refused QDRANT_API_KEY \(401\)"):
            check_qdrant(url, "wrong")
        check_qdrant(url, "right")
    finally:
        server.shutdown()
    with pytest.raises(ConnectionRefused, match="cannot reach Qdrant"):
        check_qdrant(f"http://127.0.0.1:{free_port()}", "right")


def test_bootstrap_servers_are_read_as_kafkas_clients_read_them() -> None:
    assert _servers("a:1, b ,[::1]:3,") == [("a", 1), ("b", 9092), ("::1", 3)]
    with pytest.raises(ValueError, match="is not host:port"):
        _servers("a:port")
