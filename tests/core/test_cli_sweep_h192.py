"""A sweep of the CLI for bad input and broken promises (helper h192, s45). What it found:
- a value that starts with a dash (`history --search -rf`, `deny ID --scope -10m`) was refused
  as "expected one argument", which the person had given, with no word of `--search=-rf`;
- `approve --json ID --asked-at nan` was refused in the protocol's words ('created_at');
- `approve ID --pattern WORDS` with the default scope once dropped the pattern without a word,
  and `--pattern ""` widened the request's own exact grant to one covering added words;
- Ctrl-C on `run --wait` ended the command (130) with the run still going, unsaid.
A real daemon and bubblewrap where a request or a run is needed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from console.cli.main import main
from console.client.sync import Client, ClientError
from console.paths import resolve
from tests.conftest import BIN, Daemon, needs_bwrap
from tests.core.cli_invoke import invoke

from .test_approvals_e2e import background, wait_pending


@pytest.mark.parametrize(("words", "way"), [
    (["history", "--search", "-rf"], "--search=-rf"),
    (["deny", "abcd", "--scope", "-10m"], "--scope=-10m"),
    (["history", "--since", "-5m", "--json"], "--since=-5m"),
])
def test_a_value_that_starts_with_a_dash_says_how_to_give_it(words: list[str], way: str,
                                                              tmp_path: Path) -> None:
    done = invoke(main, words, env={"PILOTHOUSE_HOME": str(tmp_path)})  # never the user's
    assert done.exit_code == 2, done.output
    assert way in done.stderr, done.stderr


def test_a_missing_value_is_still_said_as_missing(tmp_path: Path) -> None:
    done = invoke(main, ["history", "--search"], env={"PILOTHOUSE_HOME": str(tmp_path)})
    assert done.exit_code == 2 and "expected one argument" in done.stderr, done.stderr
    assert "=" not in done.stderr.split("expected one argument")[1].split(";")[0], done.stderr


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_asked_at_is_refused_as_the_option_the_person_gave(value: str, tmp_path: Path) -> None:
    done = invoke(main, ["approve", "--json", "abcd", "--asked-at", value],
                  env={"PILOTHOUSE_HOME": str(tmp_path)})
    assert done.exit_code == 2, done.output
    assert "--asked-at" in done.stderr and "created_at" not in done.stderr, done.stderr


def _grants(daemon: Daemon) -> list[dict[str, object]]:
    return json.loads(daemon.cli("grants", "--json").stdout)


@needs_bwrap
def test_a_pattern_is_never_dropped_nor_emptied(daemon: Daemon, workspace: Path) -> None:
    t, out = background(daemon, workspace, "ph-ask exec -- make deploy; echo rc=$?")
    req = wait_pending(daemon)[0]
    once = daemon.cli("approve", req["id"], "--pattern", "make", "--yes", check=False)
    assert once.returncode != 0 and "--scope" in once.stderr, once.stderr
    assert "nothing was decided" in once.stderr, once.stderr
    with Client(resolve(daemon.home), autostart=False) as c:
        for scope, pattern in (("once", "make"), ("run", ""), ("run", "  ")):
            with pytest.raises(ClientError) as refused:
                c.call("approval.decide", id=req["id"], allow=True, scope=scope, pattern=pattern,
                       created_at=req["created_at"])
            assert refused.value.code == "bad-pattern", (scope, pattern, refused.value.message)
        with pytest.raises(ClientError) as refused:  # what a grant would answer: the same word
            c.call("approval.covers", id=req["id"], allow=True, scope="run", pattern="",
                   created_at=req["created_at"])
        assert refused.value.code == "bad-pattern"
    assert [r["id"] for r in wait_pending(daemon)] == [req["id"]], "still pending"
    assert _grants(daemon) == [], "no grant was made"
    made = json.loads(daemon.cli("approve", req["id"], "--scope", "run", "--json").stdout)["grants"]
    assert [(g["pattern"], g["exact"]) for g in made] == [("make deploy", True)], made
    t.join(timeout=60)
    assert "rc=0" in out["result"].stdout


@needs_bwrap
def test_ctrl_c_on_run_wait_says_the_run_goes_on(daemon: Daemon, workspace: Path) -> None:
    proc = subprocess.Popen(
        [str(BIN / "pilothouse"), "run", "demo", "-w", str(workspace), "--wait", "--",
         "sh", "-c", "echo started; exec sleep 60"],
        env=daemon.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "started\n"
        os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    runs = json.loads(daemon.cli("ps", "--json").stdout)
    assert [r["state"] for r in runs] == ["running"], runs
    run_id = runs[0]["id"]
    assert proc.returncode == 130, err
    assert f"pilothouse stop {run_id}" in err and f"pilothouse logs -f {run_id}" in err, err
    daemon.cli("stop", run_id)
