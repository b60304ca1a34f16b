"""A local Docker image with the real agents in it, for the Docker runs of the end-to-end tests.

No registry is reachable: the image is built FROM the locally imported python test image
(busybox, the host's python3 and bash; tests/images/build.py) and adds the host's installed
agents: Claude Code's native executable, Codex's static (musl) executable with the files beside
it, and aider's venv (made from /usr/bin/python3, which the base image has) with git for it,
each with the shared libraries it links. Tagged by a digest of those and of the base image's
reference (itself stable across clones), built once per machine; older tags are dropped.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from tests.images.build import drop_older_tags

REPO = "pilothouse-test/agents"
AIDER_VENV = Path("/usr/local/lib/pilothouse-agents/aider")
GIT = Path("/usr/bin/git")
GIT_CORE = Path("/usr/lib/git-core")
CODEX_VENDOR = Path("/usr/local/lib/node_modules/@openai/codex/node_modules/@openai/codex-linux-x64/vendor/"
                    "x86_64-unknown-linux-musl")


def _sources() -> dict[str, Path]:
    """What goes in: name in the build context -> host path (only what is installed)."""
    out: dict[str, Path] = {}
    claude = shutil.which("claude", path="/usr/local/bin:/usr/bin")
    if claude:
        out["claude"] = Path(os.path.realpath(claude))
    if (CODEX_VENDOR / "bin" / "codex").is_file():
        out["codex"] = CODEX_VENDOR
    if (AIDER_VENV / "bin" / "aider").is_file() and GIT.is_file() and GIT_CORE.is_dir():
        out["aider"] = AIDER_VENV
    return out


def _digest(base: str, sources: dict[str, Path]) -> str:
    h = hashlib.sha256(base.encode())
    for name, path in sorted(sources.items()):
        st = (path / "bin" / name).stat() if path.is_dir() else path.stat()
        h.update(f"{name}:{path}:{st.st_size}:{st.st_mtime_ns}".encode())
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()[:12]


def agents_image(client: Any, base: str) -> tuple[str, set[str]]:
    """(image reference, the agents it holds), built from `base` if missing: by one test
    process at a time (make test runs two), the others then find it built."""
    from tests.conftest import machine_locked

    sources = _sources()
    ref = f"{REPO}:{_digest(base, sources)}"
    with machine_locked("agents-image"):
        try:
            client.images.get(ref)
        except Exception:
            _build(client, base, sources, ref)
    return ref, set(sources)


def _build(client: Any, base: str, sources: dict[str, Path], ref: str) -> None:
    lines = [f"FROM {base}"]
    with tempfile.TemporaryDirectory(prefix="ph-agents-image-") as ctx:
        if "claude" in sources:
            _link_or_copy(ctx)(str(sources["claude"]), str(Path(ctx) / "claude"))
            _add_libs(ctx, _libs_of(sources["claude"]))  # the shared libraries it links (librt, ...)
            lines += ["COPY claude /usr/local/bin/claude", "COPY libs/ /"]
        if "codex" in sources:
            shutil.copytree(sources["codex"], Path(ctx) / "codex", copy_function=_link_or_copy(ctx))
            lines += ["COPY codex /usr/local/lib/codex",
                      'RUN ["/bin/mkdir", "-p", "/usr/local/bin"]',
                      'RUN ["/bin/ln", "-s", "/usr/local/lib/codex/bin/codex", "/usr/local/bin/codex"]']
        if "aider" in sources:
            shutil.copytree(AIDER_VENV, Path(ctx) / "aider", symlinks=True, copy_function=_link_or_copy(ctx))
            shutil.copytree(GIT_CORE, Path(ctx) / "git-core", symlinks=True, copy_function=_link_or_copy(ctx))
            _link_or_copy(ctx)(str(GIT), str(Path(ctx) / "git"))
            sos = [GIT, *AIDER_VENV.rglob("*.so"), *AIDER_VENV.rglob("*.so.*")]
            _add_libs(ctx, sorted({lib for so in sos for lib in _libs_of(Path(so))}))
            lines += [f"COPY aider {AIDER_VENV}", f"COPY git-core {GIT_CORE}", f"COPY git {GIT}",
                      "COPY libs/ /", 'RUN ["/bin/mkdir", "-p", "/usr/local/bin"]',
                      f'RUN ["/bin/ln", "-sf", "{AIDER_VENV}/bin/aider", "/usr/local/bin/aider"]']
        (Path(ctx) / "Dockerfile").write_text("\n".join(lines) + "\n")
        client.images.build(path=ctx, tag=ref, rm=True, forcerm=True, network_mode="none")
    drop_older_tags(client, REPO, ref)


def _add_libs(ctx: str, libs: list[str]) -> None:
    for lib in libs:
        target = Path(ctx) / "libs" / lib.lstrip("/")
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(os.path.realpath(lib), target)


def _libs_of(binary: Path) -> list[str]:
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True).stdout
    return sorted({m.group(1) for m in re.finditer(r"(/\S+\.so[^\s]*)", out)})


def _same_fs(path: Path, folder: str) -> bool:
    return os.stat(path).st_dev == os.stat(folder).st_dev


def _link_or_copy(ctx: str):
    def copy(src: str, dst: str) -> None:
        if _same_fs(Path(src), ctx):
            os.link(src, dst)
        else:
            shutil.copy2(src, dst)
    return copy
