"""Fields of Mixpeek's request models that envbranch takes but does not act on.

Mixpeek's typed SDK validates a request against Mixpeek's model and sends its defaults
(``requires_subscription: false``, ``case_sensitive: false``, ``top_k: 1`` ...) on every
call, so refusing an unknown key would refuse every such call. A field made with
``option`` is accepted when it is left out, null, or Mixpeek's default, which asks for
nothing envbranch does differently, and is then dropped: it is None on the model, so it
is neither stored nor sent on the commands topic. Any other value asks for something
envbranch does not do, and is refused by name (a 422 naming the field).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import AfterValidator, WithJsonSchema


class Added:
    """Marks a field added to a command body after commands were first stored: when it is
    None, a command's digest leaves it out, so that a retry of a command stored before the
    field existed still matches its receipt (contract.commands.Command.digest)."""


ADDED = Added()


def option(*accepted: Any) -> Any:
    """A Mixpeek field accepted when absent, null or one of ``accepted`` (compared with
    its JSON type: ``true`` is not ``1``), and dropped. Give it the default None."""

    def check(value: Any) -> None:
        if value is None or any(_same(value, a) for a in accepted):
            return None
        allowed = " or ".join(json.dumps(a) for a in accepted)
        also = f" (or send {allowed}, Mixpeek's default)" if accepted else ""
        raise ValueError(f"a Mixpeek option envbranch does not support: leave it out{also}")

    values = ", ".join(json.dumps(a) for a in accepted)
    default = f" Accepted only as {values} or null." if accepted else " Accepted only as null."
    schema = {
        "enum": [*accepted, None],
        "description": f"Mixpeek's; envbranch does not act on it.{default}",
        "x-mixpeek-option": True,
    }
    return Annotated[Any, AfterValidator(check), WithJsonSchema(schema), ADDED]


def _same(value: Any, accepted: Any) -> bool:
    if isinstance(accepted, bool) or isinstance(value, bool):
        return type(value) is type(accepted) and value == accepted
    if isinstance(accepted, int | float) and isinstance(value, int | float):
        return float(value) == float(accepted)
    return type(value) is type(accepted) and value == accepted


# A field Mixpeek leaves null by default, and the defaults its SDK sends.
Unsupported = option()
FalseByDefault = option(False)
TrueByDefault = option(True)
NoFieldMap = option({})
OneLabel = option(1)
NoSample = option(0)
DefaultOverlap = option(0.7)
SlashSeparator = option("/")
ManagedMode = option("managed")
BatchOf1000 = option(1000)
FourWorkers = option(4)
