"""envbranch: the CLI, settings, embedded stack and client-side helpers."""

__version__ = "0.1.0"
