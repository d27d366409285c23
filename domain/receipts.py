"""A command's receipt: the last event every command records. It makes a command_id an
idempotency key, and once a reader sees it, it sees everything the command did."""

from __future__ import annotations

from domain.base import Aggregate, keep_first_topics


class CommandReceipt(Aggregate):
    """That a command was applied: makes a command_id an idempotency key."""

    class Accepted(Aggregate.Created):
        command_id: str
        command_type: str
        body_digest: str

    def __init__(self, command_id: str, command_type: str, body_digest: str) -> None:
        self.command_id = command_id
        self.command_type = command_type
        self.body_digest = body_digest

    @staticmethod
    def id_for(command_id: str) -> str:
        return f"cmd:{command_id}"

    @classmethod
    def accept(cls, command_id: str, command_type: str, body_digest: str) -> CommandReceipt:
        return cls._create(
            cls.Accepted,
            id=cls.id_for(command_id),
            command_id=command_id,
            command_type=command_type,
            body_digest=body_digest,
        )


keep_first_topics(CommandReceipt)
