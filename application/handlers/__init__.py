"""What handles each command: one table keyed by the command body's class."""

from __future__ import annotations

from application.handlers import namespaces, releases, resources, tasks
from application.unit import Handlers
from contract.commands import BODIES

HANDLERS: Handlers = {
    **namespaces.HANDLERS,
    **resources.HANDLERS,
    **tasks.HANDLERS,
    **releases.HANDLERS,
}

_unhandled = sorted(t for t, body in BODIES.items() if body not in HANDLERS)
if _unhandled:
    raise RuntimeError(f"command types without a handler: {', '.join(_unhandled)}")
