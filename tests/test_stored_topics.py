"""Stored events name their classes by topic; every store written so far holds these
names, so moving a class between modules must not change them."""

from __future__ import annotations

from eventsourcing.utils import get_topic, resolve_topic

from domain.events import AGGREGATES, EVENT_TYPES

# Each aggregate and event class of the model, as stores name them.
STORED_TOPICS = {
    "ApplyTaxonomyTask": "domain.aggregates:ApplyTaxonomyTask",
    "ApplyTaxonomyTask.Completed": "domain.aggregates:ApplyTaxonomyTask.Completed",
    "ApplyTaxonomyTask.Created": "domain.aggregates:ApplyTaxonomyTask.Created",
    "ApplyTaxonomyTask.Progressed": "domain.aggregates:ApplyTaxonomyTask.Progressed",
    "Bucket": "domain.aggregates:Bucket",
    "Bucket.Cloned": "domain.aggregates:Bucket.Cloned",
    "Bucket.Created": "domain.aggregates:Bucket.Created",
    "Bucket.Deleted": "domain.aggregates:Bucket.Deleted",
    "Bucket.DescriptionChanged": "domain.aggregates:Bucket.DescriptionChanged",
    "Bucket.ObjectsAdded": "domain.aggregates:Bucket.ObjectsAdded",
    "Bucket.Renamed": "domain.aggregates:Bucket.Renamed",
    "Checkpoint": "domain.refs:Checkpoint",
    "Checkpoint.Created": "domain.refs:Checkpoint.Created",
    "Checkpoint.Requested": "domain.refs:Checkpoint.Requested",
    "CloneTask": "domain.aggregates:CloneTask",
    "CloneTask.Completed": "domain.aggregates:CloneTask.Completed",
    "CloneTask.CopyProgressed": "domain.aggregates:CloneTask.CopyProgressed",
    "CloneTask.Copying": "domain.aggregates:CloneTask.Copying",
    "CloneTask.Created": "domain.aggregates:CloneTask.Created",
    "Collection": "domain.aggregates:Collection",
    "Collection.Cloned": "domain.aggregates:Collection.Cloned",
    "Collection.Created": "domain.aggregates:Collection.Created",
    "Collection.Deleted": "domain.aggregates:Collection.Deleted",
    "Collection.DescriptionChanged": "domain.aggregates:Collection.DescriptionChanged",
    "Collection.DocumentsDeleted": "domain.aggregates:Collection.DocumentsDeleted",
    "Collection.DocumentsWritten": "domain.aggregates:Collection.DocumentsWritten",
    "Collection.Renamed": "domain.aggregates:Collection.Renamed",
    "Collection.ReprocessStarted": "domain.aggregates:Collection.ReprocessStarted",
    "Collection.Reprocessed": "domain.aggregates:Collection.Reprocessed",
    "CommandReceipt": "domain.aggregates:CommandReceipt",
    "CommandReceipt.Accepted": "domain.aggregates:CommandReceipt.Accepted",
    "CommandReceipt.Created": "domain.aggregates:CommandReceipt.Created",
    "Evaluation": "domain.quality:Evaluation",
    "Evaluation.Created": "domain.quality:Evaluation.Created",
    "Evaluation.Recorded": "domain.quality:Evaluation.Recorded",
    "EvaluationSet": "domain.quality:EvaluationSet",
    "EvaluationSet.Created": "domain.quality:EvaluationSet.Created",
    "Namespace": "domain.aggregates:Namespace",
    "Namespace.Cloned": "domain.aggregates:Namespace.Cloned",
    "Namespace.Created": "domain.aggregates:Namespace.Created",
    "Namespace.Deleted": "domain.aggregates:Namespace.Deleted",
    "Namespace.DescriptionChanged": "domain.aggregates:Namespace.DescriptionChanged",
    "Namespace.Renamed": "domain.aggregates:Namespace.Renamed",
    "Namespace.ResourceAdded": "domain.aggregates:Namespace.ResourceAdded",
    "Namespace.ResourceRemoved": "domain.aggregates:Namespace.ResourceRemoved",
    "Namespace.ResourceRenamed": "domain.aggregates:Namespace.ResourceRenamed",
    "NamespaceName": "domain.aggregates:NamespaceName",
    "NamespaceName.Claimed": "domain.aggregates:NamespaceName.Claimed",
    "NamespaceName.Created": "domain.aggregates:NamespaceName.Created",
    "NamespaceName.Released": "domain.aggregates:NamespaceName.Released",
    "Ref": "domain.refs:Ref",
    "Ref.Created": "domain.refs:Ref.Created",
    "Ref.Moved": "domain.refs:Ref.Moved",
    "Ref.PromotionRefused": "domain.refs:Ref.PromotionRefused",
    "ReprocessTask": "domain.aggregates:ReprocessTask",
    "ReprocessTask.Completed": "domain.aggregates:ReprocessTask.Completed",
    "ReprocessTask.Created": "domain.aggregates:ReprocessTask.Created",
    "ReprocessTask.Progressed": "domain.aggregates:ReprocessTask.Progressed",
    "Retriever": "domain.aggregates:Retriever",
    "Retriever.Cloned": "domain.aggregates:Retriever.Cloned",
    "Retriever.Created": "domain.aggregates:Retriever.Created",
    "Retriever.Deleted": "domain.aggregates:Retriever.Deleted",
    "Retriever.DescriptionChanged": "domain.aggregates:Retriever.DescriptionChanged",
    "Retriever.Renamed": "domain.aggregates:Retriever.Renamed",
    "Taxonomy": "domain.aggregates:Taxonomy",
    "Taxonomy.Cloned": "domain.aggregates:Taxonomy.Cloned",
    "Taxonomy.Created": "domain.aggregates:Taxonomy.Created",
    "Taxonomy.Deleted": "domain.aggregates:Taxonomy.Deleted",
    "Taxonomy.DescriptionChanged": "domain.aggregates:Taxonomy.DescriptionChanged",
    "Taxonomy.Renamed": "domain.aggregates:Taxonomy.Renamed",
}


def test_every_stored_class_keeps_the_topic_stores_know_it_by() -> None:
    current = {cls.__qualname__: get_topic(cls) for cls in AGGREGATES}
    current.update({name: get_topic(cls) for name, cls in EVENT_TYPES.items()})
    assert {name: current.get(name) for name in STORED_TOPICS} == STORED_TOPICS


def test_a_stored_topic_resolves_to_the_class_that_reads_it_now() -> None:
    known = {**{cls.__qualname__: cls for cls in AGGREGATES}, **EVENT_TYPES}
    for name, topic in STORED_TOPICS.items():
        assert resolve_topic(topic) is known[name]
