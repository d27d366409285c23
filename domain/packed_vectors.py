"""Vectors as commands and events carry them: base64 of little-endian float32.

A 384-d vector is 2,048 characters this way instead of about 7,700 as a JSON list of
decimal floats, and turning it into numbers costs one ``array`` call instead of parsing
384 decimals. Float32 is what every vector store keeps, so packing loses nothing a
store would have kept. A client may send either form; envbranch writes the packed one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import sys
from array import array
from collections.abc import Sequence

MAX_DIMENSIONS = 8192


def pack(values: Sequence[float]) -> str:
    """The packed form of ``values`` (each finite and within float32)."""
    return base64.b64encode(_bytes_of(values)).decode("ascii")


def raw(packed: str) -> bytes:
    """The little-endian float32 bytes of a packed vector, checked: ValueError says what
    is wrong (not base64, not whole float32 values, too many, or not finite)."""
    try:
        data = binascii.a2b_base64(packed, strict_mode=True)
    except (binascii.Error, ValueError) as e:
        raise ValueError(f"a packed vector is base64 of little-endian float32: {e}") from e
    if not data or len(data) % 4:
        raise ValueError(
            f"a packed vector is base64 of little-endian float32: {len(data)} bytes "
            "is not a whole, non-zero number of 4-byte floats"
        )
    if len(data) // 4 > MAX_DIMENSIONS:
        raise ValueError(f"a vector has at most {MAX_DIMENSIONS} components, not {len(data) // 4}")
    floats = _floats(data)
    if not math.isfinite(sum(floats)):  # one pass in C: any inf or nan makes it so
        bad = next(i for i, v in enumerate(floats) if not math.isfinite(v))
        raise ValueError(f"vector component {bad} is not finite ({floats[bad]})")
    return data


def unpack(packed: str) -> list[float]:
    """The components of a packed vector, checked as ``raw`` checks them."""
    return _floats(raw(packed)).tolist()


def values_of(vector: Sequence[float] | str) -> list[float]:
    """A vector's components, whichever form it came in."""
    return unpack(vector) if isinstance(vector, str) else list(vector)


def size_of(vector: Sequence[float] | str) -> int:
    """How many components a vector has, whichever form it came in (a packed one is
    counted from its length, not decoded: check it with ``raw`` first if it may be bad)."""
    if isinstance(vector, str):
        return (len(vector) // 4 * 3 - vector[-2:].count("=")) // 4
    return len(vector)


def digest(vector: Sequence[float] | str) -> str:
    """What the audit log records of a vector: a digest of its float32 bytes (the same
    for both forms of the same values)."""
    data = raw(vector) if isinstance(vector, str) else _bytes_of(vector)
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _bytes_of(values: Sequence[float]) -> bytes:
    floats = array("f", values)
    if sys.byteorder == "big":
        floats.byteswap()
    return floats.tobytes()


def _floats(data: bytes) -> array[float]:
    floats = array("f")
    floats.frombytes(data)
    if sys.byteorder == "big":
        floats.byteswap()
    return floats
