"""The two tests the runner reviews (h159, h161, h165) share: lines a forbid rule of the built-in
claude and demo profiles must refuse, and everyday lines that must stay asked (a nested runner is
never allowed). A review module binds them to its own lists:

    test_refused, test_asked = refused_and_asked(REFUSED, ASKED)
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from console.policy import ExecRules, evaluate_exec
from tests.policy.builtin_profiles import builtin_rules

PROFILES = pytest.mark.parametrize("rules", [builtin_rules("claude"), builtin_rules("demo")],
                                   ids=["claude", "demo"])


def refused_and_asked(refused: list[str], asked: list[str]) -> tuple[Callable[..., None], ...]:
    @PROFILES
    @pytest.mark.parametrize("line", refused)
    def test_a_forbidden_command_a_runner_really_runs_is_refused(line: str, rules: ExecRules) -> None:
        assert evaluate_exec(line, rules, consume=False).action == "deny"

    @PROFILES
    @pytest.mark.parametrize("line", asked)
    def test_an_argument_of_the_runners_command_is_still_asked(line: str, rules: ExecRules) -> None:
        assert evaluate_exec(line, rules, consume=False).action == "ask"

    return (test_a_forbidden_command_a_runner_really_runs_is_refused,
            test_an_argument_of_the_runners_command_is_still_asked)
