"""Review s30 (helper 101): spellings of chmod's 777 the s29 reading missed.

`forbid = ["chmod -R 777"]` reached `0777` and `a+rwx` since s29, not `=777`, `+777`, `=0777`
(an operator with octal), `1777` (777 with the sticky bit: compared exactly), `u=rwx,g=u,o=u`
(a copy) or `a+rwx,o-t` (a `t` clause): under default = "allow" each ran, and left 777 on the
whole tree. The bits are now read with GNU chmod's grammar (console/policy/chmodes.py), checked
here against the real chmod on random modes, and a rule's mode reaches a command's with the same
permission bits and at least the rule's setuid, setgid and sticky bits.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from console.policy import ExecRules
from console.policy.chmodes import mode_bits

RULES = ExecRules(allow=["chmod"], forbid=["chmod -R 777", "chmod 4755"], default="allow")


@pytest.mark.parametrize("mode", ["=777", "+777", "=0777", "1777", "01777", "u=rwx,g=u,o=u",
                                  "a+rwx,o-t", "a=rwx,u+s", "ugo+rwx-t", "a=t,a+rwx",
                                  # second round (helper 103)
                                  "a=rwx,+t", "+x,a=rwx", "-w,a+rwx", "=,a=rwx", "a=rwx,-t",
                                  "a+rwX", "a=rwx,+X", "0000000000777"])
def test_every_spelling_of_777_is_denied(mode: str) -> None:
    assert RULES.evaluate(f"chmod -R {mode} d").action == "deny", mode


# (`+rwx` left this list in s31: under a umask of 0, which the agent may set, it is 777)
@pytest.mark.parametrize("mode", ["755", "1755", "u=rwx,g=u", "o+t", "a=rwx,-x"])
def test_other_bits_are_not_that_rule(mode: str) -> None:
    assert RULES.evaluate(f"chmod -R {mode} d").action == "allow", mode


def test_a_rules_special_bits_must_be_there() -> None:
    assert RULES.evaluate("chmod u=rwxs,go=rx f").action == "deny"  # 4755
    assert RULES.evaluate("chmod 755 f").action == "allow"  # no setuid: not `chmod 4755`


def _random_mode(rng: random.Random) -> str:
    if rng.random() < 0.2:
        return rng.choice(["", "0", "="]) + format(rng.randrange(0o10000), "o")
    clauses = []
    for _ in range(rng.randint(1, 3)):
        who = "".join(rng.sample("ugoa", rng.randint(0, 2)))
        actions = "".join(rng.choice("+-=") + (rng.choice("ugo") if rng.random() < 0.15 else
                                               "".join(rng.sample("rwxst", rng.randint(0, 3))))
                          for _ in range(rng.randint(1, 2)))
        clauses.append(who + actions)
    return ",".join(clauses)


@pytest.mark.skipif(shutil.which("chmod") is None, reason="chmod is not installed")
def test_the_bits_are_what_the_real_chmod_leaves(tmp_path: Path) -> None:
    """Where mode_bits says the mode decides the permission bits, chmod leaves exactly those
    from any start (and, from no bits at all, those special bits)."""
    rng, decided, f = random.Random(30), 0, tmp_path / "f"
    f.write_text("")
    for _ in range(600):
        mode = _random_mode(rng)
        bits = mode_bits(mode)
        if bits is None:
            continue
        for start in (0o000, 0o7777):
            os.chmod(f, start)
            if subprocess.run(["chmod", "--", mode, str(f)], capture_output=True).returncode:
                pytest.fail(f"chmod refused {mode!r}, which mode_bits read as {bits:o}")
            left = f.stat().st_mode & 0o7777
            assert left & 0o777 == bits & 0o777, (mode, oct(start), oct(left), oct(bits))
            if start == 0:
                assert left == bits, (mode, oct(left), oct(bits))
        decided += 1
    assert decided > 150
