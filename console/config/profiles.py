"""One [profiles.NAME] table read into a Profile, over the same profile from an earlier layer:
keys it sets replace the earlier values, its rule lists are added to the earlier ones."""

from __future__ import annotations

import math
import os
import shlex
from typing import Any

from console.config.reader import Reader
from console.config.schema import (
    ACTIONS,
    APPROVAL_TIMEOUT_LIMIT,
    SANDBOXES,
    Config,
    ExecConfig,
    Limits,
    NetworkConfig,
    Profile,
)
from console.config.units import parse_size
from console.paths import INSIDE_HOME
from console.policy import ExecRules, compile_pattern
from console.policy.netrules import BadPattern, parse_pattern
from console.protocol import unrunnable

DEFAULTED = ("sandbox", "approval_timeout")  # profile keys [defaults] sets unless the profile does
PROFILE_KEYS = {
    "command", "workspace", "sandbox", "image", "gpu", "gpus", "env", "setenv", "limits",
    "approval_timeout", "description", "network", "exec", "carry",
}


def check_exec_rule(text: str) -> None:
    compile_pattern(text)  # the reading evaluation uses: what loads is what runs


def check_network_rule(text: str) -> None:
    try:
        parse_pattern(text)
    except BadPattern as exc:
        raise ValueError(str(exc)) from None


def carry_entry(value: str) -> tuple[str, str]:
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


MAX_PIDS = 4194304  # PID_MAX_LIMIT on 64-bit Linux: a pids.max past it is refused there
# A profile that sets no pids limit gets this one: without it a fork bomb in a run of a profile
# of the person's own took the host (review s34, helper 140). Set `pids` to change it.
DEFAULT_PIDS = 4096
# A profile that sets no memory limit gets half of this machine's memory: without one, an agent
# (or a test it ran) that leaks took the host's memory with the daemon's and the person's own
# processes, though the threat model names memory exhaustion as stopped (s40). Set `memory`.
DEFAULT_MEMORY_SHARE = 0.5


def default_memory() -> int | None:
    """Half of this machine's physical memory, in bytes (None if the kernel does not say)."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return None
    return int(total * DEFAULT_MEMORY_SHARE) if total > 0 else None


def read_profile(r: Reader, name: str, data: Any, defaults: Config, base: Profile | None) -> Profile:
    table = ("profiles", name)
    data = r.expect_table(data, table)
    own = frozenset(k for k in DEFAULTED if k in data) | (base.own if base else frozenset())
    r.known(data, table, PROFILE_KEYS)
    command = data.get("command", base.command if base else None)
    if isinstance(command, str):
        command = shlex.split(command)
    if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
        raise r.fail(table, "command", f"profile {name!r}: command must be a non-empty list of strings")
    if unrunnable(command):
        raise r.fail(table, "command", f"profile {name!r}: no program can be given a NUL "
                     "byte, nor be named by nothing: the command's words must hold neither")
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
    by_default = False
    if base is not None:
        memory = memory if "memory" in limits_raw else base.limits.memory_bytes
        by_default = "memory" not in limits_raw and base.limits.memory_by_default
        limits_raw = {"pids": base.limits.pids, "cpus": base.limits.cpus, **limits_raw}
    if memory is None:
        memory, by_default = default_memory(), True
    pids = limits_raw.get("pids", DEFAULT_PIDS)
    if pids is not None and (not isinstance(pids, int) or isinstance(pids, bool)
                             or not 1 <= pids <= MAX_PIDS):
        raise r.fail(table + ("limits",), "pids", f"pids must be a whole number from 1 to "
                     f"{MAX_PIDS} (the kernel's own most)")
    cpus = limits_raw.get("cpus")
    if cpus is not None and (not isinstance(cpus, int | float) or isinstance(cpus, bool)
                             or not 0 < cpus < math.inf):
        raise r.fail(table + ("limits",), "cpus", "cpus must be a number above 0, e.g. 2.0")
    gpus = data.get("gpus")
    if gpus is not None and (
        not isinstance(gpus, list) or not all(isinstance(g, int) and g >= 0 for g in gpus)
    ):
        raise r.fail(table, "gpus", "gpus must be a list of GPU indexes, e.g. [0]")
    setenv = data.get("setenv", {})
    if not isinstance(setenv, dict) or not all(isinstance(v, str) for v in setenv.values()):
        raise r.fail(table, "setenv", "setenv must be a table of strings")
    for var in r.string_list(data, table, "env"):
        if not var or "=" in var or "\0" in var:
            raise r.fail(table, "env", f"env {var!r}: a variable's name must be one word "
                         "without '=' or a NUL byte")
    for key, value in setenv.items():
        if not key or "=" in key or "\0" in key + value:
            raise r.fail(table, "setenv", f"setenv {key!r}: a variable's name must be one word "
                         "without '=', and neither it nor its value may hold a NUL byte")
    carry = []
    for value in r.string_list(data, table, "carry"):
        try:
            carry.append(carry_entry(value))
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
        allow=old_net.allow + r.rules(net, net_t, "allow", check_network_rule),
        deny=old_net.deny + r.rules(net, net_t, "deny", check_network_rule),
        ports=ports,
    )
    ex_t = table + ("exec",)
    ex = r.expect_table(data.get("exec", {}), ex_t)
    r.known(ex, ex_t, {"default", "allow", "ask", "forbid"})
    exec_cfg = ExecConfig(
        default=r.choice(ex, ex_t, "default", ACTIONS, old_exec.default),
        allow=old_exec.allow + r.rules(ex, ex_t, "allow", check_exec_rule),
        ask=old_exec.ask + r.rules(ex, ex_t, "ask", check_exec_rule),
        forbid=old_exec.forbid + r.rules(ex, ex_t, "forbid", check_exec_rule),
    )
    exec_cfg.compiled = ExecRules(exec_cfg.allow, exec_cfg.ask, exec_cfg.forbid, exec_cfg.default)
    image = data.get("image")
    if image is not None and (not isinstance(image, str) or not image):
        raise r.fail(table, "image", "image must be a Docker image name")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise r.fail(table, "description", "description must be text")
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
        limits=Limits(memory_bytes=memory, pids=pids, cpus=float(cpus) if cpus else None,
                      memory_by_default=by_default and memory is not None),
        approval_timeout=r.duration(data, table, "approval_timeout", defaults.approval_timeout,
                                    APPROVAL_TIMEOUT_LIMIT),
        description=description,
        network=network,
        exec=exec_cfg,
        own=own,
    )
