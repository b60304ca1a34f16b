"""What a reload changes: every setting of the config as lines, and the diff between two
configs that a policy.changed event records (the daemon's live_config reloads).

The lines are read off the config's schema (console/config/schema.py), field by field, so a
setting added there is compared without a change here: what is allowed (rules, defaults, ports,
[gate]), who may decide ([team], [limits]), what reaches a sandbox (a profile's command,
workspace, image, gpus, env, setenv, carry, limits) and where copies go ([audit]). A profile's
lines start with its name (`demo exec forbid "make"`); the daemon-wide ones with their table
(`[team] approvers "bob"`: a profile name never starts with `[`). A `setenv` value is never
written, only a fingerprint of it (`hmac-sha256:` and 12 hex digits), so a key put there despite
the advice stays out of the history, and its change still shows; nor is `[notify] command` or
`[audit] otlp`. The fingerprint is keyed with a secret of the daemon's (derived from the audit
key): anyone who reads the history (a teammate) could try every short value against a plain
hash, not against this one."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import fields, is_dataclass
from typing import Any

from console.config import load as config_mod
from console.config.schema import Rule

# Config fields under the name the file gives them; a field not named here is still compared,
# under its own name.
_TABLES = {
    "sandbox": "[defaults] sandbox", "approval_timeout": "[defaults] approval_timeout",
    "notify_command": "[notify] command", "inference": "[gate] inference",
    "gpu_sample_hz": "[gpu] sample_hz", "price_kwh": "[gpu] price_kwh",
    "price_gpu_hour": "[gpu] price_gpu_hour", "team": "[team]", "bounds": "[limits]",
    "audit_syslog": "[audit] syslog", "audit_otlp": "[audit] otlp", "keys": "[keys]",
}
# Bookkeeping, not settings: where a value was read, what was loaded, what a load derived.
_NOT_SETTINGS = {"profiles", "files", "user_file", "user_file_sha256", "name", "source", "file",
                 "own", "compiled"}
# Written as a fingerprint, as setenv's values: every watcher reads a reload's record, and these
# are where a token goes (a webhook's secret path, a collector's api key; review h164).
_FINGERPRINTED = {"notify_command", "audit_otlp"}
# Lists compared item by item (adding one name reads as one line); other lists are one value.
_EACH = {"approvers", "inference", "env", "carry", "allow", "ask", "deny", "forbid"}
# Durations, written in seconds with their unit.
_SECONDS = {"approval_timeout", "head_timeout", "send_timeout", "prune_confirm_age"}
# Choices, written bare as they always were (`demo sandbox bwrap`); other text is quoted, so
# a value never reads as `unset` or as another line.
_CHOICES = {"sandbox", "default"}


def _value(key: str, v: Any) -> str:
    if v is None:
        return "unset"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:g}s" if key in _SECONDS else f"{v:g}"
    if isinstance(v, Rule):
        return f'"{v.text}"'  # the rule lines as they always were
    if isinstance(v, tuple):
        return " -> ".join(json.dumps(x) for x in v)
    if isinstance(v, str) and key in _CHOICES:
        return v
    return json.dumps(v)


def fingerprint_key(audit_key: bytes) -> bytes:
    """The setenv fingerprints' own key: stable for one installation, never the audit key."""
    return hmac.new(audit_key, b"pilothouse: setenv fingerprint", hashlib.sha256).digest()


def _fingerprint(value: str, secret: bytes) -> str:
    return "hmac-sha256:" + hmac.new(secret, value.encode(), hashlib.sha256).hexdigest()[:12]


def _lines(prefix: str, key: str, v: Any, secret: bytes) -> Iterator[str]:
    if is_dataclass(v):
        for f in fields(v):
            if f.name not in _NOT_SETTINGS:
                yield from _lines(f"{prefix} {f.name}", f.name, getattr(v, f.name), secret)
    elif isinstance(v, dict):
        for k, item in v.items():
            shown = _fingerprint(item, secret) if key == "setenv" else _value(k, item)
            yield f"{prefix} {k} {shown}"
    elif key in _FINGERPRINTED and v is not None:
        yield f"{prefix} {_fingerprint(json.dumps(v), secret)}"
    elif isinstance(v, list) and key in _EACH:
        yield from (f"{prefix} {_value(key, item)}" for item in v)
    else:
        yield f"{prefix} {_value(key, v)}"


def policy_lines(cfg: config_mod.Config, secret: bytes) -> set[str]:
    """Every rule and setting that decides something, one line each, for a diff; `secret`
    keys the setenv fingerprints (fingerprint_key)."""
    lines: set[str] = set()
    for f in fields(cfg):
        if f.name not in _NOT_SETTINGS:
            lines.update(_lines(_TABLES.get(f.name, f.name), f.name, getattr(cfg, f.name), secret))
    for name, p in cfg.profiles.items():
        lines.update(_lines(name, name, p, secret))
    return lines


def policy_diff(old: config_mod.Config, new: config_mod.Config, *, secret: bytes) -> list[str]:
    before, after = policy_lines(old, secret), policy_lines(new, secret)
    return [f"- {line}" for line in sorted(before - after)] + [f"+ {line}" for line in sorted(after - before)]
