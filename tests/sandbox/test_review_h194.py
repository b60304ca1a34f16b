"""Review h194: a running sandbox attacked from inside, on both backends under a root daemon and a
person's (the `hostile` fixture).

A crash inside a run dumped core: the hard RLIMIT_CORE was unlimited in every sandbox, so the
agent raised its soft limit and the kernel wrote the dump. Where kernel.core_pattern is a file
name (this machine's `core`) that lands in the sandbox's own folder; where it is a pipe
(Ubuntu's apport, systemd-coredump), the kernel starts that handler as root in the host's
namespaces, on the agent's memory and /proc, and it stores the dump on the host's disk
(/var/crash, /var/lib/systemd/coredump) past the run, with the run's environment (its API keys)
in it. A limit of 1 byte, which the agent cannot raise, stops both: a file dump needs a page at
least, and the kernel starts no pipe handler for it (fs/coredump.c, the value it uses itself to
stop a handler's own crash from dumping)."""

from __future__ import annotations

import asyncio
import re

CRASH = (
    "grep 'Max core' /proc/self/limits; "
    "cd /tmp && (ulimit -c unlimited) 2>/dev/null && echo RAISED; "
    "ulimit -c unlimited 2>/dev/null; sh -c 'kill -SEGV $$'; "
    "ls /tmp | grep core && echo DUMPED; echo END"
)


def test_a_crash_inside_a_run_dumps_no_core(hostile):
    r = asyncio.run(hostile.run(CRASH))
    assert "END" in r.out, r.out
    limit = re.search(r"Max core file size\s+(\S+)\s+(\S+)", r.out)
    assert limit is not None, r.out
    assert limit.group(2) in ("0", "1"), f"the agent may raise its core limit: {r.out}"
    assert "RAISED" not in r.out, r.out
    assert "DUMPED" not in r.out, r.out


def test_a_hard_core_limit_of_zero_stays_zero():
    """Raising a hard limit needs CAP_SYS_RESOURCE: a daemon started with 0 keeps 0 (no file
    dump) instead of failing every start."""
    import subprocess
    import sys

    code = ("import resource; resource.setrlimit(resource.RLIMIT_CORE, (0, 0)); "
            "from console.sandbox.cgroups import no_core_dumps; no_core_dumps(); "
            "print(resource.getrlimit(resource.RLIMIT_CORE))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "(0, 0)"
