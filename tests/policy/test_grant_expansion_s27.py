"""A grant covers only what the person approved, after the shell's expansions (s27 review,
finding 1, reproduced on a live daemon): the reader gave `'./*'` and `./*`, `'~'` and `~` the
same words, so a run grant made by approving the harmless `rm -f './*'` answered `rm -f ./*`
(every file) with allow, and `chmod -R 777 '~'` covered `chmod -R 777 ~`; approving
`rm -rf ~` itself made a grant of `rm -rf '~'` and said nothing. A word bash expands (an
unquoted glob, a tilde where it expands) is now marked; such a command is never covered by an
exact grant, a pattern covers it only where its own words are not expanded, and approving one
with a wider scope makes no grant, as for a substitution."""

from __future__ import annotations

import pytest

from console.policy import Scope, new_grant, ungrantable
from console.policy.unwrap import expand

RUN = Scope("run")


def _grant(pattern: str, exact: bool = True):  # type: ignore[no-untyped-def]
    return new_grant("exec", pattern, "allow", RUN, run_id="r1", profile="p", decided_by="me",
                     exact=exact)


@pytest.mark.parametrize(("approved", "other"), [
    ("rm -f './*'", "rm -f ./*"), ("rm -f \"./*\"", "rm -f ./*"),
    ("chmod -R 777 '~'", "chmod -R 777 ~"), ("rm -rf '~'", "rm -rf ~"),
    ("rm -rf \\~", "rm -rf ~/"), ("cat 'a?'", "cat a?"), ("ls '[ab]'", "ls [ab]"),
    ("ls x='~'", "ls x=~"),
    ("rm -f 'x[a ]'", "rm -f x[a' ']"), ("rm -f 'x[a ]'", "rm -f x[a\\ ]"),
    ("rm -rf '/hom[e ]'", "rm -rf /hom[e\" \"]"),  # a quoted blank inside a bracket glob
    ("env P='~:/bin' ls", "env P=~:/bin ls"),
])
def test_an_exact_grant_does_not_cover_the_expanded_spelling(approved: str, other: str) -> None:
    grant = _grant(approved)
    assert grant.matches(approved)
    if other.replace("\\", "") != approved:
        assert not grant.matches(other), (approved, other)


@pytest.mark.parametrize("command", ["rm -rf ~", "rm -f ./*", "ls [ab]", "cat a?", "ls x=~",
                                     "env P=/bin:~/b ls", "rm -rf ~/.ssh", "rm -f x[a' ']"])
def test_approving_an_expanding_command_makes_no_grant(command: str) -> None:
    assert ungrantable(command), command  # its one part


@pytest.mark.parametrize("command", ["rm -rf '~'", "echo a~b", "test -f x", "ls -l", "echo \\*",
                                     "git log --format=%h", "scp f h.invalid:~/d",
                                     "cp x --prefix=~/x"])  # bash expands neither ~ there
def test_plain_words_stay_grantable(command: str) -> None:
    assert ungrantable(command) == frozenset(), command
    assert not [p for p in expand(command) if p.expands], command


def test_a_pattern_covers_expansions_past_its_own_words_only() -> None:
    pattern = _grant("pytest", exact=False)
    assert pattern.matches("pytest tests/*.py")  # the person granted pytest with any words
    literal = _grant("rm -rf '~'", exact=False)
    assert literal.matches("rm -rf '~' x")
    assert not literal.matches("rm -rf ~")  # its own word '~' is not the home folder
