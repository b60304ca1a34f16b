"""Which backend runs a profile: sandbox = "auto" | "bwrap" | "docker" | "none".

auto: a profile that names a Docker image gets Docker (its tools live in that image); otherwise
bubblewrap when it works here, else Docker with no image is not possible, so auto refuses
with the reasons. An explicit choice that cannot work is refused with the doctor's reason,
never silently swapped for another (and never for "none").

Backends are kept per process, so the probes (a real bwrap run, a Docker ping) run once.
"""

from __future__ import annotations

from typing import Any

from .base import SandboxError

_cache: dict[str, Any] = {}


def get_backend(name: str) -> Any:
    """The process-wide instance of a backend by name ("bwrap", "docker", "none")."""
    if name not in _cache:
        if name == "bwrap":
            from .bwrap import BwrapBackend

            _cache[name] = BwrapBackend()
        elif name == "docker":
            from .docker import DockerBackend

            _cache[name] = DockerBackend()
        elif name == "none":
            from .none import NoSandboxBackend

            _cache[name] = NoSandboxBackend()
        else:
            raise SandboxError(
                f"unknown sandbox {name!r}", 'use sandbox = "auto", "bwrap", "docker" or "none"'
            )
    return _cache[name]


def choose_backend(requested: str, image: str | None = None) -> Any:
    """The backend for a run, or SandboxError saying why none can be used and what to do."""
    req = (requested or "auto").lower()
    if req == "none":
        return get_backend("none")
    if req in ("bwrap", "docker"):
        backend = get_backend(req)
        if req == "docker" and not image:
            raise SandboxError(
                'sandbox = "docker" needs an image', 'set image = "..." in the profile'
            )
        ok, why = backend.usable()
        if not ok:
            raise SandboxError(f"{req} sandbox is not usable here: {why}", "pilothouse doctor")
        return backend
    if req != "auto":
        get_backend(req)  # raises the "unknown sandbox" error
    bwrap_ok, bwrap_why = get_backend("bwrap").usable()
    if bwrap_ok and not image:  # the engine is not asked (it may be slow, or not answer at all)
        return get_backend("bwrap")
    docker_ok, docker_why = get_backend("docker").usable()
    if image:
        if docker_ok:
            return get_backend("docker")
        raise SandboxError(
            f"this profile names the image {image!r} but Docker is not usable: {docker_why}",
            "start Docker, or remove `image` to run under bubblewrap; pilothouse doctor",
        )
    reason = f"bubblewrap: {bwrap_why}"
    if docker_ok:
        reason += '; Docker works, but this profile names no image (set image = "...")'
    else:
        reason += f"; Docker: {docker_why}"
    raise SandboxError(
        f"no sandbox is usable here ({reason})",
        'fix one of them (pilothouse doctor explains), or set sandbox = "none" to run '
        "unsandboxed on purpose",
    )
