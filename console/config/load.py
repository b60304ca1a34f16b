"""TOML configuration: defaults, profiles and their policies, validated whole on load.

Layers: the embedded defaults shipped with the package, then the user file (or the one named by
--config / PILOTHOUSE_CONFIG). A profile named again in a later layer extends the earlier one:
keys it sets replace the earlier values, and its rule lists (allow, ask, deny, forbid) are added
to the earlier ones, so a rule saved from an approval never drops the built-in rules. A bad
file is refused whole, with file, line and reason: nothing half-loads. [defaults] of the last
file reach every profile that does not set the key itself.

The types a load returns live in console/config/schema.py; they are named here too (__all__),
so `from console.config.load import Config, load` reads as one API.
"""

from __future__ import annotations

import hashlib
import math
import re
import tomllib
from importlib import resources
from pathlib import Path

from console.config.bounds import Bounds, parse_bounds
from console.config.profiles import read_profile
from console.config.reader import Reader
from console.config.schema import (
    APPROVAL_TIMEOUT_LIMIT,
    EMBEDDED,
    SANDBOXES,
    Config,
    ConfigError,
    ExecConfig,
    NetworkConfig,
    Profile,
    Rule,
    TeamConfig,
)
from console.config.units import parse_duration, parse_size

__all__ = [
    "EMBEDDED", "Config", "ConfigError", "ExecConfig", "NetworkConfig", "Profile", "Rule",
    "TeamConfig", "embedded_text", "load", "load_explicit",
]

# A group name as a group file can hold it (sssd's may have spaces, '@' and backslashes): no control
# character (NUL included), ':' or ','.
_GROUP_NAME = re.compile(r"[^\x00-\x1f\x7f-\x9f:,]{1,256}")
_TOP = {"defaults", "profiles", "team", "keys", "gate", "gpu", "notify", "limits", "audit"}
_PROFILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def parse_toml(file: str, text: str) -> dict:
    """The file's data, or ConfigError with the line tomllib names."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise ConfigError(file, int(m.group(1)) if m else None, f"not valid TOML: {exc}") from None


def _apply_file(cfg: Config, file: str, text: str) -> None:
    data = parse_toml(file, text)
    r = Reader(file, text)
    r.known(data, (), _TOP)
    d = r.expect_table(data.get("defaults", {}), ("defaults",))
    r.known(d, ("defaults",), {"sandbox", "approval_timeout"})
    cfg.sandbox = r.choice(d, ("defaults",), "sandbox", SANDBOXES, cfg.sandbox)
    cfg.approval_timeout = r.duration(d, ("defaults",), "approval_timeout", cfg.approval_timeout,
                                      APPROVAL_TIMEOUT_LIMIT)

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
        if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value < math.inf:
            raise r.fail(("gpu",), key, f"{key} must be a number of at least 0")
        setattr(cfg, key, float(value))

    t = r.expect_table(data.get("team", {}), ("team",))
    r.known(t, ("team",), {"group", "approvers"})
    if "group" in t:
        if not isinstance(t["group"], str) or not t["group"]:
            raise r.fail(("team",), "group", "group must be a Unix group name")
        if not _GROUP_NAME.fullmatch(t["group"]):
            # The system's look-up raises on a NUL (not "no such group"), and no group file
            # holds a control character, ':' or ',': such a name reached operator.sock's
            # permissions and every teammate's role check and failed there (review h173).
            raise r.fail(("team",), "group", f"group {t['group'][:60]!r} is not a Unix "
                         "group name: no control characters, ':' or ','")
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
        if not _PROFILE_NAME.fullmatch(name):
            raise r.fail(("profiles", name), None, f"profile name {name!r}: use letters, digits, - _ .")
        cfg.profiles[name] = read_profile(r, name, body, cfg, cfg.profiles.get(name))
    cfg.files.append(file)


def embedded_text() -> str:
    return resources.files("console.agents").joinpath("profiles.toml").read_text()


def load(user_file: Path | None, *, include_embedded: bool = True, text: str | None = None) -> Config:
    """Load the embedded defaults, then the user file when it exists. Raises ConfigError.
    `text` stands for the user file's content: an edit is checked by loading it before it is
    written (console/config/edit.py)."""
    cfg = Config()
    if include_embedded:
        _apply_file(cfg, EMBEDDED, embedded_text())
    if user_file is not None:
        cfg.user_file = str(user_file)
        if text is None and user_file.exists():
            try:  # read once: the hash a reload records is of the bytes that were loaded
                raw = user_file.read_bytes()
                text = raw.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(str(user_file), None, f"cannot read: {exc}") from None
            cfg.user_file_sha256 = hashlib.sha256(raw).hexdigest()
        elif text is not None:
            cfg.user_file_sha256 = hashlib.sha256(text.encode()).hexdigest()
        if text is not None:
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
