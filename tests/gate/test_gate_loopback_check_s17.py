"""`localhost` and names under it: `pilothouse policy check` (with and without --resolve) and
agent.sock's decision give the gate's answer.

The gate never sends these names to a resolver: they are loopback by definition (RFC 6761),
127.0.0.1 and ::1, and both must be opened by an allow rule naming the address. `policy check`
used to judge them as any other name: unresolved ("ask", or "allow" by a host rule), or resolved
through /etc/hosts (here 127.0.0.1 only, so an allow rule naming 127.0.0.1 read as an allow).
Either way the check said allow or ask where the gate denied (and ask where it allowed).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from console.cli.main import main
from console.gate import NetAsk, NetworkRules, Verdict, parse_absolute_url, parse_connect_target
from console.policy.network import decide_network
from tests.core.cli_invoke import invoke

from .support import Echo, Harness, connect, read_response, running

PROFILES = {
    # 127.0.0.1 named on 8000, ::1 not; a host rule for localhost on 8001
    "half": (["127.0.0.1:8000", "localhost:8001"], "ask"),
    # both loopback addresses named on 8000
    "both": (["127.0.0.1:8000", "[::1]:8000"], "ask"),
    # everything allowed by default: localhost still needs its addresses named
    "open": ([], "allow"),
}
TARGETS = ["localhost:8000", "localhost:8001", "x.localhost:8000", "LocalHost.:8000",
           "http://localhost:8000/", "http://a.LOCALHOST.:8001/"]


def rules(name: str) -> NetworkRules:
    allow, default = PROFILES[name]
    return NetworkRules(allow, [], default, [80, 443])


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "loopback.toml"
    path.write_text("".join(
        f'[profiles.{name}]\ncommand = ["true"]\n[profiles.{name}.network]\n'
        f'default = "{default}"\nallow = {json.dumps(allow)}\n\n'
        for name, (allow, default) in PROFILES.items()))
    return path


def cli_check(config: Path, profile: str, target: str, *flags: str) -> str:
    env = {"PILOTHOUSE_HOME": str(config.parent / "no-daemon-here")}
    result = invoke(main, ["--config", str(config), "policy", "check", "--json", profile,
                           "--host", target, *flags], env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["decision"]


async def gate_decisions(profile: str) -> dict[str, str]:
    """What the real gate does with each target: allow (dialled, nobody asked), ask (a person
    was asked; the test answers no), deny (403, nobody asked) or reject (400)."""
    echo = await Echo().start()
    questions: list[NetAsk] = []

    async def ask(q: NetAsk) -> Verdict:
        questions.append(q)
        return Verdict(False, {"by": "test"})

    out = {}
    h = Harness(rules(profile), upstream_port=echo.port, ask=ask, system_resolve=True)
    async with running(h):
        for target in TARGETS:
            asked = len(questions)
            if target.startswith("http://"):
                reader, writer = await h.open()
                writer.write(f"GET {target} HTTP/1.1\r\nHost: x.invalid\r\n\r\n".encode())
                status, _, _ = await read_response(reader)
            else:
                status, _, _, _, writer = await connect(h, target)
            writer.close()
            decided = h.kinds("net.decision")
            if len(questions) > asked:
                out[target] = "ask"
            elif status == 400:
                out[target] = "reject"
            else:  # an allowed HTTP request reaches the echo server, which answers no HTTP
                out[target] = decided[-1]["action"]
    await echo.close()
    return out


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_policy_check_gives_the_gates_decision_for_loopback_names(profile: str,
                                                                  config: Path) -> None:
    gate = asyncio.run(gate_decisions(profile))
    for target in TARGETS:
        assert cli_check(config, profile, target) == gate[target], (profile, target, gate)
        assert cli_check(config, profile, target, "--resolve") == gate[target], (profile, target)


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_agent_sock_decision_is_the_gates_for_loopback_names(profile: str) -> None:
    """`ph-ask net HOST:PORT` decides with decide_network and no addresses, as agent.sock does."""
    gate = asyncio.run(gate_decisions(profile))
    for target in TARGETS:
        t = parse_absolute_url(target)[0] if "://" in target else parse_connect_target(target)
        got = decide_network(rules(profile), t.host, t.port, None).action.value
        assert got == gate[target], (profile, target, gate)
