"""Pilothouse: a terminal control room for coding agents."""

import importlib.metadata

__version__ = importlib.metadata.version("pilothouse")
