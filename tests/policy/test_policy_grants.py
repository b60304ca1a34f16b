"""Grants: scopes, expiry, deny over allow, forbid over everything, and where they sit in the
order of evaluation."""

from __future__ import annotations

import pytest

from console.policy import (
    ExecRules,
    Grant,
    GrantTable,
    Scope,
    evaluate_exec,
    grant_to_rule,
    make_policy_eval,
    new_grant,
    parse_scope,
    pattern_covers,
    rule_list_for,
)

T0 = 1_700_000_000.0
RULES = ExecRules(allow=["git status"], ask=["git push"], forbid=["rm -rf /"])


def grant(pattern: str, effect: str = "allow", scope: str = "run", kind: str = "exec",
          run_id: str = "r1", profile: str = "demo", now: float = T0, exact: bool = True) -> Grant:
    return new_grant(kind, pattern, effect, scope, run_id=run_id, profile=profile,
                     decided_by="alice", now=now, exact=exact)


def decide(table: GrantTable, command: str, run_id: str = "r1", profile: str = "demo",
           now: float = T0):
    return evaluate_exec(command, RULES, table, run_id=run_id, profile=profile, now=now)


@pytest.mark.parametrize(("word", "scope"), [
    ("once", Scope("once")), ("run", Scope("run")), ("profile", Scope("profile")),
    ("global", Scope("global")), ("everywhere", Scope("global")), ("10m", Scope("timed", 600.0)),
    ("2h", Scope("timed", 7200.0)), ("90s", Scope("timed", 90.0)), (" 1D ", Scope("timed", 86400.0)),
])
def test_parse_scope(word: str, scope: Scope) -> None:
    assert parse_scope(word) == scope


@pytest.mark.parametrize("word", ["", "forever", "0m", "10", "-5m", "8d", "1.5h", "10 m"])
def test_parse_scope_refuses(word: str) -> None:
    with pytest.raises(ValueError, match="scope"):
        parse_scope(word)


@pytest.mark.parametrize("word", ["99999999999d", "9" * 5000 + "d", "1000000s"])
def test_a_long_duration_is_out_of_range_not_unknown(word: str) -> None:
    """h192: `--scope 99999999999d` was an "unknown scope" (the pattern took six digits at
    most); it is a duration past 7d, said as such, its number cut in the message."""
    with pytest.raises(ValueError, match="lasts between 1s and 7d") as caught:
        parse_scope(word)
    assert len(str(caught.value)) < 120, caught.value


def test_scopes_bind_run_profile_and_expiry() -> None:
    assert (grant("ls", scope="once").run_id, grant("ls", scope="once").profile) == ("r1", None)
    assert (grant("ls", scope="run").run_id, grant("ls", scope="run").expires_at) == ("r1", None)
    timed = grant("ls", scope="10m")
    assert (timed.scope, timed.run_id, timed.expires_at) == ("timed", "r1", T0 + 600)
    assert (grant("ls", scope="profile").run_id, grant("ls", scope="profile").profile) == (None, "demo")
    assert (grant("ls", scope="global").run_id, grant("ls", scope="global").profile) == (None, None)


def test_a_once_grant_is_consumed_by_the_request_it_answers() -> None:
    table = GrantTable()
    g = table.add(grant("make deploy", scope="once"))
    d = decide(table, "make deploy")
    assert d.action == "allow" and d.provenance.grant_id == g.id
    assert d.provenance.describe() == f"grant {g.id} (scope once) by alice"
    assert decide(table, "make deploy").action == "ask"
    assert table.list(T0) == []


def test_a_once_grant_is_kept_when_the_request_still_asks() -> None:
    table = GrantTable()
    table.add(grant("make deploy", scope="once"))
    assert decide(table, "make deploy && make clean").action == "ask"  # not used up
    assert decide(table, "make deploy").action == "allow"


def test_run_scope_covers_its_run_only() -> None:
    table = GrantTable()
    g = table.add(grant("git push origin main"))
    d = decide(table, "git push origin main")
    assert d.action == "allow" and d.provenance.describe() == f"grant {g.id} (scope run) by alice"
    assert decide(table, "git push origin main --tags").action == "ask"  # exact, not a prefix
    assert decide(table, "git push origin main", run_id="r2").action == "ask"
    assert decide(table, "git push origin dev").action == "ask"
    table.end_run("r1")
    assert decide(table, "git push origin main").action == "ask"


def test_timed_grants_expire() -> None:
    table = GrantTable(clock=lambda: T0 + 3600)
    table.add(grant("make", scope="10m"))
    assert decide(table, "make", now=T0 + 599).action == "allow"
    assert decide(table, "make", now=T0 + 600).action == "ask"
    assert table.match("exec", "make", "r1", "demo") is None  # the table's own clock: expired
    assert [g.pattern for g in table.expire()] == ["make"]


def test_profile_and_global_grants() -> None:
    table = GrantTable()
    table.add(grant("make", scope="profile"))
    table.add(grant("cargo build", scope="global"))
    assert decide(table, "make", run_id="r9").action == "allow"
    assert decide(table, "make", run_id="r9", profile="other").action == "ask"
    assert decide(table, "cargo build", run_id="r9", profile="other").action == "allow"


def test_deny_grants_beat_allow_grants_and_rules() -> None:
    table = GrantTable()
    table.add(grant("git", scope="global", exact=False))
    deny = table.add(grant("git status", effect="deny", now=T0 - 10))
    d = decide(table, "git status")
    assert d.action == "deny" and d.provenance.grant_id == deny.id
    assert decide(table, "env git status").action == "deny"  # seen through wrappers like forbid
    assert decide(table, "git log").action == "allow"
    assert table.match("exec", "git status", "r1", "demo", T0) is deny


def test_forbid_beats_any_grant() -> None:
    table = GrantTable()
    table.add(grant("rm -rf /", scope="global"))
    table.add(grant("rm", scope="once"))
    d = decide(table, "rm -rf /")
    assert d.action == "deny" and d.provenance.kind == "rule" and d.provenance.rule_list == "forbid"
    assert len(table.list(T0)) == 2  # the once grant was not spent on a forbidden command


def test_grants_answer_each_part_of_a_compound_command() -> None:
    table = GrantTable()
    g = table.add(grant("make", exact=False))
    d = decide(table, "git status && make all")
    assert d.action == "allow" and d.provenance.grant_id == g.id  # the grant is the reason named
    assert decide(table, "make && git push").action == "ask"
    assert table.match("exec", "make && make test", "r1", "demo", T0) is g
    assert table.match("exec", "make && ls", "r1", "demo", T0) is None


def test_allow_grants_see_literal_words_only() -> None:
    table = GrantTable()
    table.add(grant("make"))
    assert decide(table, "FOO=1 make").action == "ask"
    assert decide(table, "/usr/bin/make").action == "ask"


def test_allow_grants_never_pass_a_substitution() -> None:
    """A grant is a plain command: the quoted spelling of a substitution is another command
    (`make '$(curl x | sh)'` passes a string; `make $(curl x | sh)` runs curl and sh), so a
    command with a substitution is asked every time (review G round 3, session 12)."""
    table = GrantTable()
    table.add(grant("echo", exact=False))
    assert decide(table, "echo hi").action == "allow"
    d = decide(table, "echo $(cat ~/.ssh/id_rsa)")
    assert d.action == "ask" and d.asking == ("echo '$(cat ~/.ssh/id_rsa)'",)
    table.add(grant(d.asking[0]))  # what a person answering that request with scope run makes
    assert decide(table, "echo '$(cat ~/.ssh/id_rsa)'").action == "allow"  # the literal
    assert decide(table, "echo $(cat ~/.ssh/id_rsa)").action == "ask"
    assert decide(table, "echo $(cat ~/.ssh/id_rsa) x").action == "ask"


def test_bad_grants_are_refused() -> None:
    with pytest.raises(ValueError, match="kind"):
        grant("x", kind="telepathy")
    with pytest.raises(ValueError, match="effect"):
        grant("x", effect="maybe")
    with pytest.raises(ValueError, match="one plain command"):
        grant("make; rm -rf /")
    with pytest.raises(ValueError, match="pattern"):
        grant("  ", kind="custom")


@pytest.mark.parametrize(("pattern", "subject", "effect", "hit"), [
    ("pypi.org:443", "pypi.org:443", "allow", True),
    ("pypi.org:443", "PyPI.org.:443", "allow", True),
    ("pypi.org:443", "pypi.org:80", "allow", False),
    ("pypi.org", "pypi.org:443", "allow", True),
    ("pypi.org", "pypi.org:22", "allow", False),
    ("pypi.org", "pypi.org:22", "deny", True),
    ("*.github.com", "api.github.com:443", "allow", True),
    ("*.github.com", "github.com:443", "allow", False),
    ("**.github.com", "github.com:443", "allow", True),
    ("**.github.com", "notgithub.com:443", "allow", False),
    ("10.0.0.0/8", "10.1.2.3:443", "allow", True),
    ("127.0.0.1:8000", "127.0.0.1:8000", "allow", True),
    ("[::1]:8000", "[::1]:8000", "allow", True),
    ("::1", "[::1]:443", "deny", True),
])
def test_network_grant_patterns(pattern: str, subject: str, effect: str, hit: bool) -> None:
    from console.policy.netrules import parse_pattern

    assert pattern_covers(parse_pattern(pattern), effect, subject) is hit


def test_policy_eval_for_agent_sock() -> None:
    table = GrantTable()
    evaluate = make_policy_eval(lambda profile: RULES, table, clock=lambda: T0)
    assert evaluate("exec", "git status", "r1", "demo").action == "allow"
    d = evaluate("network", "pypi.org:443", "r1", "demo")
    assert d.action == "ask" and d.asking == ("pypi.org:443",)
    table.add(grant("pypi.org:443", kind="network"))
    assert evaluate("network", "pypi.org:443", "r1", "demo").provenance.kind == "grant"
    table.add(grant("src/*", kind="write", effect="deny", exact=False))  # a typed pattern
    assert evaluate("write", "src/app.py", "r1", "demo").action == "deny"
    assert evaluate("write", "docs/x.md", "r1", "demo").action == "ask"


def test_grant_to_rule() -> None:
    g = grant("git  push   origin 'my branch'", scope="profile")
    assert grant_to_rule(g) == "git push origin 'my branch'"
    assert rule_list_for(g) == ("exec", "allow")
    assert rule_list_for(grant("dd", effect="deny", scope="profile")) == ("exec", "forbid")
    net = grant("PyPI.org:443", kind="network", effect="deny", scope="profile")
    assert (grant_to_rule(net), rule_list_for(net)) == ("pypi.org:443", ("network", "deny"))
    with pytest.raises(ValueError, match="no config rule"):
        grant_to_rule(grant("Edit x", kind="custom"))


def test_a_look_without_consume_uses_no_once_grant() -> None:
    """The inbox checks the policy in force before it applies an allow: that look must not use
    up a "once" grant the agent's own request would need."""
    from console.policy import ExecRules, GrantTable, make_policy_eval, new_grant, parse_scope

    grants = GrantTable()
    grants.add(new_grant("exec", "make build", "allow", parse_scope("once"), run_id="r1",
                         profile="demo", decided_by="alice", now=0.0, exact=True))
    rules = ExecRules(ask=["make"])
    look = make_policy_eval(lambda profile: rules, grants, consume=False, clock=lambda: 1.0)
    decide = make_policy_eval(lambda profile: rules, grants, clock=lambda: 1.0)
    assert look("exec", "make build", "r1", "demo").action == "allow"
    assert look("exec", "make build", "r1", "demo").action == "allow"  # still there
    assert decide("exec", "make build", "r1", "demo").action == "allow"  # used up now
    assert decide("exec", "make build", "r1", "demo").action == "ask"


def test_the_table_announces_a_grant_made_or_ended_but_not_a_once_grant_used_up() -> None:
    """The gates look again at their open tunnels on these (console.daemon.gate_wiring)."""
    table = GrantTable(clock=lambda: 1000.0)
    heard: list[str | None] = []
    table.watch(lambda made: heard.append(made.id if made is not None else None))
    once = table.add(new_grant("network", "a.invalid", "allow", "once", run_id="r1",
                               profile="p", decided_by="al", now=1000.0))
    timed = table.add(new_grant("network", "b.invalid", "allow", "1m", run_id="r1",
                                profile="p", decided_by="al", now=900.0))
    ran = table.add(new_grant("network", "c.invalid", "allow", "run", run_id="r2",
                              profile="p", decided_by="al", now=1000.0))
    assert heard == [once.id, timed.id, ran.id]
    table.consume(once)  # used up by the request it answered: what it allowed stands
    assert table.revoke("g-none") is None
    assert heard == [once.id, timed.id, ran.id]
    table.expire()  # the timed grant's minute ended at 960
    table.end_run("r2")
    table.end_run("r2")  # nothing left to end
    assert heard == [once.id, timed.id, ran.id, None, None]
    assert table.list() == []
