"""Lists: the body of a POST .../list (and the paging a GET list takes in its query), and
the page it answers, in envbranch's terms (limit, offset) and Mixpeek's (page_size, page,
total_count)."""

from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field, Strict

from domain.json_limits import MAX_INT
from domain.mixpeek_options import FalseByDefault, Unsupported
from domain.values import Count, JsonInteger

PAGING = ("limit", "offset", "page", "page_size")
Size = Annotated[int, Strict(), Field(ge=1, le=1000), JsonInteger]


class ListBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: Size = 20
    offset: Count = 0
    # Mixpeek's paging: page_size is limit, page (from 1) sets the offset to (page - 1) *
    # the page size. Given, they win over limit and offset.
    page_size: Size | None = None
    page: Annotated[int, Strict(), Field(ge=1, le=1_000_000), JsonInteger] | None = None
    # Mixpeek's filtering and sorting of lists: not supported (lists are by creation).
    filters: Unsupported = None
    sort: Unsupported = None
    sorts: Unsupported = None
    search: Unsupported = None
    case_sensitive: FalseByDefault = None  # its SDK always sends these two
    include_system: FalseByDefault = None

    def window(self) -> tuple[int, int]:
        """(limit, offset) of the page asked for."""
        limit = self.page_size or self.limit
        offset = (self.page - 1) * limit if self.page is not None else self.offset
        return limit, offset


def query_paging(
    limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
    offset: Annotated[int | None, Query(ge=0, le=MAX_INT)] = None,
    page: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
    page_size: Annotated[int | None, Query(ge=1, le=1000)] = None,
) -> dict[str, int]:
    """Paging sent in the query string (Mixpeek's SDK sends it there)."""
    given = {"limit": limit, "offset": offset, "page": page, "page_size": page_size}
    return {k: v for k, v in given.items() if v is not None}


def paging(body: ListBody | None, query: dict[str, int]) -> ListBody:
    """The body's paging, with the query's where the body leaves it out."""
    sent = body.model_dump(exclude_unset=True) if body is not None else {}
    return ListBody(**{**query, **{k: v for k, v in sent.items() if k in PAGING}})


def page(rows: list[dict[str, Any]], total: int, body: ListBody) -> dict[str, Any]:
    limit, offset = body.window()
    return {
        "results": rows,
        "pagination": {
            "total": total,
            "limit": limit,
            "offset": offset,
            "has_more": offset + len(rows) < total,
            # Mixpeek's names
            "page": offset // limit + 1,
            "page_size": limit,
            "total_pages": -(-total // limit),
        },
        "total_count": total,
    }
