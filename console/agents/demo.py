#!/usr/bin/env python3
"""ph-demo-agent: a scripted coding agent that walks through every Pilothouse control.

Standard library only, Python 3.8+, one file: it runs INSIDE the sandbox with the sandbox's own
python3 (copied to /run/pilothouse/bin/demo.py with demo_project.py, the project it works on;
`ph-demo-agent` is a wrapper next to it). It asks through the run's agent.sock with the helper's
PilothouseClient (/run/pilothouse/bin/inside.py), mounted in every run folder beside it.

Steps: look around (ls, cat, git status), ask to run the tests (`pytest -q`; without pytest in
the sandbox, the same tests run with `python3 -m unittest`, and it says so), fetch an allowed,
a denied and an unknown host through the gate, write a patch and show its diff, ask to run the
tests again, and with --model-url stream a chat completion through the gate (tokens metered).

Network outcomes, printed as `outcome: KIND - words` (the gate's own answer, never guessed):
  reached         the gate allowed it and the server answered (any HTTP status)
  unreachable     the gate allowed it but could not connect (502: offline, or the host is down)
  unresolved      the gate could not look the name up (502: offline, or a name under .invalid)
  denied-rule     403 by a deny rule, named (e.g. **.example-tracker.com)
  denied-person   403: the gate asked and a person denied it (or nobody answered in time)
  denied-address  403: the name resolved to a loopback/private address no rule names
  denied-default  403: no rule matched and the profile's network default is deny
  gate-error      any other answer from the gate (e.g. 503, fail closed)
  error           the proxy could not be reached at all
The unknown destination defaults to a name under .invalid, which no resolver answers: the gate
asks about the name before any lookup, and approving it sends nothing off the machine (the gate
answers 502, could not resolve). Exit status: 0 when the script ran to the end, whatever was approved or
denied; 2 when it cannot work at all (not inside Pilothouse) or on an internal error.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import json
import os
import shlex
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

if __package__:  # imported from the package: the CLI, the tests
    from console.agents.demo_project import (  # noqa: F401 - PROJECT: the tests' handle on it
        DEMO_SUBDIR,
        MARKER,
        PATCH,
        PROJECT,
        STATS_FIXED,
        make_demo_workspace,
    )
else:  # run as a script: demo_project.py lies beside this file in the run folder's bin/
    from demo_project import (  # noqa: F401
        DEMO_SUBDIR,
        MARKER,
        PATCH,
        PROJECT,
        STATS_FIXED,
        make_demo_workspace,
    )

AGENT_SOCK = "/run/pilothouse/agent.sock"
HELPER_PATHS = ("inside.py", "/run/pilothouse/bin/inside.py", "../sandbox/inside.py")
ALLOWED_URL = "https://pypi.org/simple/pytest/"
DENIED_URL = "https://telemetry.example-tracker.com/collect"
# A name no rule names, under .invalid (RFC 2606): asked, and after an allow answered 502
# without a packet leaving the machine. Never a real public address.
UNKNOWN_URL = "https://api.unknown-service.invalid/"
DECISION_WAIT_S = 900.0  # the gate answers by its own approval timeout; this only bounds a hang
SHOW_LINES = 14

# --- asking ---------------------------------------------------------------------------------


def load_client(sock: str | None = None) -> tuple[object, type, str] | None:
    """(client, its error class, where it came from): the helper's PilothouseClient, which is
    mounted beside this file in every run folder. None when it is not there."""
    here = Path(__file__).resolve().parent
    for candidate in HELPER_PATHS:
        path = (here / candidate).resolve()
        if path.is_file():
            spec = importlib.util.spec_from_file_location("pilothouse_inside", path)
            if spec is None or spec.loader is None:
                continue
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module.PilothouseClient(sock), module.PilothouseError, str(path)
    return None


# --- the gate -------------------------------------------------------------------------------


def _proxy_for(scheme: str) -> tuple[str, int] | None:
    names = ("HTTPS_PROXY", "https_proxy") if scheme == "https" else ("HTTP_PROXY", "http_proxy")
    for name in names + ("ALL_PROXY", "all_proxy"):
        value = os.environ.get(name)
        if value:
            parts = urllib.parse.urlsplit(value if "://" in value else "http://" + value)
            return parts.hostname or "127.0.0.1", parts.port or 3128
    return None


def _read_head(f) -> tuple[int, dict, bytes]:
    """Status, lower-cased headers, and the body when the answer says how long it is."""
    status_line = f.readline(8192).decode("latin-1").strip()
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise OSError(f"not an HTTP answer: {status_line[:80]!r}")
    headers = {}
    while True:
        line = f.readline(8192).decode("latin-1").strip()
        if not line:
            break
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    status = int(parts[1])
    length = int(headers.get("content-length") or 0)
    body = f.read(min(length, 65536)) if length and status != 200 else b""
    return status, headers, body


def fetch(url: str) -> tuple[str, str]:
    """GET url through the gate; (outcome kind, words for a person). Never raises."""
    parts = urllib.parse.urlsplit(url)
    host, scheme = parts.hostname or "", parts.scheme
    port = parts.port or (443 if scheme == "https" else 80)
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    proxy = _proxy_for(scheme)
    if proxy is None:
        return "error", "no proxy configured (HTTPS_PROXY is unset): run me inside Pilothouse"
    path = parts.path or "/"
    get = f"GET {{}} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: ph-demo-agent\r\nConnection: close\r\n\r\n"
    try:
        s = socket.create_connection(proxy, timeout=10)
        s.settimeout(DECISION_WAIT_S)  # the gate may be waiting for a person
        with s:
            if scheme == "https":
                s.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
                status, headers, body = _read_head(s.makefile("rb"))
                if status == 200:  # the tunnel is open: the gate allowed it and connected
                    return "reached", _through_tunnel(s, host, get.format(path))
            else:
                s.sendall(get.format(url).encode())
                status, headers, body = _read_head(s.makefile("rb"))
    except (OSError, ssl.SSLError) as exc:
        return "error", f"talking to the gate failed: {exc}"
    return classify(status, headers, body, host)


def _through_tunnel(s: socket.socket, host: str, request: str) -> str:
    try:
        tls = ssl.create_default_context().wrap_socket(s, server_hostname=host)
        tls.settimeout(30)
        tls.sendall(request.encode())
        answer, _, _ = _read_head(tls.makefile("rb"))
    except (OSError, ssl.SSLError) as exc:  # the gate did its part; the far end did not
        return f"the gate allowed it and connected; TLS or HTTP with {host} failed: {exc}"
    return f"the gate allowed it; {host} answered HTTP {answer}"


def classify(status: int, headers: dict, body: bytes, host: str) -> tuple[str, str]:
    text = body.decode("utf-8", "replace").strip()
    decision = headers.get("x-pilothouse-decision", "")
    if not decision and not text.startswith("Pilothouse gate:"):
        return "reached", f"the gate allowed it; {host} answered HTTP {status}"
    why = next((ln[4:].strip() for ln in text.splitlines() if ln.startswith("Why:")), "")
    first = text.splitlines()[0] if text else ""
    if status == 403:
        rule = decision.partition("rule=")[2].strip()
        if rule == "asked":
            return "denied-person", f"403: the gate asked and it was denied ({why})"
        if rule == "not-routable":
            return "denied-address", f"403: {why or 'not a public address'}"
        if rule == "default":
            return "denied-default", f"403: no rule matched and the default is deny ({why})"
        return "denied-rule", f"403: {why or 'denied by rule ' + rule}"
    if status in (502, 504) and "could not resolve" in text:
        return "unresolved", f"{status}: the gate could not resolve {host} (no DNS: offline?) - {first}"
    if status in (502, 504):
        return "unreachable", f"{status}: gate allowed, upstream unreachable (offline) - {first}"
    return "gate-error", f"{status}: {first or 'no explanation'}"


# --- the agent ------------------------------------------------------------------------------


class Demo:
    def __init__(self, args: argparse.Namespace, client: object, error: type) -> None:
        self.args = args
        self.client = client
        self.error = error
        self.unit = 0.0 if args.speed <= 0 else 0.5 / args.speed
        self.summary: list[tuple[str, str]] = []
        self.project = Path(args.workspace)

    # output ------------------------------------------------------------------------------
    def say(self, text: str = "", pause: float = 1.0) -> None:
        print(text, flush=True)
        if self.unit:
            time.sleep(self.unit * pause)

    def show(self, text: str, limit: int = SHOW_LINES) -> None:
        lines = text.rstrip("\n").splitlines()
        if len(lines) > limit:  # the end of a command's output is where its verdict is
            print(f"    | ... ({len(lines) - limit} earlier lines not shown)")
            lines = lines[-limit:]
        for line in lines:
            print("    | " + line)
        sys.stdout.flush()

    def step(self, number: int, title: str) -> None:
        self.say("")
        self.say(f"== step {number}: {title}", pause=2)

    # asking ------------------------------------------------------------------------------
    def ask(self, kind: str, subject: str, title: str) -> tuple[bool, str]:
        """Ask through agent.sock; a failure to ask is a denial (fail closed)."""
        self.say(f"  ? {kind}: {subject}", pause=0.5)
        waiting = threading.Timer(1.0, lambda: print(
            "    waiting for a decision (pilothouse approvals, or the console)...", flush=True))
        waiting.start()
        try:
            result = self.client.ask_full(kind, subject, title=title, cwd=str(self.project))
            allowed, reason = bool(result.get("allow")), str(result.get("reason") or "")
        except self.error as exc:
            allowed, reason = False, f"could not ask: {exc}"
        finally:
            waiting.cancel()
        self.say(f"    {'approved' if allowed else 'denied'}: {reason}")
        return allowed, reason

    def run(self, command: str, title: str) -> subprocess.CompletedProcess | None:
        """Ask for command, then run it in the project; None when denied."""
        allowed, _ = self.ask("exec", command, title)
        if not allowed:
            return None
        return self.execute(shlex.split(command))

    def execute(self, argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
        self.say(f"  $ {shlex.join(argv)}", pause=0.5)
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")  # keep the workspace clean
        try:
            done = subprocess.run(argv, cwd=self.project, capture_output=True, text=True,
                                  timeout=timeout, env=env)
        except (OSError, subprocess.TimeoutExpired) as exc:
            done = subprocess.CompletedProcess(argv, 127, "", f"could not run: {exc}")
        self.show((done.stdout or "") + (done.stderr or ""))
        return done

    # the steps ---------------------------------------------------------------------------
    def prepare_project(self) -> None:
        stats = self.project / "stats.py"
        if stats.is_file() and stats.read_text(encoding="utf-8").startswith(MARKER):
            return
        # Not the demo project: work on a fresh copy beside the person's files, never on them.
        # No git repository inside the sandbox: hooks an agent wrote would run on the host.
        self.project = self.project / DEMO_SUBDIR
        self.say(f"  this workspace is not the demo project: writing one in {DEMO_SUBDIR}/")
        make_demo_workspace(self.project, git=False)

    def look_around(self) -> None:
        self.step(1, "look around the workspace")
        commands = ["ls -la", "cat README.md", "cat stats.py"]
        if (self.project / ".git").is_dir() and shutil.which("git"):
            commands.append("git status --short")
        ran = [c for c in commands if self.run(c, f"look around: {c}") is not None]
        skipped = [c for c in commands if c not in ran]
        self.summary.append(("look around", f"{len(ran)} of {len(commands)} commands ran"
                             + (f"; denied: {', '.join(skipped)}" if skipped else "")))

    def test_command(self) -> tuple[list[str], str]:
        """What really runs for an approved `pytest -q`, and a note when it is a stand-in."""
        if shutil.which("pytest"):
            return ["pytest", "-q"], ""
        probe = subprocess.run([sys.executable, "-c", "import pytest"], capture_output=True)
        if probe.returncode == 0:
            return [sys.executable, "-m", "pytest", "-q"], "pytest is a module here, not a command"
        return ([sys.executable, "-m", "unittest", "-v"],
                "pytest is not installed in this sandbox: running the same tests with "
                "python3 -m unittest instead")

    def run_tests(self, number: int, label: str) -> None:
        self.step(number, f"run the tests ({label})")
        allowed, reason = self.ask("exec", "pytest -q", "run the test suite")
        if not allowed:
            self.say(f"  tests: not run (denied: {reason}); going on without them")
            self.summary.append((f"tests {label}", "not run (denied)"))
            return
        argv, note = self.test_command()
        if note:
            self.say(f"  note: {note}")
        done = self.execute(argv)
        verdict = "passed" if done.returncode == 0 else f"failed (exit {done.returncode})"
        self.say(f"  tests: {verdict}")
        self.summary.append((f"tests {label}", verdict))

    def network(self) -> None:
        self.step(3, "fetch through the gate")
        targets = (("allowed", self.args.allowed_url, "a host the profile allows"),
                   ("denied", self.args.denied_url, "a host a deny rule names"),
                   ("unknown", self.args.unknown_url,
                    "a host no rule names: the gate asks you (pilothouse approvals)"))
        for label, url, why in targets:
            self.say(f"  GET {url}  ({why})", pause=0.5)
            kind, words = fetch(url)
            self.say(f"    outcome: {kind} - {words}")
            self.summary.append((f"net {label}", f"{urllib.parse.urlsplit(url).hostname}: {kind}"))

    def patch(self) -> None:
        self.step(4, "write a patch: fix mean([]), add median() and its test")
        changed = []
        for name, new in PATCH.items():
            path = self.project / name
            old = path.read_text(encoding="utf-8") if path.exists() else ""
            if old == new:
                continue
            path.write_text(new, encoding="utf-8")
            changed.append(name)
            diff = difflib.unified_diff(old.splitlines(True), new.splitlines(True),
                                        f"a/{name}", f"b/{name}")
            self.show("".join(diff), limit=60)
        if not changed:
            self.say("  the project is already patched (an earlier run?): nothing to change")
        else:
            self.say(f"  wrote {', '.join(changed)}")
        if changed and (self.project / ".git").is_dir() and shutil.which("git"):
            self.run("git diff --stat", "summarise the change")
        self.summary.append(("patch", ", ".join(changed) or "already applied"))

    def model(self) -> None:
        self.step(6, "ask a model through the gate (tokens are metered there)")
        if not self.args.model_url:
            self.say("  skipped: no --model-url (e.g. --model-url http://127.0.0.1:8000/v1)")
            self.summary.append(("model", "skipped (no --model-url)"))
            return
        self.summary.append(("model", stream_completion(self.args, self.say)))

    def main(self) -> int:
        self.say("ph-demo-agent: a scripted coding agent; every step goes through Pilothouse")
        self.prepare_project()
        self.say(f"  working in {self.project}")
        self.look_around()
        self.run_tests(2, "before the patch")
        self.network()
        self.patch()
        self.run_tests(5, "after the patch")
        self.model()
        self.step(7, "summary")
        for what, outcome in self.summary:
            print(f"  {what:<22} {outcome}")
        self.say("ph-demo-agent: done")
        return 0


# --- a model through the gate ---------------------------------------------------------------


def stream_completion(args: argparse.Namespace, say) -> str:
    """POST /chat/completions with stream=true through the proxy; print the text as it comes."""
    base = args.model_url.rstrip("/")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler())  # HTTP(S)_PROXY
    headers = {"Content-Type": "application/json", "User-Agent": "ph-demo-agent"}
    key = os.environ.get(args.api_key_env or "")
    if key:
        headers["Authorization"] = f"Bearer {key}"
    model = args.model
    try:
        if not model:
            with opener.open(urllib.request.Request(f"{base}/models", headers=headers), timeout=60) as r:
                model = (json.load(r).get("data") or [{}])[0].get("id") or "default"
            say(f"  model: {model} (the first one {base}/models lists)")
        body = {"model": model, "stream": True, "stream_options": {"include_usage": True},
                "max_tokens": 160, "messages": [
                    {"role": "system", "content": "You are a terse code reviewer."},
                    {"role": "user", "content": "Review this change in two sentences:\n"
                     + STATS_FIXED}]}
        request = urllib.request.Request(f"{base}/chat/completions", json.dumps(body).encode(),
                                         headers, method="POST")
        usage, text = None, []
        with opener.open(request, timeout=300) as response:
            print("  > ", end="", flush=True)
            for raw in response:
                line = raw.decode("utf-8", "replace").strip()
                if not line.startswith("data:") or line[5:].strip() == "[DONE]":
                    continue
                chunk = json.loads(line[5:])
                usage = chunk.get("usage") or usage
                for choice in chunk.get("choices") or []:
                    piece = (choice.get("delta") or {}).get("content") or ""
                    text.append(piece)
                    print(piece.replace("\n", "\n  > "), end="", flush=True)
            print(flush=True)
    except urllib.error.HTTPError as exc:
        detail = exc.read(4096).decode("utf-8", "replace").strip().splitlines()
        who = "the gate" if exc.headers.get("X-Pilothouse-Decision") or (
            detail and detail[0].startswith("Pilothouse gate:")) else "the model server"
        say(f"  {who} answered HTTP {exc.code}: {detail[0] if detail else exc.reason}")
        for line in detail[1:3]:
            say(f"    {line}")
        return f"HTTP {exc.code} from {who}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        say(f"  the model call failed: {exc}")
        return f"failed: {exc}"
    if usage:
        say(f"  usage: {usage.get('prompt_tokens')} prompt + {usage.get('completion_tokens')} "
            "completion tokens (the gate meters them when [gate] inference names this server)")
        return f"{usage.get('completion_tokens')} tokens streamed from {model}"
    return f"{len(''.join(text))} characters streamed from {model} (no usage reported)"


def _default_workspace() -> str:
    inside = os.environ.get("PILOTHOUSE_WORKSPACE")
    return inside if inside and os.path.isdir(inside) else os.getcwd()


def unknown_host() -> str:
    return urllib.parse.urlsplit(UNKNOWN_URL).hostname or ""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="ph-demo-agent", description=__doc__.split("\n\n")[0])
    p.add_argument("--speed", type=float, default=1.0,
                   help="pause multiplier: 2 is twice as fast, 0 is no pauses (default 1)")
    p.add_argument("--workspace", default=_default_workspace(),
                   help="the project folder (default $PILOTHOUSE_WORKSPACE, /workspace inside)")
    p.add_argument("--allowed-url", default=ALLOWED_URL, help=f"default {ALLOWED_URL}")
    p.add_argument("--denied-url", default=DENIED_URL, help=f"default {DENIED_URL}")
    p.add_argument("--unknown-url", default=UNKNOWN_URL, help=f"default {UNKNOWN_URL}")
    p.add_argument("--model-url", help="an OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--model", help="model name (default: the first one the server lists)")
    p.add_argument("--api-key-env", default="OPENAI_API_KEY",
                   help="variable holding a bearer key for the model server, if it needs one")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sock = os.environ.get("PILOTHOUSE_AGENT_SOCK") or AGENT_SOCK
    if not os.path.exists(sock):
        print(f"ph-demo-agent: no Pilothouse agent socket at {sock}; run me inside Pilothouse:\n"
              "  pilothouse run demo", file=sys.stderr)
        return 2
    helper = load_client()
    if helper is None:
        print("ph-demo-agent: the Pilothouse helper (inside.py) is not beside me; run me inside "
              "Pilothouse:\n  pilothouse run demo", file=sys.stderr)
        return 2
    try:
        client, error, where = helper
        print(f"ph-demo-agent: asking through {where}", flush=True)
        return Demo(args, client, error).main()
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # an internal error: say so plainly, with the trace for a report
        import traceback

        traceback.print_exc()
        print(f"ph-demo-agent: internal error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
