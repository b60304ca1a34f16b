"""tree-sitter-bash as an oracle for console.policy.shellwords: every command bash would run and every
file a redirection would write must be seen by our reader (it may see more, never less)."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from console.policy.parts import ParseError, command_words, write_targets
from console.policy.unwrap import expand, normalise

tree_sitter = pytest.importorskip("tree_sitter")
tree_sitter_bash = pytest.importorskip("tree_sitter_bash")

PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_bash.language()))
CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "exec_cases.toml"
WRITES = {">", ">>", "&>", "&>>", ">|", "<>", ">&"}

LINES = [
    "grep x f > ~/.profile", "grep x f 2>/dev/null", "rg --pre ./evil.sh x . >>log",
    "git status; rm -rf /", "a && b || c | d & e", "echo $(id) `whoami`", "diff <(ls) >(cat)",
    "(cd /tmp && rm -fr x)", "{ ls; pwd; } > out", "bash -c 'rm -rf /'", "x=1 y=2 make > build.log",
    "cat <<EOF > f", "if true; then rm -rf /; fi", "for f in *; do rm $f; done",
    "echo ${x:-$(rm -rf /)}", "ls 2>&1 | tee out", "git -c a=b push --force origin +main",
    "sudo -u root rm -rf /", "ls &> out", "cmd >| clobber", "exec 3<> rw", "while read l; do echo $l; done < in",
]


def _oracle(line: str) -> tuple[set[str], list[str]]:
    """Command names and written files, as tree-sitter-bash reads the line."""
    tree = PARSER.parse(line.encode())
    names: set[str] = set()
    writes: list[str] = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        if node.type == "command":
            name = node.child_by_field_name("name")
            text = name.text.decode() if name is not None else ""
            if text and "$" not in text and "`" not in text:  # a substituted name: ours is opaque
                names.add(shlex.split(text)[0].rsplit("/", 1)[-1])
        elif node.type == "file_redirect":
            ops = [c.type for c in node.children if not c.is_named]
            dest = node.child_by_field_name("destination")
            target = dest.text.decode() if dest is not None else ""
            if any(op in WRITES for op in ops) and target != "/dev/null" and not target.isdigit():
                writes.append(target)
    return names, writes


def _ours(line: str) -> tuple[set[str], list[str]]:
    parts = expand(line)
    names = set()
    for p in parts:
        words = command_words(p)
        plain = [w for w in words if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", w)]
        names.update(w.rsplit("/", 1)[-1] for w in plain[:1])  # as written, and unwrapped
        names.update(normalise(words)[:1])
    return names, [t for p in parts for t in write_targets(p)]


def _lines() -> list[str]:
    with open(CORPUS, "rb") as f:
        return LINES + [c["command"] for c in tomllib.load(f)["case"]]


@pytest.mark.parametrize("line", _lines())
def test_we_see_every_command_and_write_bash_would(line: str) -> None:
    names, writes = _oracle(line)
    try:
        our_names, our_writes = _ours(line)
    except ParseError:
        return  # unreadable: the policy asks a person, which is never less strict
    assert names <= our_names | {"[", "[["}, (line, names - our_names)
    if writes:
        assert our_writes, (line, writes)


TOKENS = ["ls", "rm", "-rf", "/", "x", "'a b'", '"$(id)"', ";", "&&", "||", "|", "&", ">", ">>",
          "2>", "2>&1", "<", "f", "$(pwd)", "`date`", "(", ")", "sudo", "env", "A=1", "bash -c 'id'"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=8))
def test_random_lines_agree_with_the_oracle(tokens: list[str]) -> None:
    line = " ".join(tokens)
    tree = PARSER.parse(line.encode())
    if tree.root_node.has_error:
        return  # bash would refuse it too
    names, writes = _oracle(line)
    try:
        our_names, our_writes = _ours(line)
        opaque = any(p.opaque for p in expand(line))
    except ParseError:
        return
    if not opaque:  # a substituted command name is unknowable: the policy asks, whatever runs
        assert names <= our_names, (line, names - our_names)
    if writes:
        assert our_writes, (line, writes)
