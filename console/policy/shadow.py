"""`pilothouse policy shadow RULE`: which past requests a proposed rule would have decided."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from console.policy import WEB_PORTS, ExecRules, pattern_covers, split_subject
from console.policy.hosts import BadTarget
from console.policy.netrules import parse_pattern
from console.policy.parts import ParseError
from console.policy.unwrap import expand, normalise

_DESTRUCTIVE = {"rm", "rmdir", "dd", "shred", "truncate", "mkfs", "wipefs", "fdisk", "parted",
                "chmod", "chown", "chattr", "kill", "pkill", "killall", "reboot", "shutdown",
                "halt", "poweroff", "sudo", "doas", "su", "crontab", "systemctl", "iptables",
                "mount", "umount", "format"}
_DESTRUCTIVE_SUB = {("git", "reset"), ("git", "clean"), ("git", "rebase"), ("git", "filter-branch"),
                    ("docker", "rm"), ("docker", "rmi"), ("docker", "system"), ("git", "branch")}
_OUTWARD = {"curl", "wget", "ssh", "scp", "sftp", "rsync", "nc", "ncat", "netcat", "socat",
            "telnet", "ftp", "gh", "aws", "gcloud", "az", "kubectl", "terraform"}
_OUTWARD_SUB = {("git", "push"), ("pip", "install"), ("npm", "install"), ("npm", "publish"),
                ("docker", "push"), ("cargo", "publish"), ("twine", "upload"), ("pip3", "install")}
_EXECUTES = {"sh", "bash", "zsh", "dash", "eval", "python", "python3", "node", "perl", "ruby",
             "xargs", "source", "."}
_FORCE = {"--force", "-f", "--hard", "-D", "--delete", "-delete", "--force-with-lease", "-rf", "-fr"}


@dataclass(frozen=True)
class ShadowHit:
    request: Mapping[str, Any]
    would: str  # what the proposed rule decides for it
    was: str  # what was decided then
    risk: int
    reasons: tuple[str, ...]

    @property
    def changes(self) -> bool:
        return self.would != self.was


def _decision_word(request: Mapping[str, Any]) -> str:
    d = request.get("decision")
    if isinstance(d, Mapping):
        d = d.get("action") or ("allow" if d.get("allow") else "deny")
    return str(d or "unknown")


def _exec_risk(command: str) -> tuple[int, list[str]]:
    try:
        parts = expand(command)
    except ParseError:
        return 40, ["cannot be read as shell words"]
    score, why = 0, []
    for p in parts:
        words = normalise(p.words)
        head = tuple(words[:2])
        if (words and words[0] in _DESTRUCTIVE) or head in _DESTRUCTIVE_SUB:
            score, why = score + 50, why + [f"destructive: {' '.join(words[:3])}"]
        if (words and words[0] in _OUTWARD) or head in _OUTWARD_SUB:
            score, why = score + 30, why + [f"reaches outside: {' '.join(words[:2])}"]
        if words and words[0] in _EXECUTES:
            score, why = score + 20, why + [f"runs other code: {words[0]}"]
        if _FORCE & set(words):
            score, why = score + 15, why + ["forced"]
    if len(parts) > 1 or any(p.opaque for p in parts):
        score, why = score + 10, why + ["compound or substituted"]
    return score, why


def _host(subject: str) -> str:
    try:
        return split_subject(subject)[0]
    except BadTarget:
        return subject


def _network_risk(subject: str, known: set[str], ports: Sequence[int]) -> tuple[int, list[str]]:
    host, port = _host(subject), None
    try:
        port = split_subject(subject)[1]
    except BadTarget:
        pass
    score, why = 0, []
    if host not in known:
        score, why = score + 40, why + ["host never allowed before"]
    try:
        ipaddress.ip_address(host)
        score, why = score + 30, why + ["IP literal"]
    except ValueError:
        pass
    if port is not None and port not in ports:
        score, why = score + 20, why + [f"unusual port {port}"]
    return score, why


def shadow(
    rule: str, past_requests: Iterable[Mapping[str, Any]], *, kind: str = "exec", effect: str = "allow",
    ports: Sequence[int] = WEB_PORTS,
) -> list[ShadowHit]:
    """The past requests (dicts with kind, subject, decision) the proposed rule would have
    decided, riskiest first, for `pilothouse policy shadow RULE`.

    An exec rule decides a request when it matches one of its command parts (allow rules the
    literal words; ask, forbid and deny rules also through wrappers, like evaluate_exec). A network
    rule decides the destinations it covers as a config rule would, with `ports` (the profile's)
    for an allow pattern without a port. The order puts first what a person most
    needs to see before saving the rule:
      - a decision the rule would turn from deny into allow (+40), or from ask/timeout (+20):
        these are the requests the rule silently waves through from now on;
      - destructive verbs (rm, dd, chmod, git reset, sudo...; +50), verbs that reach outside
        (curl, ssh, git push, pip install...; +30), verbs that run other code (sh, eval,
        python...; +20), forced flags (+15), compound or substituted commands (+10);
      - for network rules: hosts never allowed before in this history (+40), IP literals (+30),
        ports outside `ports` (+20).
    Ties keep the history's order."""
    if effect not in ("allow", "ask", "deny", "forbid"):
        raise ValueError(f'effect must be allow, ask, forbid or deny, not "{effect}"')
    would = "deny" if effect == "forbid" else effect
    if kind == "exec":
        compiled = ExecRules(**{"allow" if would == "allow" else "forbid": [rule]})
        proposed = (compiled.allow or compiled.forbid)[0]
    else:
        pattern = parse_pattern(rule)  # BadPattern (a ValueError) for what the config refuses
    requests = [r for r in past_requests if r.get("kind") == kind]
    known = {_host(str(r.get("subject", ""))) for r in requests if _decision_word(r) == "allow"}
    hits: list[tuple[int, int, ShadowHit]] = []
    for n, req in enumerate(requests):
        subject = str(req.get("subject", ""))
        if kind == "exec":
            try:
                parts = [p for p in expand(subject) if not p.nested]
            except ParseError:
                continue
            if not any(proposed.matches(p) for p in parts):
                continue
            score, why = _exec_risk(subject)
        else:
            if not pattern_covers(pattern, "allow" if would == "allow" else "deny", subject, ports):
                continue
            score, why = _network_risk(subject, known, ports)
        was = _decision_word(req)
        if would == "allow" and was == "deny":
            score, why = score + 40, ["would now allow what was denied", *why]
        elif would == "allow" and was not in ("allow",):
            score, why = score + 20, [f"would now allow what was {was}", *why]
        hits.append((-score, n, ShadowHit(req, would, was, score, tuple(why))))
    return [h for _, _, h in sorted(hits, key=lambda t: (t[0], t[1]))]
