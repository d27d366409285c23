"""The README's SDK session runs as written against a running stack."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import LiveStack

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_sdk_sessions_run_as_written(live_stack: LiveStack, tmp_path: Path) -> None:
    text = README.read_text()
    section = text.split("## From Python: the SDK", 1)[1].split("\n## ", 1)[0]
    envbranch_session, mixpeek_session = re.findall(r"```python\n(.*?)```", section, re.S)
    assert run(envbranch_session, live_stack, tmp_path / "envbranch_session.py") == [
        "{'buckets': 1, 'collections': 2, 'retrievers': 1, 'taxonomies': 0}",
        "422 immutable_field",
    ]
    # the same session with Mixpeek's SDK, in namespaces of its own
    assert run(mixpeek_session, live_stack, tmp_path / "mixpeek_session.py") == [
        "completed lighthouse",
        "COMPLETED api_namespaces_create",
        "422 immutable_field",
    ]


def run(code: str, live_stack: LiveStack, script: Path) -> list[str]:
    script.write_text(code)
    env = {**os.environ, "ENVBRANCH_URL": live_stack.url, "ENVBRANCH_API_KEY": live_stack.admin_key}
    result = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()
