"""``envbranch status``: one stack at a glance, from its API's /metrics and /v1/health.

Components with their positions and lag, the commands stored by outcome, the dead-letter
queue's size, the tasks in progress, and the points in each vector store.
"""

from __future__ import annotations

import argparse
import os
from collections import defaultdict
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from envbranch.settings import Settings


def cmd_status(args: argparse.Namespace) -> int:
    """Print the state of the stack whose API is at --url (default: ENVBRANCH_API_HOST/PORT),
    read with an admin key (--api-key, or ENVBRANCH_API_KEY)."""
    url = (args.url or Settings.from_env().api_url).rstrip("/")
    key = args.api_key or os.environ.get("ENVBRANCH_API_KEY")
    if not key:
        print("envbranch: give an admin API key: --api-key or ENVBRANCH_API_KEY")
        return 2
    headers = {"Authorization": f"Bearer {key}"}
    try:
        text = httpx.get(f"{url}/metrics", headers=headers, timeout=10).raise_for_status().text
        health = httpx.get(f"{url}/v1/health", timeout=10).raise_for_status().json()
    except httpx.HTTPError as e:
        print(f"envbranch: cannot read {url}/metrics and /v1/health: {e}")
        return 1
    samples: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name].append((sample.labels, sample.value))
    print(f"stack at {url}: {health['status']}")
    _components(health)
    _commands(samples)
    dlq = samples.get("envbranch_dlq_entries")
    print(f"\ndead-letter queue: {int(dlq[0][1]) if dlq else '?'} entries")
    _tasks(samples)
    stores = samples.get("envbranch_vector_points", [])
    if stores:
        print("\nvector stores:")
        _table([["STORE", "POINTS"]] + [[lb["store"], f"{int(v)}"] for lb, v in stores])
    return 0


def _components(health: dict[str, Any]) -> None:
    rows = [["COMPONENT", "STATE", "POSITION", "LAG"]]
    for c in health.get("components") or []:
        position = "-" if c.get("position") is None else str(c["position"])
        lag = "-" if c.get("lag") is None else str(c["lag"])
        rows.append([c["name"], c["state"], position, lag])
        for p in c.get("partitions") or []:
            end = "?" if p.get("end") is None else p["end"]
            where = f"  {p['topic']}[{p['partition']}]"
            rows.append([where, "", f"{p['position']} of {end}", str(p.get("lag", "-"))])
    print()
    _table(rows)


def _commands(samples: dict[str, list[tuple[dict[str, str], float]]]) -> None:
    totals: dict[tuple[str, str], float] = defaultdict(float)
    for labels, v in samples.get("envbranch_commands_total", []):
        totals[(labels["outcome"], labels.get("code") or "")] += v
    if not totals:
        return
    print("\ncommands stored by this process's command processor:")
    rows = [["OUTCOME", "CODE", "COMMANDS"]]
    rows += [[o, c or "-", f"{int(v)}"] for (o, c), v in sorted(totals.items())]
    _table(rows)


def _tasks(samples: dict[str, list[tuple[dict[str, str], float]]]) -> None:
    counts = {
        (lb["task_type"], lb["status"]): int(v) for lb, v in samples.get("envbranch_tasks", [])
    }
    running = samples.get("envbranch_task_progress_percent", [])
    print(f"\ntasks: {sum(counts.values())} ({', '.join(_by_status(counts)) or 'none'})")
    if running:
        rows = [["TASK", "TYPE", "PROGRESS"]]
        rows += [[lb["task_id"], lb["task_type"], f"{v:.1f}%"] for lb, v in running]
        _table(rows)


def _by_status(counts: dict[tuple[str, str], int]) -> list[str]:
    by_status: dict[str, int] = defaultdict(int)
    for (_, status), n in counts.items():
        by_status[status.lower()] += n
    return [f"{n} {status}" for status, n in sorted(by_status.items())]


def _table(rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())


def add_parser(sub: Any) -> None:
    status = sub.add_parser("status", help=cmd_status.__doc__)
    status.add_argument("--url", help="the API's URL (default: from ENVBRANCH_API_HOST/PORT)")
    status.add_argument("--api-key", help="an admin key (default: ENVBRANCH_API_KEY)")
    status.set_defaults(func=cmd_status)
