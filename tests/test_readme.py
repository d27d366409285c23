"""The README's topic contract runs as written: one accepted example per command type."""

from __future__ import annotations

import json
import re
from pathlib import Path

from contract.commands import BODIES, INTERNAL_COMMANDS
from domain.envelopes import Topics
from envbranch.settings import Settings
from tests.support import BackgroundStack, dlq_entries, encode, events_until, produce, receipts

README = Path(__file__).resolve().parent.parent / "README.md"


def example_commands() -> list[dict]:
    text = README.read_text()
    section = text.split("One example per command type", 1)[1].split("The rules behind them", 1)[0]
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", section, re.S)]


def test_the_readme_has_one_example_for_every_command_type() -> None:
    assert sorted(c["type"] for c in example_commands()) == sorted(set(BODIES) - INTERNAL_COMMANDS)


def test_every_readme_example_is_accepted_in_order(
    sqlite_settings: Settings, bootstrap: str, created_topics: Topics
) -> None:
    topics = created_topics
    commands = example_commands()
    with BackgroundStack(sqlite_settings, bootstrap, ("command-processor", "relay")):
        produce(bootstrap, topics.commands, [encode(c) for c in commands])
        wanted = {c["command_id"] for c in commands}
        try:
            events = events_until(bootstrap, topics, lambda ev: wanted <= set(receipts(ev)))
        except AssertionError as e:
            raise AssertionError(f"{e}; DLQ: {dlq_entries(bootstrap, topics)}") from None
    [copying] = [e for e in events if e.type == "CloneTask.Copying"]
    assert copying.data["result"]["counts"] == {
        "buckets": 1,
        "collections": 2,
        "retrievers": 2,
        "taxonomies": 2,
    }
