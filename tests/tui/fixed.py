"""A test-only data source: fixed dicts, shaped as the daemon sends them, at a frozen time.

Snapshots must not depend on the clock, the pid or random ids, so the screens are fed from here
instead of a daemon. The shapes are copied from real answers (runs.list, approvals.list,
net.decision events, history rows, policy.rules).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from console.client.sync import ClientError
from console.tui.link import Connected, DaemonEvent, Post

NOW = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC

HELLO = {"daemon": "0.1.0", "protocol": 1, "pid": 4242, "user": "dev", "role": "operator",
         "home": "/home/dev/.local/share/pilothouse", "uptime_s": 3600.0}

RUNS: list[dict[str, Any]] = [
    {"id": "k3mx", "profile": "demo", "backend": "bwrap", "workspace": "/home/dev/shop",
     "command": ["ph-demo-agent"], "actor": "dev", "state": "running", "started_at": NOW - 754,
     "ended_at": None, "exit_code": None, "pids": [101], "notes": [], "unsandboxed": False,
     "stats": {"cpu_percent": 12.4, "rss_bytes": 48 * 2**20, "pids": 5}},
    {"id": "q7rt", "profile": "aider", "backend": "none", "workspace": "/home/dev/shop",
     "command": ["aider", "--model", "local"], "actor": "dev", "state": "running",
     "started_at": NOW - 95, "ended_at": None, "exit_code": None, "pids": [202], "notes": [],
     "unsandboxed": True, "stats": {"cpu_percent": 88.0, "rss_bytes": 612 * 2**20, "pids": 12}},
    {"id": "z2bc", "profile": "shell", "backend": "bwrap", "workspace": "/home/dev/shop",
     "command": ["sh", "-c", "make test"], "actor": "dev", "state": "failed", "exit_code": 2,
     "started_at": NOW - 4000, "ended_at": NOW - 3880, "pids": [], "notes": [], "unsandboxed": False},
]

APPROVALS: list[dict[str, Any]] = [
    {"id": "e4ew", "run_id": "k3mx", "profile": "demo", "kind": "exec", "subject": "pytest -q tests/",
     "title": "pytest -q tests/", "detail": {"cwd": "/workspace"}, "summary": "exec pytest -q tests/",
     "created_at": NOW - 42, "age": 42.0, "expires_in": 78.0, "state": "pending",
     "rule_provenance": {"kind": "rule", "rule": "pytest", "rule_list": "ask",
                         "source": "/home/dev/.config/pilothouse/config.toml:21",
                         "text": 'rule "pytest" (ask) at /home/dev/.config/pilothouse/config.toml:21'}},
    {"id": "h8pn", "run_id": "q7rt", "profile": "aider", "kind": "network",
     "subject": "api.example.com:443", "title": "api.example.com:443",
     "detail": {"host": "api.example.com", "port": 443, "addresses": ["93.184.215.14"],
                "method": "CONNECT", "target": "api.example.com:443"},
     "summary": "network api.example.com:443", "created_at": NOW - 7, "age": 7.0,
     "expires_in": 113.0, "state": "pending",
     "rule_provenance": {"kind": "default", "rule_list": "ask",
                         "text": 'no rule matched: the default "ask"'}},
]

NET: list[dict[str, Any]] = [
    {"kind": "net.decision", "run_id": "k3mx", "ts": NOW - 300, "host": "pypi.org", "port": 443,
     "action": "allow", "rule": "pypi.org", "source": "embedded defaults:15", "asked": False,
     "provenance": None, "addresses": ["151.101.0.223"]},
    {"kind": "net.closed", "run_id": "k3mx", "ts": NOW - 290, "host": "pypi.org", "port": 443,
     "bytes_up": 2100, "bytes_down": 1_480_000, "duration_s": 9.5},
    {"kind": "net.decision", "run_id": "k3mx", "ts": NOW - 120, "host": "t.example-tracker.com",
     "port": 443, "action": "deny", "rule": "**.example-tracker.com", "source": "embedded defaults:16",
     "asked": False, "provenance": None},
    {"kind": "net.decision", "run_id": "q7rt", "ts": NOW - 60, "host": "github.com", "port": 443,
     "action": "allow", "rule": None, "asked": True,
     "provenance": {"kind": "person", "person": "dev", "scope": "run",
                    "text": "decided by dev (scope run)"}},
]

HISTORY: list[dict[str, Any]] = [
    {"id": 100 - i, "ts": NOW - 30 * i, "run_id": run, "kind": kind, "actor": actor, "text": text,
     "data": data}
    for i, (run, kind, actor, text, data) in enumerate([
        ("k3mx", "approval.requested", "run:k3mx", "run k3mx asks: exec pytest -q tests/ (e4ew)", {"id": "e4ew"}),
        ("q7rt", "net.decision", None, "allow github.com:443", {"action": "allow"}),
        ("k3mx", "net.decision", None, "deny t.example-tracker.com:443", {"action": "deny"}),
        ("k3mx", "approval.decided", "dev", "dev allowed exec git push (a1b2)", {"allow": True}),
        ("z2bc", "run.ended", None, "failed (exit 2)", {"state": "failed"}),
        ("z2bc", "run.started", "dev", "shell in bwrap: sh -c make test", {}),
        (None, "policy.reloaded", "dev", "config reloaded by dev", {}),
        (None, "daemon.started", "daemon", "daemon started (pid 4242); 0 lost run(s) reconciled", {}),
    ])
]

RULES: list[dict[str, Any]] = [
    {"profile": "demo", "source": "embedded defaults:8", "sandbox": "auto", "ports": [80, 443],
     "rules": [
         {"section": "exec", "list": "forbid", "rule": "rm -rf /", "source": "embedded defaults:22"},
         {"section": "exec", "list": "ask", "rule": "pytest", "source": "embedded defaults:21"},
         {"section": "exec", "list": "allow", "rule": "git status", "source": "embedded defaults:20"},
         {"section": "exec", "list": "default", "rule": "ask", "source": "embedded defaults:8"},
         {"section": "network", "list": "deny", "rule": "**.example-tracker.com", "source": "embedded defaults:16"},
         {"section": "network", "list": "allow", "rule": "pypi.org", "source": "embedded defaults:15"},
         {"section": "network", "list": "default", "rule": "ask", "source": "embedded defaults:8"},
     ]},
]

GRANTS: list[dict[str, Any]] = [
    {"id": "g7kq2m", "kind": "network", "pattern": "github.com:443", "effect": "allow",
     "scope": "timed", "run_id": "q7rt", "profile": "aider", "expires_at": NOW + 540,
     "decided_by": "dev", "created_at": NOW - 60},
]

PROFILES = [
    {"name": "demo", "command": ["ph-demo-agent"], "sandbox": "auto", "image": None,
     "description": "A scripted coding agent that shows every control", "source": "embedded defaults:8"},
    {"name": "shell", "command": ["sh"], "sandbox": "auto", "image": None,
     "description": "A plain command in the sandbox", "source": "embedded defaults:26"},
]

OUTPUT = [f"collected {i} items" if i % 7 == 0 else f"tests/test_shop.py::test_case_{i} PASSED"
          for i in range(40)]


def net_rows(events: list[dict[str, Any]], first_id: int = 1000) -> list[dict[str, Any]]:
    """Network events as the history op returns them (newest first): the event's fields are
    the row's data, as the gate records them."""
    rows = []
    for i, ev in enumerate(events):
        data = {k: v for k, v in ev.items() if k not in ("kind", "ts", "run_id")}
        rows.append({"id": first_id + i, "ts": ev["ts"], "run_id": ev["run_id"], "kind": ev["kind"],
                     "actor": None, "text": f"{ev.get('action', '')} {ev['host']}:{ev['port']}".strip(),
                     "data": data})
    return rows[::-1]


class FixedSource:
    """Answers ops from the data above; records what was asked (for assertions)."""

    def __init__(self, *, runs: list[dict[str, Any]] | None = None,
                 approvals: list[dict[str, Any]] | None = None,
                 net: list[dict[str, Any]] | None = None, gpu: Any = None,
                 gpu_note: str = "no NVIDIA driver on this machine",
                 history: list[dict[str, Any]] | None = None,
                 net_history: list[dict[str, Any]] | None = None,
                 trickle_s: float | None = None) -> None:
        self.runs = RUNS if runs is None else runs
        self.approvals = APPROVALS if approvals is None else approvals
        self.net = NET if net is None else net
        self.gpu, self.gpu_note = gpu, gpu_note
        self.net_history = net_history or []  # recorded network events, given on attach
        self.history = HISTORY if history is None else history  # the caller's list: it may grow
        if self.net_history:
            self.history = self.history + self.net_history
        self.trickle_s = trickle_s  # logs: after OUTPUT, one more line every trickle_s
        self.sent = 0  # lines the logs stream has sent
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.post: Post | None = None

    def _history(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        kind = args.get("kind") or ""
        return [r for r in self.history if str(r["kind"]).startswith(kind)
                and (not args.get("run") or r["run_id"] == args["run"])
                and (not args.get("search") or args["search"] in str(r["text"]))]

    async def call(self, op: str, **args: Any) -> Any:
        self.calls.append((op, args))
        if op == "history":
            before = args.get("before_id")
            rows = [r for r in self._history(args) if before is None or r["id"] < before]
            limit = args.get("limit", 100)
            if args.get("paged"):  # as the daemon answers: the page, and whether more match
                return {"rows": rows[:limit], "more": len(rows) > limit}
            return rows[:limit]
        if op == "approval.decide":
            req = next(r for r in self.approvals if r["id"] == args["id"])
            if args.get("created_at") not in (None, req.get("created_at")):  # as the daemon does
                raise ClientError("unknown-request", f"request {req['id']} is not the one you "
                                  "were shown; nothing was decided")
            return {"request_id": req["id"], "allow": args["allow"], "actor": "dev",
                    "scope": args["scope"], "describe": f"decided by dev (scope {args['scope']})",
                    "grants": [], "also_decided": [], "saved": {}}
        if op == "approval.covers":  # no grants here: a decision answers only its own request
            return []
        if op == "policy.rules":
            return RULES
        if op == "grants.list":
            return GRANTS
        if op == "profiles":
            return PROFILES
        if op == "run.get":
            return next(r for r in self.runs if r["id"] == args["run"])
        if op == "policy.check":
            return {"kind": "exec", "subject": args.get("command"), "action": "ask",
                    "describe": 'rule "pytest" (ask) at embedded defaults:21'}
        if op in ("runs.list", "approvals.list"):
            return self.runs if op == "runs.list" else self.approvals
        raise ClientError("unknown-op", f"unknown operation {op!r}")

    async def stream(self, op: str, **args: Any) -> AsyncIterator[dict[str, Any]]:
        self.calls.append((op, args))
        if op == "logs":
            yield {"kind": "run.output", "run_id": args.get("run"), "first": 0, "lines": OUTPUT}
            self.sent = len(OUTPUT)
            while self.trickle_s:
                await asyncio.sleep(self.trickle_s)
                yield {"kind": "run.output", "run_id": args.get("run"), "first": self.sent,
                       "lines": [f"trickle line {self.sent}"]}
                self.sent += 1
        if op == "export":
            rows = sorted(self._history(args), key=lambda r: r["id"])
            for i in range(0, len(rows), 1000):
                yield {"kind": "export.rows", "rows": rows[i:i + 1000]}
            yield {"kind": "stream.result", "result": {"rows": len(rows)}}
            return
        await asyncio.Event().wait()  # a live run: more output would follow

    async def run(self, post: Post) -> None:
        self.post = post
        post(Connected(HELLO, self.runs, self.approvals, PROFILES, self.gpu, self.gpu_note,
                       net=self.net_history))
        for event in self.net:
            post(DaemonEvent(event))
        await asyncio.Event().wait()
