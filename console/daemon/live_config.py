"""The config while the daemon runs: the one in force, and reloads on `pilothouse reload`,
SIGHUP and a change of the file, validating first.

A bad file leaves the policy in force and is kept as `error` (file, line, reason) for
`pilothouse status` and the console; a good one is recorded as policy.changed with the settings
it adds and removes (console/config/reload.py) and the file's sha256 before and after, committed
before it takes effect (fail closed). A `pilothouse reload` that finds the file already in
force because the watcher or a SIGHUP took it says so, with that change (review h182). Reading
and parsing the file runs in a thread: a slow disk (or a file that is a pipe) never stops the
daemon's loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import pwd
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from console.config import load as config_mod
from console.config.file_trust import check_config_file
from console.config.reload import fingerprint_key, policy_diff
from console.daemon.storage import Storage
from console.protocol import Failure
from store import StoreError

log = logging.getLogger("pilothouse.config")

WATCH_INTERVAL_S = 1.0


class LiveConfig:
    """The config in force. Parts read `cfg` each time they need it, so a reload reaches them."""

    def __init__(self, file: Path | None) -> None:
        self.file = file
        self.cfg = self._load()  # at start, before the loop serves anyone

    def get(self) -> config_mod.Config:
        return self.cfg

    async def read_file(self) -> config_mod.Config:
        """Load and validate the file again, in a thread; the caller decides to apply it.
        Raises ConfigError."""
        return await asyncio.to_thread(self._load)

    def _load(self) -> config_mod.Config:
        if self.file is not None:
            check_config_file(self.file)  # nobody but us (or root) may change it (review h141)
        return config_mod.load(self.file)


class ConfigReloader:
    def __init__(self, config: LiveConfig, storage: Storage,
                 on_change: Callable[[], None]) -> None:
        self.config = config
        self.storage = storage
        # Live parts read the new config: the gates their rules, the server its [team] group.
        self._listeners: list[Callable[[], None]] = [on_change]
        self.error: dict[str, Any] | None = None
        self._stamp = self._file_stamp()
        # The last change put in force that came with a new file or a new policy: cause, at,
        # event_id, diff and the file's stamp. A person who edits the file and runs `reload`
        # is often a second behind the watcher; their reload then finds nothing to change, and
        # says what was taken instead of "no policy change" (review h182).
        self._last: dict[str, Any] | None = None
        self._task: asyncio.Task[None] | None = None
        # Held by every reload and by the daemon while it writes the file itself, so the watcher
        # never reloads a file the daemon is writing (and records one change, not two).
        self.lock = asyncio.Lock()

    def _file_stamp(self) -> tuple[int, int, int] | None:
        path = self.config.file
        try:
            st = os.stat(path) if path is not None else None
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino) if st else None

    async def take_written_file(self, written: str) -> None:
        """The daemon wrote the file itself (a profile rule, already recorded): load it and put
        it in force without recording a second change. Call with `lock` held. Raises
        ConfigError (the old config stays), also when the file is no longer the text written:
        an edit saved since is the watcher's to record and load (review h196)."""
        stamp = self._file_stamp()
        cfg = await self.config.read_file()
        if cfg.user_file_sha256 != hashlib.sha256(written.encode()).hexdigest():
            raise config_mod.ConfigError(str(self.config.file), None, "it changed again after "
                                         "the rule was written; that change is loaded (and "
                                         "recorded) as a reload")
        self._stamp = stamp
        self.config.cfg = cfg
        self._changed()

    def also_on_change(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def _changed(self) -> None:
        for listener in self._listeners:
            listener()

    async def reload(self, actor: str, cause: str) -> dict[str, Any]:
        """Load, validate, record, apply. Raises ConfigError (the old config stays)."""
        async with self.lock:
            previous, self._stamp = self._stamp, self._file_stamp()
            try:
                cfg = await self.config.read_file()
            except config_mod.ConfigError as exc:
                self.error = {"file": exc.file, "line": exc.line, "reason": exc.reason,
                              "text": str(exc), "cause": cause}
                log.error("config not reloaded (%s): %s; the old policy stays", cause, exc)
                raise
            diff = policy_diff(self.config.cfg, cfg, secret=fingerprint_key(self.storage.key))
            # The whole file's hash, before and after: a change no setting shows is evident too.
            hashes = {"sha256_before": self.config.cfg.user_file_sha256,
                      "sha256_after": cfg.user_file_sha256}
            at = time.time()
            try:
                row = await self.storage.record_security(
                    "policy.changed", actor=actor, ts=at,
                    text=f"config reloaded ({cause}) by {actor}: {len(diff)} change(s)",
                    data={"cause": cause, "files": cfg.files, "diff": diff} | hashes)
            except StoreError as exc:
                # Not in force until it is on the record. The file is not taken as seen, so
                # the watcher tries again each second: the change applies once the history
                # can be written, and until then status and the console say it is waiting.
                self._stamp = previous
                if getattr(exc, "uncertain", False):  # store/waits.StoreUncertain: may land
                    reason = (f"the change was not applied: its record is not confirmed ({exc}); "
                              "the history may yet show it, but the old policy stays, and it "
                              "is tried again")
                else:
                    reason = (f"the change was not applied: it could not be recorded ({exc}); "
                              "the old policy stays, and it is tried again")
                self.error = {"file": str(self.config.file), "line": None, "reason": reason,
                              "text": f"{self.config.file}: {reason}", "cause": cause}
                raise Failure("record-failed", f"{self.config.file}: {reason}",
                              "check the disk where the history lives with `pilothouse "
                              "doctor`; the change applies by itself once it can be recorded") from None
            self.config.cfg = cfg
            self.error = None
            self._changed()
            taken = self._taken_before(cause, diff)
            if diff or self._last is None or self._last["stamp"] != self._stamp:
                self._last = {"cause": cause, "at": at, "event_id": row["id"], "diff": diff,
                              "stamp": self._stamp}
            return {"changed": bool(diff), "diff": diff, "files": cfg.files, **hashes,
                    "profiles": sorted(cfg.profiles), "event_id": row["id"]} | taken

    def _taken_before(self, cause: str, diff: list[str]) -> dict[str, Any]:
        """For an explicit reload that changed nothing: the change the watcher or a SIGHUP put
        in force from the very file (same stamp) this reload found, as it was recorded."""
        last = self._last
        if cause != "reload" or diff or last is None or last["cause"] == "reload" \
                or last["stamp"] != self._stamp:
            return {}
        return {"taken": {k: last[k] for k in ("cause", "at", "event_id", "diff")}}

    async def _reload_quietly(self, actor: str, cause: str) -> None:
        logged = self.error
        try:
            await self.reload(actor, cause)
        except (config_mod.ConfigError, Failure) as exc:  # kept in self.error for status
            if isinstance(exc, Failure) and self.error != logged:  # once, not every second
                log.error("config reload (%s): %s", cause, exc)
        except Exception as exc:
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
            if changed and self.config.file is not None:
                try:  # the person is whoever owns the file they changed
                    owner = _user(os.stat(self.config.file).st_uid)
                except OSError:
                    continue
                await self._reload_quietly(owner, "file-change")


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)
