"""JSON request bodies are read the way commands are: within domain.json_limits.

FastAPI would parse a body with ``json.loads`` as it is, which takes NaN and
Infinity, nests until the interpreter's stack runs out and yields integers no
database column holds. Each route reads its body through ``json_limits.parse``
first; a body outside the limits is refused with the same code a command on
the topic gets.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from domain import json_limits
from domain.errors import CommandRejected


def _is_json(request: Request) -> bool:
    # The same test FastAPI applies before it parses a body as JSON.
    content_type = request.headers.get("content-type")
    if not content_type:
        return True
    subtype = content_type.split(";", 1)[0].strip().lower().rpartition("/")[2]
    return subtype == "json" or subtype.endswith("+json")


class LimitedJsonRoute(APIRoute):
    """A route whose JSON body is parsed within the limits (CommandRejected if not)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def read_body_first(request: Request) -> Response:
            body = await request.body()
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
