"""/metrics: what the process's components report, in Prometheus' text format.

Counters and histograms are kept as things happen (here: how long an event took from
its storing to being applied by the read model or the vector processor; the command
processor's and the relay's in consumers.metrics). Gauges are read when scraped, from
sources the components register: each yields (family, labels, value) samples, and one
collector merges them into a family each, so a process running several components
(``envbranch up``) reports one family per name. A source that fails is left out of that
scrape, never the scrape itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from prometheus_client import REGISTRY, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from domain.envelopes import EventEnvelope

log = logging.getLogger(__name__)

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

VISIBLE_SECONDS = Histogram(
    "envbranch_event_applied_seconds",
    "From an event's storing until a consumer of the events topic applied it (per batch, "
    "its oldest event): the read model (component=projector) or the vector store "
    "(component=vectors)",
    ["component"],
    buckets=BUCKETS,
)

# Each gauge family: its help text and its labels, in order.
GAUGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "envbranch_consumer_lag": (
        "Records (or, for the relay, stored events) a component has not yet handled: the "
        "end of what it reads minus where it is",
        ("component", "topic", "partition"),
    ),
    "envbranch_position": (
        "The last position (events) or next offset (commands) a component handled",
        ("component", "topic", "partition"),
    ),
    "envbranch_dlq_entries": (
        "Entries written to the dead-letter queue topic (its end offset: what retention "
        "removed is still counted)",
        (),
    ),
    "envbranch_tasks": ("Tasks by type and status", ("task_type", "status")),
    "envbranch_task_progress_percent": (
        "Progress of each task in progress",
        ("task_id", "task_type"),
    ),
    "envbranch_task_points_copied": (
        "Points a namespace deep copy in progress has copied so far",
        ("task_id",),
    ),
    "envbranch_vector_points": ("Points in each vector store (one per vector space)", ("store",)),
}

Sample = tuple[str, dict[str, str], float]
Source = Callable[[], Iterable[Sample]]

_sources: dict[str, Source] = {}
_lock = threading.Lock()


def add_source(name: str, source: Source) -> None:
    """Report ``source``'s samples at every scrape (replacing one of the same name)."""
    with _lock:
        _sources[name] = source


def remove_source(name: str) -> None:
    with _lock:
        _sources.pop(name, None)


class _Gauges(Collector):
    def collect(self) -> Iterable[GaugeMetricFamily]:
        with _lock:
            sources = dict(_sources)
        samples: dict[str, list[tuple[dict[str, str], float]]] = {name: [] for name in GAUGES}
        for name, source in sources.items():
            try:
                for family, labels, value in source():
                    samples[family].append((labels, value))
            except Exception:  # noqa: BLE001 - one failing source leaves the rest standing
                log.debug("metrics source %s failed", name, exc_info=True)
        for family, (help_text, label_names) in GAUGES.items():
            gauge = GaugeMetricFamily(family, help_text, labels=list(label_names))
            for labels, value in samples[family]:
                gauge.add_metric([str(labels.get(k, "")) for k in label_names], value)
            yield gauge

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []  # read at scrape time: nothing to check at registration


REGISTRY.register(_Gauges())


def scrape() -> bytes:
    """The text every /metrics answers."""
    return generate_latest(REGISTRY)


def applied(component: str, envelopes: Sequence[EventEnvelope]) -> None:
    """Time a batch a consumer of the events topic applied, by its oldest event."""
    if envelopes:
        oldest = min(e.occurred_at.timestamp() for e in envelopes)
        VISIBLE_SECONDS.labels(component).observe(max(0.0, time.time() - oldest))


def lag(
    component: str, topic: str, partition: int, end: int | None, at: int | None
) -> list[Sample]:
    """A component's lag and position samples (none for what is not known yet)."""
    labels = {"component": component, "topic": topic, "partition": str(partition)}
    found: list[Sample] = []
    if at is not None:
        found.append(("envbranch_position", labels, float(at)))
        if end is not None:
            found.append(("envbranch_consumer_lag", labels, float(max(0, end - at))))
    return found


def task_samples(
    running: Iterable[dict[str, Any]],
    counts: Iterable[dict[str, Any]],
    progress_of: Callable[[Any], Any],
) -> list[Sample]:
    """Samples of the tasks in progress (task_id, task_type, progress) and of how many
    tasks there are by type and status (task_type, status, n)."""
    found: list[Sample] = []
    for row in running:
        progress = progress_of(row["progress"]) or {}
        labels = {"task_id": str(row["task_id"]), "task_type": str(row["task_type"])}
        found.append(("envbranch_task_progress_percent", labels, float(progress.get("percent", 0))))
        if "points_copied" in progress:
            copied = float(progress["points_copied"])
            found.append(("envbranch_task_points_copied", {"task_id": labels["task_id"]}, copied))
    for row in counts:
        labels = {"task_type": str(row["task_type"]), "status": str(row["status"])}
        found.append(("envbranch_tasks", labels, float(row["n"])))
    return found
