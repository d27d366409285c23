"""The console: a page served at /console that reads only the public API."""

from __future__ import annotations

from fastapi import APIRouter

from projections.json_bodies import LimitedJsonRoute

router = APIRouter(route_class=LimitedJsonRoute)
