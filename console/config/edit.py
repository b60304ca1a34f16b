"""Write a profile rule into the person's TOML config file, keeping the file theirs.

The edit goes through tomlkit, which keeps comments, key order, spacing, inline tables and dotted
keys as written: the rule is appended to its list wherever the list is written
(`[profiles.NAME.exec] allow = [...]`, `exec = { allow = [...] }`, `exec.allow = [...]`), or the
list, section or profile is added next to its siblings. `preview` computes the new text and its
diff without writing, for the UI to show before saving; `apply` takes a lock (fcntl.flock on a
sibling .lock file), re-reads, recomputes and writes atomically (temp file, fsync, rename).
`undo` puts the file back as it was before such a write, the same way (the daemon's fail-closed
path: a rule whose policy.changed record failed must not stay in the file).

Before anything is written the new text passes two checks, or nothing is written and
PolicyEditError says why: parsed, it is the old file's data plus exactly the one rule; and it
loads with the real loader (the built-in profiles, then this file, as the daemon loads it), so a
saved rule never leaves a file the daemon would refuse.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import difflib
import fcntl
import hashlib
import os
import re
import tempfile
import tomllib
from collections.abc import Iterator, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import Comment, InlineTable, String, StringType, Table, Trivia, Whitespace

from console.config.load import load
from console.config.schema import ConfigError
from console.policy import Grant, grant_to_rule, rule_list_for
from console.text import hides

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
    existed: bool = True  # False: the write created the file (undoing it removes the file)

    @property
    def changed(self) -> bool:
        return self.old_text != self.new_text

    @property
    def diff(self) -> str:
        return self.diff_with(3)

    def diff_with(self, context: int) -> str:
        """The unified diff with `context` lines around each change: 0 shows only the lines
        the edit changes, none of the rest of the file (a teammate's view: review h135)."""
        return "".join(difflib.unified_diff(
            self.old_text.splitlines(keepends=True), self.new_text.splitlines(keepends=True),
            fromfile=str(self.path), tofile=f"{self.path} (with the new rule)", n=context,
        ))


    def for_approver(self) -> str:
        """diff_with(0), less the owner's text: an approver (not the file's owner) sees a
        changed line only when it holds nothing but rule lists. An inline table puts a whole
        profile on one line (`demo = { setenv = { TOKEN = "..." }, exec = {...} }`), and the
        line the rule goes into came back whole, its setenv value too (review h144); such a
        line is named, not shown."""
        out = []
        for line in self.diff_with(0).splitlines(keepends=True):
            if line[:1] not in ("+", "-") or line.startswith(("--- ", "+++ ")) or \
                    _only_rules(line[1:].rstrip("\r\n"), self.profile):
                out.append(line)
            elif line.startswith("-"):
                out.append("-(a line of the owner's file that holds more than rules: not shown)\n")
            else:
                out.append(f"+(that line with {tomlkit.string(self.rule).as_string()} added to "
                           f"{self.list_name}: the rest is the owner's, not shown)\n")
        return "".join(out)


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'[^\']*\'')


def _only_rules(line: str, profile: str) -> bool:
    """The line, read alone, holds rule lists and the tables above them, and no comment."""
    if "#" in _STRING.sub("", line):
        return False
    try:
        data = tomllib.loads(line)
    except tomllib.TOMLDecodeError:
        return False
    keys = {"profiles", profile, *LISTS, *(n for names in LISTS.values() for n in names)}

    def rules(value: Any) -> bool:
        if isinstance(value, list):
            return all(isinstance(v, str) for v in value)
        return isinstance(value, dict) and all(k in keys and rules(v) for k, v in value.items())

    return rules(data)


# --- the edit ----------------------------------------------------------------------------------


def _rule_item(rule: str) -> Any:
    """The rule as TOML, every character a person cannot see written as its escape: the agent's
    text (a rule saved from its request) put a bidi override raw into the owner's file, which
    an editor or `cat` then drew reordered (review s34, helper 135). _check reads it back."""
    if not any(hides(ch) for ch in rule):
        return rule
    body = "".join((f"\\u{ord(ch):04X}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08X}")
                   if hides(ch) else {"\\": "\\\\", '"': '\\"'}.get(ch, ch) for ch in rule)
    return String(StringType.SLB, rule, body, Trivia())


def _where(keys: tuple[str, ...]) -> str:
    return "[" + ".".join(tomlkit.key(k).as_string() for k in keys) + "]"


def _tables(below: tuple[str, ...], list_name: str, rule: str,
            inline: InlineTable | None) -> tuple[Any, Any]:
    """A missing table: the tables still missing below it (`below`), down to the list with the
    rule; returns (the outermost, the innermost). Under an inline table they are inline too,
    padded like it; otherwise only the innermost gets a header ([profiles.a.exec], not
    [profiles.a] then [profiles.a.exec])."""
    value: Any = tomlkit.array()
    value.append(_rule_item(rule))
    innermost = None
    for key in reversed((*below, list_name)):
        if inline is not None:
            table: Any = tomlkit.inline_table()
            pad = _padded(inline)
            for item in ((None, tomlkit.ws(" ")), (key, value), (None, tomlkit.ws(" "))):
                if item[0] is not None or pad:
                    table.append(*item)
        else:
            table = tomlkit.table(is_super_table=innermost is not None)
            table.append(key, value)
        innermost = innermost if innermost is not None else table
        value = table
    return value, innermost


def _padded(inline: InlineTable) -> bool:
    """Written `{ a = 1 }` rather than `{a = 1}`."""
    body = inline.value.body
    return bool(body) and isinstance(body[0][1], Whitespace)


def _pop_tail(container: Any, *, through_tables: bool) -> list[Any]:
    """Take the comments and blank lines at the end of what `container` renders: they sit just
    above the next header and belong with it, so what is added goes before them. With
    `through_tables`, when the container ends with a [table], that table's end is taken."""
    body = container.body if isinstance(container, tomlkit.TOMLDocument) else container.value.body
    tail: list[Any] = []
    while body and body[-1][0] is None and isinstance(body[-1][1], Comment | Whitespace):
        tail.insert(0, body.pop()[1])
    last = body[-1][1] if body else None
    if through_tables and not tail and isinstance(last, Table):
        return _pop_tail(last, through_tables=True)
    return tail


def _add_key(table: Table | InlineTable, key: str, value: Any) -> None:
    """Add key = value to a table, after its last key: before the comments and blank lines that
    end a [table], before the space that closes `{ ... }`."""
    tail = _pop_tail(table, through_tables=False)
    table.append(key, value)
    for item in tail:
        table.add(item)


def _add_table(parent: Any, path: tuple[str, ...], below: tuple[str, ...], list_name: str,
               rule: str) -> str:
    """Add the missing table at `path` (and the tables `below` it) to its parent, a table or
    the document: after what is there, before the comments and blank lines that lead to the
    next header. Returns text to put at the end of the file instead, for a parent written in
    parts ([profiles.a], [keys], [profiles]): no part is the place for it, so it goes last."""
    if isinstance(parent, InlineTable):
        _add_key(parent, path[-1], _tables(below, list_name, rule, parent)[0])
        return ""
    if not isinstance(parent, Table | tomlkit.TOMLDocument):
        block = tomlkit.document()
        block.append(path[0], _tables((*path[1:], *below), list_name, rule, None)[0])
        return tomlkit.dumps(block).rstrip("\n") + "\n"
    outer, inner = _tables(below, list_name, rule, None)
    tail = _pop_tail(parent, through_tables=True)
    parent[path[-1]] = outer
    for item in tail or [tomlkit.nl()]:
        inner.add(item)
    return ""


def _edit_text(text: str, profile: str, section: str, list_name: str, rule: str) -> str:
    try:
        doc = tomlkit.parse(text)
    except TOMLKitError as exc:
        raise PolicyEditError(f"not valid TOML ({exc}); fix it before adding rules") from None
    keys = ("profiles", profile, section)
    node: Any = doc
    for depth, key in enumerate(keys):
        child = node.get(key)
        if child is None:
            at_end = _add_table(node, keys[:depth + 1], keys[depth + 1:], list_name, rule)
            new = tomlkit.dumps(doc)
            if at_end:  # after a blank line
                new = new.rstrip("\n") + "\n\n"
            return new + at_end
        if not isinstance(child, MutableMapping):
            raise PolicyEditError(f"{_where(keys[:depth + 1])} is not a table here, so a rule "
                                  f"cannot go under it; write it as a table, then save the rule")
        node = child
    current = node.get(list_name)
    if current is None:
        value = tomlkit.array()
        value.append(_rule_item(rule))
        if isinstance(node, Table | InlineTable):
            _add_key(node, list_name, value)
        else:
            node[list_name] = value
    elif not isinstance(current, list):
        raise PolicyEditError(f"{list_name} in {_where(keys)} is not a list")
    else:
        current.append(_rule_item(rule))
    return tomlkit.dumps(doc)


def _same_ending(old: str, new: str) -> str:
    """tomlkit writes the lines it adds with \\n: a file written with \\r\\n stays \\r\\n. A new
    table keeps a blank line after it, unless it ended up last in the file."""
    if new.endswith("\n\n") and not old.endswith("\n\n"):
        new = new[:-1]
    return re.sub(r"(?<!\r)\n", "\r\n", new) if "\r\n" in old else new


# --- reading and checking -------------------------------------------------------------------------


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
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyEditError(f"{path}: cannot read it ({exc}); nothing was written") from None


def _check(path: Path, data: dict[str, Any], new: str, profile: str, section: str,
           list_name: str, rule: str) -> None:
    """The new text is the old data plus the one rule, and the real loader takes it."""
    expected = copy.deepcopy(data)
    table = expected.setdefault("profiles", {}).setdefault(profile, {}).setdefault(section, {})
    table.setdefault(list_name, []).append(rule)
    if _parse(new, path) != expected:
        raise PolicyEditError(f"{path}: the edit would change more than the one rule, so it was "
                              f"not made; add {tomlkit.string(rule).as_string()} to "
                              f"{_where(('profiles', profile, section))} {list_name} by hand")
    try:
        load(path, text=new)
    except ConfigError as exc:
        where = f"line {exc.line}: " if exc.line else ""
        raise PolicyEditError(f"{path}: with this rule the file would not load ({where}"
                              f"{exc.reason}), so nothing was written; fix the file, then save "
                              "the rule again") from None


def preview(path: str | os.PathLike[str], profile: str, section: str, list_name: str, rule: str) -> RuleEdit:
    """The edit that adds `rule` to [profiles.PROFILE.SECTION] LIST_NAME, without writing it."""
    path = Path(path)
    if section not in LISTS or list_name not in LISTS[section]:
        raise PolicyEditError(f'no list "{list_name}" in {section} rules; use one of '
                              f'{", ".join(LISTS.get(section, ()))} (section exec or network)')
    if "\n" in rule or "\r" in rule:
        raise PolicyEditError("this command holds a line break, and a rule in the file is one "
                              "line, so it cannot be saved as a rule; decide it with --scope "
                              "once, run or a duration, or give a one-line --pattern")
    if not profile or not rule.strip():
        raise PolicyEditError("a profile name and a rule are needed: the rule is empty; give "
                              "a --pattern, or decide with --scope once, run or a duration")
    if not (profile + rule).isprintable() and not _encodes(profile + rule):
        raise PolicyEditError("the rule holds text that is not UTF-8 (an unpaired surrogate), so it "
                              "cannot be written to the file; decide this request without a rule")
    return _preview_on(path, _read(path), profile, section, list_name, rule)


def _preview_on(path: Path, old: str, profile: str, section: str, list_name: str,
                rule: str) -> RuleEdit:
    data = _parse(old, path)
    current: Any = data
    for key in ("profiles", profile, section, list_name):
        current = current.get(key) if isinstance(current, dict) else None
    if isinstance(current, list) and rule in current:
        return RuleEdit(path, profile, section, list_name, rule, old, old)
    try:
        new = _same_ending(old, _edit_text(old, profile, section, list_name, rule))
    except PolicyEditError as exc:
        raise PolicyEditError(f"{path}: {exc}") from None
    _check(path, data, new, profile, section, list_name, rule)
    return RuleEdit(path, profile, section, list_name, rule, old, new)


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def apply(path: str | os.PathLike[str], profile: str, section: str, list_name: str, rule: str) -> RuleEdit:
    """Add the rule for real: under the lock, re-read, recompute, write atomically. Returns the
    edit made (compare its diff with the preview's if the file may have changed meanwhile)."""
    return apply_all(path, [(profile, section, list_name, rule)])


ANY_TEXT = object()  # apply_all's expect_sha256 when any text of the file will do


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def apply_all(path: str | os.PathLike[str], rules: Sequence[tuple[str, str, str, str]], *,
              expect_sha256: str | None | object = ANY_TEXT) -> RuleEdit:
    """Every rule (profile, section, list, rule) for real, in one write under one lock: all of
    them are written or none is (a second rule that cannot be added leaves the file as it
    was, not holding the first alone). Returns one edit from the old text to the new. With
    `expect_sha256` (None: no file), the file read under the lock must be that one, or
    nothing is written."""
    path = Path(path)
    target = path.resolve() if path.is_symlink() else path
    if not rules:
        raise PolicyEditError("no rule to write")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with _locked(target):
            existed = target.exists()
            if expect_sha256 is not ANY_TEXT and _sha256(target) != expect_sha256:
                # An edit saved meanwhile (an editor takes no lock) would come into force with
                # the rule, recorded as the rule alone (review h196).
                raise PolicyEditError(f"{path} changed while the rule was being saved (an edit "
                                      "not in force yet), so nothing was written: run "
                                      "`pilothouse reload`, then save the rule again")
            whole = dataclasses.replace(preview_all(target, rules), existed=existed)
            if whole.changed:
                _atomic_write(target, whole.new_text)
    except OSError as exc:
        raise PolicyEditError(f"{path}: cannot write it ({_why(exc)}); the file is as "
                              "it was: check its folder and permissions, then save the rule "
                              "again") from None
    return whole


def preview_all(path: str | os.PathLike[str],
                rules: Sequence[tuple[str, str, str, str]]) -> RuleEdit:
    """What apply_all writes, without writing: each rule added to the text the one before it
    made. Previewed one by one from the file, two rules for a missing table showed two new
    tables, where one holding both is written (review h144)."""
    path = Path(path)
    edits = [preview(path, *rules[0])]
    for rule in rules[1:]:
        edits.append(_preview_on(path, edits[-1].new_text, *rule))
    return RuleEdit(path, *rules[0][:4], edits[0].old_text, edits[-1].new_text)


def undo(edit: RuleEdit) -> None:
    """Put the file back as it was before `edit` (one that apply_all made): under the same lock,
    atomically, byte for byte; a file the edit created is removed. Refused, leaving the file
    alone, when it no longer holds exactly what the edit wrote (someone changed it since)."""
    if not edit.changed:
        return
    rule = tomlkit.string(edit.rule).as_string()
    by_hand = f"take {rule} out of {_where(('profiles', edit.profile, edit.section))} by hand"
    try:
        with _locked(edit.path):
            try:
                now = _read(edit.path)
            except PolicyEditError as exc:
                raise PolicyEditError(f"{exc}: {by_hand}") from None
            if now != edit.new_text:
                raise PolicyEditError(f"{edit.path} changed after the rule was written, so it "
                                      f"was left as it is: {by_hand}")
            if edit.existed:
                _atomic_write(edit.path, edit.old_text)
            else:
                edit.path.unlink()
                _sync_folder(edit.path.parent)
    except OSError as exc:
        raise PolicyEditError(f"{edit.path} could not be put back ({_why(exc)}): "
                              f"{by_hand}") from None


@contextlib.contextmanager
def _locked(target: Path) -> Iterator[None]:
    """The file's writers' lock: fcntl.flock on a sibling .lock file (blocking)."""
    with open(target.with_name(target.name + ".lock"), "a") as lf:
        fcntl.flock(lf, fcntl.LOCK_EX)
        yield


def _why(exc: OSError) -> str:
    return f"{exc.strerror}: {exc.filename}" if exc.strerror and exc.filename else str(exc)


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
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    dfd = os.open(folder, os.O_RDONLY)
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
