"""The SDK is the shared models and an HTTP client: importing it loads no server code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SERVER_PACKAGES = (
    "projections",
    "consumers",
    "application",
    "faust",
    "fastapi",
    "uvicorn",
    "qdrant",
)

# Run in a fresh interpreter: this one has imported the server already (other tests do).
LOADED_MODULES = "import envbranch.client, json, sys; print(json.dumps(sorted(sys.modules)))"


def test_importing_the_sdk_loads_no_server_module() -> None:
    result = subprocess.run(
        [sys.executable, "-c", LOADED_MODULES],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded = json.loads(result.stdout)

    server_modules = [name for name in loaded if name.startswith(SERVER_PACKAGES)]

    assert server_modules == []
    assert "envbranch.client" in loaded
