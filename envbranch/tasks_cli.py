"""``envbranch tasks watch TASK_ID``: follow a deep copy, a reprocess or a taxonomy run.

It polls ``GET /v1/tasks/{id}`` and shows one line of progress: percent, points or
documents done of the total, and the rate. Exit 0 when the task completed, 1 when it
failed (with its error), 2 for an ID the API does not know, a refused key or an API that
cannot be reached.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

import httpx

from domain.ids import Kind, kind_of
from envbranch.progress import ProgressLine
from envbranch.settings import Settings

if TYPE_CHECKING:
    from contract.responses import Task
    from envbranch.client import Client

# How long a watch rides out an API that went away (a restart) before it gives up.
API_GRACE_SECONDS = 60.0


class WatchFailed(Exception):
    """The watch cannot go on; ``exit_code`` says why (2: bad input, 1: lost the API)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def progress_of(task: Task) -> tuple[int | None, int | None, float | None, str]:
    """(done, total, percent, unit) of a task: points for a copy, documents for the rest."""
    progress: dict[str, Any] = task.progress or {}
    percent = progress.get("percent")
    for done_key, total_key, unit in (
        ("points_copied", "points_total", "points"),
        ("documents_done", "documents_total", "documents"),
    ):
        if done_key in progress and progress.get(total_key):
            return int(progress[done_key]), int(progress[total_key]), percent, unit
    return None, None, percent, "points" if task.operation == "namespace_clone" else "documents"


def watch(
    client: Client,
    task_id: str,
    stream: TextIO,
    *,
    interval: float = 0.5,
    timeout: float | None = None,
    in_place: bool | None = None,
) -> Task:
    """Poll the task until it is COMPLETED or FAILED, showing its progress on ``stream``;
    return it. WatchFailed for an unknown ID or a lost API, TimeoutError after ``timeout``."""
    from envbranch.client import TERMINAL

    deadline = None if timeout is None else time.monotonic() + timeout
    line: ProgressLine | None = None
    try:
        while True:
            task = _get(client, task_id, deadline, reached=line is not None)
            done, total, percent, unit = progress_of(task)
            if line is None:
                line = ProgressLine(stream, unit, in_place=in_place, origin=None)
            if task.status == "COMPLETED":
                percent = 100.0
            line.update(done, total, percent, task.status)
            if task.status in TERMINAL:
                return task
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"task {task_id} still {task.status} after {timeout}s")
            time.sleep(interval)
    finally:
        if line is not None:
            line.finish()


def _get(client: Client, task_id: str, deadline: float | None, reached: bool) -> Task:
    """One poll. Until the API was ``reached`` once, an API that does not answer is bad
    input (exit 2); after, a restart is ridden out for API_GRACE_SECONDS (then exit 1)."""
    from envbranch.client import EnvbranchError

    lost_since: float | None = None
    while True:
        try:
            return client.tasks.get(task_id)
        except EnvbranchError as e:
            if e.status == 404:
                raise WatchFailed(f"no task {task_id!r}: {e.message}", 2) from None
            if e.status in (401, 403):
                raise WatchFailed(f"the API refused the key ({e.status}): {e.message}", 2) from None
            if e.status < 500:
                raise WatchFailed(f"the API answered {e.status} {e.type}: {e.message}", 2) from None
            error: Exception = e
        except httpx.TransportError as e:
            error = e
        now = time.monotonic()
        lost_since = lost_since or now
        if not reached or now - lost_since > API_GRACE_SECONDS:
            where = client._http.base_url  # noqa: SLF001 - the URL it was given
            raise WatchFailed(f"cannot reach the API at {where}: {error}", 1 if reached else 2)
        if deadline is not None and now > deadline:
            raise TimeoutError(f"lost the API while watching task {task_id}: {error}")
        time.sleep(1.0)


def cmd_tasks_watch(args: argparse.Namespace) -> int:
    """Follow a task (a namespace clone's deep copy, a reprocess, a taxonomy run) until it
    ends: 0 when it completed, 1 when it failed (or --timeout passed, or the API stayed
    away), 2 for an unknown ID."""
    from envbranch.client import Client

    if kind_of(args.task_id) is not Kind.TASK:  # never a path of the API's but a task's
        print(
            f"envbranch: {args.task_id!r} is not a task ID (task_<32 hex digits>)", file=sys.stderr
        )
        return 2
    url = args.url or os.environ.get("ENVBRANCH_URL") or Settings.from_env().api_url
    key = args.api_key or os.environ.get("ENVBRANCH_API_KEY")
    if not key:
        raise ValueError(
            "no API key: pass --api-key or set ENVBRANCH_API_KEY (`envbranch up` prints one)"
        )
    with Client(url, key, namespace=args.namespace) as client:
        try:
            task = watch(
                client, args.task_id, sys.stdout, interval=args.interval, timeout=args.timeout
            )
        except WatchFailed as e:
            print(f"envbranch: {e}", file=sys.stderr)
            return e.exit_code
        except TimeoutError as e:
            print(f"envbranch: {e}", file=sys.stderr)
            return 1
    if task.status == "FAILED":
        print(f"task {task.task_id} failed: {task.error or 'no error given'}", file=sys.stderr)
        return 1
    print(f"task {task.task_id} completed{_summary(task)}")
    return 0


def _summary(task: Task) -> str:
    result = task.result
    counts = getattr(result, "counts", None)
    if counts:
        copied = sum(getattr(result, "points", {}).values())
        made = ", ".join(f"{kind} {n}" for kind, n in counts.items() if n)
        return f": {made or 'nothing to clone'}; {copied} points copied"
    if isinstance(result, dict) and result.get("collection_id"):
        return f": collection {result['collection_id']}"
    return ""


def add_parser(sub: Any) -> None:
    """``envbranch tasks watch``."""
    tasks = sub.add_parser("tasks", help="follow asynchronous tasks (deep copies, reprocessing)")
    commands = tasks.add_subparsers(dest="tasks", required=True)
    watch_ = commands.add_parser("watch", help=cmd_tasks_watch.__doc__)
    watch_.add_argument(
        "task_id", metavar="TASK_ID", help="a task ID, as a clone or trigger answers"
    )
    watch_.add_argument(
        "--url", help="the API (default: ENVBRANCH_URL, else ENVBRANCH_API_HOST/PORT)"
    )
    watch_.add_argument("--api-key", help="an API key (default: ENVBRANCH_API_KEY)")
    watch_.add_argument("--namespace", help="sent as X-Namespace")
    watch_.add_argument(
        "--interval", type=_positive_seconds, default=0.5, help="seconds between polls (0.5)"
    )
    watch_.add_argument(
        "--timeout", type=_positive_seconds, default=None, help="give up after this many seconds"
    )
    watch_.set_defaults(func=cmd_tasks_watch)


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, not {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value
