"""The vector store contract: every adapter of ``VectorStore`` passes these tests.

Adapters: Qdrant Edge in-process (``EdgeStore``) and qdrant-client's local mode
(``QdrantStore.local``, standing in for a Qdrant server).
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from projections.vectors.edge import EdgeStore
from projections.vectors.qdrant import QdrantStore
from projections.vectors.store import (
    Filter,
    HasId,
    MatchAny,
    Range,
    Space,
    StoreNotFound,
    VectorPoint,
    VectorStore,
)

# qdrant-client's local mode accepts payload indexes but warns that it ignores them.
pytestmark = pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning")

Factory = Callable[[], VectorStore]
ADAPTERS: dict[str, Callable[[Path], VectorStore]] = {
    "edge": lambda tmp: EdgeStore(tmp / "edge"),
    "qdrant": lambda tmp: QdrantStore.local(tmp / "qdrant"),
}


@pytest.fixture(params=sorted(ADAPTERS))
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    """Opens adapters of one kind on one path; each is closed at teardown."""
    opened: list[VectorStore] = []

    def make() -> VectorStore:
        opened.append(ADAPTERS[request.param](tmp_path))
        return opened[-1]

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store: Factory) -> VectorStore:
    return make_store()


def uid(n: int) -> str:
    """A UUID whose order follows ``n``; the id order of a store is the UUID order."""
    return str(uuid.UUID(int=(n * 0x9E3779B97F4A7C15) % (1 << 128)))


def by_uuid(ids: list[str]) -> list[str]:
    return sorted(ids, key=lambda i: uuid.UUID(i).int)


COLOURS = ("red", "green", "blue")


def catalogue(n: int = 30) -> list[VectorPoint]:
    """Points with a keyword, an integer and a float field; vectors are unique directions."""
    return [
        VectorPoint(
            id=uid(i),
            vector=[math.cos(i / 10), math.sin(i / 10), 0.5],
            payload={"colour": COLOURS[i % 3], "rank": i, "weight": i / 4},
        )
        for i in range(n)
    ]


@pytest.fixture
def filled(store: VectorStore) -> VectorStore:
    store.create_store("items", Space(size=3, distance="euclid"))
    store.create_index("items", "colour", "keyword")
    store.create_index("items", "rank", "integer")
    store.create_index("items", "weight", "float")
    store.upsert("items", catalogue())
    return store


def ids_of(points: list[Any]) -> set[str]:
    return {p.id for p in points}


def scroll_all(
    store: VectorStore, name: str, limit: int, flt: Filter | None = None
) -> list[VectorPoint]:
    seen: list[VectorPoint] = []
    cursor: str | None = None
    while True:
        page, cursor = store.scroll(name, filter=flt, limit=limit, after=cursor)
        assert len(page) <= limit
        seen.extend(page)
        if cursor is None:
            return seen


# Stores -----------------------------------------------------------------------------------


def test_a_created_store_is_listed_and_knows_its_space(store: VectorStore) -> None:
    store.create_store("docs", Space(size=4, distance="dot"))
    store.create_store("imgs", Space(size=2))
    assert store.list_stores() == ["docs", "imgs"]
    assert store.space("docs") == Space(size=4, distance="dot")
    assert store.space("imgs") == Space(size=2, distance="cosine")
    assert store.count("docs") == 0


def test_creating_a_store_again_with_the_same_space_keeps_its_points(store: VectorStore) -> None:
    store.create_store("docs", Space(size=2, distance="euclid"))
    store.upsert("docs", [VectorPoint(id=uid(1), vector=[1.0, 2.0])])
    store.create_store("docs", Space(size=2, distance="euclid"))
    assert store.count("docs") == 1


@pytest.mark.parametrize("other", [Space(size=3, distance="euclid"), Space(size=2, distance="dot")])
def test_creating_a_store_again_with_another_space_raises_naming_both(
    store: VectorStore, other: Space
) -> None:
    store.create_store("docs", Space(size=2, distance="euclid"))
    with pytest.raises(ValueError) as raised:
        store.create_store("docs", other)
    assert str(Space(size=2, distance="euclid")) in str(raised.value)
    assert str(other) in str(raised.value)
    assert store.space("docs") == Space(size=2, distance="euclid")


def test_dropping_a_store_removes_it_and_its_points(store: VectorStore) -> None:
    store.create_store("docs", Space(size=2))
    store.create_store("keep", Space(size=2))
    store.upsert("docs", [VectorPoint(id=uid(1), vector=[1.0, 0.0])])
    store.drop_store("docs")
    assert store.list_stores() == ["keep"]
    with pytest.raises(StoreNotFound):
        store.count("docs")
    store.create_store("docs", Space(size=3))
    assert store.count("docs") == 0
    assert store.space("docs") == Space(size=3)


def test_dropping_an_unknown_store_does_nothing(store: VectorStore) -> None:
    store.drop_store("nothing")
    assert store.list_stores() == []


def test_stores_do_not_share_points(store: VectorStore) -> None:
    store.create_store("a", Space(size=2))
    store.create_store("b", Space(size=2))
    store.upsert("a", [VectorPoint(id=uid(1), vector=[1.0, 0.0])])
    assert store.count("a") == 1
    assert store.count("b") == 0
    assert store.retrieve("b", [uid(1)]) == []


UNKNOWN_STORE_CALLS: dict[str, Callable[[VectorStore], object]] = {
    "space": lambda s: s.space("nope"),
    "create_index": lambda s: s.create_index("nope", "k", "keyword"),
    "upsert": lambda s: s.upsert("nope", [VectorPoint(id=uid(1), vector=[1.0, 0.0])]),
    "upsert_nothing": lambda s: s.upsert("nope", []),
    "delete": lambda s: s.delete("nope", [uid(1)]),
    "retrieve": lambda s: s.retrieve("nope", [uid(1)]),
    "scroll": lambda s: s.scroll("nope"),
    "search": lambda s: s.search("nope", [1.0, 0.0]),
    "count": lambda s: s.count("nope"),
}


@pytest.mark.parametrize("call", sorted(UNKNOWN_STORE_CALLS))
def test_every_operation_on_an_unknown_store_raises_store_not_found(
    store: VectorStore, call: str
) -> None:
    store.create_store("other", Space(size=2))
    with pytest.raises(StoreNotFound):
        UNKNOWN_STORE_CALLS[call](store)


# Points -----------------------------------------------------------------------------------


def test_upserted_points_come_back_with_their_vectors_and_payloads(store: VectorStore) -> None:
    store.create_store("docs", Space(size=3, distance="euclid"))
    payload = {"title": "Ünïcode", "n": 7, "x": 0.25, "ok": True, "tags": ["a", "b"], "o": {"k": 1}}
    points = [
        VectorPoint(id=uid(1), vector=[0.1, -2.5, 3.0], payload=payload),
        VectorPoint(id=uid(2), vector=[1e-3, 0.0, 1e3]),
    ]
    store.upsert("docs", points)
    got = {p.id: p for p in store.retrieve("docs", [uid(1), uid(2)], with_vectors=True)}
    assert set(got) == {uid(1), uid(2)}
    for point in points:
        assert got[point.id].payload == point.payload
        assert got[point.id].vector == pytest.approx(point.vector, rel=1e-6)


def test_retrieve_leaves_vectors_out_unless_asked(store: VectorStore) -> None:
    store.create_store("docs", Space(size=2, distance="dot"))
    store.upsert("docs", [VectorPoint(id=uid(1), vector=[1.0, 2.0], payload={"a": 1})])
    [point] = store.retrieve("docs", [uid(1)])
    assert point == VectorPoint(id=uid(1), vector=None, payload={"a": 1})


def test_retrieve_returns_only_the_points_that_exist(store: VectorStore) -> None:
    store.create_store("docs", Space(size=2))
    store.upsert("docs", [VectorPoint(id=uid(1), vector=[1.0, 0.0])])
    assert [p.id for p in store.retrieve("docs", [uid(2), uid(1), uid(3)])] == [uid(1)]
    assert store.retrieve("docs", []) == []


def test_cosine_stores_keep_vectors_normalised_to_unit_length(store: VectorStore) -> None:
    store.create_store("docs", Space(size=2, distance="cosine"))
    store.upsert("docs", [VectorPoint(id=uid(1), vector=[3.0, 4.0])])
    [point] = store.retrieve("docs", [uid(1)], with_vectors=True)
    assert point.vector == pytest.approx([0.6, 0.8], rel=1e-6)


def test_ids_come_back_in_canonical_lowercase_form(store: VectorStore) -> None:
    store.create_store("docs", Space(size=2))
    raw = uuid.uuid4()
    store.upsert("docs", [VectorPoint(id=str(raw).upper(), vector=[1.0, 0.0])])
    assert [p.id for p in store.retrieve("docs", [raw.hex])] == [str(raw)]


def test_an_id_that_is_not_a_uuid_is_rejected(store: VectorStore) -> None:
    store.create_store("docs", Space(size=2))
    with pytest.raises(ValueError):
        store.upsert("docs", [VectorPoint(id="doc-1", vector=[1.0, 0.0])])
    assert store.count("docs") == 0


def test_a_vector_of_the_wrong_size_is_rejected(store: VectorStore) -> None:
    store.create_store("docs", Space(size=2))
    with pytest.raises(ValueError):
        store.upsert("docs", [VectorPoint(id=uid(1), vector=[1.0, 0.0, 0.0])])
    with pytest.raises(ValueError):
        store.upsert("docs", [VectorPoint(id=uid(1), vector=None)])
    with pytest.raises(ValueError):
        store.search("docs", [1.0])
    assert store.count("docs") == 0


def test_upserting_an_existing_id_replaces_the_whole_point(store: VectorStore) -> None:
    store.create_store("docs", Space(size=2, distance="euclid"))
    store.upsert("docs", [VectorPoint(id=uid(1), vector=[1.0, 0.0], payload={"a": 1, "b": 2})])
    store.upsert("docs", [VectorPoint(id=uid(1), vector=[0.0, 5.0], payload={"c": 3})])
    [point] = store.retrieve("docs", [uid(1)], with_vectors=True)
    assert point.payload == {"c": 3}
    assert point.vector == pytest.approx([0.0, 5.0])
    assert store.count("docs") == 1


def test_deleting_removes_the_points_and_ignores_unknown_ids(filled: VectorStore) -> None:
    filled.delete("items", [uid(0), uid(5), uid(999), str(uuid.uuid4())])
    filled.delete("items", [])
    assert filled.count("items") == 28
    assert filled.retrieve("items", [uid(0), uid(5), uid(6)]) == [
        VectorPoint(id=uid(6), vector=None, payload=catalogue()[6].payload)
    ]
    assert filled.search("items", [1.0, 0.0, 0.5], limit=1)[0].id != uid(0)


def test_set_payload_sets_only_the_named_fields_and_ignores_unknown_ids(
    filled: VectorStore,
) -> None:
    filled.set_payload("items", [uid(1), uid(2), str(uuid.uuid4())], {"colour": "gold", "x": [1]})
    filled.set_payload("items", [], {"colour": "grey"})
    [one] = filled.retrieve("items", [uid(1)])
    assert one.payload == {**catalogue()[1].payload, "colour": "gold", "x": [1]}
    gold = Filter(must=(MatchAny("colour", ("gold",)),))
    assert ids_of(scroll_all(filled, "items", 10, gold)) == {uid(1), uid(2)}
    assert filled.count("items") == 30


def test_copy_points_copies_a_filtered_page_relabelled_and_resumes_from_its_cursor(
    filled: VectorStore,
) -> None:
    filled.create_store("copy", Space(size=3, distance="euclid"))
    red = Filter(must=(MatchAny("colour", ("red",)),))

    def relabel(payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return uid(1000 + payload["rank"]), {**payload, "copied": True}

    total, cursor, pages = 0, None, 0
    while True:
        count, cursor = filled.copy_points("items", red, "copy", relabel, 4, cursor)
        total, pages = total + count, pages + 1
        if cursor is None:
            break
    assert total == 10 and pages == 3
    copied = filled.retrieve("copy", [uid(1000 + i) for i in range(30)], with_vectors=True)
    assert {p.id for p in copied} == {uid(1000 + i) for i in range(0, 30, 3)}
    for point in copied:
        source = catalogue()[point.payload["rank"]]
        assert point.payload == {**source.payload, "copied": True}
        assert point.vector == pytest.approx(source.vector)
    assert filled.count("items") == 30


def test_copy_points_between_stores_of_different_spaces_is_refused(filled: VectorStore) -> None:
    filled.create_store("other", Space(size=2, distance="euclid"))
    with pytest.raises(ValueError):
        filled.copy_points("items", None, "other", lambda p: (uid(1), p))


def test_creating_an_index_twice_is_harmless(filled: VectorStore) -> None:
    filled.create_index("items", "colour", "keyword")
    flt = Filter(must=(MatchAny("colour", ("red",)),))
    assert filled.count("items", flt) == 10


# Filters ----------------------------------------------------------------------------------

Check = Callable[[dict[str, Any], str], bool]
FILTERS: dict[str, tuple[Filter, Check]] = {
    "match any keyword": (
        Filter(must=(MatchAny("colour", ("red", "blue")),)),
        lambda p, i: p["colour"] in ("red", "blue"),
    ),
    "match any integer": (
        Filter(must=(MatchAny("rank", (1, 4, 9, 100)),)),
        lambda p, i: p["rank"] in (1, 4, 9),
    ),
    "match any of nothing": (Filter(must=(MatchAny("colour", ()),)), lambda p, i: False),
    "range gte lte on float": (
        Filter(must=(Range("weight", gte=1.0, lte=3.0),)),
        lambda p, i: 1.0 <= p["weight"] <= 3.0,
    ),
    "range gt lt on float": (
        Filter(must=(Range("weight", gt=1.0, lt=3.0),)),
        lambda p, i: 1.0 < p["weight"] < 3.0,
    ),
    "range gte on integer": (Filter(must=(Range("rank", gte=25),)), lambda p, i: p["rank"] >= 25),
    "range lt on integer": (Filter(must=(Range("rank", lt=3),)), lambda p, i: p["rank"] < 3),
    "range with fractional bounds on integer": (
        Filter(must=(Range("rank", gt=2.5, lte=4.5),)),
        lambda p, i: p["rank"] in (3, 4),
    ),
    "has id": (
        Filter(must=(HasId((uid(3), uid(7), uid(500))),)),
        lambda p, i: i in (uid(3), uid(7)),
    ),
    "must not": (
        Filter(must_not=(MatchAny("colour", ("green",)),)),
        lambda p, i: p["colour"] != "green",
    ),
    "must not has id": (
        Filter(must_not=(HasId((uid(0), uid(1))),)),
        lambda p, i: i not in (uid(0), uid(1)),
    ),
    "combined": (
        Filter(
            must=(MatchAny("colour", ("red", "green")), Range("weight", gte=2.0)),
            must_not=(MatchAny("rank", (12, 13)), HasId((uid(21),))),
        ),
        lambda p, i: (
            p["colour"] in ("red", "green")
            and p["weight"] >= 2.0
            and p["rank"] not in (12, 13)
            and i != uid(21)
        ),
    ),
    "empty filter": (Filter(), lambda p, i: True),
}


@pytest.mark.parametrize("case", list(FILTERS))
def test_a_filter_selects_exactly_the_points_it_describes(filled: VectorStore, case: str) -> None:
    flt, check = FILTERS[case]
    expected = {p.id for p in catalogue() if check(p.payload, p.id)}
    if case not in ("empty filter", "match any of nothing"):
        assert 0 < len(expected) < 30  # the case tells points apart
    assert filled.count("items", flt) == len(expected)
    assert ids_of(scroll_all(filled, "items", limit=7, flt=flt)) == expected
    hits = filled.search("items", [1.0, 0.0, 0.5], filter=flt, limit=100)
    assert ids_of(hits) == expected


def test_count_without_a_filter_counts_every_point(filled: VectorStore) -> None:
    assert filled.count("items") == 30
    assert filled.count("items", None) == 30


# Search -----------------------------------------------------------------------------------

# Four hand-made points; the query is [1, 0]. Each distance ranks them differently.
SHAPES = {"a": [0.5, 0.0], "b": [3.0, 4.0], "c": [-1.0, 0.0], "d": [0.0, 2.0]}
RANKINGS = {
    # cosine: similarity of directions, length ignored
    "cosine": (["a", "b", "d", "c"], [1.0, 0.6, 0.0, -1.0]),
    # dot: raw inner product
    "dot": (["b", "a", "d", "c"], [3.0, 0.5, 0.0, -1.0]),
    # euclid: the score is the distance, smallest first
    "euclid": (["a", "c", "d", "b"], [0.5, 2.0, math.sqrt(5), math.sqrt(20)]),
}


@pytest.mark.parametrize("distance", sorted(RANKINGS))
def test_search_returns_the_nearest_points_first_for_each_distance(
    store: VectorStore, distance: Any
) -> None:
    store.create_store("shapes", Space(size=2, distance=distance))
    names = {uid(n): key for n, key in enumerate(SHAPES)}
    store.upsert(
        "shapes",
        [VectorPoint(id=i, vector=SHAPES[k], payload={"name": k}) for i, k in names.items()],
    )
    order, scores = RANKINGS[distance]
    hits = store.search("shapes", [1.0, 0.0])
    assert [names[h.id] for h in hits] == order
    assert [h.payload["name"] for h in hits] == order
    assert [h.score for h in hits] == pytest.approx(scores, abs=1e-5)
    assert all(h.vector is None for h in hits)
    assert [names[h.id] for h in store.search("shapes", [1.0, 0.0], limit=2)] == order[:2]


def test_search_respects_the_filter_and_returns_vectors_when_asked(store: VectorStore) -> None:
    store.create_store("shapes", Space(size=2, distance="euclid"))
    store.create_index("shapes", "name", "keyword")
    names = {uid(n): key for n, key in enumerate(SHAPES)}
    store.upsert(
        "shapes",
        [VectorPoint(id=i, vector=SHAPES[k], payload={"name": k}) for i, k in names.items()],
    )
    flt = Filter(must_not=(MatchAny("name", ("a", "c")),))
    hits = store.search("shapes", [1.0, 0.0], filter=flt, with_vectors=True)
    assert [h.payload["name"] for h in hits] == ["d", "b"]
    assert [h.vector for h in hits] == [pytest.approx(SHAPES["d"]), pytest.approx(SHAPES["b"])]


def test_searching_an_empty_store_finds_nothing(store: VectorStore) -> None:
    store.create_store("docs", Space(size=2))
    assert store.search("docs", [1.0, 0.0]) == []


# Scroll -----------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 4, 29, 30, 31, 256])
def test_scrolling_visits_every_point_once_in_id_order(filled: VectorStore, limit: int) -> None:
    seen = scroll_all(filled, "items", limit=limit)
    expected = by_uuid([p.id for p in catalogue()])
    assert [p.id for p in seen] == expected
    assert [p.id for p in scroll_all(filled, "items", limit=limit)] == expected  # stable
    assert {p.id: p.payload for p in seen} == {p.id: p.payload for p in catalogue()}
    assert all(p.vector is None for p in seen)


def test_scrolling_with_changing_page_sizes_has_no_gap_and_no_duplicate(
    filled: VectorStore,
) -> None:
    cursor: str | None = None
    seen: list[str] = []
    for limit in [3, 1, 7, 2, 11, 5, 100]:
        page, cursor = filled.scroll("items", limit=limit, after=cursor)
        seen.extend(p.id for p in page)
        if cursor is None:
            break
    assert cursor is None
    assert seen == by_uuid([p.id for p in catalogue()])


@pytest.mark.parametrize("flt", [None, Filter(must=(MatchAny("colour", ("blue",)),))])
def test_a_scroll_resumed_from_a_saved_cursor_has_no_gap_and_no_duplicate(
    make_store: Factory, flt: Filter | None
) -> None:
    first = make_store()
    first.create_store("items", Space(size=3, distance="euclid"))
    first.create_index("items", "colour", "keyword")
    first.upsert("items", catalogue())
    head: list[str] = []
    page, cursor = first.scroll("items", filter=flt, limit=3)
    head += [p.id for p in page]
    page, cursor = first.scroll("items", filter=flt, limit=3, after=cursor)
    head += [p.id for p in page]
    assert isinstance(cursor, str)
    first.close()

    second = make_store()  # the cursor is a plain string: it outlives the adapter
    tail = [p.id for p in scroll_all_from(second, "items", cursor, flt)]
    wanted = [p.id for p in catalogue() if flt is None or p.payload["colour"] == "blue"]
    assert head + tail == by_uuid(wanted)


def scroll_all_from(
    store: VectorStore, name: str, cursor: str | None, flt: Filter | None
) -> list[VectorPoint]:
    seen: list[VectorPoint] = []
    while cursor is not None:
        page, cursor = store.scroll(name, filter=flt, limit=4, after=cursor)
        seen.extend(page)
    return seen


def test_scrolling_returns_vectors_when_asked(filled: VectorStore) -> None:
    page, _ = filled.scroll("items", limit=30, with_vectors=True)
    vectors = {p.id: p.vector for p in catalogue()}
    for point in page:
        assert point.vector == pytest.approx(vectors[point.id], rel=1e-6)


def test_scrolling_an_empty_store_ends_at_once(store: VectorStore) -> None:
    store.create_store("docs", Space(size=2))
    assert store.scroll("docs") == ([], None)


# Persistence and volume -------------------------------------------------------------------


def test_a_reopened_adapter_keeps_points_spaces_and_indexes(make_store: Factory) -> None:
    first = make_store()
    first.create_store("items", Space(size=3, distance="euclid"))
    first.create_store("other", Space(size=5, distance="dot"))
    first.create_index("items", "colour", "keyword")
    first.create_index("items", "weight", "float")
    first.upsert("items", catalogue())
    first.delete("items", [uid(4)])
    first.close()

    second = make_store()
    assert second.list_stores() == ["items", "other"]
    assert second.space("items") == Space(size=3, distance="euclid")
    assert second.space("other") == Space(size=5, distance="dot")
    assert second.count("items") == 29
    [point] = second.retrieve("items", [uid(7)], with_vectors=True)
    assert point.payload == catalogue()[7].payload
    assert point.vector == pytest.approx(catalogue()[7].vector, rel=1e-6)
    flt = Filter(must=(MatchAny("colour", ("red",)), Range("weight", lt=5.0)))
    assert second.count("items", flt) == 7  # red ranks below 20: 0, 3, ..., 18
    second.create_index("items", "colour", "keyword")
    if isinstance(second, EdgeStore):
        assert second.indexes("items") == {"colour": "keyword", "weight": "float"}
    second.upsert("other", [VectorPoint(id=uid(1), vector=[1.0] * 5)])
    assert second.count("other") == 1


def test_five_thousand_points_upserted_in_batches_are_all_counted(
    store: VectorStore, request: pytest.FixtureRequest
) -> None:
    store.create_store("bulk", Space(size=16, distance="cosine"))
    store.create_index("bulk", "bucket", "integer")
    points = [
        VectorPoint(
            id=str(uuid.UUID(int=i + 1)),
            vector=[math.sin(i * (d + 1)) for d in range(16)],
            payload={"bucket": i % 10, "label": f"p{i}"},
        )
        for i in range(5000)
    ]
    started = time.perf_counter()
    for start in range(0, len(points), 500):
        store.upsert("bulk", points[start : start + 500])
    elapsed = time.perf_counter() - started
    print(f"\n5,000-point upsert on {request.node.callspec.id}: {elapsed:.2f}s")
    assert store.count("bulk") == 5000
    assert store.count("bulk", Filter(must=(MatchAny("bucket", (3,)),))) == 500
    assert len(scroll_all(store, "bulk", limit=1000)) == 5000


# Qdrant Edge specifics (not part of the contract) -----------------------------------------


def test_edge_recreates_payload_indexes_its_metadata_records(tmp_path: Path) -> None:
    import qdrant_edge as qe

    first = EdgeStore(tmp_path)
    first.create_store("items", Space(size=3, distance="euclid"))
    first.create_index("items", "colour", "keyword")
    first.create_index("items", "rank", "integer")
    first.upsert("items", catalogue())
    first.close()
    shard = qe.EdgeShard.load(str(tmp_path / "items"))  # lose an index behind the store's back
    shard.update(qe.UpdateOperation.delete_field_index("rank"))
    assert set(shard.info().payload_schema) == {"colour"}
    shard.close()

    second = EdgeStore(tmp_path)
    try:
        assert second.indexes("items") == {"colour": "keyword", "rank": "integer"}
    finally:
        second.close()


def test_edge_shards_are_locked_to_one_open_adapter_until_close(tmp_path: Path) -> None:
    first = EdgeStore(tmp_path)
    first.create_store("docs", Space(size=2))
    first.upsert("docs", [VectorPoint(id=uid(1), vector=[1.0, 0.0])])
    second = EdgeStore(tmp_path)
    with pytest.raises(Exception, match="WAL"):
        second.count("docs")
    first.close()
    try:
        assert second.count("docs") == 1
    finally:
        second.close()
    assert first.count("docs") == 1  # a closed EdgeStore reopens its shards lazily
    first.close()


def test_edge_ignores_and_replaces_an_unfinished_store_directory(tmp_path: Path) -> None:
    (tmp_path / "docs" / "segments").mkdir(parents=True)  # no store.json: a create that died
    store = EdgeStore(tmp_path)
    try:
        assert store.list_stores() == []
        with pytest.raises(StoreNotFound):
            store.count("docs")
        store.create_store("docs", Space(size=2))
        assert store.list_stores() == ["docs"]
    finally:
        store.close()


def test_edge_rejects_store_names_that_are_not_plain_directory_names(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path)
    for bad in ["", "..", "a/b", "../escape"]:
        with pytest.raises(ValueError):
            store.create_store(bad, Space(size=2))
