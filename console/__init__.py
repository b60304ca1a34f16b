"""Pilothouse: a terminal control room for coding agents."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    # PEP 562: `__version__` comes from the package metadata, read on first use, because
    # importing importlib.metadata costs about as much as starting Python and most commands
    # (`ps`, `approvals`) never show the version.
    if name == "__version__":
        from importlib.metadata import version

        return version("pilothouse")
    raise AttributeError(f"module 'console' has no attribute {name!r}")
