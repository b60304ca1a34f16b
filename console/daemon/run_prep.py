"""What a run needs before its sandbox starts: the workspace checked and opened, the agent's
environment, and the profile's carried files. Each step is a function of the run's request;
runs.py calls them in order.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

from console.agents import HOME_DIR, RUN_ENV_PINNED, mount_point
from console.config.load import Profile
from console.config.schema import RUN_PATH
from console.paths import INSIDE_HOME, Paths
from console.protocol import Failure
from console.sandbox.base import BRIDGE_PORT, INSIDE_RUN_DIR, INSIDE_WORKSPACE
from store.waits import StoreStuck, StoreUncertain

PASSTHROUGH_ENV = ("TERM", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "COLORTERM", "NO_COLOR")


def open_workspace(paths: Paths, profile: Profile, requested: str | None,
                   client_cwd: str | None, requester: tuple[int, int]) -> tuple[Path, int]:  # fmt: skip
    """The workspace, resolved as the requester would resolve it, and a descriptor of it,
    opened without following links and checked for the requester (workspaces.py). Backends
    use the descriptor, so a folder swapped for a link after this check changes nothing. The
    caller closes it."""
    from console.sandbox.fsview import open_dir_nofollow
    from console.sandbox.workspaces import Refusal, check_workspace, find_workspace

    raw = requested or profile.workspace or "."
    base = Path(client_cwd or os.getcwd())
    found = find_workspace(base / os.path.expanduser(raw), requester[0], requester[1])
    if isinstance(found, Refusal):
        raise Failure("bad-workspace", found.reason, found.hint)
    path = found
    try:
        fd = open_dir_nofollow(path)
    except OSError as exc:
        raise Failure(
            "bad-workspace", f"workspace {path} changed while it was being opened ({exc})",
            "start the run again; if it keeps failing, something is swapping the folder",
        ) from None  # fmt: skip
    own = [paths.data_dir, paths.runs_dir, paths.runtime_dir,
           paths.data_dir.parent, paths.log_dir,
           paths.config_file.parent]  # fmt: skip
    try:
        refusal = check_workspace(path, fd, requester[0], requester[1], own)
    except BaseException:
        os.close(fd)
        raise
    if refusal is not None:
        os.close(fd)
        raise Failure("bad-workspace", refusal.reason, refusal.hint)
    return path, fd


@dataclass(frozen=True)
class EnvReach:
    """Where the values of a profile's `env` names may go, for one run (env_reach)."""

    owners_run: bool = True  # asked for by the daemon's user or root
    callers: bool = True  # the values from the shell that ran `pilothouse run`
    daemons: bool = True  # the daemon's own (its owner's API keys), for the names that shell lacks
    agent: str = ""  # who the agent runs as, when it is someone else: for the withheld note
    advice: str = ""  # what to do to pass them


def env_reach(backend: str, ws_fd: int, asker: tuple[int, int]) -> EnvReach:
    """A value from the caller's shell goes only to an agent that runs as the caller; one from
    the daemon's environment only to an agent that runs as the daemon's user, and only in a run
    that user or root asked for (a teammate's run, and every watcher of its output, must not get
    the owner's keys). The root daemon's own account (pilothouse-agent: root's runs in
    root-owned workspaces, no person controls it) takes both. Any other uid is a person's, who
    can read the agent's environment in /proc/PID/environ from their own shell, outside the
    sandbox: a root-asked run in alice's workspace runs as alice (identity.py), and root's keys
    were hers to read (review s32). Such values are withheld, and the run's notes say so."""
    import pwd

    from console.sandbox.identity import agent_identity

    owners_run = asker[0] in (0, os.getuid())
    if backend == "none":  # a plain process of the daemon's own user
        uid, dedicated, why = os.getuid(), False, "the daemon's own user"
    else:
        ident = agent_identity(ws_fd, asker)
        uid, dedicated, why = ident.uid, ident.dedicated, ident.why
    callers = dedicated or uid == asker[0]
    daemons = owners_run and (dedicated or uid == os.getuid())
    if callers and daemons:
        return EnvReach(owners_run, callers, daemons)
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = f"uid {uid}"
    if os.geteuid() == 0:  # root's run in a person's workspace runs as that person
        advice = (f"run it as {name} (`pilothouse run` from that user's shell, with the values "
                  "set there), or in a workspace you own")
    else:  # a person's daemon runs every agent as that person
        advice = (f"run it as {name} (`pilothouse run` from that user's shell, with the values "
                  "set there), or on a daemon of your own")
    return EnvReach(owners_run, callers, daemons, f"{name} (uid {uid}, {why})", advice)


def run_env(run_id: str, profile: Profile, caller_env: dict[str, str] | None = None,
            notes: list[str] | None = None, reach: EnvReach | None = None) -> dict[str, str]:
    """The agent's environment: a few of the daemon's (terminal, locale), the profile's `env`
    names from the caller's shell, its `setenv`, the proxy pointing at the bridge, and the
    run's own names. `notes` gets a line for each `env` name set nowhere, and one naming those
    withheld because the agent runs as another person (`reach`, env_reach)."""
    reach = reach or EnvReach()
    env = {name: os.environ[name] for name in PASSTHROUGH_ENV if name in os.environ}
    # The profile's `env` names: from the shell that ran `pilothouse run`, else the daemon's,
    # but the daemon's (its owner's API keys) only for a run its owner or root asked for: a
    # teammate's run, and every watcher of its output, must not get them.
    fallback = os.environ if reach.owners_run else {}
    withheld: list[str] = []
    for name in profile.env:
        from_caller = name in (caller_env or {})
        value = (caller_env or {}).get(name, fallback.get(name))
        if value is None:
            if notes is not None:
                where = "nor in the daemon's environment" if reach.owners_run else (
                    "(the daemon's own values go only to its owner's runs)")
                notes.append(f"env {name}: set neither where `pilothouse run` ran {where}; "
                             "the agent runs without it")
            continue
        if not (reach.callers if from_caller else reach.daemons):
            withheld.append(name)  # fail closed: the value goes nowhere, not even to a note
            continue
        env[name] = value
    if withheld and notes is not None:
        them = "it" if len(withheld) == 1 else "them"
        notes.append(
            f"env {', '.join(withheld)}: withheld: the agent runs as {reach.agent}, who can read "
            f"its environment from outside the sandbox (/proc/PID/environ); a value from the "
            f"shell that ran `pilothouse run`, or from the daemon's, goes only to an agent that "
            f"runs as the user it came from (or as pilothouse-agent, which no person controls). "
            f"The agent runs without {them}: to pass {them}, {reach.advice}")
    env.update(profile.setenv)
    proxy = f"http://127.0.0.1:{BRIDGE_PORT}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        env[name] = proxy
        env[name.lower()] = proxy
    env["NO_PROXY"] = env["no_proxy"] = ""
    env.update(
        PATH=RUN_PATH,
        HOME="/home/agent",
        PILOTHOUSE_RUN_ID=run_id,
        PILOTHOUSE_PROFILE=profile.name,
        PILOTHOUSE_AGENT_SOCK=f"{INSIDE_RUN_DIR}/agent.sock",
        PILOTHOUSE_WORKSPACE=INSIDE_WORKSPACE,
    )
    env.update(RUN_ENV_PINNED)  # after setenv: the agents' own, which no profile may move
    if profile.gpus is not None:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in profile.gpus)
    return env


async def carry(run_dir: Path, profile: Profile, ws: Path, ws_fd: int, asker: tuple[int, int],
                backend: str, notes: list[str]) -> list[tuple[Path, str]]:  # fmt: skip
    """The profile's `carry` files, read as the identity the agent will have (off the loop:
    reading may wait on the file system). A failure is a note, never a stuck start."""
    from console.sandbox.identity import agent_identity
    from console.sandbox.workspaces import carry_files

    if os.geteuid() != 0 and asker[0] not in (0, os.getuid()):
        # A person's daemon can read only as itself, the owner: a teammate's `~` (or a link in
        # it) would bring in what the owner may read and the teammate may not.
        notes.append("carry: nothing carried: this daemon runs as its owner and cannot read "
                     "files as you (a root daemon can)")
        return []
    try:
        if backend == "none":
            reader = (os.getuid(), os.getgid())
        else:
            ident = agent_identity(ws_fd, asker)
            reader = (ident.uid, ident.gid)
        carried, carry_notes = await asyncio.to_thread(
            carry_files, profile.carry, asker, reader, ws,
            run_dir / "carry")  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - a run starts without what it could not carry
        notes.append(f"carry: nothing carried ({exc})")
        return []
    notes.extend(carry_notes)
    taken = [(copy, inside) for copy, inside in carried if not _pinned(inside, notes)]
    for _copy, inside in taken:  # one below the read-only ~/.codex needs its point made there
        mount_point(run_dir / HOME_DIR, inside)
    return taken


def _pinned(inside: str, notes: list[str]) -> bool:
    """A carried file over one Pilothouse keeps in HOME (an agent's settings holding its hook,
    a pinned shell file) replaced it under bubblewrap, and every approval with it; Docker
    refused the run (review s20): such a file is not carried, and the notes say so."""
    from console.agents import pinned_under

    pinned = pinned_under(inside)
    if pinned is not None:
        home = f"~{inside[len(INSIDE_HOME):]}" if inside.startswith(f"{INSIDE_HOME}/") else inside
        notes.append(f"carry {home}: Pilothouse keeps its own {pinned} in the sandbox (its "
                     "controls are set there); not carried")
    return pinned is not None

def start_refused(run_id: str, exc: BaseException, paths: Paths) -> Failure:
    """Why a run was not started, truthfully: a start withdrawn after a timeout was not
    recorded; one timed out in the batch being committed may yet be (store/waits.py)."""
    if isinstance(exc, StoreUncertain):
        return Failure("record-failed", f"run {run_id} was not started: its start is not "
                       f"confirmed as recorded, and the record may still land ({exc})",
                       f"the daemon log ({paths.daemon_log}) says why the store is stuck; a "
                       "start recorded without its run is marked lost at the next start")
    hint = (f"the history cannot be written; check the free space and permissions of "
            f"{paths.data_dir} and the daemon log ({paths.daemon_log})")
    if isinstance(exc, StoreStuck):
        hint = f"the store did not answer in time; the daemon log ({paths.daemon_log}) says why"
    return Failure("record-failed",
                   f"run {run_id} was not started: its start could not be recorded ({exc})", hint)
