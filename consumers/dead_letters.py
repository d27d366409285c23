"""Rejected commands onto envbranch.commands.dlq: the original bytes and the reason.

The reason travels in headers (a code, and the whole reason as JSON), with the
command's source partition and offset, so whoever sent the command can match its
rejection, and whatever the command held the entry fits one Kafka message.
"""

from __future__ import annotations

import json

from aiokafka import AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import MessageSizeTooLargeError

from domain import json_limits
from domain.errors import CommandRejected


def _command_id_of(raw: bytes | None) -> str | None:
    """The command_id of a rejected message, when it has a readable one."""
    try:
        document = json_limits.parse(raw or b"")
    except CommandRejected:
        return None
    command_id = document.get("command_id") if isinstance(document, dict) else None
    return command_id if isinstance(command_id, str) else None


MAX_COMMAND_ID = 256  # as the envelope allows; a longer one is not named in a header
MAX_ERROR_HEADER = 8 * 1024


def error_header(rejected: CommandRejected) -> bytes:
    """The reason as JSON, small enough to travel whatever the command held: a problem
    list or a field path quoting huge keys is shortened, never allowed to stop the DLQ."""
    reason = rejected.as_dict()
    header = json.dumps(reason, default=str).encode()
    if len(header) <= MAX_ERROR_HEADER:
        return header
    details = reason.get("details") or {}
    problems = details.get("problems") if isinstance(details, dict) else None
    short: dict[str, object] = {
        "code": reason["code"],
        "message": str(reason["message"])[:500],  # at most 3 KB as UTF-8 JSON
        "details": {"truncated": True},
    }
    if isinstance(reason.get("field"), str) and len(reason["field"]) <= 500:
        short["field"] = reason["field"]
    if problems:
        short["details"] = {"truncated": True, "problems_count": len(problems)}
    return json.dumps(short, default=str, ensure_ascii=False).encode()


async def send_to_dlq(
    producer: AIOKafkaProducer,
    topic: str,
    record: ConsumerRecord,
    rejected: CommandRejected,
    max_command_bytes: int,
) -> None:
    """Put one rejected command on the DLQ and wait until the broker has it."""
    headers = [
        ("envbranch.error.code", str(rejected.code).encode()),
        ("envbranch.error", error_header(rejected)),
        ("envbranch.source.topic", record.topic.encode()),
        ("envbranch.source.partition", str(record.partition).encode()),
        ("envbranch.source.offset", str(record.offset).encode()),
    ]
    command_id = _command_id_of(record.value)
    if command_id is not None and len(command_id) <= MAX_COMMAND_ID:
        headers.append(("envbranch.command_id", command_id.encode()))
    value = record.value or b""
    try:
        await producer.send_and_wait(topic, value, key=record.key, headers=headers)
    except MessageSizeTooLargeError:
        # The entry must fit whatever made it too large: the value, the key or both (the
        # headers are bounded); failing that, the reason alone.
        headers.append(("envbranch.truncated_from", str(len(value)).encode()))
        key = (record.key or b"")[:1024] or None
        try:
            limit = max_command_bytes // 2
            await producer.send_and_wait(topic, value[:limit], key=key, headers=headers)
        except MessageSizeTooLargeError:
            await producer.send_and_wait(topic, b"", key=None, headers=headers)
