"""The topics' contract as JSON Schema (2020-12) files that any Kafka client can load.

Generated from the models the processors use: the command envelope and every command
body (``contract.commands``), the event envelope (``domain.envelopes``) and every event
type (``domain.events``). An event's ``data`` is what ``envelope_of`` writes: the event
class's fields, minus those the envelope carries itself (``NOT_DATA``), each with the type
its class declares.

Every file stands alone (each ``$ref`` points inside it) and says what this version
writes and accepts: an unknown command type or event type is refused, and so is a key
that a command or an event's ``data`` does not have. ``schemas/index.json`` names the
file of each type.
``envbranch schemas [--out DIR]`` writes them; tests/test_topic_schemas.py fails when
the committed files differ from what the models give.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, create_model
from pydantic.json_schema import models_json_schema

from contract.commands import BODIES, INTERNAL_COMMANDS, CommandEnvelope
from domain.envelopes import NOT_DATA, EventEnvelope, Topics
from domain.events import EVENT_TYPES

DRAFT = "https://json-schema.org/draft/2020-12/schema"
REGENERATE = "envbranch schemas"  # the command that writes the files (python -m envbranch)
COMMANDS_TOPIC, EVENTS_TOPIC = Topics().commands, Topics().events  # the default prefix
_GENERATED = f"Generated from the models by `{REGENERATE}`; do not edit."


def command_file(command_type: str) -> str:
    """Where the schema of a command type's body is, relative to the schemas folder."""
    return f"commands/{command_type}.json"


def event_file(event_type: str) -> str:
    """Where the schema of an event type's envelope is, relative to the schemas folder."""
    return f"events/{event_type}.json"


def _headed(schema_id: str, title: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with its header first, as a reader opening the file wants it."""
    rest = {k: _plain(v) for k, v in schema.items() if k not in {"title", "description"}}
    head = {"$schema": DRAFT, "$id": schema_id, "title": title, "description": description}
    return {**head, **rest}


def _plain(node: Any) -> Any:
    """Without OpenAPI's ``discriminator`` (pydantic writes it for a tagged union, whose
    ``const`` tags say the same in JSON Schema): a strict validator (Ajv's default)
    refuses a keyword it does not know."""
    if isinstance(node, dict):
        return {
            k: _plain(v)
            for k, v in node.items()
            if not (k == "discriminator" and isinstance(v, dict) and "propertyName" in v)
        }
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def _doc(cls: type) -> str | None:
    """The class's own docstring: an event class made by the library keeps its source
    class's under the same name, and a dataclass without one gets its signature."""
    for klass in cls.__mro__:
        doc = klass.__dict__.get("__doc__")
        if klass.__qualname__ != cls.__qualname__:
            break
        if doc and not doc.startswith(f"{klass.__name__}("):
            return " ".join(doc.split())
    return None


# --- commands -----------------------------------------------------------------------


def _body_description(command_type: str, body: type[BaseModel]) -> str:
    said = [
        f"The body of a `{command_type}` command on {COMMANDS_TOPIC} "
        f"(its envelope: {command_file('envelope')})."
    ]
    if command_type in INTERNAL_COMMANDS:
        said.append("Internal: only envbranch's vector processor sends it.")
    if (doc := _doc(body)) is not None:
        said.append(doc)
    said.append(
        "Some rules are checked by the processor alone (a value one field allows only "
        "with another, and what an identifier names)."
    )
    return " ".join(said)


def command_body_schema(command_type: str) -> dict[str, Any]:
    """The JSON Schema of one command type's body."""
    body = BODIES[command_type]
    return _headed(
        command_file(command_type),
        command_type,
        _body_description(command_type, body),
        body.model_json_schema(),
    )


def command_envelope_schema() -> dict[str, Any]:
    """A whole command: the envelope, its ``type`` one of the known command types, and its
    ``body`` that type's body (the bodies are under ``$defs``)."""
    types = sorted(BODIES)
    refs, defs = models_json_schema([(BODIES[t], "validation") for t in types])
    schema = CommandEnvelope.model_json_schema()
    schema["properties"]["type"]["enum"] = types
    schema["properties"]["body"]["description"] = "Its schema depends on type (see allOf)."
    schema["allOf"] = [_when_type_is(t, {"body": refs[(BODIES[t], "validation")]}) for t in types]
    schema["$defs"] = defs["$defs"]
    description = (
        f"A command on {COMMANDS_TOPIC}, the Kafka message value as JSON. Its body "
        f"follows its type: {command_file('<type>')} has each body alone."
    )
    return _headed(command_file("envelope"), "Command envelope", description, schema)


def _when_type_is(value: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "if": {"properties": {"type": {"const": value}}, "required": ["type"]},
        "then": {"properties": properties},
    }


# --- events ---------------------------------------------------------------------------


def _data_model(event_type: str) -> type[BaseModel]:
    """What ``envelope_of`` writes as an event's ``data``, as a model: the fields the class
    declares, minus the envelope's own, typed as declared, required unless defaulted."""
    cls = EVENT_TYPES[event_type]
    hints = typing.get_type_hints(cls)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]  # the library's dataclass
        if f.name in NOT_DATA:
            continue
        if f.default is not dataclasses.MISSING:
            fields[f.name] = (hints[f.name], f.default)
        elif f.default_factory is not dataclasses.MISSING:
            fields[f.name] = (hints[f.name], f.default_factory())
        else:
            fields[f.name] = (hints[f.name], ...)
    return create_model(
        event_type.replace(".", "_"),
        __config__=ConfigDict(extra="forbid"),
        __doc__=f"What a {event_type} event records.",
        **fields,
    )


def _data_schema(event_type: str) -> dict[str, Any]:
    schema = _data_model(event_type).model_json_schema()
    if "$defs" in schema:  # only plain types so far; a model would need its $defs hoisted
        raise NotImplementedError(f"{event_type}: data with nested models")
    schema["title"] = f"{event_type} data"
    return schema


def _event_description(event_type: str) -> str:
    said = [f"A {event_type} event on {EVENTS_TOPIC}, the Kafka message value as JSON."]
    if (doc := _doc(EVENT_TYPES[event_type])) is not None:
        said.append(doc)
    said.append(
        "data holds what the event records; namespace_id, command_id and actor are in "
        "the envelope, never in data."
    )
    return " ".join(said)


def event_schema(event_type: str) -> dict[str, Any]:
    """The JSON Schema of one event type's envelope, ``data`` as that type writes it."""
    schema = EventEnvelope.model_json_schema()
    schema["properties"]["type"] = {"const": event_type, "title": "Type"}
    schema["properties"]["data"] = _data_schema(event_type)
    return _headed(event_file(event_type), event_type, _event_description(event_type), schema)


def event_envelope_schema() -> dict[str, Any]:
    """Any event: the envelope, its ``type`` one of the known event types, and its
    ``data`` that type's (under ``$defs``)."""
    types = sorted(EVENT_TYPES)
    schema = EventEnvelope.model_json_schema()
    schema["properties"]["type"]["enum"] = types
    schema["properties"]["data"]["description"] = "Its schema depends on type (see allOf)."
    schema["allOf"] = [_when_type_is(t, {"data": {"$ref": f"#/$defs/{t}"}}) for t in types]
    schema["$defs"] = {t: _data_schema(t) for t in types}
    description = (
        f"An event on {EVENTS_TOPIC}, the Kafka message value as JSON (key: aggregate_id; "
        f"header position: the same as the envelope's). {event_file('<Type>')} has each "
        "type alone. Consumers deduplicate by position."
    )
    return _headed(event_file("envelope"), "Event envelope", description, schema)


# --- files ------------------------------------------------------------------------------


def index() -> dict[str, Any]:
    """Which file describes which command type and event type."""
    return {
        "$comment": _GENERATED,
        "commands": {
            "topic": COMMANDS_TOPIC,
            "envelope": command_file("envelope"),
            "types": {t: command_file(t) for t in sorted(BODIES)},
            "internal": sorted(INTERNAL_COMMANDS),
        },
        "events": {
            "topic": EVENTS_TOPIC,
            "envelope": event_file("envelope"),
            "types": {t: event_file(t) for t in sorted(EVENT_TYPES)},
        },
    }


def _text(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def schema_files() -> dict[str, str]:
    """Every file of the contract: its path relative to the schemas folder, its text."""
    files = {"index.json": _text(index())}
    files[command_file("envelope")] = _text(command_envelope_schema())
    files.update({command_file(t): _text(command_body_schema(t)) for t in sorted(BODIES)})
    files[event_file("envelope")] = _text(event_envelope_schema())
    files.update({event_file(t): _text(event_schema(t)) for t in sorted(EVENT_TYPES)})
    return files


def write_schemas(out: Path) -> list[Path]:
    """Write every file under ``out``, and remove the JSON files in its commands/ and
    events/ folders that no type has any more. Returns the files written."""
    files = schema_files()
    for folder in ("commands", "events"):
        for stale in sorted((out / folder).glob("*.json")):
            if stale.relative_to(out).as_posix() not in files:
                stale.unlink()
    written = []
    for name, text in files.items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
