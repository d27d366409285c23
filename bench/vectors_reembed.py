"""Part 3 of bench/vectors.py: a reuse clone of a collection of real text against
re-embedding every text into a new collection, with text_extractor and, when it is
installed, minilm_extractor."""

from __future__ import annotations

import ast
import os
import platform
import statistics
import sysconfig
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from timing import Deadline, timed

from projections.vectors.extractors import ExtractorError, FeatureExtractor, get_extractor
from projections.vectors.store import VectorPoint
from projections.vectors.views import CopyOnWrite

CLONE_REPEAT = 5


def stdlib_docstrings(count: int) -> tuple[list[str], str]:
    """Up to ``count`` distinct docstrings of the standard library, in a fixed order."""
    root = Path(sysconfig.get_paths()["stdlib"])
    skip = {"test", "tests", "idle_test", "site-packages", "__pycache__"}
    texts: list[str] = []
    seen: set[str] = set()
    for path in sorted(root.rglob("*.py")):
        if skip & set(path.relative_to(root).parts):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError, ValueError):
            continue
        for node in ast.walk(tree):
            if not isinstance(
                node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
            ):
                continue
            doc = ast.get_docstring(node)
            if doc and len(doc) >= 40 and doc not in seen:
                seen.add(doc)
                texts.append(doc)
                if len(texts) == count:
                    return texts, f"docstrings of the Python {platform.python_version()} stdlib"
    words = [
        "the",
        "a",
        "copy",
        "layer",
        "view",
        "store",
        "point",
        "vector",
        "clone",
        "query",
        "index",
        "write",
        "read",
    ]
    rng = np.random.default_rng(0)
    while len(texts) < count:  # only on a stripped-down Python without enough sources
        texts.append(" ".join(rng.choice(words, 20)) + f" {len(texts)}.")
    return texts, "stdlib docstrings topped up with generated sentences"


def chunks(texts: Sequence[str], size: int) -> Iterator[tuple[int, Sequence[str]]]:
    for start in range(0, len(texts), size):
        yield start, texts[start : start + size]


def embed_into(
    cow: CopyOnWrite, extractor: FeatureExtractor, collection: str, texts: Sequence[str]
) -> tuple[float, float]:
    """Embed every text and write it into a new collection; (embed s, write s)."""
    cow.create(collection, extractor.signature, extractor.space)
    deadline = Deadline(3600, f"embedding with {extractor.name}")
    embed = write = 0.0
    for start, batch in chunks(texts, 256):
        deadline.check()
        t0 = time.perf_counter()
        embedded = extractor.embed(batch)
        t1 = time.perf_counter()
        cow.write(
            collection,
            [
                VectorPoint(f"text-{start + k}", vector, {"chars": len(text)})
                for k, (text, vector) in enumerate(zip(batch, embedded, strict=True))
            ],
        )
        t2 = time.perf_counter()
        embed += t1 - t0
        write += t2 - t1
    return embed, write


def reembedding(cow: CopyOnWrite, count: int) -> None:
    texts, origin = stdlib_docstrings(count)
    chars = statistics.mean(len(t) for t in texts)
    hashing = get_extractor({"feature_extractor_name": "text_extractor"})
    embed, write = embed_into(cow, hashing, "texts", texts)
    print(
        f"  setup: {len(texts)} {origin}, mean {chars:.0f} chars; written with text_extractor "
        f"in {embed + write:.2f} s"
    )
    clone_times = []
    for i in range(CLONE_REPEAT):
        _, seconds = timed(cow.reuse_clone, "texts", f"texts-clone-{i}")
        clone_times.append(seconds)
    clone = statistics.median(clone_times)
    sees = cow.count("texts-clone-0")
    print(
        f"  (a) reuse clone:                   {clone * 1000:9.2f} ms "
        f"(median of {CLONE_REPEAT}; the clone sees {sees} documents)"
    )

    embed, write = embed_into(cow, hashing, "texts-rehashed", texts)
    total = embed + write
    print(
        f"  (b) re-embed, text_extractor:      {total * 1000:9.2f} ms "
        f"(embed {embed:.2f} s + write {write:.2f} s) = {total / clone:8.0f} x the reuse clone"
    )

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # no bar while loading
    try:
        minilm = get_extractor({"feature_extractor_name": "minilm_extractor"})
        _, load = timed(minilm.embed, ["warm up: load the model before the clock starts"])
    except (ExtractorError, ImportError, OSError) as exc:
        print(f"  (c) re-embed, minilm_extractor:    skipped: {exc}")
        return
    embed, write = embed_into(cow, minilm, "texts-minilm", texts)
    total = embed + write
    print(
        f"  (c) re-embed, minilm_extractor:    {total * 1000:9.2f} ms "
        f"(embed {embed:.2f} s + write {write:.2f} s) = {total / clone:8.0f} x the reuse clone "
        f"(model load {load:.1f} s, not counted)"
    )
