"""The release commands of the CLI: `envbranch audit`, `diff` and `checkpoint`, on a live stack."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from envbranch.bootstrap import open_read_model
from envbranch.cli import main as cli_main
from envbranch.settings import Settings
from tests.conftest import LiveStack

TEXT = {"feature_extractor_name": "text_extractor", "version": "v1"}
SEARCH = {"stage_name": "search", "config": {"stage_id": "feature_search", "parameters": {}}}


@dataclass
class World:
    ns: str
    staging: str
    ref_id: str
    env: dict[str, str]


@pytest.fixture(scope="module")
def world(live_stack: LiveStack) -> World:
    """A namespace with a ref created and moved, and a clone of it that changed since."""
    ns = f"cli-{uuid.uuid4().hex[:8]}"
    staging = f"{ns}-staging"
    with live_stack.client() as client:
        client.namespaces.create({"namespace_name": ns})
        client.buckets.create(
            {"bucket_name": "docs", "bucket_schema": {"properties": {"text": {"type": "text"}}}},
            namespace=ns,
        )
        client.collections.create(
            {
                "collection_name": "docs",
                "source": {"type": "bucket", "bucket_ids": ["docs"]},
                "feature_extractor": TEXT,
            },
            namespace=ns,
        )
        client.collections.write_documents(
            "docs", [{"document_id": "a", "text": "alpha"}], namespace=ns
        )
        for name in ("search", "search-2"):
            client.retrievers.create(
                {"retriever_name": name, "collection_identifiers": ["docs"], "stages": [SEARCH]},
                namespace=ns,
            )
        ref = client.refs.create(
            {"ref_name": "production", "target_kind": "retriever", "target": "search"},
            namespace=ns,
        )
        client.refs.move("production", {"target": "search-2", "reason": "cli"}, namespace=ns)

        started = client.namespaces.clone(ns, {"namespace_name": staging, "vectors": "reuse"})
        assert client.tasks.wait(started.task_id, timeout=60).status == "COMPLETED"
        client.retrievers.update("search", {"description": "tuned"}, namespace=staging)
        client.retrievers.clone("search", {"retriever_name": "search-3"}, namespace=staging)
        client.collections.write_documents(
            "docs", [{"document_id": "b", "text": "beta"}], namespace=staging
        )
    env = {
        **live_stack.env,
        "ENVBRANCH_URL": live_stack.url,
        "ENVBRANCH_API_KEY": live_stack.admin_key,
    }
    return World(ns, staging, ref.ref_id, env)


@pytest.fixture
def cli_env(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stack's environment (and the admin key) for commands run in this process."""
    for name in list(os.environ):
        if name.startswith(("ENVBRANCH_", "KAFKA_")):
            monkeypatch.delenv(name)
    for name, value in world.env.items():
        if name.startswith(("ENVBRANCH_", "KAFKA_")):
            monkeypatch.setenv(name, value)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert cli_main(list(argv)) == 0
    return capsys.readouterr().out


# --- audit --------------------------------------------------------------------------------


def test_audit_json_lists_the_ref_moves(world: World, cli_env: None, capsys: Any) -> None:
    out = run_cli(capsys, "audit", "--type", "Ref.Moved", "--json", "--limit", "1000")
    answer = json.loads(out)
    mine = [e for e in answer["results"] if e["aggregate_id"] == world.ref_id]
    assert len(mine) == 1
    assert mine[0]["type"] == "Ref.Moved"
    assert {e["type"] for e in answer["results"]} == {"Ref.Moved"}
    assert answer["total"] >= 1


def test_audit_prints_an_aligned_table_filtered_by_resource(
    world: World, cli_env: None, capsys: Any
) -> None:
    out = run_cli(capsys, "audit", "--resource", world.ref_id)
    header, *rows = out.splitlines()
    assert header.split() == [
        "POSITION",
        "OCCURRED_AT",
        "ACTOR",
        "TYPE",
        "AGGREGATE_ID",
        "COMMAND_ID",
    ]
    assert [row.split()[3] for row in rows] == ["Ref.Created", "Ref.Moved"]
    assert all(row.split()[4] == world.ref_id for row in rows)
    # Aligned: every column starts where its header does.
    for title in ("OCCURRED_AT", "TYPE", "AGGREGATE_ID"):
        column = header.index(title)
        assert all(row[column - 2 : column] == "  " and row[column] != " " for row in rows)
    positions = [int(row.split()[0]) for row in rows]
    assert positions == sorted(positions)

    # Positions and times narrow it down.
    out = run_cli(capsys, "audit", "--resource", world.ref_id, "--from-position", str(positions[1]))
    assert [row.split()[3] for row in out.splitlines()[1:]] == ["Ref.Moved"]
    created_at = rows[0].split()[1]
    out = run_cli(capsys, "audit", "--resource", world.ref_id, "--until", created_at)
    assert [row.split()[3] for row in out.splitlines()[1:]] == ["Ref.Created"]


def test_audit_refuses_a_time_without_a_timezone(cli_env: None, capsys: Any) -> None:
    assert cli_main(["audit", "--since", "2025-01-01T00:00:00"]) == 2
    assert "no timezone" in capsys.readouterr().err


# --- diff ---------------------------------------------------------------------------------


def test_diff_prints_what_changed_in_the_clone(world: World, cli_env: None, capsys: Any) -> None:
    out = run_cli(capsys, "diff", world.ns, world.staging)
    lines = out.splitlines()
    assert lines[0] == f"diff {world.ns} -> {world.staging}"
    assert f"only in {world.staging}: retriever search-3" in lines
    assert "changed: retriever search" in lines
    assert '  description: "" -> "tuned"' in lines
    assert "changed: collection docs" in lines
    assert "  documents: 1 added, 0 removed, 0 changed, 1 unchanged" in lines
    assert not any(line.startswith(f"only in {world.ns}:") for line in lines)

    answer = json.loads(run_cli(capsys, "diff", world.ns, world.staging, "--json"))
    assert answer["summary"]["only_in_to"] == 1
    assert {(c["kind"], c["name"]) for c in answer["changed"]} == {
        ("collection", "docs"),
        ("retriever", "search"),
    }


def test_diff_of_a_namespace_with_itself_shows_nothing(
    world: World, cli_env: None, capsys: Any
) -> None:
    out = run_cli(capsys, "diff", world.ns, world.ns)
    assert "no differences" in out.splitlines()


def test_diff_needs_an_api_key_and_reports_api_errors(
    world: World, cli_env: None, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli_main(["diff", world.ns, "no-such-namespace"]) == 2
    assert "404 not_found" in capsys.readouterr().err
    monkeypatch.delenv("ENVBRANCH_API_KEY")
    assert cli_main(["diff", world.ns, world.staging]) == 2
    assert "ENVBRANCH_API_KEY is not set" in capsys.readouterr().err


# --- checkpoint ---------------------------------------------------------------------------


def test_checkpoint_prints_the_position_and_its_digests(world: World) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "envbranch", "checkpoint", "--reason", "from the cli"],
        env=world.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    match = re.match(r"checkpoint at position (\d+)\n", done.stdout)
    assert match, done.stdout
    position = int(match.group(1))
    digests = dict(line.split() for line in done.stdout.splitlines()[1:])
    live = open_read_model(Settings.from_env(world.env))
    assert digests == live.recorded_digests(position)
    assert {"audit", "namespaces", "refs"} <= digests.keys()
    live.db.close()
