"""A read the daemon cannot open (out of file descriptors, under a flood of connections) is an
expected failure: the caller gets a clear error and the log one line, never a traceback.

Found by tests/core/test_bounds.py::test_fd_exhaustion_is_refused_quietly_and_operators_still_answer,
which failed now and then when a `logs` read opened its store connection at the limit. Here the
limit is reached on purpose: a child process with the real Storage lowers its own RLIMIT_NOFILE
to what it holds, then reads.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

CHILD = textwrap.dedent("""
    import asyncio, logging, os, resource, sys
    from console.config.load import load
    from console.daemon.storage import Storage
    from console.paths import resolve
    from console.protocol import Failure

    logging.basicConfig(stream=sys.stderr)

    async def main():
        paths = resolve()
        paths.ensure()
        storage = await Storage.open(paths, load(None))
        held = len(os.listdir("/proc/self/fd"))
        resource.setrlimit(resource.RLIMIT_NOFILE, (held, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        try:
            await storage.read(lambda db: 1)
            print("read")
        except Failure as failure:
            print("failure", failure.code)
        except Exception as exc:
            print("raised", type(exc).__name__, exc)
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        await storage.close()

    asyncio.run(main())
""")


def test_a_read_at_the_fd_limit_is_a_clear_failure(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                          timeout=60, cwd=Path(__file__).resolve().parents[2],
                          env={"PILOTHOUSE_HOME": str(home), "PATH": "/usr/bin:/bin"})
    assert done.stdout.strip() == "failure store-failed", (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
