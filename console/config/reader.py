"""Reading one parsed config file with the line of every key at hand, so each refusal names
file, line and reason."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from console.config.schema import ConfigError, Rule
from console.config.units import parse_duration

_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")


def _split_dotted(name: str) -> tuple[str, ...]:
    return tuple(part.strip().strip("\"'") for part in name.split("."))


class Locator:
    """Finds the line of a table, key or list value in TOML text (best effort, for messages)."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.tables: dict[tuple[str, ...], int] = {}
        self.table_of_line: list[tuple[str, ...]] = []
        current: tuple[str, ...] = ()
        for i, line in enumerate(self.lines, start=1):
            m = _HEADER.match(line)
            if m:
                current = _split_dotted(m.group(1))
                self.tables.setdefault(current, i)
            self.table_of_line.append(current)

    def key(self, table: tuple[str, ...], key: str | None = None) -> int | None:
        # A key may be a table of its own, or written as a dotted/inline key in a parent table.
        if key is not None and table + (key,) in self.tables:
            return self.tables[table + (key,)]
        for depth in range(len(table), -1, -1):
            owner, rest = table[:depth], table[depth:]
            wanted = ".".join(rest + ((key,) if key else ()))
            if not wanted:
                return self.tables.get(owner) or self.first_below(owner)
            pattern = re.compile(r"^\s*" + re.escape(wanted).replace(r"\.", r"\s*\.\s*") + r"\s*=")
            for i, line in enumerate(self.lines, start=1):
                if self.table_of_line[i - 1] == owner and pattern.match(line):
                    return i
            first = rest[0] if rest else key
            inline = re.compile(r"^\s*" + re.escape(first or "") + r"\s*=")
            for i, line in enumerate(self.lines, start=1):
                if self.table_of_line[i - 1] == owner and first and inline.match(line):
                    return i
        return self.tables.get(table) or self.first_below(table)

    def first_below(self, table: tuple[str, ...]) -> int | None:
        """The first header inside `table`, for a table written only through its sub-tables
        ([profiles.x.exec] with no [profiles.x])."""
        lines = [i for path, i in self.tables.items() if path[:len(table)] == table]
        return min(lines, default=None)

    def value(self, table: tuple[str, ...], key: str, text: str) -> int | None:
        start = self.key(table, key)
        if start is None:
            return None
        quoted = (f'"{text}"', f"'{text}'")
        for i in range(start, min(start + 200, len(self.lines) + 1)):
            if any(q in self.lines[i - 1] for q in quoted):
                return i
        return start


class Reader:
    """Validates one parsed file, raising ConfigError with file and line."""

    def __init__(self, file: str, text: str) -> None:
        self.file = file
        self.loc = Locator(text)

    def fail(self, table: tuple[str, ...], key: str | None, reason: str) -> ConfigError:
        return ConfigError(self.file, self.loc.key(table, key), reason)

    def expect_table(self, data: Any, table: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise self.fail(table, None, f"[{'.'.join(table)}] must be a table")
        return data

    def known(self, data: dict[str, Any], table: tuple[str, ...], allowed: set[str]) -> None:
        for key in data:
            if key not in allowed:
                where = ".".join(table) or "top level"
                hint = ", ".join(sorted(allowed))
                raise self.fail(table, key, f"unknown key {key!r} in {where} (known: {hint})")

    def choice(self, data: dict, table: tuple, key: str, choices: tuple[str, ...], default: str) -> str:
        value = data.get(key, default)
        if value not in choices:
            raise self.fail(table, key, f"{key} = {value!r}: must be one of {', '.join(choices)}")
        return value

    def string_list(self, data: dict, table: tuple, key: str) -> list[str]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(table, key, f"{key} must be a list of strings")
        return value

    def duration(self, data: dict, table: tuple, key: str, default: float,
                 most: tuple[float, str] | None = None) -> float:
        """A duration; `most`: (the longest allowed, why) refuses a longer one."""
        if key not in data:
            return default
        try:
            value = parse_duration(data[key])
        except ValueError as exc:
            raise self.fail(table, key, str(exc)) from None
        if most is not None and value > most[0]:
            raise self.fail(table, key, f"{data[key]!r} is longer than {most[0]:g}s: {most[1]}")
        return value

    def rules(self, data: dict, table: tuple, key: str, check: Callable[[str], None]) -> list[Rule]:
        out = []
        for text in self.string_list(data, table, key):
            line = self.loc.value(table, key, text)
            try:
                check(text)
            except ValueError as exc:
                raise ConfigError(self.file, line, f"{key} rule {text!r}: {exc}") from None
            out.append(Rule(text, self.file, line))
        return out
