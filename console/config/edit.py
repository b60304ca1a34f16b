"""Write a profile rule into a TOML config file as a minimal text edit.

Comments, order and spacing stay as the person wrote them: the rule is appended inside the
existing array (`[profiles.NAME.exec] allow = [...]`), or a key or section is added. `preview`
computes the new text and its diff without writing, for the UI to show before saving; `apply`
takes a lock (fcntl.flock on a sibling .lock file), re-reads, recomputes and writes atomically
(temp file, fsync, rename). Every edit is checked by parsing the result: it must differ from the
old file by exactly the one rule, or nothing is written.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import fcntl
import os
import re
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from console.policy import Grant, grant_to_rule, rule_list_for

LISTS = {"exec": ("allow", "ask", "forbid"), "network": ("allow", "deny")}


class PolicyEditError(Exception):
    """The rule cannot be written; the message says why and what to do instead."""


@dataclass(frozen=True)
class RuleEdit:
    path: Path
    profile: str
    section: str  # exec | network
    list_name: str
    rule: str
    old_text: str
    new_text: str

    @property
    def changed(self) -> bool:
        return self.old_text != self.new_text

    @property
    def diff(self) -> str:
        return "".join(difflib.unified_diff(
            self.old_text.splitlines(keepends=True), self.new_text.splitlines(keepends=True),
            fromfile=str(self.path), tofile=f"{self.path} (with the new rule)",
        ))


# --- a small scanner over TOML text (the file is known valid: tomllib parsed it first) --------

_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _skip_string(t: str, i: int) -> int:
    """Index just after the string starting at t[i]."""
    for q in ('"""', "'''"):
        if t.startswith(q, i):
            j = i + 3
            while True:
                if q == '"""' and t[j] == "\\":
                    j += 2
                    continue
                if t.startswith(q, j):
                    k = j + 3
                    while k < len(t) and t[k] == q[0] and k - j < 5:  # up to 2 quotes end it
                        k += 1
                    return k
                j += 1
    q, j = t[i], i + 1
    while t[j] != q:
        j += 2 if (q == '"' and t[j] == "\\") else 1
    return j + 1


def _skip_container(t: str, i: int) -> tuple[int, int]:
    """For the array or inline table at t[i]: (index of its closing bracket, index just after
    the last element's text, or i + 1 when it has none). Comments and blanks are not text."""
    close = "]" if t[i] == "[" else "}"
    j, last = i + 1, i + 1
    while True:
        c = t[j]
        if c == close:
            return j, last
        if c == "#":
            j = t.find("\n", j)
        elif c in "\"'":
            j = last = _skip_string(t, j)
        elif c in "[{":
            j = last = _skip_container(t, j)[0] + 1
        elif c in " \t\r\n":
            j += 1
        else:
            j = last = j + 1


def _read_key(t: str, i: int, stop: str) -> tuple[tuple[str, ...], int]:
    """A dotted key starting at t[i], up to the stop character (= or ]); returns its parts."""
    parts: list[str] = []
    while True:
        while t[i] in " \t":
            i += 1
        if t[i] in "\"'":
            j = _skip_string(t, i)
            parts.append(tomllib.loads(f"k = {t[i:j]}")["k"])
            i = j
        else:
            m = _BARE.match(t, i)
            if not m:
                raise PolicyEditError(f"unexpected text at offset {i}")
            parts.append(m.group())
            i = m.end()
        while t[i] in " \t":
            i += 1
        if t[i] == ".":
            i += 1
            continue
        if t[i] != stop:
            raise PolicyEditError(f"unexpected text at offset {i}")
        return tuple(parts), i + 1


@dataclass
class _Entry:
    table: tuple[str, ...]  # the [table] it sits in
    key: tuple[str, ...]
    start: int  # line start
    value: int  # value start
    end: int  # index after the value's line (its newline included)


def _scan(t: str) -> tuple[list[tuple[tuple[str, ...], int, int]], list[_Entry]]:
    """Headers as (path, line start, index after the line) and top-level key/value entries."""
    headers, entries = [], []
    table: tuple[str, ...] = ()
    i, n = 0, len(t)
    while i < n:
        while i < n and t[i] in " \t\r\n":
            i += 1
        if i >= n:
            break
        line_start = t.rfind("\n", 0, i) + 1
        if t[i] == "#":
            i = _line_end(t, i)
        elif t[i] == "[":
            double = t.startswith("[[", i)
            table, j = _read_key(t, i + (2 if double else 1), "]")
            end = _line_end(t, j)
            headers.append((table, line_start, end))
            i = end
        else:
            key, j = _read_key(t, i, "=")
            while t[j] in " \t":
                j += 1
            if t[j] in "\"'":
                k = _skip_string(t, j)
            elif t[j] in "[{":
                k = _skip_container(t, j)[0] + 1
            else:
                k = j
            end = _line_end(t, k)
            entries.append(_Entry(table, key, line_start, j, end))
            i = end
    return headers, entries


def _line_end(t: str, i: int) -> int:
    k = t.find("\n", i)
    return len(t) if k < 0 else k + 1


def _toml_string(s: str) -> str:
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_key(k: str) -> str:
    return k if _BARE.fullmatch(k) else _toml_string(k)


# --- the edit ----------------------------------------------------------------------------------


def _insert_into_array(t: str, open_at: int, item: str, nl: str) -> str:
    close, last = _skip_container(t, open_at)
    after_comma = t[last - 1] in ",["
    if "\n" not in t[last:close]:  # the closing bracket is on the last element's line
        sep = "" if t[last - 1] == "[" else (" " if t[last - 1] == "," else ", ")
        return t[:last] + sep + item + t[last:]
    # One element per line: a new line after the last element's line, indented like it.
    line_start = t.rfind("\n", 0, last) + 1
    indent = re.match(r"[ \t]*", t[line_start:]).group()  # type: ignore[union-attr]
    if t[last - 1] == "[":
        indent += "    "
    line_end = t.index("\n", last) + 1
    new_line = indent + item + ("," if after_comma and t[last - 1] != "[" else "") + nl
    head = t[:last] + ("" if after_comma else ",") + t[last:line_end]
    return head + new_line + t[line_end:]


def _edit_text(t: str, profile: str, section: str, list_name: str, rule: str) -> str:
    nl = "\r\n" if "\r\n" in t else "\n"
    item = _toml_string(rule)
    path = ("profiles", profile, section)
    headers, entries = _scan(t)
    for e in entries:
        if e.table + e.key == (*path, list_name):
            if t[e.value] != "[":
                raise PolicyEditError(f"{list_name} in [{'.'.join(path)}] is not a list")
            return _insert_into_array(t, e.value, item, nl)
        full = e.table + e.key
        if t[e.value] == "{" and path[: len(full)] == full:
            raise PolicyEditError(
                f"[{'.'.join(path)}] is written as an inline table, which this editor does not "
                f"change; add {item} to its {list_name} list by hand")
    line = f"{_toml_key(list_name)} = [{item}]{nl}"
    for hpath, _start, hend in headers:
        if hpath == path:
            # After the section's last entry, so the rule sits with its siblings.
            inside = [e.end for e in entries if e.table == path and e.start >= hend]
            at = max(inside, default=hend)
            prefix = "" if at == 0 or t[at - 1] == "\n" else nl
            return t[:at] + prefix + line + t[at:]
    if any((e.table + e.key)[: len(path)] == path for e in entries):
        raise PolicyEditError(
            f"[{'.'.join(path)}] is written with dotted keys, which this editor does not change; "
            f"add {list_name} = [{item}] there by hand")
    header = "[" + ".".join(_toml_key(k) for k in path) + "]"
    gap = "" if not t else (nl if t.endswith("\n") else nl + nl)
    return t + gap + header + nl + line


def _parse(text: str, path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyEditError(f"{path}: not valid TOML ({exc}); fix it before adding rules") from None


def _read(path: Path) -> str:
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def preview(path: str | os.PathLike[str], profile: str, section: str, list_name: str, rule: str) -> RuleEdit:
    """The edit that adds `rule` to [profiles.PROFILE.SECTION] LIST_NAME, without writing it."""
    path = Path(path)
    if section not in LISTS or list_name not in LISTS[section]:
        raise PolicyEditError(f'no list "{list_name}" in {section} rules; use one of '
                              f'{", ".join(LISTS.get(section, ()))} (section exec or network)')
    if not profile or not rule.strip() or "\n" in rule:
        raise PolicyEditError("a profile name and a one-line rule are needed")
    old = _read(path)
    data = _parse(old, path)
    current = data.get("profiles", {}).get(profile, {}).get(section, {})
    if isinstance(current, dict) and rule in current.get(list_name, []):
        return RuleEdit(path, profile, section, list_name, rule, old, old)
    new = _edit_text(old, profile, section, list_name, rule)
    # The check that makes a text edit safe: the result parses to the old data plus the rule.
    expected = copy.deepcopy(data)
    table = expected.setdefault("profiles", {}).setdefault(profile, {}).setdefault(section, {})
    table.setdefault(list_name, []).append(rule)
    if _parse(new, path) != expected:
        raise PolicyEditError(f"{path}: the edit would change more than the one rule, so it was "
                              f"not made; add {_toml_string(rule)} to [profiles.{profile}.{section}] "
                              f"{list_name} by hand")
    return RuleEdit(path, profile, section, list_name, rule, old, new)


def apply(path: str | os.PathLike[str], profile: str, section: str, list_name: str, rule: str) -> RuleEdit:
    """Add the rule for real: under the lock, re-read, recompute, write atomically. Returns the
    edit made (compare its diff with the preview's if the file may have changed meanwhile)."""
    path = Path(path)
    target = path.resolve() if path.is_symlink() else path  # keep a dotfile symlink a symlink
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = target.with_name(target.name + ".lock")
    with open(lock, "a") as lf:
        fcntl.flock(lf, fcntl.LOCK_EX)
        edit = preview(target, profile, section, list_name, rule)
        if edit.changed:
            _atomic_write(target, edit.new_text)
    return edit


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        except FileNotFoundError:
            pass
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def preview_grant(path: str | os.PathLike[str], grant: Grant) -> RuleEdit:
    """The edit a profile-scope grant becomes in the config file."""
    if not grant.profile:
        raise PolicyEditError("only a profile grant is written to the config file")
    section, list_name = rule_list_for(grant)
    return preview(path, grant.profile, section, list_name, grant_to_rule(grant))


def apply_grant(path: str | os.PathLike[str], grant: Grant) -> RuleEdit:
    if not grant.profile:
        raise PolicyEditError("only a profile grant is written to the config file")
    section, list_name = rule_list_for(grant)
    return apply(path, grant.profile, section, list_name, grant_to_rule(grant))
