"""Run as the ordinary-user daemon's account by test_persons_docker_s20.py: daemon_user.py's
job, with one step added where a person's daemon hands the Docker engine its paths. Between
the daemon's checks and the engine's mounts another user who can write the workspace acts: the
daemon waits there, so the test needs no timing, for that user's process to say it is done.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from tests.sandbox import daemon_user
from tests.sandbox.swap_handshake import hold_before_the_mounts

HANDSHAKE = Path(sys.argv[2])
hold_before_the_mounts(HANDSHAKE)

if __name__ == "__main__":
    job = json.loads(sys.argv[1])
    try:
        result = asyncio.run(daemon_user._main(job))
    except Exception as e:  # noqa: BLE001 - the parent shows it
        result = {"rc": -1, "out": "", "notes": [], "error": f"{type(e).__name__}: {e}"}
    print(json.dumps(result))
