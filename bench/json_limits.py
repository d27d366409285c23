"""What reading within the JSON limits costs, against plain ``json.loads`` on the same bytes.

Every command and every HTTP body is read by ``domain.json_limits.parse`` (depth, finite
numbers, 64-bit integers, valid Unicode) instead of ``json.loads``. Times both on three
shapes of body, in one process, and prints the ratio (parse / loads):

- 150 documents with their own 384-d vectors (the ingestion path, ~750 KB);
- 1,000 bucket objects with text and small metadata (~150 KB);
- a retriever create with stages (~1 KB).

    python bench/json_limits.py [--repeat 50]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from machine import machine

from domain import json_limits


def bodies() -> dict[str, bytes]:
    vectors = {
        "documents": [
            {"document_id": f"d{i}", "vector": [0.1 + i * 1e-4] * 384, "payload": {"n": i}}
            for i in range(150)
        ]
    }
    objects = {
        "objects": [
            {"key": f"k{i}", "text": "lorem ipsum " * 8, "metadata": {"topic": "t", "rank": i}}
            for i in range(1000)
        ]
    }
    retriever = {
        "retriever_name": "search",
        "collection_identifiers": ["docs"],
        "stages": [
            {
                "stage_name": "search",
                "config": {
                    "stage_id": "feature_search",
                    "parameters": {"searches": [{"query": "{{INPUT.q}}", "top_k": 10}]},
                },
            }
        ],
        "input_schema": {"q": {"type": "string"}},
    }
    return {
        name: json.dumps(body).encode()
        for name, body in (("vectors", vectors), ("objects", objects), ("retriever", retriever))
    }


def median_ms(fn: Callable[[bytes], Any], raw: bytes, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn(raw)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"{'body':<10} {'bytes':>9} {'json.loads ms':>14} {'parse ms':>9} {'ratio':>6}")
    for name, raw in bodies().items():
        loads = median_ms(json.loads, raw, args.repeat)
        parse = median_ms(json_limits.parse, raw, args.repeat)
        print(f"{name:<10} {len(raw):>9} {loads:>14.3f} {parse:>9.3f} {parse / loads:>5.2f}x")


if __name__ == "__main__":
    main()
