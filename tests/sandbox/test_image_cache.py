"""The local test images are built once per machine, not once per clone, and do not pile up.

CI runs every time on a fresh clone. When an image's tag hung on the clone's path and checkout
time, each run imported new images (1.7 GB with the agents) and kept the old ones, until the disk
filled and a CI run failed on "no space left on device".
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.images import build  # noqa: E402


def _load_copy(folder: Path) -> Any:
    """tests/images/build.py as another clone has it: another path, a new mtime."""
    copy = folder / "build.py"
    shutil.copyfile(build.__file__, copy)
    os.utime(copy, (1_000_000_000, 1_000_000_000))
    spec = importlib.util.spec_from_file_location("clone_images_build", copy)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("kind", ["busybox", "python", "noshell"])
def test_a_fresh_clone_gets_the_same_image_tag(tmp_path: Path, kind: str) -> None:
    assert _load_copy(tmp_path).image_tag(kind) == build.image_tag(kind)


def test_a_changed_builder_gets_a_new_tag(tmp_path: Path) -> None:
    before = _load_copy(tmp_path).image_tag("busybox")
    (tmp_path / "build.py").write_text((tmp_path / "build.py").read_text() + "\n# changed\n")
    spec = importlib.util.spec_from_file_location("changed_images_build", tmp_path / "build.py")
    assert spec and spec.loader
    changed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(changed)
    assert changed.image_tag("busybox") != before


def test_building_a_new_tag_drops_the_older_ones(docker_client: Any, tmp_path: Path) -> None:
    # In a repository of this test's own: it removes the image's tag, and the suite's shared
    # noshell image is in use by other test files running at the same time (make test: -n).
    clone = _load_copy(tmp_path)
    clone.REPO = f"{build.REPO}/cache-{os.getpid()}"
    repository = f"{clone.REPO}/noshell"
    ref = clone.noshell_image(docker_client)
    assert ref == f"{repository}:{build.image_tag('noshell')}"
    stale = f"{repository}:stale-left-by-an-older-clone"
    docker_client.images.get(ref).tag(repository, "stale-left-by-an-older-clone")
    docker_client.images.remove(ref)  # the stale tag still holds the image
    try:
        assert clone.noshell_image(docker_client) == ref
        tags = {t for image in docker_client.images.list(name=repository) for t in image.tags}
        assert ref in tags
        assert stale not in tags
    finally:
        for left in (stale, ref):
            try:
                docker_client.images.remove(left)
            except Exception:
                pass
