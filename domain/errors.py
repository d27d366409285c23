"""Why a command was rejected, in a form both machines and people can read."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    # The message could not be read as a command.
    MESSAGE_TOO_LARGE = "message_too_large"
    NOT_UTF8 = "not_utf8"
    INVALID_JSON = "invalid_json"
    TOO_DEEPLY_NESTED = "too_deeply_nested"
    INVALID_ENVELOPE = "invalid_envelope"
    UNKNOWN_COMMAND_TYPE = "unknown_command_type"
    VALIDATION_ERROR = "validation_error"
    COMMAND_ID_REUSED = "command_id_reused"
    # The command was readable but the domain refused it.
    NOT_FOUND = "not_found"
    WRONG_KIND = "wrong_kind"
    DUPLICATE_NAME = "duplicate_name"
    IMMUTABLE_FIELD = "immutable_field"
    INVALID_REFERENCE = "invalid_reference"
    INVALID_INCLUDE_RESOURCES = "invalid_include_resources"
    NOT_READY = "not_ready"
    NOTHING_TO_DO = "nothing_to_do"
    STALE_EVALUATION = "stale_evaluation"
    HISTORY_UNAVAILABLE = "history_unavailable"
    # Applying it failed in a way no retry fixes.
    INTERNAL_ERROR = "internal_error"


class CommandRejected(Exception):
    """A command that cannot be applied; nothing of it is written."""

    def __init__(
        self, code: ErrorCode, message: str, field: str | None = None, **details: Any
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.details = details

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": str(self.code), "message": self.message}
        if self.field is not None:
            out["field"] = self.field
        if self.details:
            out["details"] = self.details
        return out

    def __repr__(self) -> str:
        return f"CommandRejected({self.code!s}, {self.message!r}, field={self.field!r})"
