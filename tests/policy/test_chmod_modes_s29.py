"""Review s29 (helper 97): a forbid rule on a chmod mode reached only that spelling of it.

`forbid = ["chmod -R 777"]` came back "ask" for `chmod -R 0777 .` and `chmod -R a+rwx .` (from
`pilothouse policy check` and the live gate alike), so under default = "allow" they ran. A mode
is now also compared as the permission bits it leaves, where the mode alone decides them all.
"""

from __future__ import annotations

import pytest

from console.policy import ExecRules
from console.policy.chmodes import chmod_mode

RULES = ExecRules(allow=["chmod"], forbid=["chmod -R 777"], ask=["chmod 0600 ~/.ssh"], default="allow")


@pytest.mark.parametrize("command", [
    "chmod -R 777 .", "chmod -R 0777 .", "chmod -R 00777 .", "chmod -R a+rwx .", "chmod -R ugo=rwx src",
    "chmod -R u=rwx,go=rwx .", "chmod --recursive a+rw,a+x .", "sudo chmod -R a=rwx /srv",
    "chmod -R 0777 -- .",
])
def test_every_spelling_of_the_forbidden_mode_is_denied(command: str) -> None:
    assert RULES.evaluate(command).action == "deny", command


@pytest.mark.parametrize("command", [
    "chmod -R 755 .", "chmod -R u=rwx,go=rx .",  # (+rwx: 777 under umask 0 since s31)
    "chmod -R o+w .", "chmod 777 f",  # not recursive
])
def test_other_modes_are_not_that_rule(command: str) -> None:
    assert RULES.evaluate(command).action == "allow", command


def test_an_ask_rule_reaches_the_mode_as_bits_too() -> None:
    assert RULES.evaluate("chmod 600 ~/.ssh").action == "ask"
    assert RULES.evaluate("chmod u=rw,go= ~/.ssh").action == "ask"


@pytest.mark.parametrize("word, bits", [
    ("0777", "777"), ("a+rwx", "777"), ("ugo=rwx", "777"), ("u=rwx,go=rx", "755"), ("a-rwx", "0"),
    ("u=rw,go=", "600"), ("+rwx", "+rwx"), ("go-w", "go-w"), ("a+rwX", "777"), ("u+s", "u+s"),
    ("1777", "1777"), ("u=g", "u=g"),
])
def test_a_mode_is_its_bits_only_where_the_mode_decides_them_all(word: str, bits: str) -> None:
    assert chmod_mode(word) == bits
