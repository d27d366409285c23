"""The dependency-free built-in extractor, ``text_extractor``: signed feature hashing of
words and character trigrams. Deterministic on any machine, lexical only."""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from projections.vectors.extractor_base import (
    FeatureExtractor,
    check_params,
    check_texts,
    check_version,
    int_param,
)
from projections.vectors.store import Distance


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
        self.version = check_version(self.name, version, self.versions)
        checked = check_params(self.name, params, {"dim"})
        self.size = int_param(self.name, checked, "dim", self.DEFAULT_DIM, 2, 1 << 16)

    @property
    def vector_params(self) -> Mapping[str, Any]:
        return {"dim": self.size}

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self._embed_one(text) for text in check_texts(texts)]

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
