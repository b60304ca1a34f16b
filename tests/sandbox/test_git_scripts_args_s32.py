"""Review s32 (helper 114): scripts a git config runs through an interpreter stayed writable.

What a config key runs was read as its value's first word only: `diff.nb.textconv = python3
tools/conv.py` (with `*.nb diff=nb`), `alias.t = !sh scripts/t.sh`, `node ./bin/clean.js`,
`!f() { ./scripts/x.sh; }; f` and `FOO=1 ./x.sh` named no file, so the scripts stayed the
agent's to rewrite, and the person's `git diff` (reviewing the agent's work) ran the rewrite on
the host, as root under a root daemon. `tar.<format>.command` (`git archive`) was no key at
all. Every word of such a value that may be a path is read-only now.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from console.sandbox.protect import plan_protection
from tests.sandbox.hostile_kit import git_repo, give
from tests.sandbox.test_workspace_attacks import host_git

SCRIPTS = {  # config text -> the scripts it names, relative to the top
    '[diff "nb"]\n\ttextconv = python3 tools/conv.py\n': ["tools/conv.py"],
    '[alias]\n\tt = !sh scripts/t.sh\n': ["scripts/t.sh"],
    '[filter "c"]\n\tclean = node ./bin/clean.js\n': ["bin/clean.js"],
    '[alias]\n\tx = "!f() { ./scripts/x.sh; }; f"\n': ["scripts/x.sh"],
    '[core]\n\tpager = FOO=1 ./tools/pg.sh\n': ["tools/pg.sh"],
    '[alias]\n\ty = "!sh -c \'./a.sh && tools/b.py\'"\n': ["a.sh", "tools/b.py"],
    '[tar "tgz"]\n\tcommand = tools/gz.sh\n': ["tools/gz.sh"],
    # second round (helper 118): no `/`, a build tool's file, a variable or $(...) in front, a cd
    '[diff "nb"]\n\ttextconv = python3 conv.py\n': ["conv.py"],
    '[alias]\n\tt = !sh t.sh\n': ["t.sh"],
    '[alias]\n\tg = "!$GIT_PREFIX/tools/g.sh"\n': ["tools/g.sh"],
    '[core]\n\tpager = sh -c "cd tools && ./pg.sh"\n': ["tools/pg.sh"],
    '[filter "c"]\n\tclean = python3 -m tools.clean\n': ["tools/clean.py"],
    '[alias]\n\ti = !sh<tools/in.sh\n': ["tools/in.sh"],
    '[core]\n\tpager = ./tools/pg%s.sh\n': ["tools/pg%s.sh"],
    '[diff "nb"]\n\ttextconv = "sh -c \'python3 $(git rev-parse --show-toplevel)/tools/c2.py \\"$1\\"\' -"\n': ["tools/c2.py"],
}
PLAIN = ["src/app.py", "lint", "README.md"]  # files no config names stay the agent's
CODE = "print('ok')\n"


def _plant(ws: Path, config: str, scripts: list[str]) -> None:
    for rel in scripts:
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws / rel).write_text(CODE)
    with open(ws / ".git" / "config", "a") as fh:
        fh.write(config)


@pytest.mark.parametrize("config", sorted(SCRIPTS), ids=range(len(SCRIPTS)))
def test_every_script_a_config_command_names_is_read_only(tmp_path: Path, config: str) -> None:
    git_repo(tmp_path)
    _plant(tmp_path, config, SCRIPTS[config])
    p = plan_protection(tmp_path)
    try:
        kinds = {b.rel: b.kind for b in p.binds}
    finally:
        p.close()
    for rel in SCRIPTS[config]:
        assert kinds.get(rel) == "ro", (config, rel, sorted(kinds))


def test_a_word_that_is_no_file_makes_no_placeholder(tmp_path: Path) -> None:
    git_repo(tmp_path)
    for rel in PLAIN:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(CODE)
    _plant(tmp_path, '[alias]\n\tlg = !git log --format=%h/%s --grep=lint -- src\n'
                     '[core]\n\tpager = less -R\n', [])
    p = plan_protection(tmp_path)
    try:
        kinds = {b.rel: b.kind for b in p.binds}
    finally:
        p.close()
    assert not {"src", "src/app.py", "README.md", "%h", "less", "git"} & set(kinds), sorted(kinds)


async def test_the_textconv_script_the_persons_git_diff_runs_is_not_the_agents(hostile, tmp_path):
    if shutil.which("python3") is None:
        pytest.skip("python3 is not installed")
    marker = tmp_path / "pwned"
    ws = hostile.workspace
    git_repo(ws)
    (ws / ".gitattributes").write_text("*.nb diff=nb\n")
    (ws / "tools").mkdir()
    (ws / "tools" / "conv.py").write_text("import sys; print(open(sys.argv[1]).read())\n")
    (ws / "a.nb").write_text("one\n")
    git = shutil.which("git")
    subprocess.run([git, "-C", str(ws), "-c", "safe.directory=*", "add", "-A"], check=True)
    subprocess.run([git, "-C", str(ws), "-c", "safe.directory=*", "-c", "user.name=t", "-c",
                    "user.email=t@t.invalid", "commit", "-qm", "nb"], check=True)
    with open(ws / ".git" / "config", "a") as fh:
        fh.write('[diff "nb"]\n\ttextconv = python3 tools/conv.py\n')
    give(hostile, ws)
    os.chmod(tmp_path, 0o755)
    r = await hostile.run(
        f"(printf 'open(\"{marker}\", \"w\")\\n' > tools/conv.py) 2>/dev/null && echo WROTE; "
        "echo two > a.nb; true")
    host_git(ws, tmp_path, "diff")
    assert "WROTE" not in r.out and not marker.exists(), (r.out, r.handle.end_notes)


# -- round three (helper 119): what a protected script loads, and a build tool's other names --

def test_a_build_tools_files_are_watched_in_every_name_it_reads(tmp_path: Path) -> None:
    """`!make lint` ran the agent's GNUmakefile (make reads it before Makefile) while Makefile
    was read-only, which also kept the agent from a file it edits every day: all three names
    are the agent's now, and named at the run's end when made or changed."""
    git_repo(tmp_path)
    _plant(tmp_path, '[alias]\n\tl = !make lint\n', ["Makefile"])
    p = plan_protection(tmp_path)
    try:
        kinds, watched = {b.rel: b.kind for b in p.binds}, set(p.watched)
    finally:
        p.close()
    assert "Makefile" not in kinds and {"GNUmakefile", "makefile", "Makefile"} <= watched


async def test_files_beside_a_script_git_runs_are_named_when_added(hostile, tmp_path):
    """`python3 tools/conv.py` imports json: a tools/json.py the agent adds runs instead, in the
    person's `git diff`. The folder is watched: what is added there is named at the end."""
    ws = hostile.workspace
    git_repo(ws)
    _plant(ws, '[diff "nb"]\n\ttextconv = python3 tools/conv.py\n[alias]\n\tl = !make lint\n',
           ["tools/conv.py", "Makefile"])
    give(hostile, ws)
    quiet = await hostile.run("echo nothing here; true")
    assert not [n for n in quiet.handle.end_notes if "tools/" in n or "makefile" in n.lower()], (
        quiet.handle.end_notes)
    r = await hostile.run("echo 'import os' > tools/json.py; printf 'lint:\\n\\ttrue\\n' > GNUmakefile; true")
    assert any("tools/" in n and "beside a script" in n for n in r.handle.end_notes), r.handle.end_notes
    assert any("GNUmakefile" in n for n in r.handle.end_notes), r.handle.end_notes


# -- round four (helper 120) -----------------------------------------------------------------

@pytest.mark.parametrize("alias", ["!make -C tools lint", "!make --directory=tools lint",
                                   "!make -Ctools lint"])
def test_a_build_tool_pointed_elsewhere_has_those_files_watched(tmp_path: Path, alias: str) -> None:
    git_repo(tmp_path)
    _plant(tmp_path, f'[alias]\n\tt = {alias}\n', ["tools/Makefile"])
    p = plan_protection(tmp_path)
    try:
        watched = set(p.watched)
    finally:
        p.close()
    assert {"tools/GNUmakefile", "tools/makefile", "tools/Makefile"} <= watched, sorted(watched)


async def test_a_link_added_below_a_scripts_folder_is_named(hostile, tmp_path):
    """tools/json/ existed (fixtures); a link tools/json/__init__.py to the agent's code made
    `import json` in tools/conv.py run it, and only regular files were looked at."""
    ws = hostile.workspace
    git_repo(ws)
    _plant(ws, '[diff "nb"]\n\ttextconv = python3 tools/conv.py\n', ["tools/conv.py",
                                                                     "tools/json/fixture.json"])
    give(hostile, ws)
    r = await hostile.run("mkdir -p notes && echo 'import os' > notes/p.py && "
                          "ln -s ../../notes/p.py tools/json/__init__.py; true")
    assert any("tools/" in n and "beside a script" in n for n in r.handle.end_notes), r.handle.end_notes


async def test_a_script_absent_at_the_start_makes_no_note_on_a_quiet_run(hostile, tmp_path):
    """Its placeholder changed the folder after the start: every quiet run was told of it."""
    ws = hostile.workspace
    git_repo(ws)
    _plant(ws, '[alias]\n\tt = !sh tools/gen.sh\n', ["tools/other.txt"])
    give(hostile, ws)
    r = await hostile.run("true")
    assert not [n for n in r.handle.end_notes if "beside a script" in n], r.handle.end_notes
