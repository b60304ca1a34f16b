"""Review s30 (helper 101): a Codex apply_patch file asked under another name than the one that
changes, checked with Codex's own applier (the native binary, as test_codex_patch_oracle_s29).

- `*** Update File: Makefile` with `*** Move to: notes.txt`, where Makefile is a link: it was
  asked as an Edit of where the link leads, while Codex removes the link itself (and writes
  notes.txt); a moved file is asked as a Delete, of the name itself.
- `*** Add File: build/`: asked as `Write .../build/`, which a grant for `build/*` covers, while
  Codex writes a file named `build` beside it; a name ending in `/` is refused.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from console.sandbox.inside_writes import Refused, subjects
from tests.agents.test_codex_patch_oracle_s29 import native_codex
from tests.approvals.test_apply_patch_subjects_s29 import patch


def test_a_moved_link_is_asked_as_the_removal_of_the_link(tmp_path: Path) -> None:
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "Makefile.real").write_text("all:\n")
    os.symlink("build/Makefile.real", tmp_path / "Makefile")
    call = patch("*** Update File: Makefile", "*** Move to: notes.txt", "@@", "-all:", "+notes")
    assert subjects("apply_patch", call, str(tmp_path)) == [
        f"Delete {tmp_path}/Makefile", f"Write {tmp_path}/notes.txt"]
    applier = tmp_path.parent / f"{tmp_path.name}-bin" / "apply_patch"
    applier.parent.mkdir()
    applier.symlink_to(native_codex())  # skips, saying how to install, when Codex is missing
    subprocess.run([str(applier), call["command"]], cwd=tmp_path, check=True, capture_output=True)
    assert not os.path.lexists(tmp_path / "Makefile")  # the link went, as asked
    assert (tmp_path / "build" / "Makefile.real").read_text() == "all:\n"  # never edited
    assert (tmp_path / "notes.txt").read_text() == "notes\n"


def test_a_name_ending_in_a_slash_is_refused(tmp_path: Path) -> None:
    with pytest.raises(Refused, match="a folder"):
        subjects("apply_patch", patch("*** Add File: build/", "+x"), str(tmp_path))
