"""Review s32 (helper 114): without cgroups, the memory limit did not bound in-memory folders.

A person's daemon has no cgroup to put a run in, so a profile's memory limit is an address-space
limit (RLIMIT_AS), which tmpfs pages are not: with `memory = "256m"`, `dd` wrote 1 GiB to /tmp
(each of /tmp, /var/tmp and HOME took up to half the host's memory; helper 119 then /dev and
/dev/shm). Now bwrap (0.8 and later) gives each its size from the limit, /dev read-only with
/dev/shm a sized one of its own; a root daemon's cgroup already charged them.
"""

from __future__ import annotations

import pytest

from console.sandbox.base import Limits
from console.sandbox.bwrap import BWRAP, find_bwrap, sizes_tmpfs

LIMIT_MIB = 48


# Under bubblewrap, a root daemon (cgroups) and a person's (none); a container's in-memory
# folders are 512m each whatever the limit (docker.py's TMPFS_OPTS).
@pytest.mark.parametrize("hostile", ["bwrap-root", "bwrap-user"], indirect=True)
@pytest.mark.parametrize("folder", ["/tmp", "/var/tmp", "$HOME", "/dev/shm", "/dev"])
async def test_an_in_memory_folder_holds_no_more_than_the_memory_limit(hostile, folder):
    if not sizes_tmpfs(find_bwrap() or BWRAP):
        pytest.skip("this bubblewrap is older than 0.8: it has no --size")
    r = await hostile.run(f"dd if=/dev/zero of={folder}/big bs=1M count={LIMIT_MIB * 3} 2>/dev/null; "
                          f"if [ -f {folder}/big ]; then du -m {folder}/big | cut -f1; else echo 0; fi", limits=Limits(memory_bytes=LIMIT_MIB << 20))
    written = int(r.out.strip().splitlines()[-1])
    assert written <= LIMIT_MIB, (hostile.name, r.out)


@pytest.mark.parametrize("hostile", ["bwrap-user"], indirect=True)
async def test_shared_memory_still_works_under_the_bound(hostile):
    r = await hostile.run("python3 -c 'import multiprocessing.shared_memory as s; "
                          "m = s.SharedMemory(create=True, size=4096); print(\"shm\", m.size); "
                          "m.close(); m.unlink()'; echo x > /dev/null && echo null-ok",
                          limits=Limits(memory_bytes=LIMIT_MIB << 20))
    assert "shm 4096" in r.out and "null-ok" in r.out, r.out
