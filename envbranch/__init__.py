"""envbranch: the CLI, settings, embedded stack, and the Python SDK."""

from envbranch.client import Client, EnvbranchError
from envbranch.publisher import Publisher

__all__ = ["Client", "EnvbranchError", "Publisher"]
__version__ = "0.1.0"
