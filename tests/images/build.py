"""Build small test images offline (no registry): a root filesystem as a tar, `docker import`.

busybox_image: static busybox, its applets as links, a setuid-root copy at /bin/busybox-suid
    (for the escalation test), no python3, no network tools beyond busybox's own.
python_image: the same plus the host's python3.11 interpreter, its standard library, bash, git and
    curl, and the shared libraries ldd names, so in-container python cases (helper, TIOCSTI),
    /dev/tcp and curl --noproxy probes can run.

Images are tagged with a digest of their inputs and built once per machine: the host files by
path, size and mtime, this file by its content, so every clone of the repository (CI makes a fresh
one each time) finds the image the last one built. Building a new tag drops the repository's older
tags, so a changed input does not leave 1.7 GB behind per run.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

BUSYBOX = "/bin/busybox"
PYTHON = "/usr/bin/python3.11"
PY_LIB = "/usr/lib/python3.11"
TOOLS = ("/usr/bin/bash", "/usr/bin/curl", "/usr/bin/git")  # copied into the python image when present
PY_SKIP = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "__pycache__"}
REPO = "pilothouse-test"


def _add_file(tar: tarfile.TarFile, src: str, arcname: str, mode: int | None = None) -> None:
    info = tar.gettarinfo(src, arcname)
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    if mode is not None:
        info.mode = mode
    if info.isreg():
        with open(src, "rb") as fh:
            tar.addfile(info, fh)
    else:
        tar.addfile(info)


def _add_dir(tar: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, mode
    tar.addfile(info)


def _add_text(tar: tarfile.TarFile, name: str, text: str, mode: int = 0o644) -> None:
    data = text.encode()
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    tar.addfile(info, io.BytesIO(data))


def _add_link(tar: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
    tar.addfile(info)


def _base(tar: tarfile.TarFile) -> None:
    for d in ("bin", "etc", "usr", "usr/bin", "usr/lib", "lib", "lib64", "run", "home", "var"):
        _add_dir(tar, d)
    _add_dir(tar, "tmp", 0o1777)
    _add_text(tar, "etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n")
    _add_text(tar, "etc/group", "root:x:0:\nnogroup:x:65534:\n")
    _add_text(tar, "etc/shadow", "root:image-shadow-not-host:1::::::\n", 0o600)
    _add_file(tar, BUSYBOX, "bin/busybox")
    _add_file(tar, BUSYBOX, "bin/busybox-suid", mode=0o4755)
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True).stdout.split()
    for a in applets:
        if a != "busybox":
            _add_link(tar, f"bin/{a}", "busybox")


def _libs_of(paths: list[str]) -> set[str]:
    libs: set[str] = set()
    for p in paths:
        out = subprocess.run(["ldd", p], capture_output=True, text=True).stdout
        for m in re.finditer(r"(/\S+\.so[^\s]*)", out):
            libs.add(m.group(1))
    return libs


def _python(tar: tarfile.TarFile) -> None:
    _add_file(tar, PYTHON, "usr/bin/python3.11")
    _add_link(tar, "usr/bin/python3", "python3.11")
    sos: list[str] = [PYTHON]
    for tool in TOOLS:
        if os.path.exists(tool):
            _add_file(tar, tool, tool.lstrip("/"))
            sos.append(tool)
    for root, dirs, files in os.walk(PY_LIB):
        dirs[:] = [d for d in dirs if d not in PY_SKIP and not d.startswith("config-")]
        rel = os.path.relpath(root, "/")
        _add_dir(tar, rel)
        for f in files:
            p = os.path.join(root, f)
            if f.endswith(".so"):
                sos.append(p)
            if os.path.isfile(p) and not os.path.islink(p):
                _add_file(tar, p, os.path.join(rel, f))
    seen_dirs: set[str] = set()
    for lib in sorted(_libs_of(sos)):
        real = os.path.realpath(lib)
        d = os.path.dirname(lib).lstrip("/")
        parts = Path(d).parts
        for i in range(1, len(parts) + 1):
            sub = "/".join(parts[:i])
            if sub not in seen_dirs and sub not in ("usr", "usr/lib", "lib", "lib64"):
                seen_dirs.add(sub)
                _add_dir(tar, sub)
        _add_file(tar, real, lib.lstrip("/"))


def image_tag(kind: str) -> str:
    """The tag of the `kind` image: a digest of its inputs."""
    h = hashlib.sha256(kind.encode())
    extra = (PYTHON, *[t for t in TOOLS if os.path.exists(t)]) if kind == "python" else ()
    for p in (BUSYBOX, *extra):
        st = os.stat(p)
        h.update(f"{p}:{st.st_size}:{st.st_mtime_ns}".encode())
    # by content: a clone's path and checkout time are not inputs of the image
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()[:12]


def drop_older_tags(client: Any, repository: str, keep: str) -> list[str]:
    """Remove the tags of `repository` other than `keep` (the references removed).

    An image a container still uses stays: docker refuses, and that is not an error here."""
    removed = []
    for image in client.images.list(name=repository):
        for ref in image.tags:
            if ref != keep and ref.rsplit(":", 1)[0] == repository:
                try:
                    client.images.remove(ref, noprune=False)
                    removed.append(ref)
                except Exception:
                    pass
    return removed


def _get_or_import(client: Any, repository: str, tag: str,
                   fill: Callable[[tarfile.TarFile], None]) -> str:
    """The image repository:tag, imported from a tar that `fill` writes, unless it exists."""
    ref = f"{repository}:{tag}"
    try:
        client.images.get(ref)
        return ref
    except Exception:
        pass
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        fill(tar)
    client.api.import_image_from_data(buf.getvalue(), repository=repository, tag=tag)
    drop_older_tags(client, repository, ref)
    return ref


def _build(client: Any, kind: str) -> str:
    def fill(tar: tarfile.TarFile) -> None:
        _base(tar)
        if kind == "python":
            _python(tar)

    return _get_or_import(client, f"{REPO}/{kind}", image_tag(kind), fill)


def noshell_image(client: Any) -> str:
    """An image with a single static program at /busybox: no /bin/sh, no python3."""

    def fill(tar: tarfile.TarFile) -> None:
        _add_dir(tar, "tmp", 0o1777)
        _add_file(tar, BUSYBOX, "busybox")

    return _get_or_import(client, f"{REPO}/noshell", image_tag("noshell"), fill)


def busybox_image(client: Any) -> str:
    """Reference of a local busybox image (no python3), built if missing."""
    return _build(client, "busybox")


def python_image(client: Any) -> str:
    """Reference of a local busybox + python3.11 image, built if missing."""
    return _build(client, "python")


def docker_client_or_skip() -> Any:
    """A client of the local Docker engine, or the test skipped saying why (CI starts one)."""
    import pytest

    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception as exc:  # no engine: say so; `make test` installs and starts one
        pytest.skip(f"Docker engine not reachable ({exc}); make test starts dockerd")
    return client
