"""Pilothouse: a terminal control room for coding agents."""

# The version's one source. pyproject.toml reads it (`[tool.setuptools.dynamic]`, statically,
# without importing the package), so the installed metadata that importlib.metadata reports is
# this string; `--version` prints it without importing importlib.metadata, which alone costs
# about as much as starting Python (email, zipfile, csv). tests/core/test_cli_start.py holds the
# two equal.
__version__ = "0.1.0"
