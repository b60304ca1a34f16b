"""The `pilothouse` command: main.py builds the group from one module per command group."""
