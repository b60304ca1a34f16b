"""Review h182: the daemon takes its config file by itself when it changes (once a second), so
a person who edits it and runs `pilothouse reload` often finds the watcher was first. The reload
then said "reloaded: no policy change" (`changed: false`, nothing else): the person had just
changed the policy and was told nothing changed. It now says the file is already in force, when
and how it was taken, and the change that was taken (the recorded diff, escaped)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.conftest import Daemon, read_until

BASE = '[profiles.p]\ncommand = ["true"]\n\n[profiles.p.exec]\nallow = ["ls"]\n'
SECRET = "h182-setenv-value-never-shown"
# A rule's words may be an agent's: the taken diff is escaped as a reload's own lines are.
CHANGED = BASE + 'forbid = ["make \\u001b[2J\\u202e"]\n\n[profiles.p.setenv]\nK = "' + SECRET + '"\n'


def _changes(d: Daemon, cause: str) -> list[dict]:
    rows = json.loads(d.cli("history", "--kind", "policy.changed", "--json").stdout)
    return [r for r in rows if r["data"].get("cause") == cause]


def test_a_reload_after_the_watcher_took_the_file_says_what_was_taken(
        home: Path, daemon_env: dict[str, str]) -> None:
    path = Path(daemon_env["PILOTHOUSE_CONFIG"])
    path.write_text(BASE)
    d = Daemon(home, daemon_env)
    d.start()
    try:
        path.write_text(CHANGED)
        took = read_until(lambda: _changes(d, "file-change"), bool, timeout=15)
        assert took, "the daemon's watcher did not take the changed file"
        (row,) = took
        diff = row["data"]["diff"]
        assert any("forbid" in line for line in diff) and any("setenv" in line for line in diff)

        said = d.cli("reload")
        answer = json.loads(d.cli("reload", "--json").stdout)
        assert not answer["changed"] and answer["diff"] == [], answer
        taken = answer.get("taken")
        assert taken, f"the reload does not say the file was already taken: {answer}"
        assert taken["cause"] == "file-change" and taken["event_id"] == row["id"], taken
        assert taken["diff"] == diff and taken["at"] == row["ts"], (taken, row)
        out = said.stdout
        assert "no policy change" not in out, out
        assert "already in force" in out and "when the file changed" in out, out
        assert f"{len(diff)} change(s)" in out and "[2J" in out, out
        assert not any(ch in out for ch in "\x1b\u202e"), ascii(out)
        assert SECRET not in out and SECRET not in json.dumps(answer)

        # The file changes again where only `reload` sees it (same size, inode and time): the
        # reload takes it itself and says so, with no word of what the watcher took before.
        before = os.stat(path)
        with open(path, "r+") as f:
            f.write(CHANGED.replace('allow = ["ls"]', 'allow = ["cd"]'))
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        own = json.loads(d.cli("reload", "--json").stdout)
        assert own["changed"] and not own.get("taken"), own
        again = json.loads(d.cli("reload", "--json").stdout)
        assert not again["changed"] and not again.get("taken"), again
        assert "reloaded: no policy change" in d.cli("reload").stdout
    finally:
        d.stop()
