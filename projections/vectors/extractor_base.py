"""What every feature extractor shares: the base class, the errors, the signature that
names a vector space, and the checks of a ``feature_extractor``'s version and params.

The built-in extractors live in :mod:`projections.vectors.hashing_extractor` and
:mod:`projections.vectors.minilm_extractor`; :mod:`projections.vectors.extractors` looks
them up by name.
"""

from __future__ import annotations

import hashlib
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from projections.vectors.store import Distance, Space

SIGNATURE_MAX_LENGTH = 60
_SIGNATURE_HASH_CHARS = 12
_UNSAFE = re.compile(r"[^a-z0-9_-]+")


# ---------------------------------------------------------------------------- errors


class ExtractorError(Exception):
    """Any problem turning a ``feature_extractor`` dict into an extractor."""


class UnknownExtractor(ExtractorError, LookupError):
    def __init__(self, name: object, known: Iterable[str]) -> None:
        self.name = name
        self.known = sorted(known)
        super().__init__(
            f"unknown feature extractor {name!r}; known extractors: "
            + (", ".join(self.known) or "(none)")
        )


class UnsupportedVersion(ExtractorError, ValueError):
    def __init__(self, name: str, version: object, supported: Iterable[str]) -> None:
        self.name = name
        self.version = version
        self.supported = sorted(supported)
        super().__init__(
            f"feature extractor {name!r} has no version {version!r}; "
            f"supported versions: {', '.join(self.supported)}"
        )


class InvalidParams(ExtractorError, ValueError):
    pass


class MissingDependency(ExtractorError, ImportError):
    pass


# ------------------------------------------------------------------------- signature


def signature_of(
    name: str, version: str, params: Mapping[str, Any], size: int, distance: Distance
) -> str:
    """A store-name-safe identifier of a vector space.

    Lowercase letters, digits, ``-`` and ``_``, at most 60 characters:
    ``<name>-<version>-<size>-<distance>-<hash>``. The readable part may be cut short
    or rewritten to fit; the hash covers the exact name, version, params, size and
    distance, so it alone tells spaces apart.
    """
    try:
        canonical = json.dumps(
            {
                "distance": distance,
                "name": name,
                "params": dict(params),
                "size": size,
                "version": version,
            },
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=True,
            allow_nan=False,
        )
    except (TypeError, ValueError) as e:
        raise InvalidParams(f"params of {name!r} must be plain JSON values: {e}") from e
    digest = hashlib.sha256(canonical.encode("ascii")).hexdigest()[:_SIGNATURE_HASH_CHARS]
    tail = f"-{size}-{_safe(distance)}-{digest}"
    head = _safe(f"{name}-{version}")[: SIGNATURE_MAX_LENGTH - len(tail)].strip("-_")
    return f"{head}{tail}" if head else tail.lstrip("-")


def _safe(text: str) -> str:
    return _UNSAFE.sub("-", text.lower()).strip("-")


# ------------------------------------------------------------------------ base class


class FeatureExtractor(ABC):
    """Turns texts into vectors of one vector space.

    Subclasses set ``name``, ``version``, ``size`` and ``distance`` and implement
    :meth:`embed`; they override :attr:`vector_params` when some params change the
    vectors (the default counts none).
    """

    name: str
    version: str
    size: int
    distance: Distance

    @property
    def vector_params(self) -> Mapping[str, Any]:
        """The params that change the vectors, defaults filled in."""
        return {}

    @property
    def signature(self) -> str:
        return signature_of(self.name, self.version, self.vector_params, self.size, self.distance)

    @property
    def space(self) -> Space:
        return Space(size=self.size, distance=self.distance)

    @abstractmethod
    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector of ``size`` floats per text, in order."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(signature={self.signature!r})"


# ------------------------------------------------------------- checks of the inputs


def check_texts(texts: Sequence[str]) -> list[str]:
    """The texts of an ``embed`` call as a list, refusing a lone string and non-strings."""
    if isinstance(texts, str | bytes):
        raise TypeError("embed takes a sequence of texts, not a single string")
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise TypeError(f"text {i} is {type(text).__name__}, not str")
    return out


def check_params(name: str, params: Mapping[str, Any] | None, allowed: set[str]) -> dict[str, Any]:
    """A copy of ``params``, refusing a non-object and any key outside ``allowed``."""
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise InvalidParams(f"params of {name!r} must be an object, not {type(params).__name__}")
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise InvalidParams(
            f"unknown params for {name!r}: {', '.join(map(str, unknown))}; "
            f"accepted: {', '.join(sorted(allowed)) or '(none)'}"
        )
    return dict(params)


def int_param(
    name: str, params: Mapping[str, Any], key: str, default: int, lo: int, hi: int
) -> int:
    """``params[key]`` (or ``default``), which must be an integer in ``[lo, hi]``."""
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InvalidParams(f"params.{key} of {name!r} must be an integer in [{lo}, {hi}]")
    return value


def check_version(name: str, version: str, supported: frozenset[str]) -> str:
    """``version`` if the extractor supports it, else :class:`UnsupportedVersion`."""
    if version not in supported:
        raise UnsupportedVersion(name, version, supported)
    return version
