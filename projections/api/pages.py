"""Lists: the body of a POST .../list and the page it answers."""

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Strict

from domain.values import Count, JsonInteger


class ListBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: Annotated[int, Strict(), Field(ge=1, le=1000), JsonInteger] = 20
    offset: Count = 0


def page(rows: list[dict[str, Any]], total: int, body: ListBody) -> dict[str, Any]:
    return {
        "results": rows,
        "pagination": {
            "total": total,
            "limit": body.limit,
            "offset": body.offset,
            "has_more": body.offset + len(rows) < total,
        },
    }
