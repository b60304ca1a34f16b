"""TOML configuration: defaults, profiles and their policies, validated whole on load.

Layers: the embedded defaults shipped with the package, then the user file (or the one named by
--config / PILOTHOUSE_CONFIG). A profile named again in a later layer extends the earlier one:
keys it sets replace the earlier values, and its rule lists (allow, ask, deny, forbid) are added
to the earlier ones, so a rule saved from an approval never drops the built-in rules. A bad
file is refused whole, with file, line and reason: nothing half-loads.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from console.config.bounds import Bounds, parse_bounds
from console.policy import ExecRules, compile_pattern
from console.sandbox.base import Limits

SANDBOXES = ("auto", "bwrap", "docker", "none")
ACTIONS = ("allow", "ask", "deny")
EMBEDDED = "embedded defaults"


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
    bounds: Bounds = field(default_factory=Bounds)  # [limits]: per-run bounds (console/bounds.py)
    audit_syslog: str | None = None  # [audit] syslog: a copy of each witness line goes there
    audit_otlp: str | None = None  # [audit] otlp: security events and witness lines, OTLP/HTTP
    keys: dict[str, str] = field(default_factory=dict)
    profiles: dict[str, Profile] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)  # what was loaded, in order
    user_file: str | None = None  # where profile rules are written back

    def profile(self, name: str) -> Profile:
        try:
            return self.profiles[name]
        except KeyError:
            known = ", ".join(sorted(self.profiles)) or "none"
            raise ConfigError(
                self.user_file or EMBEDDED, None, f"no profile named {name!r} (known: {known})"
            ) from None


# --- value parsers ---------------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.I)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_duration(value: Any) -> float:
    """'120s', '10m', '2h', '1d', '500ms' or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise ValueError(f"{value!r} is not a duration (write e.g. \"120s\", \"10m\", \"2h\")")
        seconds = float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    if seconds <= 0:
        raise ValueError(f"{value!r}: a duration must be more than zero")
    return seconds


def parse_size(value: Any) -> int:
    """'4g', '512m', '64k', '1.5g' or a number of bytes."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size")
    if isinstance(value, int):
        size = value
    else:
        m = _SIZE.match(str(value))
        if not m:
            raise ValueError(f"{value!r} is not a size (write e.g. \"4g\", \"512m\")")
        size = int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])
    if size <= 0:
        raise ValueError(f"{value!r}: a size must be more than zero")
    return size


# --- locating keys in the source text, for line numbers --------------------------------------

_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")


def _split_dotted(name: str) -> tuple[str, ...]:
    return tuple(part.strip().strip("\"'") for part in name.split("."))


class _Locator:
    """Finds the line of a table, key or list value in TOML text (best effort, for messages)."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.tables: dict[tuple[str, ...], int] = {}
        self.table_of_line: list[tuple[str, ...]] = []
        current: tuple[str, ...] = ()
        for i, line in enumerate(self.lines, start=1):
            m = _HEADER.match(line)
            if m:
                current = _split_dotted(m.group(1))
                self.tables.setdefault(current, i)
            self.table_of_line.append(current)

    def key(self, table: tuple[str, ...], key: str | None = None) -> int | None:
        # A key may be a table of its own, or written as a dotted/inline key in a parent table.
        if key is not None and table + (key,) in self.tables:
            return self.tables[table + (key,)]
        for depth in range(len(table), -1, -1):
            owner, rest = table[:depth], table[depth:]
            wanted = ".".join(rest + ((key,) if key else ()))
            if not wanted:
                return self.tables.get(owner)
            pattern = re.compile(r"^\s*" + re.escape(wanted).replace(r"\.", r"\s*\.\s*") + r"\s*=")
            for i, line in enumerate(self.lines, start=1):
                if self.table_of_line[i - 1] == owner and pattern.match(line):
                    return i
            first = rest[0] if rest else key
            inline = re.compile(r"^\s*" + re.escape(first or "") + r"\s*=")
            for i, line in enumerate(self.lines, start=1):
                if self.table_of_line[i - 1] == owner and first and inline.match(line):
                    return i
        return self.tables.get(table)

    def value(self, table: tuple[str, ...], key: str, text: str) -> int | None:
        start = self.key(table, key)
        if start is None:
            return None
        quoted = (f'"{text}"', f"'{text}'")
        for i in range(start, min(start + 200, len(self.lines) + 1)):
            if any(q in self.lines[i - 1] for q in quoted):
                return i
        return start


# --- validation -------------------------------------------------------------------------------


class _Reader:
    """Validates one parsed file, raising ConfigError with file and line."""

    def __init__(self, file: str, text: str) -> None:
        self.file = file
        self.loc = _Locator(text)

    def fail(self, table: tuple[str, ...], key: str | None, reason: str) -> ConfigError:
        return ConfigError(self.file, self.loc.key(table, key), reason)

    def expect_table(self, data: Any, table: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise self.fail(table, None, f"[{'.'.join(table)}] must be a table")
        return data

    def known(self, data: dict[str, Any], table: tuple[str, ...], allowed: set[str]) -> None:
        for key in data:
            if key not in allowed:
                where = ".".join(table) or "top level"
                hint = ", ".join(sorted(allowed))
                raise self.fail(table, key, f"unknown key {key!r} in {where} (known: {hint})")

    def choice(self, data: dict, table: tuple, key: str, choices: tuple[str, ...], default: str) -> str:
        value = data.get(key, default)
        if value not in choices:
            raise self.fail(table, key, f"{key} = {value!r}: must be one of {', '.join(choices)}")
        return value

    def string_list(self, data: dict, table: tuple, key: str) -> list[str]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(table, key, f"{key} must be a list of strings")
        return value

    def duration(self, data: dict, table: tuple, key: str, default: float) -> float:
        if key not in data:
            return default
        try:
            return parse_duration(data[key])
        except ValueError as exc:
            raise self.fail(table, key, str(exc)) from None

    def rules(self, data: dict, table: tuple, key: str, check) -> list[Rule]:
        out = []
        for text in self.string_list(data, table, key):
            line = self.loc.value(table, key, text)
            try:
                check(text)
            except ValueError as exc:
                raise ConfigError(self.file, line, f"{key} rule {text!r}: {exc}") from None
            out.append(Rule(text, self.file, line))
        return out


def _check_exec_rule(text: str) -> None:
    compile_pattern(text)  # the reading evaluation uses: what loads is what runs


def _check_network_rule(text: str) -> None:
    from console.policy.netrules import BadPattern, parse_pattern

    try:
        parse_pattern(text)
    except BadPattern as exc:
        raise ValueError(str(exc)) from None


_DEFAULTED = ("sandbox", "approval_timeout")  # profile keys [defaults] sets unless the profile does
_TOP = {"defaults", "profiles", "team", "keys", "gate", "gpu", "notify", "limits", "audit"}
_PROFILE_KEYS = {
    "command", "workspace", "sandbox", "image", "gpu", "gpus", "env", "setenv", "limits",
    "approval_timeout", "description", "network", "exec", "carry",
}
INSIDE_HOME = "/home/agent"


def _carry_entry(value: str) -> tuple[str, str]:
    """"~/.config/pip/pip.conf" or "/etc/npmrc-ro:~/.npmrc": host path, and where it goes in
    the sandbox's HOME (by default the same place relative to the home folder)."""
    src, sep, dest = value.partition(":")
    src = src.strip()
    if not src:
        raise ValueError(f"{value!r}: name a file, e.g. \"~/.config/pip/pip.conf\"")
    if not sep:
        if not src.startswith("~/"):
            raise ValueError(f"{value!r}: a file outside your home needs a place in the "
                             "sandbox's: \"/path/on/host:~/path/inside\"")  # fmt: skip
        dest = src
    dest = dest.strip()
    if not dest.startswith("~/"):
        raise ValueError(f"{value!r}: the place inside must be in the sandbox's HOME (\"~/...\")")
    rel = dest[2:]
    if not rel or any(part in ("", ".", "..") for part in rel.split("/")):
        raise ValueError(f"{value!r}: {dest!r} is not a file path inside HOME")
    return src, f"{INSIDE_HOME}/{rel}"


def _read_profile(r: _Reader, name: str, data: Any, defaults: Config, base: Profile | None) -> Profile:
    table = ("profiles", name)
    data = r.expect_table(data, table)
    own = frozenset(k for k in _DEFAULTED if k in data) | (base.own if base else frozenset())
    r.known(data, table, _PROFILE_KEYS)
    command = data.get("command", base.command if base else None)
    if isinstance(command, str):
        command = shlex.split(command)
    if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
        raise r.fail(table, "command", f"profile {name!r}: command must be a non-empty list of strings")
    if base is not None:
        for key, value in (("workspace", base.workspace), ("image", base.image),
                           ("gpu", base.gpu), ("gpus", base.gpus), ("env", base.env),
                           ("setenv", base.setenv), ("description", base.description),
                           ("carry", [f"{a}:~/{b[len(INSIDE_HOME) + 1:]}" for a, b in base.carry])):
            if key not in data and value is not None:
                data = {**data, key: value}
        if "sandbox" not in data:
            data = {**data, "sandbox": base.sandbox}
        if "approval_timeout" not in data:
            data = {**data, "approval_timeout": base.approval_timeout}
    limits_raw = r.expect_table(data.get("limits", {}), table + ("limits",))
    r.known(limits_raw, table + ("limits",), {"memory", "pids", "cpus"})
    try:
        memory = parse_size(limits_raw["memory"]) if "memory" in limits_raw else None
    except ValueError as exc:
        raise r.fail(table + ("limits",), "memory", str(exc)) from None
    if base is not None:
        memory = memory if "memory" in limits_raw else base.limits.memory_bytes
        limits_raw = {"pids": base.limits.pids, "cpus": base.limits.cpus, **limits_raw}
    pids = limits_raw.get("pids")
    if pids is not None and (not isinstance(pids, int) or isinstance(pids, bool) or pids < 1):
        raise r.fail(table + ("limits",), "pids", "pids must be a whole number of at least 1")
    cpus = limits_raw.get("cpus")
    if cpus is not None and (not isinstance(cpus, int | float) or isinstance(cpus, bool) or cpus <= 0):
        raise r.fail(table + ("limits",), "cpus", "cpus must be a number above 0, e.g. 2.0")
    gpus = data.get("gpus")
    if gpus is not None and (
        not isinstance(gpus, list) or not all(isinstance(g, int) and g >= 0 for g in gpus)
    ):
        raise r.fail(table, "gpus", "gpus must be a list of GPU indexes, e.g. [0]")
    setenv = data.get("setenv", {})
    if not isinstance(setenv, dict) or not all(isinstance(v, str) for v in setenv.values()):
        raise r.fail(table, "setenv", "setenv must be a table of strings")
    carry = []
    for value in r.string_list(data, table, "carry"):
        try:
            carry.append(_carry_entry(value))
        except ValueError as exc:
            raise r.fail(table, "carry", str(exc)) from None
    for key in ("gpu",):
        if key in data and not isinstance(data[key], bool):
            raise r.fail(table, key, f"{key} must be true or false")

    net_t = table + ("network",)
    net = r.expect_table(data.get("network", {}), net_t)
    r.known(net, net_t, {"default", "allow", "deny", "ports"})
    old_net = base.network if base else NetworkConfig()
    old_exec = base.exec if base else ExecConfig()
    ports = net.get("ports", old_net.ports)
    if not isinstance(ports, list) or not all(
        isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= 65535 for p in ports
    ):
        raise r.fail(net_t, "ports", "ports must be a list of port numbers from 1 to 65535")
    network = NetworkConfig(
        default=r.choice(net, net_t, "default", ACTIONS, old_net.default),
        allow=old_net.allow + r.rules(net, net_t, "allow", _check_network_rule),
        deny=old_net.deny + r.rules(net, net_t, "deny", _check_network_rule),
        ports=ports,
    )
    ex_t = table + ("exec",)
    ex = r.expect_table(data.get("exec", {}), ex_t)
    r.known(ex, ex_t, {"default", "allow", "ask", "forbid"})
    exec_cfg = ExecConfig(
        default=r.choice(ex, ex_t, "default", ACTIONS, old_exec.default),
        allow=old_exec.allow + r.rules(ex, ex_t, "allow", _check_exec_rule),
        ask=old_exec.ask + r.rules(ex, ex_t, "ask", _check_exec_rule),
        forbid=old_exec.forbid + r.rules(ex, ex_t, "forbid", _check_exec_rule),
    )
    exec_cfg.compiled = ExecRules(exec_cfg.allow, exec_cfg.ask, exec_cfg.forbid, exec_cfg.default)
    image = data.get("image")
    if image is not None and (not isinstance(image, str) or not image):
        raise r.fail(table, "image", "image must be a Docker image name")
    workspace = data.get("workspace")
    if workspace is not None and not isinstance(workspace, str):
        raise r.fail(table, "workspace", "workspace must be a path")
    return Profile(
        name=name,
        command=command,
        source=f"{r.file}:{r.loc.key(table) or 1}",
        file=r.file,
        workspace=workspace,
        sandbox=r.choice(data, table, "sandbox", SANDBOXES, defaults.sandbox),
        image=image,
        gpu=bool(data.get("gpu", False)),
        gpus=gpus,
        env=r.string_list(data, table, "env"),
        setenv=dict(setenv),
        carry=carry,
        limits=Limits(memory_bytes=memory, pids=pids, cpus=float(cpus) if cpus else None),
        approval_timeout=r.duration(data, table, "approval_timeout", defaults.approval_timeout),
        description=str(data.get("description", "")),
        network=network,
        exec=exec_cfg,
        own=own,
    )


def _apply_file(cfg: Config, file: str, text: str) -> None:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise ConfigError(file, int(m.group(1)) if m else None, f"not valid TOML: {exc}") from None
    r = _Reader(file, text)
    r.known(data, (), _TOP)
    d = r.expect_table(data.get("defaults", {}), ("defaults",))
    r.known(d, ("defaults",), {"sandbox", "approval_timeout"})
    cfg.sandbox = r.choice(d, ("defaults",), "sandbox", SANDBOXES, cfg.sandbox)
    cfg.approval_timeout = r.duration(d, ("defaults",), "approval_timeout", cfg.approval_timeout)

    n = r.expect_table(data.get("notify", {}), ("notify",))
    r.known(n, ("notify",), {"command"})
    if "command" in n:
        cmd = n["command"]
        if not isinstance(cmd, list) or not cmd or not all(isinstance(c, str) for c in cmd):
            raise r.fail(("notify",), "command", "notify command must be a non-empty list of strings")
        cfg.notify_command = cmd

    g = r.expect_table(data.get("gate", {}), ("gate",))
    r.known(g, ("gate",), {"inference"})
    cfg.inference = r.string_list(g, ("gate",), "inference") or cfg.inference

    gpu = r.expect_table(data.get("gpu", {}), ("gpu",))
    r.known(gpu, ("gpu",), {"sample_hz", "price_kwh", "price_gpu_hour"})
    hz = gpu.get("sample_hz", cfg.gpu_sample_hz)
    if not isinstance(hz, int | float) or isinstance(hz, bool) or not 0.2 <= hz <= 10:
        raise r.fail(("gpu",), "sample_hz", "sample_hz must be a number from 0.2 to 10")
    cfg.gpu_sample_hz = float(hz)
    for key in ("price_kwh", "price_gpu_hour"):
        value = gpu.get(key, getattr(cfg, key))
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise r.fail(("gpu",), key, f"{key} must be a number of at least 0")
        setattr(cfg, key, float(value))

    t = r.expect_table(data.get("team", {}), ("team",))
    r.known(t, ("team",), {"group", "approvers"})
    if "group" in t:
        if not isinstance(t["group"], str) or not t["group"]:
            raise r.fail(("team",), "group", "group must be a Unix group name")
        cfg.team.group = t["group"]
    if "approvers" in t:
        cfg.team.approvers = r.string_list(t, ("team",), "approvers")

    lim = r.expect_table(data.get("limits", {}), ("limits",))
    try:
        cfg.bounds = parse_bounds(lim, cfg.bounds, parse_size, parse_duration)
    except KeyError as exc:
        r.known(lim, ("limits",), set(Bounds.__dataclass_fields__))
        raise r.fail(("limits",), str(exc), "unknown key") from None
    except ValueError as exc:
        raise r.fail(("limits",), exc.args[0], exc.args[-1]) from None

    au = r.expect_table(data.get("audit", {}), ("audit",))
    r.known(au, ("audit",), {"syslog", "otlp"})
    if "otlp" in au:
        if not isinstance(au["otlp"], str) or not re.fullmatch(r"https?://\S+", au["otlp"]):
            raise r.fail(("audit",), "otlp", 'otlp must be a URL such as '
                         '"http://127.0.0.1:4318/v1/logs"')
        cfg.audit_otlp = au["otlp"]
    if "syslog" in au:
        target = au["syslog"]
        if not isinstance(target, str) or not (
                target.startswith("/") or re.fullmatch(r"udp://[^/]+:\d{1,5}", target)):
            raise r.fail(("audit",), "syslog", 'syslog must be "udp://HOST:PORT" or a socket '
                         'path such as "/dev/log"')
        cfg.audit_syslog = target

    k = r.expect_table(data.get("keys", {}), ("keys",))
    for action, key in k.items():
        if not isinstance(key, str) or not key:
            raise r.fail(("keys",), action, "a key binding must be a key name such as \"y\" or \"ctrl+a\"")
        cfg.keys[action] = key

    profiles = r.expect_table(data.get("profiles", {}), ("profiles",))
    for name, body in profiles.items():
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name):
            raise r.fail(("profiles", name), None, f"profile name {name!r}: use letters, digits, - _ .")
        cfg.profiles[name] = _read_profile(r, name, body, cfg, cfg.profiles.get(name))
    cfg.files.append(file)


def embedded_text() -> str:
    return resources.files("console.agents").joinpath("profiles.toml").read_text()


def load(user_file: Path | None, *, include_embedded: bool = True) -> Config:
    """Load the embedded defaults, then the user file when it exists. Raises ConfigError."""
    cfg = Config()
    if include_embedded:
        _apply_file(cfg, EMBEDDED, embedded_text())
    if user_file is not None:
        cfg.user_file = str(user_file)
        if user_file.exists():
            try:
                text = user_file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(str(user_file), None, f"cannot read: {exc}") from None
            _apply_file(cfg, str(user_file), text)
    for prof in cfg.profiles.values():  # [defaults] of the last file reach every profile
        if "sandbox" not in prof.own:
            prof.sandbox = cfg.sandbox
        if "approval_timeout" not in prof.own:
            prof.approval_timeout = cfg.approval_timeout
    return cfg


def load_explicit(path: Path) -> Config:
    """For --config FILE: the file must exist."""
    if not path.exists():
        raise ConfigError(str(path), None, "no such file (check the --config path)")
    return load(path)
