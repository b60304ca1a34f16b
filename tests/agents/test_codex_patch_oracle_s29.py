"""The files inside_writes.patch_files names for a patch, against what Codex's own apply_patch
writes (the installed binary, run as `apply_patch` in a scratch folder): every file Codex adds,
changes, moves or removes is one the hook asked about, over random patches near the format's
edges (headers padded with spaces Rust trims, other cases, moves, header-like lines of text,
CR line ends, `..`). A patch the hook refuses is never applied, so it proves nothing either way.
"""

from __future__ import annotations

import glob
import os
import posixpath
import random
import subprocess
from pathlib import Path

import pytest

from console.sandbox.inside_writes import Refused, patch_files

from .real_harness import agent_binary

NAMES = ["a", "b", "sub/c", "sub/d", "sub/../e", "new/f", "g.txt", " h", "i\u00a0"]
PADS = [""] * 40 + [" ", "\t", "\u3000", "\u00a0", "\x0b", "\u2003", "\x1c"]
BODY = ["+line", "+*** Add File: h", " one", "-one", "+uno", " two", "-two", "+dos", "@@", "@@ one",
        "*** End of File", "", " *** Add File: i", "-*** Delete File: a", "+*** Move to: j"]
BEFORE = {"a": b"one\ntwo\n", "b": b"one\ntwo\n", "sub/c": b"one\ntwo\n", "g.txt": b"one\n"}


def native_codex() -> str:
    """The Rust binary behind the npm launcher: named apply_patch, it applies a patch and ends."""
    launcher = Path(os.path.realpath(agent_binary("codex")))
    found = glob.glob(str(launcher.parents[1] / "node_modules" / "@openai" / "codex-linux-*" / "vendor"
                          / "*" / "bin" / "codex"))
    if not found:
        pytest.fail(f"no native Codex binary beside {launcher}: the npm package's layout changed")
    return found[0]


def header(rng: random.Random, kind: str, name: str) -> str:
    word = rng.choice([kind, kind, kind.lower(), kind.upper()])
    return f"{rng.choice(PADS)}*** {word}: {name}{rng.choice(PADS)}"


def random_patch(rng: random.Random) -> str:
    lines = ["*** Begin Patch"]
    for _ in range(rng.randint(1, 4)):
        kind, name = rng.choice(["Add File", "Update File", "Delete File"]), rng.choice(NAMES)
        lines.append(header(rng, kind, name))
        if kind == "Add File":
            lines += ["+" + rng.choice(["x", "one", "*** Add File: k"]) for _ in range(rng.randint(1, 2))]
        elif kind == "Update File":
            if rng.random() < 0.4:
                lines.append(header(rng, "Move to", rng.choice(NAMES)).lstrip() if rng.random() < 0.7
                             else header(rng, "Move to", rng.choice(NAMES)))
            lines += ["@@", " one", "-two", "+three"]
    for _ in range(rng.choice([0, 0, 0, 1, 2])):  # stray lines anywhere after the first
        lines.insert(rng.randint(1, len(lines)), rng.choice(BODY + [header(rng, "Add File", rng.choice(NAMES))]))
    lines.append("*** End Patch")
    end = "\r\n" if rng.random() < 0.2 else "\n"
    return end.join(lines) + end


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_every_file_codex_writes_is_one_the_hook_names(tmp_path: Path) -> None:
    applier = tmp_path / "apply_patch"
    applier.symlink_to(native_codex())
    rng, applied, refused = random.Random(29), 0, 0
    for i in range(800):
        patch = random_patch(rng)
        try:
            named = {posixpath.normpath(path) for _, path in patch_files(patch)}
        except Refused:
            refused += 1
            continue
        root = tmp_path / f"w{i}"
        for name, data in BEFORE.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(data)
        before = snapshot(root)
        done = subprocess.run([str(applier), patch], cwd=root, capture_output=True, timeout=30)
        after = snapshot(root)
        changed = {n for n in before.keys() | after.keys() if before.get(n) != after.get(n)}
        applied += bool(changed)
        assert changed <= named, (patch, changed, named, done.stderr[-500:])
    assert applied >= 30 and refused >= 30, (applied, refused)  # the patches reached both ends
