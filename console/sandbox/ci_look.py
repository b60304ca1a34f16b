"""CI configuration a run made or changed, named at its end (review s38).

A workflow runs where the repository is pushed, with what that place gives it: deploy keys,
cloud credentials, package tokens. It never runs on this machine, so it is not protected like
a git hook; but an agent's line in it (`curl ... -d "$SECRET"`) runs the moment the person
pushes, and among a hundred changed files a review can pass over it. The run's end names it.
Looked at without following links, bounded in entries per work tree.
"""

from __future__ import annotations

import os
import stat

from .fsview import FolderStats, open_dir_beneath

# Files and folders CI services read from a repository's top.
CI_FILES = (".gitlab-ci.yml", ".travis.yml", "Jenkinsfile", "azure-pipelines.yml",
            "bitbucket-pipelines.yml", ".drone.yml", ".woodpecker.yml", "cloudbuild.yaml",
            "cloudbuild.yml", "appveyor.yml", ".appveyor.yml", ".cirrus.yml", "codemagic.yaml",
            "buildspec.yml", ".gitlab-ci.yaml", ".woodpecker.yaml", "cloudbuild.json", ".cirrus.star",
            ".build.yml", "buildkite.yml", "buildkite.yaml",  # review h155: SourceHut, Buildkite
            # build and deploy services that run the repository's commands with their secrets,
            # and a GitHub Action's own definition (it runs in every repository that uses it)
            "netlify.toml", "vercel.json", ".readthedocs.yaml", ".readthedocs.yml", "render.yaml",
            "fly.toml", ".gitpod.yml", "action.yml", "action.yaml",
            # more services that run the repository's steps (s40): AWS Amplify, Bitrise,
            # Codefresh, Wercker, Zuul, Earthly, Platform.sh, Heroku (release phase, app.json's
            # scripts), Railway and Nixpacks, Firebase's deploy hooks, Serverless
            "amplify.yml", "amplify.yaml", "bitrise.yml", "bitrise.yaml", "codefresh.yml",
            "codefresh.yaml", "wercker.yml", ".zuul.yaml", ".zuul.yml", "zuul.yaml", "Earthfile",
            ".platform.app.yaml", "Procfile", "app.json", "railway.json", "railway.toml",
            "nixpacks.toml", "firebase.json", "serverless.yml", "serverless.yaml")
CI_FOLDERS = (".github/workflows", ".github/actions", ".gitlab", ".circleci", ".buildkite",
              ".woodpecker", ".forgejo/workflows", ".gitea/workflows", ".tekton",
              ".azure-pipelines", ".semaphore", ".builds", ".teamcity", ".zuul.d", "zuul.d",
              ".platform", ".harness", ".codefresh", ".bitrise")
ENTRIES_MAX = 2000  # entries looked at below one work tree's CI folders
TREES_MAX = 64  # work trees looked at, the top first (as hidden.py)
SHOWN = 10


Entry = tuple[str, int, int]  # a CI file or folder: workspace-relative, its device and inode


def ci_entries(ws_fd: int, tops: list[str]) -> frozenset[Entry]:
    """The CI files and folders in the work trees at `tops`, each with its device and inode (at
    a run's start: one listed then and gone at the end was removed, one there now and not then,
    or another entry by its name, was made or moved into place). One listing of each top, and
    of the folders on the way to a CI folder that are there (`.github`)."""
    found: set[str] = set()
    for top in list(dict.fromkeys(tops))[:TREES_MAX]:
        names = _names(ws_fd, top)
        below: dict[str, set[str]] = {}  # `.github`'s own names, listed once
        found |= {os.path.join(top, f) for f in CI_FILES if f in names}
        for folder in CI_FOLDERS:  # one or two levels: `.gitlab`, `.github/workflows`
            first, _, rest = folder.partition("/")
            if first in names and rest and first not in below:
                below[first] = _names(ws_fd, os.path.join(top, first))
            if first in names and (not rest or rest in below[first]):
                found.add(os.path.join(top, folder))
    folders = FolderStats(ws_fd)
    try:
        return frozenset((rel, st.st_dev, st.st_ino) for rel in found
                         if (st := folders.lstat(rel)) is not None)
    finally:
        folders.close()


def _names(ws_fd: int, rel: str) -> set[str]:
    try:
        fd = open_dir_beneath(ws_fd, rel)
    except OSError:
        return set()
    try:
        return set(os.listdir(fd))
    except OSError:
        return set()
    finally:
        os.close(fd)


def changed_ci_config(ws_fd: int, since: float, tops: list[str],
                      at_start: frozenset[Entry] | None = None) -> tuple[list[str], bool]:
    """(workspace-relative CI files and folders made, changed or removed since `since` in the
    work trees at `tops`, whether the look stopped at its bound). A folder is named when an
    entry was removed from it (its own change time moves). Given `at_start` (ci_entries at the
    run's start): one of them gone, and one there now that was not or is another entry: a
    folder renamed into place with a folder above it keeps its own change times and those
    below it (`mv vendor/lib/.github .github`: review h156)."""
    found: list[str] = []
    if at_start is not None:
        now = ci_entries(ws_fd, tops)
        found += sorted({e[0] for e in at_start} - {e[0] for e in now})
        found += sorted(e[0] for e in now - at_start)
    cut = False
    folders = FolderStats(ws_fd)  # a top's CI names share its folder: one open for them all
    try:
        for top in list(dict.fromkeys(tops))[:TREES_MAX]:
            for name in CI_FILES:
                rel = os.path.join(top, name)
                st = folders.lstat(rel)
                if st is not None and st.st_ctime >= since:
                    found.append(rel)
            left = ENTRIES_MAX
            for folder in CI_FOLDERS:
                rel = os.path.join(top, folder)
                st = folders.lstat(rel)
                if st is None or not stat.S_ISDIR(st.st_mode):  # a file or link there: itself
                    found += [rel] if st is not None and st.st_ctime >= since else []
                    continue
                changed, left = _changed_below(ws_fd, rel, since, left)
                found += changed
                if left < 0:
                    cut = True
                    break
    finally:
        folders.close()
    return list(dict.fromkeys(found)), cut


def _changed_below(ws_fd: int, rel: str, since: float, left: int) -> tuple[list[str], int]:
    """The folder at `rel` if it changed, and each entry below it that did, at most `left`
    entries looked at (links named, never followed), and how many are left."""
    try:
        dfd = open_dir_beneath(ws_fd, rel)
    except OSError:
        return [], left
    found: list[str] = []
    try:
        if os.fstat(dfd).st_ctime >= since:
            found.append(rel)
        for parent, dirs, files, pfd in os.fwalk(".", dir_fd=dfd):  # links are not walked into
            names = (*files, *dirs)[:max(left, 0)]
            left -= len(files) + len(dirs)
            found += [os.path.normpath(os.path.join(rel, parent, n)) for n in names
                      if os.stat(n, dir_fd=pfd, follow_symlinks=False).st_ctime >= since]
            if left < 0:
                break
    except (OSError, RecursionError):  # a folder nested past Python's limit (review h155)
        found.append(rel)  # could not be read whole: named, to be looked at
    finally:
        os.close(dfd)
    # A folder whose change time moved because of an entry named below it would only repeat
    # it; one named alone lost an entry (a removed workflow).
    above: set[str] = set()
    for g in found:
        d = os.path.dirname(g)
        while d and d not in above:
            above.add(d)
            d = os.path.dirname(d)
    return [f for f in found if f not in above], left


def ci_config_notes(ws_fd: int, since: float, tops: list[str],
                    at_start: frozenset[Entry] | None = None) -> list[str]:
    found, cut = changed_ci_config(ws_fd, since, tops, at_start)
    notes = []
    if found:
        shown = ", ".join(found[:SHOWN]) + (f" and {len(found) - SHOWN} more" if len(found) > SHOWN
                                            else "")
        notes.append(f"the run changed CI configuration ({shown}): it runs where the repository "
                     "is pushed, with the secrets that service holds; read the change before you "
                     "push")
    if cut:
        notes.append(f"the look for changed CI configuration stopped after {ENTRIES_MAX} entries "
                     "in one repository: look at its CI folders yourself before you push")
    return notes
