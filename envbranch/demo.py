"""``envbranch demo``: the whole story on the embedded defaults, against a real corpus.

Production searches Python's standard-library docstrings with the default text
extractor; staging is a clone where the embedding model is swapped for
all-MiniLM-L6-v2 and a rerank stage is added; an evaluation compares them, the
``live`` ref is promoted through a quality gate (a worse candidate is refused
first), rolled back, and the audit log is replayed and verified. Every step
checks what it claims; the demo exits 0 only if all of them held.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import httpx

from contract.responses import Task
from envbranch.client import Client, EnvbranchError
from envbranch.corpus import evaluation_queries, load_corpus
from envbranch.tasks_cli import WatchFailed, watch

TEXT = {"feature_extractor_name": "text_extractor", "version": "v1"}
MINILM = {"feature_extractor_name": "minilm_extractor", "version": "v1"}
INPUTS = {"query": {"type": "text", "required": True}}
GATE = {"thresholds": [{"metric": "ndcg@10", "min_change": -0.01}]}


def search_stage(top_k: int = 10) -> dict[str, Any]:
    return {
        "stage_name": "search",
        "config": {
            "stage_id": "feature_search",
            "parameters": {
                "searches": [{"query": "{{INPUT.query}}", "top_k": 20}],
                "final_top_k": top_k,
            },
        },
    }


RERANK = {
    "stage_name": "rerank",
    "config": {
        "stage_id": "rerank",
        "parameters": {"query": "{{INPUT.query}}", "extractor": MINILM, "top_k": 10},
    },
}


class StepFailed(Exception):
    pass


class Story:
    """The demo's steps against any running stack; ``say`` prints what happened, and
    ``progress`` (a stream), if given, shows the progress of the steps that wait."""

    def __init__(
        self,
        client: Client,
        say: Callable[[str], None] = print,
        modules: int = 11,
        progress: TextIO | None = None,
    ):
        self.client = client
        self.say = say
        self.progress = progress
        self.corpus = load_corpus().sample(modules)
        self.results: list[tuple[str, bool]] = []

    def wait(self, task_id: str, timeout: float) -> Task:
        """The task once it has ended, its progress shown on the way."""
        if self.progress is None:
            return self.client.tasks.wait(task_id, timeout=timeout)
        return watch(self.client, task_id, self.progress, interval=0.2, timeout=timeout)

    def check(self, step: str, ok: bool, detail: str) -> None:
        self.results.append((step, ok))
        self.say(f"{'ok  ' if ok else 'FAIL'} {step}: {detail}")
        if not ok:
            raise StepFailed(f"{step}: {detail}")

    def production(self, ns: str) -> None:
        c = self.client
        c.namespaces.create({"namespace_name": ns, "description": "what users search today"})
        c.buckets.create(
            {"bucket_name": "stdlib", "bucket_schema": {"properties": {}}}, namespace=ns
        )
        c.collections.create(
            {
                "collection_name": "docs",
                "source": {"type": "bucket", "bucket_ids": ["stdlib"]},
                "feature_extractor": TEXT,
            },
            namespace=ns,
        )
        objects = self.corpus.as_objects()
        for start in range(0, len(objects), 200):
            c.buckets.add_objects("stdlib", objects[start : start + 200], namespace=ns)
        c.retrievers.create(
            {
                "retriever_name": "search",
                "collection_identifiers": ["docs"],
                "stages": [search_stage()],
                "input_schema": INPUTS,
            },
            namespace=ns,
        )
        c.evaluation_sets.create(
            {
                "evaluation_set_name": "stdlib-queries",
                "description": "module summaries; relevant: the module and its members",
                "set_type": "retriever",
                "id_field": "key",
                "queries": evaluation_queries(self.corpus),
            },
            namespace=ns,
        )
        ref = c.refs.create(
            {"ref_name": "live", "target_kind": "retriever", "target": "search"}, namespace=ns
        )
        docs = c.collections.get("docs", namespace=ns)
        self.check(
            "create production",
            ref.target_id == c.retrievers.get("search", namespace=ns).retriever_id,
            f"namespace {ns!r}: {len(objects)} stdlib docstrings in collection docs "
            f"({docs.feature_extractor['feature_extractor_name']}), retriever search, "
            f"{len(self.corpus.queries)} judged queries, ref live -> search",
        )

    def staging(self, ns: str, staging: str) -> str:
        c = self.client
        answer = c.namespaces.clone(ns, {"namespace_name": staging})
        task = self.wait(answer.task_id, timeout=300)
        copied = (task.progress or {}).get("points_copied")
        self.check(
            "clone production to staging",
            task.status == "COMPLETED",
            f"task {task.task_id} {task.status}, {copied} vectors copied into {staging!r}",
        )
        c.collections.clone(
            "docs",
            {"collection_name": "docs-minilm", "feature_extractor": MINILM},
            namespace=staging,
        )
        waiting = c.collections.get("docs-minilm", namespace=staging).status
        started = c.collections.trigger("docs-minilm", namespace=staging)
        done = self.wait(started["task_id"], timeout=600)
        ready = c.collections.get("docs-minilm", namespace=staging).status
        self.check(
            "swap the embedding model in staging and reprocess",
            waiting == "awaiting_reprocess" and done.status == "COMPLETED" and ready == "ready",
            f"docs-minilm was {waiting}, reprocessing task {done.status}, now {ready}",
        )
        clone = c.retrievers.clone(
            "search",
            {
                "retriever_name": "search-minilm-rerank",
                "collection_identifiers": ["docs-minilm"],
                "stages": [search_stage(20), RERANK],
            },
            namespace=staging,
        )
        self.check(
            "add a rerank stage to a cloned retriever",
            [s["stage_name"] for s in clone.retriever.stages] == ["search", "rerank"],
            f"{clone.retriever.retriever_id} cloned from {clone.source_retriever_id}",
        )
        return clone.retriever.retriever_id

    def compare(self, ns: str, candidate: str) -> dict[str, float]:
        c = self.client
        evaluation = c.evaluations.run(
            {"evaluation_set": "stdlib-queries", "candidate": candidate, "baseline": "ref:live"},
            namespace=ns,
        )
        new, old = (r.metrics for r in evaluation.runs)
        self.check(
            "compare both with an evaluation",
            len(evaluation.runs) == 2,
            f"{evaluation.evaluation_id}: nDCG@10 {old['ndcg@10']:.3f} -> {new['ndcg@10']:.3f}, "
            f"recall@10 {old['recall@10']:.3f} -> {new['recall@10']:.3f}, "
            f"MRR {old['mrr']:.3f} -> {new['mrr']:.3f}",
        )
        return new

    def promote(self, ns: str, staging: str, candidate: str) -> None:
        c = self.client
        before = c.refs.get("live", namespace=ns).target_id
        worse = c.retrievers.clone(
            "search", {"retriever_name": "search-top3", "stages": [search_stage(3)]}, namespace=ns
        ).retriever.retriever_id
        body = {"candidate": worse, "evaluation_set": "stdlib-queries", "gate": GATE}
        try:
            c.refs.promote("live", {**body, "reason": "fewer results"}, namespace=ns)
            refused, failed = False, "it was promoted"
        except EnvbranchError as e:
            refused = e.type == "gate_failed"
            failed = ", ".join(f["metric"] for f in (e.details or {}).get("failures", []))
        after = c.refs.get("live", namespace=ns).target_id
        self.check(
            "a worse candidate fails the gate",
            refused and after == before,
            f"search-top3 refused on {failed}; live still -> {after}",
        )
        body = {"candidate": candidate, "evaluation_set": "stdlib-queries", "gate": GATE}
        result = c.refs.promote("live", {**body, "reason": "MiniLM + rerank"}, namespace=ns)
        served = c.retrievers.execute("ref:live", {"query": "Heap queue algorithm"}, namespace=ns)
        self.check(
            "promote through the gate",
            result.promoted and served["retriever_id"] == candidate,
            f"live -> {candidate} in {staging!r} (gate: nDCG@10 no worse than -1%); "
            f"ref:live now serves it",
        )

    def roll_back(self, ns: str, baseline: str) -> int:
        c = self.client
        ref = c.refs.rollback("live", {"to": "previous", "reason": "demo"}, namespace=ns)
        served = c.retrievers.execute("ref:live", {"query": "Heap queue algorithm"}, namespace=ns)
        self.check(
            "roll back",
            ref.target_id == baseline and served["retriever_id"] == baseline,
            f"live -> {baseline} again; history: " + " -> ".join(h.action for h in ref.history),
        )
        return ref.history[-1].position

    def diff(self, ns: str, staging: str) -> None:
        d = self.client.diff(ns, staging)
        extra = [f"{r['kind']} {r['name']}" for r in d["only_in_to"]]
        self.check(
            "diff production and staging",
            any("docs-minilm" in x for x in extra),
            f"only in staging: {', '.join(extra)}; only in production: "
            f"{', '.join(r['kind'] + ' ' + r['name'] for r in d['only_in_from']) or 'nothing'}",
        )


def run_story(
    client: Client,
    verify: Callable[[int], tuple[bool, str]],
    say=print,
    progress: TextIO | None = None,
) -> Story:
    """Every step against a running stack; ``verify(position)`` replays and verifies;
    ``progress``: where the waiting steps show their progress (none by default)."""
    story = Story(client, say, progress=progress)
    suffix = os.urandom(3).hex()
    ns, staging = f"production-{suffix}", f"staging-{suffix}"
    story.production(ns)
    baseline = client.retrievers.get("search", namespace=ns).retriever_id
    candidate = story.staging(ns, staging)
    story.compare(ns, candidate)
    story.promote(ns, staging, candidate)
    story.roll_back(ns, baseline)
    story.diff(ns, staging)
    position = client.checkpoint("demo").position
    ok, detail = verify(position)
    story.check("replay the audit log and verify it", ok, detail)
    return story


@contextmanager
def embedded_stack(data_dir: Path) -> Iterator[tuple[str, str, dict[str, str]]]:
    """``envbranch up`` on a fresh data directory: (API URL, admin key, environment)."""
    from envbranch.broker import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENVBRANCH_", "KAFKA_"))}
    env.update(ENVBRANCH_DATA_DIR=str(data_dir), ENVBRANCH_API_PORT=str(port), HF_HUB_OFFLINE="1")
    log_path = data_dir / "up.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "envbranch", "up"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        key = _wait(lambda: _admin_key(log_path), process, "the admin key")
        _wait(lambda: _healthy(url), process, "the API")
        yield url, key, env
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _admin_key(log_path: Path) -> str | None:
    for line in log_path.read_text(errors="replace").splitlines():
        if line.startswith("admin API key"):
            return line.rsplit(" ", 1)[-1]
    return None


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v1/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _wait(found: Callable[[], Any], process: subprocess.Popen, what: str) -> Any:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        if process.poll() is not None:
            raise StepFailed(f"envbranch up exited ({process.returncode}) before {what}")
        time.sleep(0.1)
    raise StepFailed(f"gave up waiting for {what}")


def verifier(
    env: dict[str, str], into: Path, progress: TextIO | None = None
) -> Callable[[int], tuple[bool, str]]:
    """Replays the event store up to a position into ``into`` and verifies the digests,
    showing the replay's progress on ``progress`` if given."""

    def verify(position: int) -> tuple[bool, str]:
        from envbranch.bootstrap import open_event_store, open_read_model
        from envbranch.replay import ProgressBar, replay
        from envbranch.settings import Settings

        settings = Settings.from_env(env)
        live = open_read_model(settings)
        deadline = time.monotonic() + 60
        while live.position() < position and time.monotonic() < deadline:
            time.sleep(0.05)
        bar = None
        if progress is not None:
            in_place = progress.isatty()
            bar = ProgressBar(progress, in_place=in_place, min_interval=0 if in_place else 1)
        report = replay(open_event_store(settings), into, position, live, bar)
        detail = (
            f"{report.events_applied} events rebuilt into {into}; digests of every table "
            f"equal at positions {report.verified_positions}"
            if report.ok
            else f"mismatches: {report.mismatches}"
        )
        return report.ok and position in report.verified_positions, detail

    return verify


def main(args: argparse.Namespace) -> int:
    """Run the demo; 0 only if every step did what it said."""
    data_dir = (
        Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="envbranch-demo-"))
    )
    print(f"envbranch demo: embedded stack in {data_dir}", flush=True)
    try:
        with embedded_stack(data_dir) as (url, key, env), Client(url, key) as client:
            verify = verifier(env, data_dir / "replay", sys.stdout)
            story = run_story(client, verify, _say, sys.stdout)
    except (StepFailed, EnvbranchError, WatchFailed, TimeoutError) as e:
        print(f"demo failed: {e}", flush=True)
        return 1
    finally:
        if not args.keep and not args.data_dir:
            shutil.rmtree(data_dir, ignore_errors=True)
    print(f"demo passed: {len(story.results)} steps did what they said", flush=True)
    return 0


def _say(line: str) -> None:
    print(line, flush=True)
