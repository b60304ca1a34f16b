"""What a loaded config is: the profiles with their policies, and the daemon-wide settings.
Plain data; console/config/load.py builds it from the layered files and validates every value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from console.config.bounds import Bounds
from console.policy import ExecRules

SANDBOXES = ("auto", "bwrap", "docker", "none")
ACTIONS = ("allow", "ask", "deny")
EMBEDDED = "embedded defaults"  # the file name messages give the built-in profiles
# Where the run folder (agent.sock, gate.sock, the helpers in bin/) appears inside every sandbox.
INSIDE_RUN_DIR = "/run/pilothouse"
# PATH in every run: the helpers first, then the system's (nothing the agent can write).
RUN_PATH = f"{INSIDE_RUN_DIR}/bin:/usr/local/bin:/usr/bin:/bin"


class ConfigError(Exception):
    """A config file that cannot be used. str() is the message a person sees."""

    def __init__(self, file: str, line: int | None, reason: str) -> None:
        self.file, self.line, self.reason = file, line, reason
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True)
class Rule:
    """One policy rule with where it was written (for provenance)."""

    text: str
    file: str = ""
    line: int | None = None

    @property
    def source(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(frozen=True)
class Limits:
    """A profile's [limits]: what its sandbox may use (None: no limit of that kind)."""

    memory_bytes: int | None = None
    pids: int | None = None
    cpus: float | None = None
    # memory_bytes is the default (the profile set none): kept where cgroups keep it, never
    # as RLIMIT_AS, which bounds address space (a V8 or Go reservation), not memory used.
    memory_by_default: bool = False


@dataclass
class NetworkConfig:
    default: str = "ask"
    allow: list[Rule] = field(default_factory=list)
    deny: list[Rule] = field(default_factory=list)
    ports: list[int] = field(default_factory=lambda: [80, 443])


@dataclass
class ExecConfig:
    default: str = "ask"
    allow: list[Rule] = field(default_factory=list)
    ask: list[Rule] = field(default_factory=list)
    forbid: list[Rule] = field(default_factory=list)
    # The rules read once, when the file loaded, by the parser evaluation uses.
    compiled: ExecRules | None = field(default=None, compare=False, repr=False)


@dataclass
class Profile:
    name: str
    command: list[str]
    source: str  # file:line of the [profiles.NAME] table
    file: str  # the file that defined it (policy rules are written back here)
    workspace: str | None = None
    sandbox: str = "auto"
    image: str | None = None
    gpu: bool = False
    gpus: list[int] | None = None
    env: list[str] = field(default_factory=list)  # host variables passed through by name
    setenv: dict[str, str] = field(default_factory=dict)
    # Read-only files carried into the sandbox's HOME: (path on the host, path inside).
    carry: list[tuple[str, str]] = field(default_factory=list)
    limits: Limits = field(default_factory=Limits)
    approval_timeout: float = 120.0
    description: str = ""
    network: NetworkConfig = field(default_factory=NetworkConfig)
    exec: ExecConfig = field(default_factory=ExecConfig)
    # [defaults] keys this profile set itself; the others follow [defaults] of every file.
    own: frozenset[str] = frozenset()


# The longest a request may wait for a person. Claude Code and Codex give their PreToolUse hook
# 900 s (console/agents) and, past that, run the tool as if there were no hook: a request must
# be answered (at worst denied at its timeout) well before, so the agent never acts on silence.
APPROVAL_TIMEOUT_MAX = 840.0
AGENT_HOOK_TIMEOUT = 900
APPROVAL_TIMEOUT_LIMIT = (
    APPROVAL_TIMEOUT_MAX,
    f"Claude Code and Codex give up on their hook after {AGENT_HOOK_TIMEOUT}s and then run the "
    "tool, so a request must be answered well before; at most 14m")


@dataclass
class TeamConfig:
    group: str | None = None
    approvers: list[str] = field(default_factory=list)


@dataclass
class Config:
    sandbox: str = "auto"
    approval_timeout: float = 120.0
    notify_command: list[str] | None = None
    inference: list[str] = field(default_factory=list)  # host:port of metered model servers
    gpu_sample_hz: float = 1.0
    price_kwh: float = 0.0
    price_gpu_hour: float = 0.0
    team: TeamConfig = field(default_factory=TeamConfig)
    bounds: Bounds = field(default_factory=Bounds)  # [limits]: per-run bounds (config/bounds.py)
    audit_syslog: str | None = None  # [audit] syslog: a copy of each witness line goes there
    audit_otlp: str | None = None  # [audit] otlp: security events and witness lines, OTLP/HTTP
    keys: dict[str, str] = field(default_factory=dict)
    profiles: dict[str, Profile] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)  # what was loaded, in order
    user_file: str | None = None  # where profile rules are written back
    user_file_sha256: str | None = None  # of the user file's bytes as loaded (None: no file)

    def profile(self, name: str) -> Profile:
        try:
            return self.profiles[name]
        except KeyError:
            known = ", ".join(sorted(self.profiles)) or "none"
            # Blame the user file only if one was read (h192: a home with no config.toml was
            # named as if the profile were missing from it); say where one would be defined.
            where = self.user_file if self.user_file_sha256 is not None else EMBEDDED
            define = (f"; a profile is defined under [profiles] in {self.user_file}"
                      + ("" if where == self.user_file else " (no such file yet)")
                      if self.user_file else "")
            raise ConfigError(where, None, f"no profile named {name!r} (known: {known}){define}") from None
