"""Reading JSON from outside: what any bytes may be turned into, and nothing else.

Every command and every HTTP body goes through ``parse``. It never raises anything but
``CommandRejected``, whatever the bytes: a consumer that reads a record with it cannot be
stopped by that record. What it accepts is what every part of envbranch can store, index
and send on: objects nested at most ``MAX_DEPTH`` deep, finite numbers, integers that fit
64 bits (a longer integer literal is read as a double), and text that is valid Unicode (no
lone surrogates).
"""

from __future__ import annotations

import json
import math
from typing import Any

from domain.errors import CommandRejected, ErrorCode

# Objects and arrays inside one another; a command's body needs far fewer than this.
MAX_DEPTH = 64
# Integers are stored as SQL BIGINT and Qdrant payload integers: 64 bits, signed.
MIN_INT = -(2**63)
MAX_INT = 2**63 - 1


def parse(raw: bytes | str) -> Any:
    """The JSON document in ``raw``, checked against the limits above."""
    if isinstance(raw, bytes | bytearray | memoryview):
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as e:
            raise CommandRejected(ErrorCode.NOT_UTF8, f"message is not UTF-8: {e}") from e
    else:
        text = raw
    try:
        document = json.loads(text, parse_constant=_no_constant, parse_int=_integer)
        check(document)
    except CommandRejected:
        raise
    except RecursionError as e:
        raise _too_deep() from e
    except json.JSONDecodeError as e:
        raise CommandRejected(ErrorCode.INVALID_JSON, f"message is not JSON: {e}") from e
    except ValueError as e:  # no other ValueError is known: whatever json.loads refuses
        raise CommandRejected(ErrorCode.INVALID_JSON, f"message is not JSON: {e}") from e
    except MemoryError as e:
        raise CommandRejected(ErrorCode.MESSAGE_TOO_LARGE, "message too large to read") from e
    return document


# Where a value sits: its parent's place and its own key or index. The path is written out
# only for an error, so a long key above a long list costs nothing.
_Place = tuple["_Place | None", str | int] | None


def _path(place: _Place) -> str:
    parts: list[str | int] = []
    while place is not None:
        place, part = place
        parts.append(part)
    path = ""
    for part in reversed(parts):
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path


def check(document: Any) -> None:
    """Raise CommandRejected where ``document`` (already parsed) breaks a limit.

    Iterative, so that no nesting depth can exhaust the interpreter's stack. The common
    scalars (ASCII text, finite floats, integers) are checked inline: this runs on every
    command and every request body."""
    stack: list[tuple[Any, int, _Place]] = [(document, 0, None)]
    while stack:
        value, depth, place = stack.pop()
        kind = type(value)
        if kind is dict:
            if depth >= MAX_DEPTH:
                raise _too_deep(_path(place))
            for key, item in value.items():
                if not key.isascii():
                    _check_text(key, place)
                kind = type(item)
                if kind is str:
                    if not item.isascii():
                        _check_text(item, (place, key))
                elif kind is float:
                    if item - item != 0.0:  # inf - inf and nan - nan are nan
                        _check_scalar(item, (place, key))
                elif kind is dict or kind is list:
                    stack.append((item, depth + 1, (place, key)))
        elif kind is list:
            if depth >= MAX_DEPTH:
                raise _too_deep(_path(place))
            if _finite_floats(value):
                continue  # a vector: checked at C speed
            for index, item in enumerate(value):
                kind = type(item)
                if kind is dict or kind is list:
                    stack.append((item, depth + 1, (place, index)))
                else:
                    _check_scalar(item, (place, index))
        else:
            _check_scalar(value, place)


def _finite_floats(values: list[Any]) -> bool:
    """Whether ``values`` holds only finite floats (False: look at each one)."""
    if not values or set(map(type, values)) != {float}:
        return False
    try:
        return math.isfinite(math.fsum(values))
    except (OverflowError, ValueError):  # a sum too large, or inf - inf
        return False


def _check_scalar(value: Any, place: _Place) -> None:
    kind = type(value)
    if kind is float:
        if not math.isfinite(value):
            where = _path(place)
            raise CommandRejected(
                ErrorCode.VALIDATION_ERROR,
                f"{where or 'value'}: numbers must be finite (NaN and Infinity are not JSON)",
                field=where or None,
            )
    elif kind is str:
        _check_text(value, place)


def _check_text(text: str, place: _Place) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        where = _path(place)
        raise CommandRejected(
            ErrorCode.VALIDATION_ERROR,
            f"{where or 'value'}: text is not valid Unicode (a lone surrogate escape)",
            field=where or None,
        ) from e


def _integer(literal: str) -> int | float:
    """An integer literal: beyond 64 bits it is read as a floating-point number, as JSON
    readers such as JavaScript's read it (fields that take an integer then refuse it; one
    too large for a double becomes infinite and is refused)."""
    if len(literal) < 19:
        return int(literal)
    if len(literal) < 40:
        value = int(literal)
        if MIN_INT <= value <= MAX_INT:
            return value
    return float(literal)


def _no_constant(name: str) -> Any:
    raise CommandRejected(
        ErrorCode.VALIDATION_ERROR,
        f"{name} is not a JSON number: numbers must be finite",
    )


def _too_deep(path: str = "") -> CommandRejected:
    where = f" at {path}" if path else ""
    return CommandRejected(
        ErrorCode.TOO_DEEPLY_NESTED,
        f"JSON nested deeper than {MAX_DEPTH} objects and arrays{where}",
        limit=MAX_DEPTH,
    )
