"""What a benchmark ran on, for its header line."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path


def machine() -> str:
    """CPUs, their model, memory, OS and Python, in one line."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return (
        f"{os.cpu_count()} CPUs ({cpu}){mem}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def version(name: str, missing: str = "?") -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return missing
