"""Review s30 (helper 101): a grant made from a command whose script its words do not show.

An approval with scope run (timed, global) made an exact grant of the command's words: for
`bash <<'EOF'` with a harmless body, `bash << EOF`; for `echo 'echo setup' | bash`, `bash`.
Neither holds the body or the piped script, so every later here-document script, or anything
piped into bash, was allowed for the grant's scope, nobody asked; so was a script piped into
python3, node, `sed -f -` or patch (second round). Such a part now makes no grant (the answer
says why) and no grant covers one: it is asked every time. A pipe into a data filter (head,
grep, jq...) stays grantable. Real
ph-claude-hook, agent.sock and Inbox (tests/approvals/conftest.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from console.policy import GrantTable, evaluate_exec, new_grant
from console.policy.parts import canonical
from console.policy.unwrap import expand
from tests.approvals.conftest import RULES, AgentServer, next_pending
from tests.approvals.test_inside_helper import hook_input, hook_output, run_helper

CASES = [  # (approved for the run, a later command the grant must not answer)
    ("bash <<'EOF'\necho hello from the script the person read\nEOF",
     "bash <<'EOF'\necho pwned > PWNED_MARKER\nEOF"),
    ("python3 <<'EOF'\nprint('hello')\nEOF", "python3 <<'EOF'\nopen('PY', 'w').write('x')\nEOF"),
    ("echo 'echo setup' | bash", "echo 'echo pwned > PIPE_PWNED_MARKER' | bash"),
    ("cat <<'EOF' > notes.txt\nthe notes\nEOF", "cat <<'EOF' > notes.txt\nother words\nEOF"),
    # review s30, second round (helper 103): a script piped into any program that may run it
    ("echo 'print(1)' | python3", "echo 'open(\"PWNED\", \"w\")' | python3"),
    ("echo 'console.log(1)' | node", "echo 'require(\"fs\").writeFileSync(\"P\", \"\")' | node"),
    ("echo p | sed -f - notes.txt", "echo 'e touch PWNED' | sed -f - notes.txt"),
    ("echo fix | patch -p1", "echo 'evil diff' | patch -p1"),
    ("echo 1 | nice python3", "echo 'import os' | nice python3"),
]


async def _hook(server: AgentServer, command: str) -> asyncio.Task:
    return asyncio.create_task(run_helper(server.path, "ph-claude-hook",
                                          stdin=hook_input("Bash", {"command": command})))


@pytest.mark.parametrize(("approved", "later"), CASES)
async def test_a_later_script_is_asked_not_answered_by_the_grant(
        agent_server: AgentServer, approved: str, later: str) -> None:
    decided = await approved_then_asked(agent_server, approved, later)
    assert not decided.grants, [g.pattern for g in decided.grants]


async def approved_then_asked(server: AgentServer, approved: str, later: str) -> Any:
    """`approved` is approved for the run (its decision returned); `later` must then reach a
    person again (denied there)."""
    hook = await _hook(server, approved)
    req = await next_pending(server.inbox)
    decided = await server.inbox.decide(req.id, True, "alice", "run")
    _rc, out, _ = await hook
    assert hook_output(out)["permissionDecision"] == "allow"  # this one, as approved
    hook = await _hook(server, later)
    again = await next_pending(server.inbox)  # asked, as the person must read it
    assert again.subject == later
    await server.inbox.decide(again.id, False, "alice")
    _rc, out, _ = await asyncio.wait_for(hook, 10)
    assert hook_output(out)["permissionDecision"] == "deny"
    return decided


@pytest.mark.parametrize(("approved", "later"), CASES)
def test_no_grant_covers_input_its_pattern_does_not_hold(approved: str, later: str) -> None:
    """A grant made another way (an exact one written before this change, a pattern a person
    typed naming the same words) covers no such part either."""
    table = GrantTable()
    for part in expand(approved):
        if not part.nested and part.words[0] in ("bash", "python3", "cat", "node", "sed",
                                                   "patch", "nice"):
            table.add(new_grant("exec", canonical(part), "allow", "run", run_id="r1",
                                profile="p", decided_by="alice", exact=True))
            table.add(new_grant("exec", part.words[0], "allow", "run", run_id="r1",
                                profile="p", decided_by="alice", exact=False))
    decision = evaluate_exec(later, RULES, table, run_id="r1", profile="p")
    assert decision.action == "ask", decision


def test_a_pipe_into_a_data_filter_stays_grantable() -> None:
    from console.policy import ungrantable

    assert ungrantable("cargo test 2>&1 | tail -50") == frozenset()
    assert ungrantable("git log | grep fix | head -3") == frozenset()
    assert ungrantable("echo x | python3") == frozenset({"python3"})
