"""The application layer: handlers per command, the unit of work, idempotency receipts."""
