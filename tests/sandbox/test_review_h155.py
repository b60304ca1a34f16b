"""Review h155: the run's end look at CI configuration (console/sandbox/ci_look.py, 7d69f62).

1. A folder nested deeper than Python's recursion limit below a CI folder (`.github/actions`,
   made by the agent one `mkdir a; cd a` at a time) raised RecursionError from os.fwalk: the
   whole look failed, and a workflow the run changed beside it was not named (only "could not
   look", which says nothing of the workflow).
2. CI files the services read that the list missed: `.woodpecker.yaml` (Woodpecker reads it as
   `.woodpecker.yml`), `cloudbuild.json` (Cloud Build), `.cirrus.star` (Cirrus CI's Starlark),
   `.build.yml` and `.builds/` (SourceHut builds, run on push with its secrets), `buildkite.yml`
   (buildkite-agent pipeline upload's default).
3. A CI file or folder removed whole is not named (the module says a removed one is): `rm
   .gitlab-ci.yml` or `rm -r .github/workflows` leaves nothing to look at. The view now lists
   the CI files and folders at the run's start (ci_entries), and the end names those gone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from console.sandbox.ci_look import changed_ci_config, ci_entries


def _look(ws: Path, since: float) -> list[str]:
    fd = os.open(ws, os.O_PATH | os.O_DIRECTORY)
    try:
        return changed_ci_config(fd, since, [""])[0]
    finally:
        os.close(fd)


def _before(ws: Path) -> float:
    time.sleep(0.02)
    since = time.time()
    time.sleep(0.02)
    return since


def test_a_deep_folder_below_a_ci_folder_hides_no_changed_workflow(tmp_path: Path) -> None:
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / ".github" / "workflows" / "ci.yml").write_text("on: push\n")
    since = _before(tmp_path)
    fd = os.open(tmp_path / ".github", os.O_RDONLY)
    os.mkdir("actions", dir_fd=fd)
    for name in ["actions"] + ["a"] * 1500:  # relative steps: no path is ever too long
        nfd = os.open(name, os.O_RDONLY, dir_fd=fd) if name == "actions" else None
        if nfd is None:
            os.mkdir(name, dir_fd=fd)
            nfd = os.open(name, os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = nfd
    os.close(fd)
    (tmp_path / ".github" / "workflows" / "ci.yml").write_text("on: push\njobs: {x: {run: env}}\n")
    try:
        found = _look(tmp_path, since)
    finally:  # rm, not shutil.rmtree: the basetemp's own clean-up recurses as deep
        subprocess.run(["rm", "-rf", str(tmp_path / ".github" / "actions")], check=True, timeout=60)
    assert ".github/workflows/ci.yml" in found, found


@pytest.mark.parametrize("rel", [".woodpecker.yaml", "cloudbuild.json", ".cirrus.star", ".build.yml",
                                 ".builds/deploy.yml", "buildkite.yml"])
def test_ci_files_the_services_read_are_named(tmp_path: Path, rel: str) -> None:
    since = _before(tmp_path)
    (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / rel).write_text("steps: []\n")
    found = _look(tmp_path, since)
    assert any(rel == f or rel.startswith(f + "/") for f in found), (rel, found)


@pytest.mark.parametrize("gone", [".gitlab-ci.yml", ".github/workflows"])
def test_ci_configuration_removed_whole_is_named(tmp_path: Path, gone: str) -> None:
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / ".github" / "workflows" / "codeql.yml").write_text("on: push\n")
    (tmp_path / ".gitlab-ci.yml").write_text("test:\n  script: make\n")
    since = _before(tmp_path)
    fd = os.open(tmp_path, os.O_PATH | os.O_DIRECTORY)
    try:
        at_start = ci_entries(fd, [""])  # what the view records as the run starts
        target = tmp_path / gone
        shutil.rmtree(target) if target.is_dir() else target.unlink()
        found = changed_ci_config(fd, since, [""], at_start)[0]
    finally:
        os.close(fd)
    assert any(gone == f or gone.startswith(f + "/") for f in found), (gone, found)
