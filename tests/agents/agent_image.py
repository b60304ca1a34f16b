"""A local Docker image with the real agents in it, for the Docker runs of the end-to-end tests.

No registry is reachable: the image is built FROM the locally imported python test image
(busybox, the host's python3 and bash; tests/images/build.py) and adds the host's installed
agent binaries: Claude Code's native executable, and Codex's static (musl) executable with the
files beside it. Tagged by a digest of those binaries, built once per machine.
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

REPO = "pilothouse-test/agents"
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
    return out


def _digest(base: str, sources: dict[str, Path]) -> str:
    h = hashlib.sha256(base.encode())
    for name, path in sorted(sources.items()):
        st = path.stat()
        h.update(f"{name}:{path}:{st.st_size}:{st.st_mtime_ns}".encode())
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()[:12]


def agents_image(client: Any, base: str) -> tuple[str, set[str]]:
    """(image reference, the agents it holds), built from `base` if missing."""
    sources = _sources()
    ref = f"{REPO}:{_digest(base, sources)}"
    try:
        client.images.get(ref)
        return ref, set(sources)
    except Exception:
        pass
    lines = [f"FROM {base}"]
    with tempfile.TemporaryDirectory(prefix="ph-agents-image-") as ctx:
        if "claude" in sources:
            _link_or_copy(ctx)(str(sources["claude"]), str(Path(ctx) / "claude"))
            for lib in _libs_of(sources["claude"]):  # the shared libraries it links (librt, ...)
                target = Path(ctx) / "libs" / lib.lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(os.path.realpath(lib), target)
            lines += ["COPY claude /usr/local/bin/claude", "COPY libs/ /"]
        if "codex" in sources:
            shutil.copytree(sources["codex"], Path(ctx) / "codex", copy_function=_link_or_copy(ctx))
            lines += ["COPY codex /usr/local/lib/codex",
                      'RUN ["/bin/mkdir", "-p", "/usr/local/bin"]',
                      'RUN ["/bin/ln", "-s", "/usr/local/lib/codex/bin/codex", "/usr/local/bin/codex"]']
        (Path(ctx) / "Dockerfile").write_text("\n".join(lines) + "\n")
        client.images.build(path=ctx, tag=ref, rm=True, forcerm=True, network_mode="none")
    return ref, set(sources)


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
