"""The console: a page served at /console that reads only the public API.

The page, its scripts and its style sheet are static files in ``projections/console``.
They hold no data, so they are served without a key; everything the page shows, it asks
the public ``/v1`` API for from the browser, with the key the user logs in with. These
routes stay out of the OpenAPI document: they are a client of the API, not part of it.
"""

from __future__ import annotations

import functools
from pathlib import Path

from fastapi import APIRouter, Response

from projections.api.errors import ApiError
from projections.json_bodies import LimitedJsonRoute

router = APIRouter(route_class=LimitedJsonRoute)

STATIC = Path(__file__).resolve().parent.parent / "console"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
# The page runs only its own files and talks only to this origin; the data it shows is
# written by users, so nothing else may run or load even if some of it slipped through.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@functools.cache
def files() -> dict[str, tuple[bytes, str]]:
    """The console's files by name, read once: a request names one of these, never a
    path on disk."""
    found = {}
    for path in sorted(STATIC.iterdir()) if STATIC.is_dir() else []:
        if path.is_file() and path.suffix in MEDIA_TYPES:
            found[path.name] = (path.read_bytes(), MEDIA_TYPES[path.suffix])
    return found


def serve(name: str) -> Response:
    found = files().get(name)
    if found is None:
        raise ApiError(404, "not_found", f"the console has no file {name!r}")
    content, media_type = found
    return Response(content, media_type=media_type, headers=HEADERS)


@router.get("/console", include_in_schema=False)
async def console_page() -> Response:
    """The console's one page; it loads its scripts from /console/<file>."""
    return serve("index.html")


@router.get("/console/{name}", include_in_schema=False)
async def console_file(name: str) -> Response:
    return serve(name)
