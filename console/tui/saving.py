"""Where the console saves files a person asked for (screenshots, history exports).

Over SSH there is often no ~/Downloads, and the folder the console started in is usually a
project: files go to ~/Downloads when it exists, else the home folder; the path is always said
whole. PILOTHOUSE_SAVE_DIR overrides both.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def save_folder() -> Path:
    override = os.environ.get("PILOTHOUSE_SAVE_DIR")
    if override:
        return Path(override).expanduser().resolve()
    home = Path.home()
    downloads = home / "Downloads"
    return (downloads if downloads.is_dir() else home).resolve()


def stamped(name: str, suffix: str, now: float | None = None) -> Path:
    """A new file in the save folder: name-YYYYmmdd-HHMMSS.suffix."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    return save_folder() / f"{name}-{stamp}.{suffix}"
