"""The vector materializer turns the event log into copy-on-write collections on Qdrant Edge."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from application.environments import Environments
from contract.commands import command_from_document
from domain import packed_vectors
from domain.envelopes import EventEnvelope, envelope_of
from projections.sql import Database
from projections.vectors.edge import EdgeStore
from projections.vectors.materializer import VectorMaterializer
from projections.vectors.views import CopyProgress

TEXT = {"feature_extractor_name": "text_extractor", "version": "v1", "params": {"dim": 64}}
OTHER = {"feature_extractor_name": "text_extractor", "version": "v1", "params": {"dim": 32}}


class World:
    """An event-sourced environment whose events feed a materializer."""

    def __init__(self, root: Path) -> None:
        self.app = Environments(
            env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": ":memory:"}
        )
        self.root = root
        self.progress: list[tuple[str, CopyProgress]] = []
        self.open()
        self.fed = 0

    def open(self) -> None:
        self.vectors = EdgeStore(self.root / "edge")
        self.materializer = VectorMaterializer(
            self.vectors,
            Database(sqlite_path=self.root / "vectors.sqlite3"),
            on_copy_progress=lambda task, c, p: self.progress.append((c, p)),
        )
        self.materializer.create_schema()

    def close(self) -> None:
        self.vectors.close()
        self.materializer.db.close()

    def run(self, type_: str, body: dict[str, Any]) -> None:
        doc = {"command_id": uuid.uuid4().hex, "type": type_, "body": body, "actor": "t"}
        self.app.execute(command_from_document(doc))

    def events(self) -> list[EventEnvelope]:
        return [
            envelope_of(n.id, self.app.mapper.to_domain_event(n))
            for n in self.app.recorder.select_notifications(1, 100_000)
        ]

    def feed(self) -> None:
        self.materializer.apply(self.events())

    def collection_id(self, namespace: str, name: str) -> str:
        for e in self.events():
            if e.type.startswith("Collection.") and e.data.get("collection_name") == name:
                ns = [x for x in self.events() if x.aggregate_id == e.namespace_id][0]
                if ns.data.get("namespace_name") == namespace:
                    return e.aggregate_id
        raise KeyError(name)

    def docs(self, collection_id: str) -> dict[str, dict[str, Any]]:
        return {
            d.id: {"payload": d.payload, "vector": d.vector}
            for d in self.materializer.cow.documents(collection_id)
        }


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.close()


def inside(body: dict[str, Any]) -> dict[str, Any]:
    return {"namespace_identifier": "prod", **body}


def setup(world: World, objects: int = 5) -> None:
    world.run("namespaces.create", {"namespace_name": "prod"})
    world.run("buckets.create", inside({"bucket_name": "b", "bucket_schema": {"properties": {}}}))
    add_objects(world, 0, objects)
    world.run(
        "collections.create",
        inside(
            {
                "collection_name": "docs",
                "source": {"type": "bucket", "bucket_ids": ["b"]},
                "feature_extractor": TEXT,
            }
        ),
    )


def add_objects(world: World, start: int, count: int) -> None:
    for first in range(start, start + count, 1000):  # at most 1,000 objects a command
        objects = [
            {"key": f"k{i}", "text": f"document {i} about topic {i % 3}", "metadata": {"n": i}}
            for i in range(first, min(first + 1000, start + count))
        ]
        world.run("buckets.objects.add", inside({"bucket_identifier": "b", "objects": objects}))


def checksum(docs: dict[str, dict[str, Any]]) -> str:
    canonical = json.dumps(
        {k: [v["payload"], [round(x, 5) for x in v["vector"]]] for k, v in docs.items()},
        sort_keys=True,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def test_objects_added_before_and_after_a_collection_exists_all_become_its_documents(
    world: World,
) -> None:
    setup(world, objects=5)
    add_objects(world, 5, 3)
    world.feed()
    docs = world.docs(world.collection_id("prod", "docs"))
    assert len(docs) == 8
    assert {d["payload"]["n"] for d in docs.values()} == set(range(8))
    assert all(len(d["vector"]) == 64 for d in docs.values())


def test_a_reuse_clone_shares_vectors_and_writes_stay_on_their_side(world: World) -> None:
    setup(world)
    world.run(
        "collections.clone", inside({"collection_identifier": "docs", "collection_name": "c"})
    )
    world.feed()
    source, clone = world.collection_id("prod", "docs"), world.collection_id("prod", "c")
    assert world.docs(clone) == world.docs(source)
    store = world.materializer.cow.view(source).store
    points_before = world.vectors.count(store)
    world.run(
        "collections.documents.write",
        inside({"collection_identifier": "c", "documents": [{"document_id": "new", "text": "x"}]}),
    )
    world.run(
        "collections.documents.delete",
        inside({"collection_identifier": "docs", "document_ids": [next(iter(world.docs(source)))]}),
    )
    world.feed()
    assert "new" in world.docs(clone) and "new" not in world.docs(source)
    assert len(world.docs(source)) == 4 and len(world.docs(clone)) == 6
    assert world.vectors.count(store) == points_before + 1  # only the divergence is stored


def test_a_namespace_clone_copies_every_point_with_progress(world: World) -> None:
    setup(world, objects=2500)
    world.run("namespaces.clone", {"namespace_identifier": "prod", "namespace_name": "stage"})
    world.feed()
    source, copy = world.collection_id("prod", "docs"), world.collection_id("stage", "docs")
    assert checksum(world.docs(copy)) == checksum(world.docs(source))
    reports = [p for c, p in world.progress if c == copy]
    assert [p.copied for p in reports] == sorted(p.copied for p in reports)
    assert reports[-1].done and reports[-1].copied == reports[-1].total == 2500
    assert len(reports) >= 3  # in batches


def test_a_deep_copy_killed_halfway_resumes_without_duplicates_or_gaps(world: World) -> None:
    setup(world, objects=3000)
    world.run("namespaces.clone", {"namespace_identifier": "prod", "namespace_name": "stage"})
    crash_after = 2

    def crash(task_id: str, collection_id: str, progress: CopyProgress) -> None:
        if len(world.progress) >= crash_after:
            raise KeyboardInterrupt  # the process dies between two batches
        world.progress.append((collection_id, progress))

    world.materializer.on_copy_progress = crash
    with pytest.raises(KeyboardInterrupt):
        world.feed()
    world.close()
    world.open()  # a new process on the same files
    world.progress.clear()
    world.feed()
    source, copy = world.collection_id("prod", "docs"), world.collection_id("stage", "docs")
    assert world.progress[0][1].copied > 1024  # it went on from the saved cursor
    assert world.progress[-1][1].done
    assert world.materializer.cow.count(copy) == 3000
    assert checksum(world.docs(copy)) == checksum(world.docs(source))


def test_a_clone_with_a_new_extractor_starts_empty_in_its_own_space(world: World) -> None:
    setup(world)
    world.run(
        "collections.clone",
        inside(
            {"collection_identifier": "docs", "collection_name": "v2", "feature_extractor": OTHER}
        ),
    )
    world.feed()
    clone = world.collection_id("prod", "v2")
    assert world.docs(clone) == {}
    source_store = world.materializer.cow.view(world.collection_id("prod", "docs")).store
    assert world.materializer.cow.view(clone).store != source_store


def test_documents_bring_their_own_vectors_or_are_embedded(world: World) -> None:
    setup(world, objects=0)
    vector = [1.0] + [0.0] * 63
    documents = [{"document_id": "own", "vector": vector}, {"document_id": "txt", "text": "hi"}]
    world.run(
        "collections.documents.write",
        inside({"collection_identifier": "docs", "documents": documents}),
    )
    world.feed()
    docs = world.docs(world.collection_id("prod", "docs"))
    assert docs["own"]["vector"] == pytest.approx(vector)
    assert docs["txt"]["payload"]["text"] == "hi" and len(docs["txt"]["vector"]) == 64


def test_vectors_arrive_packed_and_land_as_those_of_an_event_from_before_packing(
    world: World,
) -> None:
    setup(world, objects=0)
    values = [0.1 * (i + 1) for i in range(64)]
    documents = [
        {"document_id": "listed", "vector": values},
        {"document_id": "packed", "vector": packed_vectors.pack(values)},
    ]
    world.run(
        "collections.documents.write",
        inside({"collection_identifier": "docs", "documents": documents}),
    )
    (written,) = [e for e in world.events() if e.type == "Collection.DocumentsWritten"]
    assert [d["vector"] for d in written.data["documents"]] == [packed_vectors.pack(values)] * 2
    # as a version before packing wrote it: the same document with its vector as a list
    older = written.model_copy(
        update={
            "position": world.events()[-1].position + 1,
            "data": {"documents": [{"document_id": "older", "vector": values, "payload": {}}]},
        }
    )
    world.materializer.apply([*world.events(), older])
    docs = world.docs(world.collection_id("prod", "docs"))
    assert docs["listed"]["vector"] == docs["packed"]["vector"] == docs["older"]["vector"]
    norm = sum(v * v for v in values) ** 0.5  # the collection's space is cosine: kept unit
    assert docs["packed"]["vector"] == pytest.approx([v / norm for v in values])


def test_redelivered_events_change_nothing(world: World) -> None:
    setup(world)
    world.feed()
    position = world.materializer.position()
    before = world.docs(world.collection_id("prod", "docs"))
    assert world.materializer.apply(world.events()) == 0
    assert world.materializer.position() == position
    assert world.docs(world.collection_id("prod", "docs")) == before


def test_reprocessing_re_embeds_the_source_objects_with_the_new_extractor(world: World) -> None:
    setup(world, objects=300)
    world.run(
        "collections.clone",
        inside(
            {"collection_identifier": "docs", "collection_name": "v2", "feature_extractor": OTHER}
        ),
    )
    world.run("collections.trigger", inside({"collection_identifier": "v2"}))
    reports: list[tuple[int, int, bool]] = []
    world.materializer.on_reprocess_progress = lambda task, d, t, f: reports.append((d, t, f))
    world.feed()
    docs = world.docs(world.collection_id("prod", "v2"))
    assert len(docs) == 300
    assert {len(d["vector"]) for d in docs.values()} == {32}  # the new extractor's size
    assert reports[-1] == (300, 300, True)
    assert [d for d, _, _ in reports] == sorted(d for d, _, _ in reports)


def test_a_long_chain_of_reuse_clones_is_compacted_and_its_garbage_collected(world: World) -> None:
    setup(world, objects=50)
    world.materializer.gc_interval = 0.0
    names = ["docs"] + [f"c{i}" for i in range(12)]
    for source, clone in zip(names, names[1:], strict=False):
        world.run(
            "collections.clone", inside({"collection_identifier": source, "collection_name": clone})
        )
        document = {"document_id": f"doc-{clone}", "text": f"written in {clone}"}
        world.run(
            "collections.documents.write",
            inside({"collection_identifier": clone, "documents": [document]}),
        )
    world.feed()
    cow = world.materializer.cow
    last = world.collection_id("prod", "c11")
    assert len(cow.view(last).layers) <= 8 + 1
    assert len(world.docs(last)) == 50 + 12  # every ancestor's write is still there
    assert len(world.docs(world.collection_id("prod", "docs"))) == 50
    store = cow.view(last).store
    views = [world.collection_id("prod", n) for n in names]
    assert world.vectors.count(store) <= sum(len(world.docs(v)) for v in views)
    assert cow.collect_garbage() == 0  # collected already, nothing referenced was removed
