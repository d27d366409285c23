"""Production connections: the security settings turned into each client's options, and a
check at start that says plainly what a cluster refused.

One set of variables (``Settings.kafka_security``, the POSTGRES_SSL* variables,
QDRANT_API_KEY) reaches every client: aiokafka's producers, consumers and admin clients
take ``kafka_options``, the Faust app ``faust_credentials``, a librdkafka client the same
settings as ``librdkafka_config``. The packages below ``envbranch`` get the options as
data (they may not import this module).

``preflight`` connects once, as the components will, before any of them starts: a wrong
password, an untrusted certificate or a listener that speaks another protocol is then one
sentence naming the variable to change, within seconds, instead of a client retrying
behind a generic "unable to bootstrap".
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
from typing import TYPE_CHECKING, Any

from aiokafka.conn import create_conn
from aiokafka.errors import KafkaError, UnsupportedSaslMechanismError
from aiokafka.helpers import create_ssl_context
from aiokafka.protocol.metadata import MetadataRequest

from envbranch.readiness import StartupFailed
from envbranch.settings import KafkaSecurity, Settings
from projections.sql import libpq_tls

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT

log = logging.getLogger(__name__)

CHECK_TIMEOUT = 15.0  # seconds the check at start may take per server


class ConnectionRefused(StartupFailed):
    """A Kafka cluster, PostgreSQL or Qdrant refused to let envbranch in; says why."""


# --- the options each client takes -------------------------------------------------------


def kafka_options(security: KafkaSecurity) -> dict[str, Any]:
    """Keyword arguments for every AIOKafkaProducer, AIOKafkaConsumer and
    AIOKafkaAdminClient (none with PLAINTEXT, so the clients' defaults hold)."""
    return dict(_kafka_options(security))


@functools.lru_cache(maxsize=8)
def _kafka_options(security: KafkaSecurity) -> tuple[tuple[str, Any], ...]:
    options: dict[str, Any] = {}
    if security.protocol != "PLAINTEXT":
        options["security_protocol"] = security.protocol
    if security.uses_tls:
        options["ssl_context"] = ssl_context(security)
    if security.uses_sasl:
        assert security.sasl_password is not None  # Settings.from_env requires one
        options["sasl_mechanism"] = security.sasl_mechanism
        options["sasl_plain_username"] = security.sasl_username
        options["sasl_plain_password"] = security.sasl_password.get_secret_value()
    return tuple(options.items())


def ssl_context(security: KafkaSecurity) -> ssl.SSLContext:
    """The TLS context of KAFKA_SSL_CAFILE (else the system's CAs) and, when given, the
    client certificate; a file that is no certificate or key is a ValueError naming it."""
    cafile = security.ssl_cafile
    try:
        context = create_ssl_context(cafile=str(cafile) if cafile else None)
    except (ssl.SSLError, OSError) as e:
        raise ValueError(f"KAFKA_SSL_CAFILE={cafile}: not a PEM CA certificate ({e})") from None
    if security.ssl_certfile is not None:
        password = security.ssl_key_password
        try:
            context.load_cert_chain(
                str(security.ssl_certfile),
                str(security.ssl_keyfile) if security.ssl_keyfile else None,
                password.get_secret_value() if password else None,
            )
        except (ssl.SSLError, OSError) as e:
            keyfile = security.ssl_keyfile
            raise ValueError(
                f"KAFKA_SSL_CERTFILE={security.ssl_certfile}"
                + (f" with KAFKA_SSL_KEYFILE={keyfile}" if keyfile else "")
                + f": not a PEM certificate and its key, or KAFKA_SSL_KEY_PASSWORD is wrong ({e})"
            ) from None
    return context


def faust_credentials(security: KafkaSecurity) -> CredentialsT | None:
    """The same settings as Faust's ``broker_credentials``."""
    import faust  # slow to import: only where a Faust app is made

    options = kafka_options(security)
    if security.uses_sasl:
        return faust.SASLCredentials(
            username=options["sasl_plain_username"],
            password=options["sasl_plain_password"],
            mechanism=options["sasl_mechanism"],
            ssl_context=options.get("ssl_context"),  # SASL_SSL with one, else SASL_PLAINTEXT
        )
    if security.uses_tls:
        return faust.SSLCredentials(options["ssl_context"])
    return None


def librdkafka_config(security: KafkaSecurity) -> dict[str, str]:
    """The same settings for a librdkafka client (confluent-kafka, kcat, Go, .NET ...)."""
    config = {"security.protocol": security.protocol.lower()}
    if security.uses_sasl:
        assert security.sasl_password is not None
        config["sasl.mechanisms"] = str(security.sasl_mechanism)
        config["sasl.username"] = str(security.sasl_username)
        config["sasl.password"] = security.sasl_password.get_secret_value()
    for name, path in (
        ("ssl.ca.location", security.ssl_cafile),
        ("ssl.certificate.location", security.ssl_certfile),
        ("ssl.key.location", security.ssl_keyfile),
    ):
        if path is not None:
            config[name] = str(path)
    if security.ssl_key_password is not None:
        config["ssl.key.password"] = security.ssl_key_password.get_secret_value()
    return config


def describe_kafka(security: KafkaSecurity) -> str:
    """How the clients connect, for a log line: never the password."""
    parts = [security.protocol]
    if security.uses_sasl:
        parts.append(f"{security.sasl_mechanism} as {security.sasl_username!r}")
    if security.uses_tls:
        parts.append(f"CA {security.ssl_cafile or 'of the system'}")
        if security.ssl_certfile is not None:
            parts.append(f"client certificate {security.ssl_certfile}")
    return ", ".join(parts)


# --- the check at start ------------------------------------------------------------------


def preflight(settings: Settings, bootstrap_servers: str, *, postgres: bool = True) -> None:
    """Reach Kafka (and PostgreSQL, when it is the store and ``postgres``) as the components
    will; raise ConnectionRefused with what to change if one of them refuses."""
    log.info("Kafka at %s: %s", bootstrap_servers, describe_kafka(settings.kafka_security))
    asyncio.run(check_kafka(bootstrap_servers, settings.kafka_security))
    if postgres and settings.event_store == "postgres":
        check_postgres(settings.postgres)
    if settings.qdrant_url and settings.qdrant_api_key is not None:
        if settings.qdrant_url.startswith("http://"):
            log.warning("QDRANT_API_KEY goes to %s unencrypted: use https://", settings.qdrant_url)
        check_qdrant(settings.qdrant_url, settings.qdrant_api_key.get_secret_value())


async def check_kafka(
    bootstrap_servers: str, security: KafkaSecurity, timeout: float = CHECK_TIMEOUT
) -> None:
    """Connect to the first bootstrap server that answers: the transport (TCP, TLS),
    then SASL, then one metadata request; ConnectionRefused says which step failed."""
    options = kafka_options(security)
    transport = {k: v for k, v in options.items() if not k.startswith("sasl_")}
    if security.uses_sasl:
        transport["security_protocol"] = "SSL" if security.uses_tls else "PLAINTEXT"
    unreachable = []
    for host, port in _servers(bootstrap_servers):
        where = f"{host}:{port}"
        try:
            conn = await _connect(host, port, transport, timeout)
        except (ssl.SSLError, ssl.CertificateError) as e:
            raise ConnectionRefused(_tls_failure(where, security, e)) from None
        except TimeoutError:
            # A listener without TLS waits for the rest of a "frame"; a server that does
            # not answer at all is just unreachable (the next one may answer).
            if security.uses_tls and await _tcp_answers(host, port, timeout):
                raise ConnectionRefused(
                    f"Kafka at {where}: no TLS handshake within {timeout}s; does that "
                    f"listener speak TLS? (KAFKA_SECURITY_PROTOCOL is {security.protocol})"
                ) from None
            unreachable.append(f"{where} (no answer within {timeout}s)")
            continue
        except OSError as e:
            unreachable.append(f"{where} ({_reason(e) or type(e).__name__})")
            continue
        except KafkaError as e:
            raise ConnectionRefused(_closed(where, security, "on connecting", e)) from None
        conn.close()
        if security.uses_sasl:
            await _authenticate(host, port, options, security, timeout)
        await _ask_for_metadata(host, port, options, security, timeout)
        return
    raise ConnectionRefused(
        "cannot reach Kafka at KAFKA_BOOTSTRAP_SERVERS: " + "; ".join(unreachable)
    )


async def _tcp_answers(host: str, port: int, timeout: float) -> bool:
    """Whether a plain TCP connection to the server opens within ``timeout``."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


async def _connect(host: str, port: int, options: dict[str, Any], timeout: float) -> Any:
    return await asyncio.wait_for(
        create_conn(host, port, request_timeout_ms=int(timeout * 1000), **options), timeout
    )


async def _authenticate(
    host: str, port: int, options: dict[str, Any], security: KafkaSecurity, timeout: float
) -> None:
    where = f"{host}:{port}"
    try:
        conn = await _connect(host, port, options, timeout)
    except UnsupportedSaslMechanismError as e:
        raise ConnectionRefused(
            f"Kafka at {where} does not offer SASL mechanism {security.sasl_mechanism}: "
            f"{_reason(e)}; set KAFKA_SASL_MECHANISM to one it offers"
        ) from None
    except TimeoutError:
        raise ConnectionRefused(
            f"Kafka at {where} did not finish SASL authentication within {timeout}s"
        ) from None
    except Exception as e:  # noqa: BLE001 - any failure of the SASL exchange is a refusal
        raise ConnectionRefused(
            f"Kafka at {where} refused SASL authentication of user "
            f"{security.sasl_username!r} with {security.sasl_mechanism} "
            f"({_reason(e)}): check KAFKA_SASL_USERNAME, "
            "KAFKA_SASL_PASSWORD and KAFKA_SASL_MECHANISM"
        ) from None
    conn.close()


async def _ask_for_metadata(
    host: str, port: int, options: dict[str, Any], security: KafkaSecurity, timeout: float
) -> None:
    """A broker that wants authentication answers the version lookup, then closes the
    connection on the first real request."""
    where = f"{host}:{port}"
    conn = await _connect(host, port, options, timeout)
    try:
        await asyncio.wait_for(conn.send(MetadataRequest([])), timeout)
    except (KafkaError, OSError, TimeoutError) as e:
        raise ConnectionRefused(_closed(where, security, "when asked for metadata", e)) from None
    finally:
        conn.close()


def _tls_failure(where: str, security: KafkaSecurity, error: Exception) -> str:
    if isinstance(error, ssl.SSLCertVerificationError):
        return (
            f"Kafka at {where}: its TLS certificate is not trusted ({error.verify_message}); "
            "set KAFKA_SSL_CAFILE to the CA that signed it"
            + (f" (now {security.ssl_cafile})" if security.ssl_cafile else "")
        )
    return (
        f"Kafka at {where}: the TLS handshake failed ({_reason(error)}); does that listener "
        f"speak TLS? (KAFKA_SECURITY_PROTOCOL is {security.protocol})"
    )


def _closed(where: str, security: KafkaSecurity, when: str, error: BaseException) -> str:
    hint = (
        "if its listener needs TLS or SASL, set KAFKA_SECURITY_PROTOCOL (now PLAINTEXT)"
        if security.protocol == "PLAINTEXT"
        else f"check KAFKA_SECURITY_PROTOCOL (now {security.protocol}) and the listener"
    )
    return f"Kafka at {where} closed the connection {when} ({_reason(error)}): {hint}"


def _reason(error: BaseException) -> str:
    text = str(error).strip()
    if not isinstance(error, KafkaError | OSError):  # e.g. KeyError('v'): say what it is
        text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return text if len(text) < 300 else text[:300] + "..."


def _servers(bootstrap_servers: str) -> list[tuple[str, int]]:
    servers = []
    for item in bootstrap_servers.split(","):
        item = item.strip()
        if not item:
            continue  # "a:9092," as Kafka's clients read it
        if ":" not in item.strip("[]") or item.endswith("]"):
            item = f"{item}:9092"  # Kafka's default port, as aiokafka and Faust assume
        host, sep, port = item.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(
                f"KAFKA_BOOTSTRAP_SERVERS: {item!r} is not host:port "
                "(several are separated by commas)"
            )
        servers.append((host.strip("[]"), int(port)))
    return servers


def check_qdrant(url: str, api_key: str) -> None:
    """List the server's collections with the key: a refused key stops the start (the
    vector processor would otherwise wait on every write for a key that is fixed later)."""
    from qdrant_client import QdrantClient
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    try:
        QdrantClient(
            url=url, api_key=api_key, timeout=10, check_compatibility=False
        ).get_collections()
    except UnexpectedResponse as e:
        if e.status_code in (401, 403):
            raise ConnectionRefused(
                f"Qdrant at {url} refused QDRANT_API_KEY ({e.status_code}): check the key"
            ) from None
        raise ConnectionRefused(f"Qdrant at {url} answered {e.status_code}") from None
    except (ResponseHandlingException, OSError) as e:
        raise ConnectionRefused(f"cannot reach Qdrant at {url} (QDRANT_URL): {e}") from None


def check_postgres(postgres: dict[str, str], timeout: int = 10) -> None:
    """One connection as the stores make them; ConnectionRefused says why it failed
    (a server without TLS under POSTGRES_SSLMODE=require, an untrusted certificate ...)."""
    import psycopg  # PostgreSQL is an extra: only with it

    host = postgres.get("POSTGRES_HOST", "127.0.0.1")
    port = postgres.get("POSTGRES_PORT", "5432")
    user = postgres.get("POSTGRES_USER", "postgres")
    tls = libpq_tls(postgres)
    try:
        psycopg.connect(
            host=host,
            port=port,
            dbname=postgres.get("POSTGRES_DBNAME", "envbranch"),
            user=user,
            password=postgres.get("POSTGRES_PASSWORD") or None,
            connect_timeout=timeout,
            **tls,
        ).close()
    except psycopg.OperationalError as e:
        mode = tls.get("sslmode", "prefer (libpq's default)")
        detail = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise ConnectionRefused(
            f"cannot connect to PostgreSQL at {host}:{port} as {user!r} with "
            f"POSTGRES_SSLMODE={mode}: {detail}"
        ) from None
