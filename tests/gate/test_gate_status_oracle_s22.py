"""Attack review s22: what a name resolved to, read back through agent.sock's `status`.

When the profile has an allow rule naming an IP range, the gate resolves a name before it asks
(docs/threat-model.md, "DNS only after a yes"), and the question it puts to the inbox carries
the addresses: the person decides on them. agent.sock's `status` answers for any request of
the run, the gate's questions included, and its `summary` was the card's line, addresses and
all. Request ids are four letters of a 31-letter alphabet (under a million) and `status` has no
rate: an agent that enumerates them reads what its names resolved to, the DNS oracle into the
local network that the gate's 403 and 502 are written to avoid. (The test takes the id from
the inbox, standing in for the enumeration.)
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from console.daemon.agent_socket import start_agent_server
from console.daemon.evaluation import PolicyEvaluator, network_rules
from console.daemon.gate_wiring import GateWiring
from console.daemon.inbox import Inbox
from console.daemon.live_config import LiveConfig
from console.policy import GrantTable
from console.wire import AGENT_MAX_LINE, encode, request

from .support import FAKE_GLOBAL as PUBLIC
from .support import Echo, Harness, connect, running

WAIT = 10.0  # a bound on a hang, never a measurement
SECRET = ipaddress.ip_address("127.0.0.77")  # inside the range the rule names


async def _record(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(0)
    return {"id": 1}


async def _status(path: Path, request_id: str) -> dict[str, Any]:
    reader, writer = await asyncio.open_unix_connection(str(path), limit=4 * AGENT_MAX_LINE)
    try:
        writer.write(encode(request(1, "status", {"request_id": request_id})))
        await writer.drain()
        return json.loads(await asyncio.wait_for(reader.readline(), WAIT))
    finally:
        writer.close()


async def test_agent_sock_status_does_not_tell_what_a_name_resolved_to(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[profiles.demo]\ncommand = ["true"]\n[profiles.demo.network]\n'
                      'default = "ask"\nallow = ["127.0.0.0/8"]\n')
    live = LiveConfig(config)
    grants = GrantTable()
    evaluator = PolicyEvaluator(live, grants)
    inbox = Inbox(_record, timeout_s=WAIT, grants=grants)
    wiring = GateWiring(live, evaluator, inbox, None, None)  # type: ignore[arg-type]
    echo = await Echo().start()
    h = Harness(network_rules(evaluator.profile("demo")), upstream_port=echo.port,
                names={"db.corp.invalid": [PUBLIC, SECRET]},
                ask=wiring.asker("run-1", evaluator.profile("demo")))
    sock_dir = Path(tempfile.mkdtemp(prefix="ph-", dir="/tmp"))
    server = await start_agent_server(sock_dir / "agent.sock", "run-1", "demo", inbox,
                                      evaluator.policy_eval)
    try:
        async with running(h):
            attempt = asyncio.ensure_future(connect(h, "db.corp.invalid:443"))
            deadline = asyncio.get_running_loop().time() + WAIT
            while not inbox.pending("run-1"):
                assert asyncio.get_running_loop().time() < deadline, "the gate never asked"
                await asyncio.sleep(0.01)
            (req,) = inbox.pending("run-1")
            assert str(SECRET) in req.detail["addresses"]  # the person's card has it
            answer = await _status(sock_dir / "agent.sock", req.id)
            await inbox.decide(req.id, False, "bob")
            status, *_, writer = await asyncio.wait_for(attempt, WAIT)
            writer.close()
            after = await _status(sock_dir / "agent.sock", req.id)  # decided: its reason too
    finally:
        server.close()
        await server.wait_closed()
        await echo.close()
        shutil.rmtree(sock_dir, ignore_errors=True)
    assert status == 403 and not h.dialled
    assert answer["ok"] and answer["result"]["kind"] == "network", answer
    assert answer["result"]["subject"] == "db.corp.invalid:443"  # the agent's own destination
    assert str(SECRET) not in json.dumps(answer), answer["result"]
    assert after["result"]["state"] == "denied" and str(SECRET) not in json.dumps(after), after
