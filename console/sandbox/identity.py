"""Who the agent runs as on the host. Never uid 0, on either backend.

- Daemon run by a person (not root): that person's uid and gid; the kernel allows nothing else.
- Root daemon, a run asked for by a person (SO_PEERCRED uid not 0, e.g. a teammate): that
  person's uid and gid. The agent gets exactly the asker's power, whoever owns the folder:
  a run must never lend a teammate another user's (or root's) identity.
- Root daemon, asked for by root, workspace owned by a person: that person's uid and gid, so
  what the agent writes is theirs and it can read what they can read there, nothing more.
- Root daemon, asked for by root, workspace owned by root (the rented GPU box): the dedicated
  account `pilothouse-agent` (made on first use), and the sandbox sees the workspace through an
  id-mapped mount: root's files read as the agent's, and the agent's new files land on disk as
  root's. The agent holds no host privilege; the person's files stay the person's. Because its
  files land as root's, seccomp refuses set-id mode bits in every sandbox (seccomp.py).

Whoever the agent runs as can read its environment (/proc/PID/environ) from outside the
sandbox: a profile's `env` values from the asker's shell, or the daemon's, go in only when that
is the asker themselves (or the daemon's user, for the daemon's values) or `pilothouse-agent`;
else they are withheld and the run's notes say so (run_prep.env_reach, review s32).

A root daemon drops supplementary groups: a person's `docker` or `sudo` group must not ride
along. A daemon run by a person cannot: the kernel refuses setgroups in the unprivileged user
namespace bubblewrap builds, so that person's groups stay on the agent (shown inside as nogroup)
and reach what the sandbox mounts (the read-only system folders and the workspace), nothing
else: docker.sock and the rest of /run are not mounted. docs/threat-model.md says so too.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from dataclasses import dataclass
from pathlib import Path

AGENT_ACCOUNT = "pilothouse-agent"
NOBODY = 65534


@dataclass(frozen=True)
class AgentIdentity:
    uid: int
    gid: int
    idmap: bool  # the workspace is shown through an id-mapped mount (root-owned workspace)
    why: str  # one line for doctor and the run's notes

    @property
    def dedicated(self) -> bool:
        """The root daemon's own account: only root's runs use it and no person controls it,
        so root's `env` values may go to it (run_prep.env_reach). nobody, the fallback, is
        shared with other services: it is not."""
        account = agent_account(create=False)
        return self.idmap and self.uid != NOBODY and account is not None and self.uid == account[0]

    def describe(self) -> str:
        try:
            name = pwd.getpwuid(self.uid).pw_name
        except KeyError:
            name = "no name"
        return f"uid {self.uid} ({name}), gid {self.gid}: {self.why}"


def agent_account(create: bool = True) -> tuple[int, int] | None:
    """uid, gid of the dedicated account; made with useradd when absent (root only)."""
    try:
        pw = pwd.getpwnam(AGENT_ACCOUNT)
        return pw.pw_uid, pw.pw_gid
    except KeyError:
        pass
    if not create or os.geteuid() != 0:
        return None
    subprocess.run(
        ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", "--comment", "Pilothouse sandboxed agents",
         AGENT_ACCOUNT],
        capture_output=True, timeout=30,
    )  # fmt: skip
    try:
        pw = pwd.getpwnam(AGENT_ACCOUNT)
        return pw.pw_uid, pw.pw_gid
    except KeyError:
        return None


def agent_identity(workspace: Path | int, requester: tuple[int, int] | None = None,
                   create: bool = True) -> AgentIdentity:  # fmt: skip
    """workspace: its path or an open descriptor; requester: (uid, gid) of who asked, None for
    the daemon itself (treated as root's request when the daemon is root)."""
    if os.geteuid() != 0:
        return AgentIdentity(os.getuid(), os.getgid(), False, "the daemon's own user")
    if requester is not None and requester[0] != 0:
        return AgentIdentity(requester[0], requester[1], False, "the person who started the run")
    st = os.fstat(workspace) if isinstance(workspace, int) else workspace.stat()
    if st.st_uid != 0:
        return AgentIdentity(st.st_uid, st.st_gid, False, "the workspace owner")
    account = agent_account(create)
    if account is None:
        return AgentIdentity(NOBODY, NOBODY, True, f"nobody (could not create {AGENT_ACCOUNT})")
    return AgentIdentity(*account, True, f"{AGENT_ACCOUNT}, root's workspace id-mapped to it")
