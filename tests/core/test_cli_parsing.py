"""The CLI's words (console/cli/parsing.py over argparse): every command answers --help, the
top-level help lists every command, a usage error is one line that says where to look (exit 2,
no traceback), `--` hands the rest to the command, and no start loads click. Speed is a bench
row (bench/cli.py), never a timing here."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from console.cli.main import WHERE, main
from console.cli.parsing import Command, Group, UsageError, argument, group, option, pass_obj
from console.cli.value_types import int_range
from tests.conftest import BIN, Daemon
from tests.core.cli_invoke import invoke


def every_command(top: Group) -> Iterator[list[str]]:
    for name in sorted(top.commands):
        yield [name]
        sub = top.commands[name]
        if isinstance(sub, Group):
            yield from ([name, *words] for words in every_command(sub))


COMMANDS = list(every_command(main))


def test_the_walk_reaches_every_command_and_subcommand() -> None:
    assert {words[0] for words in COMMANDS} == set(WHERE)
    for nested in (["daemon", "stop"], ["policy", "check"], ["audit", "verify"],
                   ["trace", "export"]):
        assert nested in COMMANDS


@pytest.mark.parametrize("words", COMMANDS, ids=[" ".join(w) for w in COMMANDS])
def test_every_command_answers_help(words: list[str]) -> None:
    found: Command = main
    for word in words:
        found = found.commands[word]  # type: ignore[attr-defined]
    done = invoke(main, [*words, "--help"])
    assert done.exit_code == 0, done.output
    assert done.stdout.startswith(f"usage: pilothouse {' '.join(words)} ")
    assert " ".join(found.short_help.split()[:3]) in " ".join(done.stdout.split())
    assert done.stderr == ""


def test_the_top_level_help_lists_every_command_with_its_line() -> None:
    done = invoke(main, ["--help"])
    assert done.exit_code == 0
    listed = done.stdout.split("commands:\n", 1)[1].splitlines()
    assert [line.split()[0] for line in listed] == sorted(WHERE)
    assert "  ps              List runs." in listed
    assert "--config FILE" in done.stdout and "--version" in done.stdout
    assert invoke(main, ["-h"]).stdout == done.stdout


@pytest.mark.parametrize(("words", "said"), [
    (["bogus"], "pilothouse: no command 'bogus' (did you mean 'logs'?); see pilothouse --help"),
    (["--bogus"], "pilothouse: unrecognized arguments: --bogus; see pilothouse --help"),
    (["--config"], "pilothouse: argument --config: expected one argument; see pilothouse --help"),
    (["ps", "--bogus"], "pilothouse ps: unrecognized arguments: --bogus; see pilothouse ps --help"),
    (["report"], "pilothouse report: the following arguments are required: RUN; "
                 "see pilothouse report --help"),
    (["history", "--limit", "x"], "pilothouse history: argument --limit: invalid int value: "
                                  "'x'; see pilothouse history --help"),
    (["trace", "summary", "--by", "x"], "pilothouse trace summary: argument --by: invalid "
                                        "choice: 'x' (choose from 'run', 'lane'); see "
                                        "pilothouse trace summary --help"),
    (["replay-report", "--limit", "0"], "pilothouse replay-report: argument --limit: 0 is "
                                        "smaller than the minimum 1; see pilothouse "
                                        "replay-report --help"),
    (["audit"], "pilothouse audit: name a command (verify); see pilothouse audit --help"),
    (["policy", "nope"], "pilothouse policy: no command 'nope'; see pilothouse policy --help"),
    (["policy", "check"], "pilothouse policy check: the following arguments are required: "
                          "PROFILE, SUBJECT; see pilothouse policy check --help"),
    (["ps", "--js"], "pilothouse ps: unrecognized arguments: --js; see pilothouse ps --help"),
])
def test_a_usage_error_is_one_line_that_says_where_to_look(words: list[str], said: str) -> None:
    done = invoke(main, words)
    assert (done.exit_code, done.stdout, done.stderr) == (2, "", said + "\n")


def test_a_usage_error_at_the_real_entry_point_has_no_traceback(tmp_path: Path) -> None:
    env = {"PILOTHOUSE_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    for words in (["ps", "--bogus"], ["demo-workspace", str(Path(__file__))],
                  ["prune", "--older-than", "30"]):
        done = subprocess.run([str(BIN / "pilothouse"), *words], env=env, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 2, done
        assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr, done
        assert f"see pilothouse {words[0]} --help" in done.stderr


def test_demo_workspace_refuses_a_file_for_its_folder(tmp_path: Path) -> None:
    a_file = tmp_path / "taken"
    a_file.write_text("x")
    done = invoke(main, ["demo-workspace", str(a_file)])
    assert done.exit_code == 2 and "is a file (give a folder)" in done.stderr


# A toy group built with the same layer: how words reach a command's function.
@group("toy", alone=True, setup=lambda level: {"level": level})
@option("--level", type=int_range(0, 3), default=1)
@pass_obj
def toy(obj: dict) -> None:
    """A toy: runs alone."""
    print(json.dumps(obj))


@toy.command("run")
@argument("profile")
@argument("words", nargs="*")
@option("--wait", is_flag=True)
@option("--workspace", "-w", metavar="DIR")
def toy_run(profile: str, words: list[str], wait: bool, workspace: str | None) -> None:
    """Start PROFILE."""
    print(json.dumps([profile, words, wait, workspace]))


@toy.command("check")
@argument("subject", nargs="+")
def toy_check(subject: list[str]) -> None:
    """Check SUBJECT."""
    print(json.dumps(subject))


def _toy(*words: str) -> object:
    done = invoke(toy, list(words))
    assert done.exit_code == 0, done.output
    return json.loads(done.stdout)


def test_options_and_arguments_mix_and_double_dash_hands_over_the_rest() -> None:
    assert _toy("run", "demo", "--wait", "ls") == ["demo", ["ls"], True, None]
    assert _toy("run", "--wait", "demo", "-w", "ws") == ["demo", [], True, "ws"]
    assert _toy("run", "demo", "-w", "ws", "--", "git", "log", "--", "f", "--wait") == [
        "demo", ["git", "log", "--", "f", "--wait"], False, "ws"]
    assert _toy("run", "demo", "--", "sh", "-c", "echo -n x") == ["demo", ["sh", "-c", "echo -n x"],
                                                                 False, None]
    assert _toy("check", "--", "-rf", "/") == ["-rf", "/"]
    assert _toy("check", "a", "b") == ["a", "b"]


def test_a_group_option_is_checked_and_a_bare_group_runs_alone() -> None:
    assert _toy("--level", "2") == {"level": 2}
    assert _toy() == {"level": 1}
    bad = invoke(toy, ["--level", "9", "run", "x"])
    assert bad.exit_code == 2
    assert bad.stderr == ("toy: argument --level: 9 is larger than the maximum 3; "
                          "see toy --help\n")


def test_a_command_without_its_required_words_is_refused() -> None:
    done = invoke(toy, ["check"])
    assert done.exit_code == 2
    assert "the following arguments are required: SUBJECT" in done.stderr
    assert "--wait" in invoke(toy, ["run", "-h"]).stdout


def test_an_unknown_command_is_refused_before_any_module_is_imported() -> None:
    code = ("import sys\nfrom console.cli.main import main\ntry:\n    main(['nope'])\n"
            "except SystemExit as exc:\n    print(exc.code)\n"
            "print(sorted(m for m in sys.modules if m.startswith('console.cli.')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    code_line, modules = done.stdout.splitlines()[-2:]
    assert code_line == "2"
    assert not set(eval(modules)) & {f"console.cli.{m}" for m in WHERE.values()}


# What a start loads (each in a fresh interpreter): click never, argparse not for --version.
PROBE = """
import json, sys
from console.cli.main import main
try:
    main(sys.argv[1:], prog_name="pilothouse")
except SystemExit as exc:
    code = exc.code
loaded = sorted({m.split(".")[0] for m in sys.modules} & {"click", "argparse"})
print(json.dumps({"code": code, "loaded": loaded}), file=sys.stderr)
"""


def _loaded(env: dict[str, str], *args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], env=env, capture_output=True,
                          text=True, timeout=60)
    return json.loads(done.stderr.strip().splitlines()[-1])


def test_no_start_loads_click_and_plain_words_load_no_argparse(daemon: Daemon) -> None:
    # Plain words are read without a parser (console/cli/plain_words.py).
    for args in (["--version"], ["ps", "--json"], ["ps", "-a", "--json"], ["approvals", "--json"],
                 ["status"], ["approvals", "--run", "nosuchrun", "--json"]):
        assert _loaded(daemon.env, *args) == {"code": 0, "loaded": []}, args
    for args in (["--help"], ["ps", "--help"]):
        assert _loaded(daemon.env, *args) == {"code": 0, "loaded": ["argparse"]}, args


def _leaf_commands(top: Group) -> Iterator[tuple[str, Command]]:
    for words in COMMANDS:
        found: Command = top
        for word in words:
            found = found.commands[word]  # type: ignore[attr-defined]
        if not isinstance(found, Group):
            yield " ".join(words), found


LEAVES = dict(_leaf_commands(main))
VALUES = ["x", "7", "-3", "2.5", "jsonl", "exec", "allow", "1h", "/tmp", "", "a b"]


def _tokens(command: Command) -> list[list[str]]:
    """Word groups a person might type to this command: flags, options with values (apart
    and with =), positional words, and words argparse refuses."""
    out: list[list[str]] = [["pos"], ["other"], ["3"], ["-"], ["--nope"], ["-z"], ["--"]]
    for param in command.params:
        for flag in param.flags:
            if param.is_flag:
                out += [[flag], [f"{flag}=1"]]
            else:
                out += [[flag, v] for v in VALUES] + [[flag]]
                if flag.startswith("--"):
                    out += [[f"{flag}={v}"] for v in VALUES[:4]]
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
@pytest.mark.parametrize("name", sorted(LEAVES))
def test_plain_words_read_as_argparse_reads_them(name: str, data: st.DataObject) -> None:
    command = LEAVES[name]
    groups = data.draw(st.lists(st.sampled_from(_tokens(command)), max_size=5))
    argv = [word for group in groups for word in group]
    tail = "--" in argv
    head = argv[: argv.index("--")] if tail else argv
    got = command.read_plainly(head, tail_given=tail)
    try:
        want = vars(command.parser(f"pilothouse {name}", tail_given=tail).parse_intermixed_args(head))
    except UsageError:
        assert got is None, (name, argv)
        return
    if got is not None:
        assert got == want, (name, argv)


def test_the_commands_people_repeat_are_read_without_argparse() -> None:
    plain = {
        "ps": ["-a", "--json"], "approvals": ["--run", "r1", "--json"],
        "run": ["--wait", "-w", "/tmp", "bench"], "approve": ["req1"], "deny": ["req1"],
        "logs": ["r1", "-n", "20"], "stop": ["r1"], "status": [],
    }
    for name, argv in plain.items():
        assert LEAVES[name].read_plainly(argv) is not None, name
    assert LEAVES["run"].read_plainly(["--wait", "bench"], tail_given=True) is not None
    assert main.read_plainly(["--config", "/tmp/x.toml"]) == {"config": "/tmp/x.toml"}


def test_plain_words_decline_what_argparse_would_convert_or_require() -> None:
    @group("top")
    def top() -> None:
        pass

    @top.command()
    @option("--count", type=int, default="3")  # a string default argparse converts to 3
    @option("--on", is_flag=True)
    def converts(count: int, on: bool) -> None:
        pass

    @top.command()
    @option("--name", required=True)
    def requires(name: str) -> None:
        pass

    @top.command()
    @argument("what", nargs="*")
    def positional(what: list[str]) -> None:
        pass

    for name in ("converts", "requires"):
        assert top.commands[name].read_plainly([]) is None, name
    assert top.commands["positional"].read_plainly(["a", "-b"]) is None
