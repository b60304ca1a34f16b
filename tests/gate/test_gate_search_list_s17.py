"""The gate looks up exactly the name its rules judged, never a name the resolver's search list
makes of it.

With `search corp.invalid` in resolv.conf (common on company machines; Kubernetes pods carry
three such domains and ndots:5), getaddrinfo("evil") asks DNS for evil.corp.invalid. The gate
decided `evil` (no rule names it: the default allows it), then dialled evil.corp.invalid, which
a deny rule names: a deny rule bypassed by writing a shorter name. The gate's real resolver runs
here in a private mount namespace whose resolv.conf points at a DNS server of the test's own on
127.0.0.78 (as tests/core/test_dns_order.py does), with a hosts file of its own beside it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(os.getuid() != 0 or not shutil.which("unshare"),
                                reason="a private mount namespace and port 53 need root")

REPO = Path(__file__).resolve().parents[2]

CHILD = r'''
import asyncio, json, socket, struct, sys, threading
from console.gate import NetworkRules
from console.gate.check import check_network
from console.gate.common import system_resolver
from tests.gate.support import Echo, Harness, connect, running

# Loopback answers, so nothing here could leave the machine even if dialled (the Harness never
# dials what it resolves). An allow rule for 127.0.0.64/27 admits them: the gate refuses a
# non-global address no rule names, and the short name must not be refused for that reason.
ANSWERS = {"evil.corp.invalid": "127.0.0.91", "good.corp.invalid": "127.0.0.92"}
queries = []

def serve_dns(sock):
    while True:
        data, peer = sock.recvfrom(4096)
        labels, i = [], 12
        while data[i]:
            labels.append(data[i + 1 : i + 1 + data[i]].decode()); i += 1 + data[i]
        name, qtype = ".".join(labels).lower(), struct.unpack(">H", data[i + 1 : i + 3])[0]
        queries.append(name)
        question, answers = data[12 : i + 5], b""
        if name in ANSWERS and qtype == 1:
            answers = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton(ANSWERS[name])
        flags = 0x8180 if name in ANSWERS else 0x8183  # NOERROR, or NXDOMAIN
        sock.sendto(data[:2] + struct.pack(">HHHHH", flags, 1, 1 if answers else 0, 0, 0)
                    + question + answers, peer)

dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
dns.bind(("127.0.0.78", 53))
threading.Thread(target=serve_dns, args=(dns,), daemon=True).start()

async def main():
    echo = await Echo().start()
    rules = NetworkRules(["10.9.8.7:443", "127.0.0.64/27:443"], ["evil.corp.invalid"], "allow",
                         [80, 443])
    out = {}
    h = Harness(rules, upstream_port=echo.port, ask=None, system_resolve=True)
    async with running(h):
        for target in ("evil:443", "evil.corp.invalid:443", "good.corp.invalid:443",
                       "gpubox:443"):
            status, _, _, _, writer = await connect(h, target)
            writer.close()
            out[target] = {"status": status, "dialled": [a for a, _ in h.dialled]}
            h.dialled.clear()
        checked = await check_network(rules, "evil:443", resolver=system_resolver)
        out["check evil:443"] = checked["addresses"]
    out["queries"] = queries
    print(json.dumps(out))
    await echo.close()

asyncio.run(main())
'''


def test_a_short_name_never_reaches_the_host_a_deny_rule_names(tmp_path: Path) -> None:
    (tmp_path / "resolv.conf").write_text(
        "nameserver 127.0.0.78\nsearch corp.invalid\noptions timeout:1 attempts:1\n")
    (tmp_path / "hosts").write_text("127.0.0.1 localhost\n10.9.8.7 gpubox\n")
    (tmp_path / "child.py").write_text(CHILD)
    script = (f'mount --bind "{tmp_path}/resolv.conf" /etc/resolv.conf && '
              f'mount --bind "{tmp_path}/hosts" /etc/hosts && '
              f'exec "{sys.executable}" "{tmp_path}/child.py"')
    done = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                          cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    # the deny rule holds for the short name: nothing is dialled, least of all its address
    assert got["evil:443"]["dialled"] == [] and got["evil:443"]["status"] != 200, got
    assert got["check evil:443"] == [], "policy check --resolve reads the name as the gate does"
    assert got["evil.corp.invalid:443"] == {"status": 403, "dialled": []}
    # a whole name still resolves through DNS, and a name in the hosts file through it
    assert got["good.corp.invalid:443"] == {"status": 200, "dialled": ["127.0.0.92"]}, got
    assert got["gpubox:443"] == {"status": 200, "dialled": ["10.9.8.7"]}, got
