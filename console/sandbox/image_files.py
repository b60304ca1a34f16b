"""Files of a Docker image, read from a container made from it and never started (docker.py's
probe): whether a path exists, and a small text file's content."""

from __future__ import annotations

import io
import tarfile
from typing import Any

MAX_TEXT = 4 << 20  # a passwd file past this is not read (the run shows the image's own)


def exists(container: Any, path: str) -> bool:
    import docker.errors

    try:
        stream, _stat = container.get_archive(path)
        for _ in stream:
            break
        return True
    except docker.errors.NotFound:
        return False


def read_text(container: Any, path: str) -> str | None:
    """The regular file at `path` as text (bytes that are not UTF-8 kept as surrogates), or
    None when it is missing, not a regular file, or larger than MAX_TEXT."""
    import docker.errors

    try:
        stream, stat = container.get_archive(path)
    except docker.errors.NotFound:
        return None
    if stat.get("size", 0) > MAX_TEXT:
        return None
    data = bytearray()
    for chunk in stream:
        data += chunk
        if len(data) > MAX_TEXT + 65536:  # the tar's own headers on top of the file
            return None
    with tarfile.open(fileobj=io.BytesIO(bytes(data))) as tar:
        member = next(iter(tar), None)
        if member is None or not member.isreg():
            return None
        handle = tar.extractfile(member)
        return None if handle is None else handle.read().decode("utf-8", "surrogateescape")
