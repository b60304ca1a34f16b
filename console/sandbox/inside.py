#!/usr/bin/env python3
"""Pilothouse's helper inside a sandbox. One file, standard library only, Python 3.8+.

Mounted read-only at /run/pilothouse/bin/inside.py; run as `python3 inside.py COMMAND ...` or
through a link named after the command:

    ph-ask exec -- CMD...          ask before running a command   (exit 0 approved, 1 denied,
    ph-ask net HOST:PORT           ask for a network destination   2 error; the reason goes
    ph-ask write PATH              ask before writing a path       to stderr)
    ph-ask custom --title T [--detail D]
    ph-guard -- CMD...             ask, then run CMD and exit with its code (denied: 1)
    ph-claude-hook                 PreToolUse hook for Claude Code and Codex: JSON on stdin,
                                   decision on stdout ("denied by NAME (scope)" and the like)

Everything goes to the run's agent.sock (/run/pilothouse/agent.sock in a sandbox, else $PILOTHOUSE_AGENT_SOCK), which can
only ask: a person decides. Importable too: PilothouseClient().ask("exec", "git push") -> (allowed, reason).
"""

from __future__ import annotations

import sys

# Run as a script, this file's folder comes first on sys.path, where a module named like a standard one would shadow it.
if __name__ == "__main__" and not (getattr(sys.flags, "safe_path", False) or sys.flags.isolated):
    del sys.path[0]

# Every hook call starts a fresh interpreter: json, socket, shlex and os would pull in re, enum, selectors and
# collections (as long again as the start itself, `-X importtime`). Their C halves serve instead (json only without _json).
import _socket  # noqa: E402
import posix  # noqa: E402
import time  # noqa: E402

try:
    import _json
    _json_str, _json_ascii, _make_encoder, _make_scanner = (
        _json.encode_basestring, _json.encode_basestring_ascii, _json.make_encoder, _json.make_scanner)
except ImportError:  # a Python built without the accelerator
    _json_str = _json_ascii = _make_encoder = _make_scanner = None
DEFAULT_SOCK, CLAIMED = "/run/pilothouse/agent.sock", "/run/pilothouse/claimed"  # the latter: codex_bash.CLAIMED
PROTOCOL_VERSION = 1
MAX_ANSWER = 1024 * 1024
TITLE_MAX = 200
HOOK_INPUT_MAX = 8 * 1024 * 1024
DETAIL_BUDGET = 12 * 1024  # under the daemon's 16 KiB bound; a longer input is cut, and never asked (requests.unseen_whole)
# Claude Code and Codex run the tool as if unhooked at 900 s (config.schema.AGENT_HOOK_TIMEOUT): a patch's
# files, asked in turn, are all answered before, or the call is denied.
HOOK_ANSWERS_WITHIN = 870.0


class PilothouseError(Exception):
    """The daemon could not be asked, or answered with an error. str() is for a person."""


class Refused(PilothouseError):
    """Refused here without asking anyone (a path the hook cannot name truly): str() says what to do instead."""


def _environ(name: str) -> str | None:
    return None if (value := posix.environ.get(name.encode())) is None else value.decode("utf-8", "surrogateescape")


def dumps(value: object, ensure_ascii: bool = False, separators: tuple = (",", ":")) -> str:
    """JSON text exactly as json.dumps(value, ensure_ascii=..., separators=...) writes it."""
    if _make_encoder is None:
        import json
        return json.dumps(value, ensure_ascii=ensure_ascii, separators=separators)
    # json.dumps's own C encoder (no table of containers: a value that holds itself meets the recursion limit).
    encode = _make_encoder(None, _not_json, _json_ascii if ensure_ascii else _json_str, None, separators[1], separators[0], False, False, True)
    return "".join(encode(value, 0))


def _not_json(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


class _ScanContext:
    """What _json's scanner reads from a decoder: json.loads's defaults."""
    strict, object_hook, object_pairs_hook, parse_float, parse_int = True, None, None, float, int
    parse_constant = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}.__getitem__


_scan = _make_scanner(_ScanContext()) if _make_scanner is not None else None
_SPACE = " \t\n\r"


def loads(text: str) -> object:
    """json.loads(text) for str input; errors are ValueError (json.JSONDecodeError)."""
    if _scan is None:
        import json
        return json.loads(text)
    idx = len(text) - len(text.lstrip(_SPACE))
    try:
        value, idx = _scan(text, idx)
    except StopIteration:
        raise ValueError(f"Expecting value: char {idx}") from None
    if text[idx:].strip(_SPACE):
        raise ValueError(f"Extra data: char {idx}")
    return value


_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@%+=:,./-")


def quote(word: str) -> str:
    """shlex.quote (without importing shlex, which imports re)."""
    return word if word and all(c in _SAFE for c in word) else "'" + word.replace("'", "'\"'\"'") + "'"


# A first word bash reads as an assignment or a keyword, which shlex.quote leaves bare: `a=b ls` runs ls (review s38).
_RESERVED = frozenset("case coproc do done elif else esac fi for function if in select then time until while".split())


def join(words: list) -> str:
    """shlex.join, a first word bash would read otherwise quoted: the line runs the words given."""
    quoted, name = [quote(w) for w in words], (words[0].partition("=")[0] if words else "")
    name = name[:-1] if name.endswith("+") else name  # (not removesuffix: python 3.8 runs this)
    if quoted and quoted[0] == words[0] and (words[0] in _RESERVED or "=" in words[0] and name.isidentifier()):
        quoted[0] = "'" + words[0] + "'"  # bare, so only safe characters: no quote inside
    return " ".join(quoted)


class PilothouseClient:
    """A client for the run's agent.sock: one connection per question."""
    def __init__(self, sock: str | None = None, connect_timeout: float = 10.0) -> None:
        # The variable is the agent's to set (a settings layer's env reaches the hook): only where DEFAULT_SOCK is not.
        self.sock = sock or (DEFAULT_SOCK if posix.access(DEFAULT_SOCK, posix.F_OK) else _environ("PILOTHOUSE_AGENT_SOCK") or DEFAULT_SOCK)
        self.connect_timeout = connect_timeout
    def call(self, op: str, args: dict, within: float | None = None) -> dict:
        """Send one request, wait for its answer (as long as the person takes, or `within` seconds), return result."""
        s = None
        try:
            s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            s.settimeout(self.connect_timeout)
            s.connect(self.sock)
        except OSError as exc:
            if s is not None:
                s.close()
            raise PilothouseError(
                f"cannot reach the Pilothouse agent socket at {self.sock}: is this running inside a "
                f"Pilothouse sandbox? ({exc.strerror or exc})") from None
        try:
            s.settimeout(within)  # the daemon answers by its own approval timeout (closed: the request is withdrawn)
            line = dumps({"v": PROTOCOL_VERSION, "id": 1, "op": op, "args": args}) + "\n"
            s.sendall(line.encode("utf-8", "surrogateescape"))
            lines = _Lines(s)
            while True:
                raw = lines.next()
                if not raw:
                    raise PilothouseError("the Pilothouse daemon closed the connection without an answer")
                if len(raw) > MAX_ANSWER:
                    raise PilothouseError("the answer from the daemon is too long")
                msg = loads(raw.decode("utf-8"))
                if isinstance(msg, dict) and msg.get("id") in (1, None) and "ok" in msg:
                    break
        except (OSError, ValueError) as exc:
            raise PilothouseError(f"talking to the Pilothouse daemon failed: {exc}") from None
        finally:
            s.close()
        if not msg.get("ok"):
            raise PilothouseError((msg.get("error") or {}).get("message") or "the daemon refused the request")
        return msg.get("result") or {}
    def ask_full(self, kind: str, subject: str, title: str | None = None, cwd: str | None = None,
                 op: str = "ask", within: float | None = None, **detail: object) -> dict:
        given = {k: v for k, v in (("title", title), ("cwd", cwd)) if v}
        return self.call(op, {"kind": kind, "subject": subject, "detail": detail, **given}, within)
    def ask(self, kind: str, subject: str, title: str | None = None, cwd: str | None = None,
            **detail: object) -> tuple:
        """(allowed, reason). Raises PilothouseError when no decision could be had."""
        result = self.ask_full(kind, subject, title=title, cwd=cwd, **detail)
        return bool(result.get("allow")), str(result.get("reason") or "")


class _Lines:
    """Lines from a socket, each at most MAX_ANSWER + 1 bytes (so a longer one can be refused)."""
    def __init__(self, s: object) -> None:
        self._s, self._buf = s, b""
    def next(self) -> bytes:
        while True:
            nl = self._buf.find(b"\n", 0, MAX_ANSWER + 1)
            if nl >= 0 or len(self._buf) > MAX_ANSWER:
                cut = nl + 1 if nl >= 0 else MAX_ANSWER + 1
                line, self._buf = self._buf[:cut], self._buf[cut:]
                return line
            chunk = self._s.recv(65536)  # type: ignore[attr-defined]
            if not chunk:
                line, self._buf = self._buf, b""
                return line
            self._buf += chunk


def _err(prog: str, message: str) -> None:
    sys.stderr.write(f"{prog}: {message}\n")


def command_line(words: list) -> str:
    """What `ph-ask exec -- WORDS` asks (and `policy check` checks): one word as written, several joined, quoted."""
    return words[0] if len(words) == 1 else join(words)


def _take_options(args: list, names: tuple) -> tuple:
    """Leading --name VALUE options, then the rest (after an optional --)."""
    opts, i = {}, 0
    while i < len(args):
        a = args[i]
        if a == "--":
            return opts, args[i + 1:]
        if not (a.startswith("--") and a[2:].split("=", 1)[0] in names):
            break
        key, eq, value = a[2:].partition("=")
        if not eq and i + 1 >= len(args):
            raise PilothouseError(f"--{key} needs a value")
        opts[key], i = (value, i + 1) if eq else (args[i + 1], i + 2)
    return opts, args[i:]


USAGE_ASK = ("usage: ph-ask exec [--title T] -- CMD... | ph-ask net HOST:PORT | ph-ask write PATH | "
             "ph-ask custom --title T [--detail D]")


def cmd_ask(args: list, client: PilothouseClient | None = None) -> int:
    prog = "ph-ask"
    if not args or args[0] in ("-h", "--help"):
        _err(prog, USAGE_ASK)
        return 2 if not args else 0
    what, rest = args[0], args[1:]
    try:
        opts, rest = _take_options(rest, ("title", "detail", "cwd"))
        client = client or PilothouseClient()
        extra = {"text": opts["detail"]} if "detail" in opts else {}
        cwd = opts.get("cwd") or _cwd()
        title, one = opts.get("title"), {"net": "HOST:PORT", "network": "HOST:PORT", "write": "PATH"}
        if what == "exec":
            if not rest:
                raise PilothouseError("exec needs a command: ph-ask exec -- CMD...")
            kind, subject = "exec", command_line(rest)
        elif what in one:
            if len(rest) != 1:
                raise PilothouseError(f"{what} needs one {one[what]}")
            kind, subject = ("write", _from_writes("written_path", rest[0], cwd, True, True)) if what == "write" else ("network", rest[0])
        elif what == "custom":
            kind, subject = "custom", title or " ".join(rest)
            if not subject:
                raise PilothouseError("custom needs --title T")
            title = subject[:TITLE_MAX]
        else:
            raise PilothouseError(f"unknown request kind {what!r}; {USAGE_ASK}")
        allowed, reason = client.ask(kind, subject, title=title, cwd=cwd, **extra)
    except PilothouseError as exc:
        _err(prog, str(exc))
        return 2
    _err(prog, ("approved: " if allowed else "denied: ") + reason)
    return 0 if allowed else 1


def cmd_guard(args: list, client: PilothouseClient | None = None) -> int:
    prog = "ph-guard"
    try:
        opts, cmd = _take_options(args, ("title", "claim"))
        if not cmd:
            raise PilothouseError("usage: ph-guard [--title T] -- CMD...")
        claim = opts.get("claim")  # the command Codex starts: its hook's answer claimed (codex_bash.py)
        subject = where(claim, _cwd()) if claim else join(cmd)
        allowed, reason = (client or PilothouseClient()).ask(
            "exec", subject, title=opts.get("title"), cwd=_cwd(), op="claim" if claim else "ask")
    except PilothouseError as exc:
        _err(prog, str(exc))
        return 2
    if not allowed:
        _err(prog, "denied: " + reason)
        return 1
    sys.stdout.flush()
    sys.stderr.flush()
    import os  # only here: execvp's PATH search
    if claim and posix.access(CLAIMED, posix.F_OK):  # held open: a guarded shell the command execs passes
        os.set_inheritable(mark := os.open(CLAIMED, os.O_RDONLY), True)
        os.environ["PILOTHOUSE_CLAIMED"] = str(mark)
    try:
        os.execvp(cmd[0], cmd)
    except OSError as exc:
        _err(prog, f"cannot run {cmd[0]}: {exc.strerror or exc}")
        return 127 if isinstance(exc, FileNotFoundError) else 126


def where(command: str, cwd: str | None) -> str:
    """A command as asked (and claimed): where it runs is part of it (git runs a repo's config)."""
    ws = "/workspace" if posix.access(DEFAULT_SOCK, posix.F_OK) else _environ("PILOTHOUSE_WORKSPACE")
    return f"cd {quote(cwd)} && {command}" if cwd and ws and cwd.rstrip("/") != ws.rstrip("/") else command


def _cwd() -> str | None:
    try:
        return posix.getcwd()
    except OSError:
        return None


def _short(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


# Claude Code's tools that only read, keep its task list, or whose calls are hooked; any other is asked.
UNROUTED_TOOLS = {"Read", "Glob", "Grep", "LS", "NotebookRead", "TodoWrite", "Task", "Agent", "ExitPlanMode", "BashOutput",
                  "KillShell", "TaskCreate", "TaskGet", "TaskList", "TaskUpdate", "TaskOutput", "TaskStop",
                  "ToolSearch", "ListAgents"}  # 2.1.332: loads a deferred tool's definition; lists agents to message
SUBJECT_INPUT_MAX = 3 * 1024  # bytes of a tool's input in its subject (the daemon takes 4 KiB)
# Bash's input on how Claude Code runs a command, not what runs: a JSON true is on the card (console.text.RUN_FLAGS).
RUN_FLAGS = ("run_in_background", "dangerouslyDisableSandbox")


def tool_subjects(tool: str, tool_input: dict, cwd: str | None = None, deadline: float | None = None) -> list:
    """A tool call as asked: each file a writing tool writes (inside_writes.py), else its whole input (long: start, digest)."""
    if (files := _from_writes("subjects", tool, tool_input, cwd, deadline)) is not None:
        return files
    raw = dumps(tool_input, separators=(", ", ": ")).encode("utf-8", "surrogatepass")
    if len(raw) <= SUBJECT_INPUT_MAX:
        return [f"{tool} {raw.decode('utf-8', 'surrogatepass')}"]
    import hashlib
    head = raw[:SUBJECT_INPUT_MAX - 200].decode("utf-8", "ignore")
    return [f"{tool} {head}... ({len(raw)} bytes, sha256 {hashlib.sha256(raw).hexdigest()})"]


def _from_writes(name: str, *args: object) -> list | str | None:
    """inside_writes' function `name` called, its refusals this module's Refused."""
    writes = _writes()
    try:
        return getattr(writes, name)(*args)
    except writes.Refused as exc:
        raise Refused(str(exc)) from None


def _writes() -> object:
    """inside_writes: the package's module (the daemon, tests), or in a sandbox the file beside this one, read by
    its own path in the read-only bin folder (sys.path is not searched: the workspace may be on it)."""
    if __package__:
        from . import inside_writes
        return inside_writes
    if "inside_writes" not in sys.modules:
        from importlib.machinery import SourceFileLoader
        path = __file__.rpartition("/")[0] + "/inside_writes.py"
        module = type(sys)("inside_writes")
        module.__file__ = path
        exec(SourceFileLoader("inside_writes", path).get_code("inside_writes"), module.__dict__)
        sys.modules["inside_writes"] = module
    return sys.modules["inside_writes"]


def _tool_title(tool: str, tool_input: dict) -> str:
    """The agent's own short words for a call of a tool that is not a file tool."""
    for key in ("path", "url", "query", "pattern", "description", "prompt"):
        value = tool_input.get(key)
        if isinstance(value, str) and value:
            return _short(f"{tool} {value}", TITLE_MAX)
    return _short(tool, TITLE_MAX)


def _bounded(value: object, budget: int) -> object:
    """The value itself if its JSON fits the budget, else a truncated preview: its JSON text with the shorter values
    first, so a flag (Edit's replace_all, NotebookEdit's edit_mode) is never cut off behind a long text."""
    text = dumps(value, separators=(", ", ": "))
    if len(text.encode("utf-8", "surrogatepass")) <= budget:
        return value
    preview = dumps(_short_first(value), separators=(", ", ": "))[:budget]
    while len(dumps(preview).encode("utf-8", "surrogatepass")) > budget - 200:
        preview = preview[:len(preview) * 15 // 16]  # quotes and backslashes escaped again
    return {"truncated": True, "preview": preview}


def _short_first(value: object, depth: int = 2) -> object:
    """value with the keys of its first `depth` levels of objects (a MultiEdit's edits: the second) shortest value first."""
    if isinstance(value, list):
        return [_short_first(v, depth) for v in value]
    if depth <= 0 or not isinstance(value, dict):
        return value
    sized = sorted(value.items(), key=lambda kv: len(dumps(kv[1])))
    return {k: _short_first(v, depth - 1) for k, v in sized}


def verdict_text(allowed: bool, provenance: dict, reason: str) -> str:
    """One line an agent cannot misread: "denied by alice (scope once)", 'forbidden by rule "rm -rf /" (config.toml:12)'."""
    kind, verb = provenance.get("kind"), ("approved" if allowed else "denied")
    scope = f"scope {provenance.get('scope') or 'once'}"
    if isinstance(provenance.get("expires_at"), (int, float)):
        scope += ", until " + time.strftime("%H:%M:%S", time.localtime(provenance["expires_at"]))
    if kind == "person" and provenance.get("person"):
        return f"{verb} by {provenance['person']} ({scope})"
    if kind == "grant":
        by = f" by {provenance['person']}" if provenance.get("person") else ""
        return f"{verb}{by} (grant {provenance.get('grant_id')}, {scope})"
    if kind == "rule" and provenance.get("rule"):
        where = f" ({provenance['source']})" if provenance.get("source") else ""
        verb = "forbidden" if not allowed and provenance.get("rule_list") in ("forbid", "deny") else verb
        return f'{verb} by rule "{provenance["rule"]}"{where}'
    words = reason[: -len("; " + verb)] if reason.endswith("; " + verb) else reason
    return f"{verb}: {words}" if words else verb


def _session_env(session: object) -> list:
    """The scripts Claude Code runs before each Bash command of a session, which SessionStart hooks leave in
    ~/.claude/session-env/SESSION, as can the agent (s19b): all but empty regular files (links, FIFOs: s22)."""
    folder = f"{_environ('CLAUDE_CONFIG_DIR') or (_environ('HOME') or '') + '/.claude'}/session-env/{session}"
    ok = isinstance(session, str) and session.replace("-", "").isalnum() and posix.access(folder, posix.F_OK)
    return [f"{folder}/{n}" for n in (sorted(posix.listdir(folder)) if ok else []) if n.split("-hook-")[0] in ("setup", "sessionstart",
            "cwdchanged", "filechanged") and ((st := posix.lstat(f"{folder}/{n}")).st_size or st.st_mode & 0o170000 != 0o100000)]


def cmd_claude_hook(stdin=None, stdout=None, client: PilothouseClient | None = None) -> int:
    """Claude Code PreToolUse: Bash an exec ask, other tools custom; any failure denies."""
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    deadline = time.monotonic() + HOOK_ANSWERS_WITHIN  # from the start: naming the files takes time too (helper 98)
    try:
        raw = stdin.read(HOOK_INPUT_MAX + 1)
        if len(raw) > HOOK_INPUT_MAX:
            raise PilothouseError(f"the hook input is larger than {HOOK_INPUT_MAX} bytes")
        event = loads(raw)
        if not isinstance(event, dict):
            raise PilothouseError("the hook input is not a JSON object")
        tool, tool_input = event.get("tool_name"), event.get("tool_input") or {}
        if not isinstance(tool, str) or not tool or not isinstance(tool_input, dict):
            raise PilothouseError("the hook input has no tool_name or tool_input")
        if tool in UNROUTED_TOOLS:
            return 0  # no answer: Claude Code's own permissions decide, as for an unmatched tool
        cwd = event.get("cwd") if isinstance(event.get("cwd"), str) else None
        client = client or PilothouseClient()
        if tool == "Bash":
            command = tool_input.get("command")
            if not isinstance(command, str) or not command.strip():
                raise PilothouseError("a Bash tool call without a command")
            command = where(command, cwd)
            if scripts := _session_env(event.get("session_id")):
                raise Refused(f"Claude Code would run {', '.join(scripts)} first, unasked: remove it")
            if odd := [k for k in RUN_FLAGS if type(tool_input.get(k)) not in (bool, type(None))]:  # "true" may read as true
                raise Refused(f"the Bash call's {', '.join(odd)} is not true or false: call it with a JSON boolean")
            kind, subjects, extra = "exec", [command], {k: True for k in RUN_FLAGS if tool_input.get(k) is True}
            title = _short(d, TITLE_MAX) if isinstance(d := tool_input.get("description"), str) and d else None
        else:  # the title is only the agent's side: the subjects are what runs (one per file a patch writes)
            kind, subjects = "custom", tool_subjects(tool, tool_input, cwd, deadline)
            title = None if tool in _writes().WRITING_TOOLS else _tool_title(tool, tool_input)
            extra = {"tool_input": _bounded(tool_input, DETAIL_BUDGET)}
            if extra["tool_input"] is not tool_input:  # cut: the daemon refuses to ask it, and says how large
                extra["input_bytes"] = len(dumps(tool_input, separators=(", ", ": ")).encode("utf-8", "surrogatepass"))
        verdicts = []
        for subject in subjects:  # every file allowed, or the call is denied
            if (left := deadline - time.monotonic()) <= 0:
                raise PilothouseError(f"not every file was answered within {HOOK_ANSWERS_WITHIN:g}s")
            result = client.ask_full(kind, subject, title=title, cwd=cwd, within=left, tool_name=tool,
                                     session_id=event.get("session_id"), **extra)
            allowed, reason = bool(result.get("allow")), str(result.get("reason") or "")
            provenance = result.get("provenance") if isinstance(result.get("provenance"), dict) else {}
            verdicts.append(verdict_text(allowed, provenance, reason))
            if not allowed:
                break
        decision, reason = ("allow" if allowed else "deny"), "Pilothouse: " + "; ".join(verdicts)
    except Exception as exc:  # fail closed, whatever went wrong
        why = "refused this without asking" if isinstance(exc, Refused) else "could not get a decision, so this is denied"
        decision, reason = "deny", f"Pilothouse {why}: {exc}"
    answer = {"hookEventName": "PreToolUse", "permissionDecision": decision, "permissionDecisionReason": reason}
    quiet = decision == "allow" and "turn_id" in event  # Codex (its input has turn_id) takes no "allow": says the hook Failed
    stdout.write("" if quiet else dumps({"hookSpecificOutput": answer}, ensure_ascii=True, separators=(", ", ": ")) + "\n")
    stdout.flush()
    return 0


COMMANDS = {"ask": cmd_ask, "guard": cmd_guard, "claude-hook": lambda args: cmd_claude_hook()}


def main(argv: list | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    name, args = (argv[0].rpartition("/")[2] if argv else ""), argv[1:]
    key = name[3:] if name.startswith("ph-") else name
    if key not in COMMANDS:  # run as `python3 inside.py ph-ask ...`
        first = args[0] if args else ""
        key, args = (first[3:] if first.startswith("ph-") else first), args[1:]
        if key not in COMMANDS:
            _err("inside.py", f"unknown command {first!r}: use inside.py ph-ask|ph-guard|ph-claude-hook ...")
            return 2
    return COMMANDS[key](args)


def run_and_exit(argv: list | None = None) -> None:
    """main(argv), then exit without the interpreter's teardown (1.3-1.6 ms) once stdout and stderr are flushed."""
    argv = list(sys.argv if argv is None else argv)
    try:
        code = main(argv)
    except Exception as exc:
        # The hook blocks when it cannot decide: an agent runs the tool on any exit but 2.
        if "ph-claude-hook" not in [a.rpartition("/")[2] for a in argv[:2]]:
            raise
        _err("ph-claude-hook", f"could not decide, so this tool call is blocked: {exc!r}")
        code = 2
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        sys.exit(code)
    posix._exit(code & 0xFF if isinstance(code, int) else 0)


if __name__ == "__main__":
    run_and_exit()
