"""JSON request bodies are read the way commands are: within domain.json_limits.

FastAPI would parse a body with ``json.loads`` as it is, which takes NaN and
Infinity, nests until the interpreter's stack runs out and yields integers no
database column holds. Each route that takes a body reads it through
``json_limits.parse`` first, and no more of it than a command may hold; a body
outside the limits is refused with the code a command on the topic gets.
"""

from __future__ import annotations

import email.message
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from domain import json_limits
from domain.errors import CommandRejected, ErrorCode

# A body larger than a command may be could not become one; set from the settings.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024


def _is_json(request: Request) -> bool:
    # The test FastAPI applies before it parses a body as JSON (strict content type).
    value = request.headers.get("content-type")
    if not value:
        return False
    message = email.message.Message()
    message["content-type"] = value
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


async def _read_at_most(request: Request, limit: int) -> bytes:
    """The body, read no further than ``limit`` bytes (a stream may never end)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(int(declared), limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit)
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body  # noqa: SLF001 - Starlette's Request.body() returns it from here
    return body


def _too_large(size: int, limit: int) -> CommandRejected:
    return CommandRejected(
        ErrorCode.MESSAGE_TOO_LARGE,
        f"the body is more than {limit} bytes, the most this operation takes",
        size=size,
        limit=limit,
    )


class LimitedJsonRoute(APIRoute):
    """A route whose JSON body is parsed within the limits (CommandRejected if not)."""

    # How many times the largest command its body may be: a body that becomes a command
    # of the same size takes 1.
    body_factor = 1

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler  # no body to read: FastAPI ignores one that is sent

        async def read_body_first(request: Request) -> Response:
            limit = self.body_factor * getattr(
                request.app.state, "max_body_bytes", DEFAULT_MAX_BODY_BYTES
            )
            body = await _read_at_most(request, limit)
            if body and _is_json(request):
                try:
                    # Starlette's Request.json() returns this instead of parsing again.
                    request._json = json_limits.parse(body)  # noqa: SLF001
                except CommandRejected as e:
                    if e.field is not None:  # named as the validation errors name fields
                        e.field = f"body.{e.field}"
                    raise
            return await handler(request)

        return read_body_first


class VectorJsonRoute(LimitedJsonRoute):
    """A route whose body may bring vectors as JSON lists of numbers: its command carries
    them packed, about a quarter of their size in a list (the command's own limit still
    holds, so a body that would pack into too large a command is refused too)."""

    body_factor = 4
