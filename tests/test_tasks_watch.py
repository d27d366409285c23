"""Long work shows progress: `envbranch tasks watch` follows a deep copy to its end, and
`envbranch replay` shows how far it got and how fast."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from envbranch.progress import ProgressLine
from tests.conftest import LiveStack

FULL = "[" + "#" * 30 + "] 100%"


def watch(url: str, key: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENVBRANCH_", "KAFKA_"))}
    if key is not None:
        env["ENVBRANCH_API_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "envbranch", "tasks", "watch", *args, "--url", url],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,  # the deadline: a watch that hangs fails here
    )


def progress_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("[")]


# --- against the live stack --------------------------------------------------------------


def test_watching_a_deep_copy_shows_it_to_100_percent_and_exits_0(live_stack: LiveStack) -> None:
    client = live_stack.client()
    ns = f"watched-{uuid.uuid4().hex[:8]}"
    client.namespaces.create({"namespace_name": ns})
    client.buckets.create(
        {"bucket_name": "docs", "bucket_schema": {"properties": {}}}, namespace=ns
    )
    client.collections.create(
        {
            "collection_name": "docs",
            "source": {"type": "bucket", "bucket_ids": ["docs"]},
            "feature_extractor": {"feature_extractor_name": "text_extractor", "version": "v1"},
        },
        namespace=ns,
    )
    documents = [{"document_id": f"d{i}", "text": f"document {i}"} for i in range(600)]
    for start in range(0, len(documents), 200):
        client.collections.write_documents("docs", documents[start : start + 200], namespace=ns)
    started = client.namespaces.clone(ns, {"namespace_name": f"{ns}-copy", "vectors": "copy"})

    done = watch(live_stack.url, live_stack.admin_key, started.task_id, "--interval", "0.1")

    assert done.returncode == 0, done.stdout + done.stderr
    lines = progress_lines(done.stdout)
    assert lines, done.stdout
    # Not a TTY: one line per change, no carriage returns; the last at 100%.
    assert "\r" not in done.stdout
    assert lines[-1].startswith(FULL), lines
    assert "600/600 points" in lines[-1] and lines[-1].endswith("COMPLETED")
    assert len(lines) == len(set(lines))  # a line only when something changed
    assert done.stdout.splitlines()[-1] == (
        f"task {started.task_id} completed: buckets 1, collections 1; 600 points copied"
    )


UNKNOWN = "task_" + "0" * 32
T1 = "task_" + "1" * 32


def test_watching_an_unknown_task_exits_2_saying_so(live_stack: LiveStack) -> None:
    done = watch(live_stack.url, live_stack.admin_key, UNKNOWN)
    assert done.returncode == 2
    assert f"envbranch: no task '{UNKNOWN}'" in done.stderr
    assert done.stdout == ""
    # what is not a task ID never becomes a path of the API's (../keys would be GET /v1/keys)
    for bad in ("../keys", "no-such-task", "task_1?x=1"):
        refused = watch(live_stack.url, live_stack.admin_key, bad)
        assert refused.returncode == 2 and "is not a task ID" in refused.stderr


def test_watching_without_a_key_or_an_api_exits_2_saying_why(live_stack: LiveStack) -> None:
    no_key = watch(live_stack.url, None, UNKNOWN)
    assert no_key.returncode == 2
    assert "no API key: pass --api-key or set ENVBRANCH_API_KEY" in no_key.stderr
    refused = watch(live_stack.url, "eb_wrong", UNKNOWN)
    assert refused.returncode == 2
    assert "the API refused the key (401)" in refused.stderr
    from envbranch.broker import free_port

    nowhere = f"http://127.0.0.1:{free_port()}"
    unreachable = watch(nowhere, "eb_any", UNKNOWN)
    assert unreachable.returncode == 2
    assert f"cannot reach the API at {nowhere}" in unreachable.stderr


def test_replay_shows_events_applied_of_the_total(live_stack: LiveStack, tmp_path: Any) -> None:
    client = live_stack.client()
    client.namespaces.create({"namespace_name": f"replayed-{uuid.uuid4().hex[:8]}"})
    into = tmp_path / "replay"
    done = subprocess.run(
        [sys.executable, "-m", "envbranch", "replay", "--into", str(into)],
        env=live_stack.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    applied = int(done.stdout.split("replayed ", 1)[1].split(" ", 1)[0])
    until = int(done.stdout.split("(positions 1..", 1)[1].split(")", 1)[0])
    lines = progress_lines(done.stderr)
    assert lines and "\r" not in done.stderr  # into a pipe: lines, not a redrawn bar
    assert lines[-1].startswith(f"{FULL}  {until}/{until} events"), lines
    assert applied >= 1


# --- a task that fails, from a stand-in API ----------------------------------------------


@contextmanager
def scripted_api(answers: list[dict[str, Any]]) -> Iterator[str]:
    """An API whose GET /v1/tasks/t1 answers each of ``answers`` in turn (the last again)."""

    class Api(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            answer = answers.pop(0) if len(answers) > 1 else answers[0]
            body = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def task(status: str, done: int, total: int, **more: Any) -> dict[str, Any]:
    return {
        "task_id": T1,
        "task_type": "api_collections_trigger",
        "operation": "reprocess",
        "namespace_id": "ns1",
        "status": status,
        "progress": {
            "documents_done": done,
            "documents_total": total,
            "percent": 100.0 * done / total,
        },
        **more,
    }


def test_a_failed_task_exits_1_with_its_error() -> None:
    answers = [
        task("PENDING", 0, 40),
        task("IN_PROGRESS", 10, 40),
        task("IN_PROGRESS", 10, 40),
        task("IN_PROGRESS", 30, 40),
        task("FAILED", 30, 40, error="the extractor ran out of memory"),
    ]
    with scripted_api(answers) as url:
        done = watch(url, "eb_key", T1, "--interval", "0.05")
    assert done.returncode == 1
    assert f"task {T1} failed: the extractor ran out of memory" in done.stderr
    lines = progress_lines(done.stdout)
    shown = [(ln.split("] ", 1)[1].split("%")[0].strip(), ln.rsplit("  ", 1)[1]) for ln in lines]
    # the repeated answer made no line of its own
    assert shown == [
        ("0", "PENDING"),
        ("25", "IN_PROGRESS"),
        ("75", "IN_PROGRESS"),
        ("75", "FAILED"),
    ]
    assert "30/40 documents" in lines[-1]


# --- the progress line -------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_on_a_terminal_the_line_is_redrawn_in_place_with_rate_and_eta() -> None:
    out, clock = io.StringIO(), Clock()
    line = ProgressLine(out, "points", in_place=True, width=10, origin=None, clock=clock)
    line.update(1000, 10000, note="IN_PROGRESS")
    clock.now += 2
    line.update(5000, 10000, note="IN_PROGRESS")
    clock.now += 2
    line.update(10000, 10000, note="COMPLETED")
    line.finish()
    first = "[#---------]  10%  1000/10000 points  IN_PROGRESS"
    second = "[#####-----]  50%  5000/10000 points  2,000 points/s  ETA 3s  IN_PROGRESS"
    third = "[##########] 100%  10000/10000 points  2,250 points/s  COMPLETED"
    # what a shorter line leaves of the one before is blanked
    assert out.getvalue() == (
        f"\r{first}\r{second}\r{third}" + " " * (len(second) - len(third)) + "\n"
    )


def test_into_a_file_each_change_is_a_line_at_most_one_per_interval() -> None:
    out, clock = io.StringIO(), Clock()
    line = ProgressLine(out, "events", in_place=False, width=10, min_interval=1.0, clock=clock)
    for done in (500, 1000, 1500):  # within one second: the first shows, the rest wait
        clock.now += 0.1
        line.update(done, 3000)
    clock.now += 1.0
    line.update(2000, 3000)
    line.update(2000, 3000)  # no change: nothing
    clock.now += 0.1
    line.update(3000, 3000)
    line.finish()  # the last state always shows
    assert out.getvalue().splitlines() == [
        "[#---------]  16%  500/3000 events",
        "[######----]  66%  2000/3000 events  1,538 events/s  ETA 1s",
        "[##########] 100%  3000/3000 events  2,143 events/s",
    ]


def test_a_percentage_alone_is_shown_when_there_is_no_count() -> None:
    out = io.StringIO()
    line = ProgressLine(out, "points", in_place=False, width=4)
    line.update(None, None, 100.0, "COMPLETED")
    assert out.getvalue() == "[####] 100%  COMPLETED\n"
