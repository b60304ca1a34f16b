"""Review h155: the flat reading of a blind part against forbid rules (policy._forbidden_past_bounds,
review h154).

1. It read the words from EVERY word naming a rule's program to the part's end: quadratic in the
   words. `echo "$x" rm rm rm ...` (3.9 KB) took about 4 s to decide on the review machine
   (30 ms before dd1bab3); `echo "$x" git git ...` 2.7 s. Here the work is counted, not timed.
2. Any word whose last path component names a program started a reading, so ordinary commands
   with an expansion (blind) that name a file `dd` or `mkfs` were refused under the built-in
   profiles: `ls "$HOME"/dd`, `git log --author="$USER" -- src/dd`; asked before dd1bab3.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from console.policy import CommandPattern, ExecRules, evaluate_exec

_PROFILES = tomllib.loads((Path(__file__).parents[2] / "console/agents/profiles.toml").read_text())


def _rules(name: str) -> ExecRules:
    e = _PROFILES["profiles"][name]["exec"]
    return ExecRules(e.get("allow", []), e.get("ask", []), e.get("forbid", []), e.get("default", "ask"))


@pytest.mark.parametrize("line", ['echo "$x" ' + "rm " * 1300, 'echo "$x" ' + "git " * 1000,
                                  '"$x" ' + "/a/git " * 500, 'echo $x ' + "sudo rm " * 500],
                         ids=["rm", "git", "/a/git", "sudo-rm"])
def test_the_flat_reading_of_a_long_blind_part_is_bounded(monkeypatch: pytest.MonkeyPatch, line: str) -> None:
    calls = []
    real = CommandPattern.reaches

    def counted(self: CommandPattern, part: object) -> bool:
        calls.append(len(part.words))  # type: ignore[attr-defined]
        return real(self, part)  # type: ignore[arg-type]

    monkeypatch.setattr(CommandPattern, "reaches", counted)
    assert len(line) < 4096
    assert evaluate_exec(line, _rules("claude"), consume=False).action == "ask"
    assert sum(calls) < 40_000, (len(calls), sum(calls))  # words looked at, all readings together


ORDINARY = ['ls "$HOME"/dd', 'git log --author="$USER" -- src/dd', 'cp "$SRC" build/dd',
            'grep -rn "$PAT" src/dd', 'ls $(git rev-parse --show-toplevel)/mkfs',
            'cat "$(pwd)"/tools/dd']


@pytest.mark.parametrize("profile", ["claude", "demo"])
@pytest.mark.parametrize("line", ORDINARY)
def test_a_file_named_like_a_forbidden_program_is_asked_not_refused(profile: str, line: str) -> None:
    assert evaluate_exec(line, _rules(profile), consume=False).action == "ask"


@pytest.mark.parametrize("line", ["nice " * 18 + "rm -rf ~", "nice " * 18 + "/bin/rm -rf ~",
                                  "timeout 5 " * 17 + "git clean -fd",
                                  "nice " * 18 + "rm " + "-v " * 40 + "-rf ~"])
def test_past_the_bounds_a_forbidden_command_is_still_refused(line: str) -> None:
    assert evaluate_exec(line, _rules("claude"), consume=False).action == "deny"


# 3. Options of the nested runners (wrappers.py NESTED_RUNNERS, a03b443/4405fc9) that run a
#    command the reader does not read: hyperfine's -s/--setup and -c/--cleanup (beside
#    -p/--prepare and --conclude, which are read), perf stat's --pre/--post, gdb's `-ex 'shell
#    CMD'` (gdb's shell command). Each is asked, never allowed; a forbid rule misses them.
#    Fails: no fix here.
RUNNER_OPTIONS = ["hyperfine -c'rm -rf ~' true", "hyperfine --setup='rm -rf ~' true",
                  "perf stat --pre 'rm -rf ~' true", "perf stat --post='rm -rf ~' true",
                  "gdb -ex 'shell rm -rf ~'", "gdb -batch -iex 'shell rm -rf ~'"]


@pytest.mark.parametrize("line", RUNNER_OPTIONS)
def test_a_runners_command_options_are_read(line: str) -> None:
    assert evaluate_exec(line, _rules("claude"), consume=False).action == "deny"


# Review h156: a line blind only for an expansion in its words is asked, not read flat: the
# flat reading refused everyday lines naming a file `dd` or a word `clean` beside one.
EVERYDAY = ['git diff "$BASE" -- dd', 'git checkout "$BRANCH" -- dd', 'pytest "$T" -k dd',
            'cargo test -p dd "$FILTER"', 'go test ./... -run "$T" dd', 'find "$DIR" -name dd',
            'mv "$tmp" dd', 'echo "$x" git clean', 'ls `pwd`/x dd', 'echo "$(date)" rm -rf ~']


@pytest.mark.parametrize("line", EVERYDAY)
@pytest.mark.parametrize("profile", ["claude", "demo"])
def test_an_everyday_line_with_an_expansion_is_asked_not_refused(line: str, profile: str) -> None:
    p = _PROFILES["profiles"][profile]["exec"]
    rules = ExecRules(allow=p["allow"], ask=p.get("ask", []), forbid=[*p["forbid"], "dd", "git clean"],
                      default=p["default"])
    assert evaluate_exec(line, rules, consume=False).action == "ask", line
