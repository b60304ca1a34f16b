"""The one protocol every sandbox backend speaks.

A SandboxSpec goes in, a SandboxHandle comes out. runs.py never knows which backend it has:
it reads merged output from `handle.output`, waits, stops, kills and asks for stats.
"""

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from console.config.schema import INSIDE_RUN_DIR, Limits
from console.paths import INSIDE_HOME

if TYPE_CHECKING:
    import asyncio

INSIDE_WORKSPACE = "/workspace"
BRIDGE_PORT = 3128
# Every sandboxed process's core dump limit, soft and hard (the agent cannot raise a hard one):
# 1 byte. A file dump needs a page at least, and the kernel starts no pipe handler (apport,
# systemd-coredump: root, in the host's namespaces, keeping the dump and the run's environment
# on the host's disk) for a limit of 1, which 0 would still start (fs/coredump.c; review h194).
CORE_LIMIT = 1

# Claude Code reads managed settings from here; project settings cannot switch off the hooks
# they install. The run folder's copy (MANAGED_DIR) is bound there in every sandbox.
CLAUDE_MANAGED_DIR = "/etc/claude-code"
MANAGED_DIR = "managed"


class SandboxError(Exception):
    """A sandbox could not be started or controlled. The message is for a person."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    read_only: bool = True


def home_folders(mounts: list[Mount]) -> list[str]:
    """Every folder between HOME and a file mounted below it (~/.claude for
    ~/.claude/settings.json), parents first. Each becomes a mount point of its own, a tmpfs the
    agent owns: a folder that merely holds a mounted file can be renamed away, mount and all,
    and a fresh one of the same name made with files of the agent's choosing. A mount point
    cannot be renamed (the workspace pins its folders for the same reason)."""
    folders: set[str] = set()
    for m in mounts:
        folder = PurePosixPath(m.target).parent
        while folder.is_relative_to(INSIDE_HOME) and str(folder) != INSIDE_HOME:
            folders.add(str(folder))
            folder = folder.parent
    folders -= {m.target for m in mounts}  # a folder mounted whole (~/.codex) is its own point
    return sorted(folders)  # a parent is a prefix of its children: it sorts first


@dataclass
class SandboxSpec:
    run_id: str
    profile: str
    command: list[str]
    workspace: Path  # host path, bound read-write at /workspace
    run_dir: Path  # host path, bound at /run/pilothouse
    env: dict[str, str]  # the complete environment inside (already allowlisted)
    limits: Limits = field(default_factory=Limits)
    gpu: bool = False
    gpus: list[int] | None = None  # pinned GPU indexes (CUDA_VISIBLE_DEVICES)
    image: str | None = None  # Docker only
    extra_mounts: list[Mount] = field(default_factory=list)
    # Folders below a read-only one of extra_mounts that are a fresh tmpfs each, the agent's to
    # write (Codex's state below the read-only ~/.codex: agents/codex_home.py).
    scratch: list[str] = field(default_factory=list)
    # Who asked for the run (SO_PEERCRED uid, gid): a root daemon runs the agent as them.
    requester: tuple[int, int] | None = None
    # The workspace opened once, without links, when it was checked (runs.py); backends use
    # this descriptor rather than the path, so a folder swapped after the check changes nothing.
    workspace_fd: int | None = None
    network: bool = False  # True only for sandbox = "none" semantics; sandboxes never get one


# Called by a backend once the sandbox's namespaces exist and before the agent's command runs,
# so the daemon can put the bridge into the network namespace without a race.
Prepare = Callable[["SandboxHandle"], Awaitable[None]]


@runtime_checkable
class SandboxHandle(Protocol):
    backend: str
    pid: int  # host pid of the sandbox's top process
    output: asyncio.StreamReader  # stdout and stderr merged, bytes
    netns_pid: int | None  # host pid whose /proc/PID/ns/net is the sandbox's network namespace
    notes: list[str]  # plain lines for the run's first output (e.g. "no python3: ph-ask absent")

    def host_pids(self) -> list[int]: ...

    async def wait(self) -> int: ...

    async def stop(self, grace: float = 2.0) -> None: ...

    async def kill(self) -> None: ...

    def stats(self) -> dict[str, float | int | None]: ...


class SandboxBackend(Protocol):
    name: str

    def usable(self) -> tuple[bool, str]:
        """(True, "") or (False, why not and what to do)."""
        ...

    def prestart(self) -> None:
        """A run is about to start here (before its checks and its recorded start): begin
        slow kernel work start() will need. Never fails, changes nothing a run can see."""
        ...

    async def start(self, spec: SandboxSpec, prepare: Prepare | None = None) -> SandboxHandle: ...

    async def reconcile(self, live_run_ids: set[str]) -> list[str]:
        """Remove leftovers of runs not in live_run_ids; return what was removed."""
        ...


class NothingEarly:
    """A backend with no slow kernel work to begin before a start (SandboxBackend.prestart)."""

    def prestart(self) -> None:
        return None


# ---------------------------------------------------------------------------------------------
# Shared helpers for every backend (additions; the names above are the run manager's contract).
# ---------------------------------------------------------------------------------------------

HOOK_COMMAND = "ph-claude-hook"
HELPER_COMMANDS = ("ph-ask", "ph-guard", HOOK_COMMAND)
BRIDGE_URL = f"http://127.0.0.1:{BRIDGE_PORT}"
NO_PYTHON_NOTE = (
    "this image has no python3: ph-ask, ph-guard and ph-claude-hook are not available inside"
)
# Mount sources for masking: an empty read-only file and directory inside each run folder, so a
# mask never depends on device nodes (binds are nodev) or on anything shared between runs.
MASK_DIR = ".mask"


def default_helper_src() -> Path:
    return Path(__file__).with_name("inside.py")


def helper_module_src() -> Path:
    """The helper's one module of its own, beside it in bin/: read for tools other than Bash alone."""
    return Path(__file__).with_name("inside_writes.py")


def ensure_masks(run_dir: Path) -> tuple[Path, Path]:
    """(empty file, empty dir) under run_dir/.mask, read-only, created if missing."""
    mask = run_dir / MASK_DIR
    mask.mkdir(mode=0o755, parents=True, exist_ok=True)
    empty_file, empty_dir = mask / "empty", mask / "emptydir"
    if not empty_file.exists():
        empty_file.touch(mode=0o444)
    empty_dir.mkdir(mode=0o555, exist_ok=True)
    return empty_file, empty_dir


def mask_source(run_dir: Path, kind: str, content: str = "") -> Path:
    """The read-only file or folder bound over a masked path: empty, or (for files a tool must
    be able to parse, like git's commondir) a content that means "nothing here"."""
    empty_file, empty_dir = ensure_masks(run_dir)
    if kind == "mask-dir":
        return empty_dir
    if not content:
        return empty_file
    import hashlib

    path = run_dir / MASK_DIR / f"file-{hashlib.sha256(content.encode()).hexdigest()[:12]}"
    if not path.exists():
        path.write_text(content)
        os.chmod(path, 0o444)
    return path


def prepare_run_dir(run_dir: Path, helper_src: Path | None = None, *,
                    interpreter: str | None = None) -> list[str]:
    """Fill a run folder with what the sandbox sees at /run/pilothouse/bin.

    Writes bin/inside.py and inside_writes.py (copies, so a package upgrade mid-run changes nothing inside) and one
    wrapper per helper command: a Python script whose first line names `interpreter` where the
    backend knows the path of the sandbox's python3 (bubblewrap shows the host's /usr), else an
    sh wrapper that finds python3 on PATH and says so when there is none. Returns notes for
    the run's first output lines (empty when all is well). The folder is made 0755 so a container running as another uid can traverse
    it; the runs folder above it stays 0700, so other host users still cannot.
    """
    import shutil

    run_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(run_dir, 0o755)
    ensure_masks(run_dir)
    bin_dir = run_dir / "bin"
    bin_dir.mkdir(mode=0o755, exist_ok=True)
    src = helper_src or default_helper_src()
    notes: list[str] = []
    dst = bin_dir / "inside.py"
    if src.is_file():
        for one, there in ((src, dst), (helper_module_src(), bin_dir / "inside_writes.py")):
            shutil.copyfile(one, there)
            os.chmod(there, 0o644)
            write_helper_pyc(there)
    else:
        notes.append(f"helper {src} is missing: ph-ask, ph-guard and ph-claude-hook are absent")
    for cmd in HELPER_COMMANDS:
        wrapper = bin_dir / cmd
        wrapper.write_text(direct_wrapper(cmd, interpreter) if interpreter else sh_wrapper(cmd))
        os.chmod(wrapper, 0o755)
    # The demo agent (bin/demo.py, bin/ph-demo-agent) and the agents' HOME settings files.
    from console.agents import install_run_files

    notes.extend(install_run_files(run_dir))
    return notes


def sh_wrapper(cmd: str) -> str:
    """A helper command for a sandbox whose python3 is wherever PATH finds it (a container)."""
    return (
        "#!/bin/sh\n"
        "# Written by pilothouse: the in-sandbox helper needs a python3 on PATH.\n"
        # The image's own folders first (the container's root is read-only): PATH may name
        # folders the agent or the repository writes (a project's .venv/bin), and a python3
        # planted there would answer the hook itself. `[` is built in: no process started.
        "if [ -x /usr/bin/python3 ]; then py=/usr/bin/python3\n"
        "elif [ -x /usr/local/bin/python3 ]; then py=/usr/local/bin/python3\n"
        "elif [ -x /bin/python3 ]; then py=/bin/python3\n"
        "else\n"  # else PATH, less what a run can write (the mounts, tmpfs, relative names)
        "  py= IFS=:; set -f\n"
        "  for d in $PATH; do\n"
        "    case $d in /workspace|/workspace/*|/home/*|/tmp|/tmp/*|/var/tmp*|/dev/shm*|/run/*"
        "|''|[!/]*) continue;; esac\n"
        '    if [ -x "$d/python3" ]; then py=$d/python3; break; fi\n'
        "  done\n"
        "  unset IFS; set +f\n"
        "fi\n"
        'if [ -z "$py" ]; then\n'
        f"  echo '{cmd}: {NO_PYTHON_NOTE}' >&2\n"
        f"  exit {_failed_exit(cmd)}\n"
        "fi\n"
        # ${0%/*}: the wrapper's own folder, so the same file works in a sandbox
        # (/run/pilothouse/bin) and for sandbox = "none" (the run folder on the host).
        # -S -E: the helper is standard library only, so no site-packages scan and no
        # PYTHON* variables from the agent (about 5 ms of every hook call). Imported, not
        # run as a script, so its compiled form (write_helper_pyc) is used: a script is
        # compiled again on every call. The path has the helper's folder and no ''.
        # The hook answers 0 (its decision on stdout) or, when it cannot, 2: an agent runs
        # the tool on any other failure (a python3 too old for the helper, say).
        + (f'"$py" -S -E -c "{HELPER_LOADER}" "${{0%/*}}/inside.py" {cmd} "$@" || '
           f"{{ echo '{cmd}: the helper failed, so this tool call is blocked' >&2; exit 2; }}\n"
           if cmd == HOOK_COMMAND else
           f'exec "$py" -S -E -c "{HELPER_LOADER}" "${{0%/*}}/inside.py" {cmd} "$@"\n')
    )


def _failed_exit(cmd: str) -> int:
    """The exit of a helper that cannot run: 2 for the hook (Claude Code and Codex block the
    tool call on 2 only; any other failure lets it run), 127 (not found) for the others."""
    return 2 if cmd == HOOK_COMMAND else 127


def direct_wrapper(cmd: str, interpreter: str) -> str:
    """A helper command that starts Python without a shell in front (about 1 ms of every hook
    call): -SE as in the sh wrapper; sys.path[0] is the script's own folder, where inside.py
    and its compiled form lie, and the path keeps no '' or '.'."""
    return (f"#!{interpreter} -SE\n"
            "# Written by pilothouse: the in-sandbox helper, started without a shell.\n"
            "import sys\n"
            "d = sys.path[0]\n"
            "sys.path[:] = [d] + [p for p in sys.path[1:] if p not in ('', '.', d)]\n"
            "try:\n"
            "    import inside\n"
            "except Exception as e:\n"
            f"    sys.stderr.write('{cmd}: the helper could not start (%s)\\n' % e)\n"
            f"    sys.exit({_failed_exit(cmd)})\n"
            f"inside.run_and_exit([{cmd!r}, *sys.argv[1:]])\n")


def sandbox_python(backend: str) -> str | None:
    """The python3 a helper wrapper can name directly: under bubblewrap (the host's /usr, read-
    only) and with no sandbox, the host's; in a container, unknown (the sh wrapper finds one)."""
    if backend in ("bwrap", "none") and os.access("/usr/bin/python3", os.X_OK):
        return "/usr/bin/python3"
    return None


HELPER_LOADER = ("import sys; d = sys.argv[1].rpartition('/')[0]; "
                 "sys.path[:] = [d] + [p for p in sys.path if p not in ('', '.', d)]; "
                 "import inside; inside.run_and_exit(sys.argv[2:])")
_HELPER_PYC: dict[bytes, bytes] = {}  # helper source -> its compiled bytes, for every run


def write_helper_pyc(helper: Path) -> None:
    """Compile the helper into bin/__pycache__ for this Python (validated by a hash of the
    source, so the same bytes serve every run). A sandbox whose python3 has the same cache tag
    imports it; any other compiles the source as before (the folder is read-only there)."""
    import importlib.util
    import py_compile

    source = helper.read_bytes()
    cfile = Path(importlib.util.cache_from_source(str(helper)))
    cfile.parent.mkdir(mode=0o755, exist_ok=True)
    os.chmod(cfile.parent, 0o755)  # whatever the umask: a container's other uid reads it too
    cached = _HELPER_PYC.get(source)
    if cached is not None:
        cfile.write_bytes(cached)
    else:
        try:
            py_compile.compile(str(helper), cfile=str(cfile), doraise=True,
                               invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
        except py_compile.PyCompileError:
            return  # the sandbox's python3 reports the syntax error itself
        if len(_HELPER_PYC) >= 4:  # inside.py and inside_writes.py, and an upgrade's new copies
            _HELPER_PYC.clear()
        _HELPER_PYC[source] = cfile.read_bytes()
    os.chmod(cfile, 0o644)


REMOVED_PREFIX = ".gone-"  # run folders being deleted (never a run id: ids have no dot)
# One thread deletes ended runs' folders, in order; queueing to it does not wait for a thread
# to start (Thread.start does, and under load that is milliseconds on the daemon's loop).
_REMOVER: concurrent.futures.ThreadPoolExecutor | None = None


def remove_run_dir(run_dir: Path) -> None:
    """Take an ended run's folder out of sight at once (one rename) and delete it in a thread:
    removing its dozen files waits on the file system's journal, and the end of a run is
    reported only after this. A daemon that dies first leaves `.gone-*`; sweep_removed ends it."""
    global _REMOVER
    gone = run_dir.with_name(f"{REMOVED_PREFIX}{run_dir.name}")  # run ids are never reused
    try:
        os.rename(run_dir, gone)
    except FileNotFoundError:
        return
    except OSError:
        gone = run_dir  # cannot be renamed (busy, or a leftover of that name): removed in place
    if _REMOVER is None:
        _REMOVER = concurrent.futures.ThreadPoolExecutor(1, "pilothouse-rm-run")
    _REMOVER.submit(remove_unmounted, gone)


def sweep_removed(runs_dir: Path) -> None:
    """Delete run folders a previous daemon set aside but did not finish removing."""
    for p in Path(runs_dir).glob(f"{REMOVED_PREFIX}*"):
        remove_unmounted(p)


def remove_unmounted(folder: Path) -> None:
    """rmtree, unless something is still mounted below (a staged workspace view that could
    not be detached): deleting through it would delete the person's files."""
    import shutil

    from .fsview import under_a_mount

    if not under_a_mount(folder):
        shutil.rmtree(folder, ignore_errors=True)


def sandbox_env(spec: SandboxSpec) -> dict[str, str]:
    """spec.env plus what every sandbox needs: HOME, PATH with the helper, proxy variables.

    The proxy variables point at the bridge; a spec may override them (e.g. to unset them for a
    tool that cannot use a proxy) by setting them itself.
    """
    env = dict(spec.env)
    env["HOME"] = INSIDE_HOME
    path = env.get("PATH") or "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"
    # The helper's folder first: the agents' settings name the hook by its bare name, so a
    # folder the agent can write earlier on PATH (~/.local/bin) would let it plant its own.
    helper_bin = f"{INSIDE_RUN_DIR}/bin"
    path = ":".join([helper_bin, *(p for p in path.split(":") if p != helper_bin)])
    env["PATH"] = path
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        env.setdefault(name, BRIDGE_URL)
        env.setdefault(name.lower(), BRIDGE_URL)
    env.setdefault("PILOTHOUSE_RUN_ID", spec.run_id)
    env.setdefault("PILOTHOUSE_RUN_DIR", INSIDE_RUN_DIR)
    if spec.gpus is not None:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in spec.gpus)
    return env


def owner_key(runs_dir: Path) -> str:
    """A short stable id of one Pilothouse installation (its runs folder).

    Leftovers (containers, cgroups) carry it, so a daemon's reconcile only ever removes its
    own: several daemons (users, PILOTHOUSE_HOMEs, test suites) share one Docker engine.
    """
    import hashlib

    return hashlib.sha256(str(Path(runs_dir).resolve()).encode()).hexdigest()[:12]


def run_cgroup_name(runs_dir: Path, run_id: str) -> str:
    """A run's cgroups' name, OWNER-RUNID: run ids are short, and another daemon's run of the
    same id never shares them (cgroups.remove_leftovers reads the owner back from it)."""
    return f"{owner_key(runs_dir)}-{run_id}"


def default_owner() -> str:
    import warnings

    from console.paths import resolve

    with warnings.catch_warnings():  # only the runs folder matters here, not the runtime dir
        warnings.simplefilter("ignore")
        return owner_key(resolve().runs_dir)
