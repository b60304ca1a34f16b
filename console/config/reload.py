"""The config while the daemon runs: reload on `pilothouse reload`, SIGHUP and a change of the
file, validating first. A bad file leaves the policy in force and is kept as `error` (file,
line, reason) for `pilothouse status` and the console; a good one is recorded as policy.changed
with the rules it adds and removes, committed before it takes effect (fail closed)."""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
from typing import Any

from console.config import load as config_mod

log = logging.getLogger("pilothouse.config")

WATCH_INTERVAL_S = 1.0


def policy_lines(cfg: config_mod.Config) -> set[str]:
    """Every rule and setting that decides something, one line each, for a diff."""
    lines: set[str] = set()
    for name, p in cfg.profiles.items():
        lines |= {f"{name} sandbox {p.sandbox}", f"{name} approval_timeout {p.approval_timeout:g}s",
                  f"{name} exec default {p.exec.default}", f"{name} network default {p.network.default}",
                  f"{name} network ports {p.network.ports}"}
        for section, lists in (("exec", p.exec), ("network", p.network)):
            for list_name in ("allow", "ask", "forbid", "deny"):
                for rule in getattr(lists, list_name, ()):
                    lines.add(f'{name} {section} {list_name} "{rule.text}"')
    return lines


def policy_diff(old: config_mod.Config, new: config_mod.Config) -> list[str]:
    before, after = policy_lines(old), policy_lines(new)
    return [f"- {line}" for line in sorted(before - after)] + [f"+ {line}" for line in sorted(after - before)]


class ConfigReloader:
    def __init__(self, daemon: Any) -> None:
        self.daemon = daemon
        self.error: dict[str, Any] | None = None
        self._stamp = self._file_stamp()
        self._task: asyncio.Task[None] | None = None
        # Held by every reload and by the daemon while it writes the file itself, so the watcher
        # never reloads a file the daemon is writing (and records one change, not two).
        self.lock = asyncio.Lock()

    def _file_stamp(self) -> tuple[int, int, int] | None:
        path = self.daemon.config_file
        try:
            st = os.stat(path) if path is not None else None
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino) if st else None

    def seen(self) -> None:
        """The daemon loaded the file itself (a profile rule it wrote): no second reload."""
        self._stamp = self._file_stamp()

    async def reload(self, actor: str, cause: str) -> dict[str, Any]:
        """Load, validate, record, apply. Raises ConfigError (the old config stays)."""
        async with self.lock:
            self._stamp = self._file_stamp()
            try:
                cfg = config_mod.load(self.daemon.config_file)
            except config_mod.ConfigError as exc:
                self.error = {"file": exc.file, "line": exc.line, "reason": exc.reason,
                              "text": str(exc), "cause": cause}
                log.error("config not reloaded (%s): %s; the old policy stays", cause, exc)
                raise
            diff = policy_diff(self.daemon.cfg, cfg)
            row = await self.daemon.services.record_security(
                "policy.changed", actor=actor,
                text=f"config reloaded ({cause}) by {actor}: {len(diff)} change(s)",
                data={"cause": cause, "files": cfg.files, "diff": diff})
            self.daemon.cfg = cfg
            self.error = None
            if self.daemon.services.run_sockets is not None:
                self.daemon.services.run_sockets.reload()  # live gates read the new rules
            return {"changed": bool(diff), "diff": diff, "files": cfg.files,
                    "profiles": sorted(cfg.profiles), "event_id": row["id"]}

    async def _reload_quietly(self, actor: str, cause: str) -> None:
        try:
            await self.reload(actor, cause)
        except config_mod.ConfigError:
            pass  # kept in self.error, shown by status and the console
        except Exception as exc:  # e.g. the store could not record it: the old policy stays
            log.error("config reload (%s) failed; the old policy stays: %s", cause, exc)

    def on_sighup(self) -> None:
        asyncio.ensure_future(self._reload_quietly(_user(os.getuid()), "sighup"))

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._watch())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH_INTERVAL_S)
            stamp = self._file_stamp()
            if stamp is None or stamp == self._stamp:
                continue
            async with self.lock:  # the daemon may be writing it: wait, then look again
                changed = self._file_stamp() != self._stamp
            if changed:
                try:  # the person is whoever owns the file they changed
                    owner = _user(os.stat(self.daemon.config_file).st_uid)
                except OSError:
                    continue
                await self._reload_quietly(owner, "file-change")


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)
