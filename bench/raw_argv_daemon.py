"""A daemon for the bench whose every bwrap start is preceded by a raw bwrap with the same argv.

    PILOTHOUSE_HOME=... RAW_ARGV_OUT=file python bench/raw_argv_daemon.py

The anchor `pilothouse run --wait` is compared with in bench/sandbox.py: bubblewrap started with
exactly what the daemon passes it (the same options file, the same descriptors for the read-only
binds and the workspace view, the same seccomp filter, the same switch to the agent's identity,
an empty environment) and nothing else: no info or block descriptor, no cgroup, no bridge, no
store. Each sample is the wall time of `subprocess.run` of that argv, as the plain raw anchor is
measured; it goes to $RAW_ARGV_OUT as "ms returncode" per line. The daemon then starts the run as
usual (that run is not measured). Only for benches: the real daemon is never patched.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# What the daemon's wait for the sandbox adds, and the raw start must not have.
DAEMON_ONLY = ("--info-fd", "--block-fd")


def raw_argv(argv: list[str]) -> list[str]:
    """argv without the daemon's info and block descriptors (each flag with its value): only
    bwrap's own options count, after the bwrap program and before its `--`."""
    start = next(i for i, a in enumerate(argv) if a.endswith("bwrap")) + 1
    end = argv.index("--", start) if "--" in argv[start:] else len(argv)
    opts, i = [], start
    while i < end:
        if argv[i] in DAEMON_ONLY:
            i += 2
            continue
        opts.append(argv[i])
        i += 1
    return argv[:start] + opts + argv[end:]


def _rewind(argv: list[str]) -> None:
    """bwrap reads its options file and filter from the descriptors' shared offset."""
    for flag in ("--args", "--seccomp"):
        if flag in argv:
            os.lseek(int(argv[argv.index(flag) + 1]), 0, os.SEEK_SET)


def _time_raw(argv: list[str], kwargs: dict[str, Any], out: Path) -> None:
    raw = raw_argv(argv)
    switch = {k: kwargs[k] for k in ("user", "group", "extra_groups") if k in kwargs}
    _rewind(raw)
    t = time.perf_counter()
    rc = subprocess.run(raw, pass_fds=tuple(kwargs.get("pass_fds", ())), env={},
                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL, start_new_session=True,
                        **switch).returncode  # fmt: skip
    ms = (time.perf_counter() - t) * 1e3
    _rewind(raw)
    with out.open("a") as f:
        f.write(f"{ms:.3f} {rc}\n")


def main() -> None:
    out = Path(os.environ["RAW_ARGV_OUT"])
    real = asyncio.create_subprocess_exec

    async def with_raw_first(*argv: str, **kwargs: Any) -> asyncio.subprocess.Process:
        if "--block-fd" in argv and any(a.endswith("bwrap") for a in argv):
            _time_raw(list(argv), kwargs, out)
        return await real(*argv, **kwargs)

    asyncio.create_subprocess_exec = with_raw_first  # type: ignore[assignment]
    sys.argv = ["pilothouse", "daemon"]
    from console.cli.main import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
