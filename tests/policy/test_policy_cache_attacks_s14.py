"""Review s14: the policy caches (console/policy/unwrap.py `_variants`, console/policy/execshape.py
`stage_shapes`), lru_caches keyed by a command's words, shared by every run and profile of the
daemon.

The comment says "Subjects are at most 4 KiB: the cache holds at most a few MiB". An agent's
4 KiB subject can hold 16 wrappers and ~2,000 one-letter words: each cached entry keeps every
stage (up to 17 copies of ~2,000 word references) and a Shape per stage, and the cache keeps
256 such entries for good. Each test asserts the SECURE behaviour.
"""

from __future__ import annotations

import tracemalloc

from console.policy import ExecRules, evaluate_exec, forget_worked_out
from console.policy.execshape import stage_shapes
from console.policy.unwrap import CACHED, expand, word_variants

MiB = 1024 * 1024


def _agent_subject(k: int) -> str:
    """A subject an agent may send (check_request allows 4 KiB): many wrappers, many words."""
    return ("nice " * 16 + f"b{k} " + "a " * 2100)[:4000]


def test_filling_the_caches_from_agent_requests_keeps_a_few_mib_at_most() -> None:
    forget_worked_out()
    sample = 32  # measured on 32 entries (tracemalloc is slow), scaled to the cache's 256
    words = [tuple(expand(_agent_subject(k))[0].words) for k in range(sample)]
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for w in words:  # what 256 asks do through CommandPattern.matches (forbid/ask rules)
            word_variants(w)
            stage_shapes(w)
        held = (tracemalloc.get_traced_memory()[0] - base) * (CACHED // sample)
    finally:
        tracemalloc.stop()
        forget_worked_out()
    assert held < 16 * MiB, (f"256 agent requests left {held / MiB:.0f} MiB in the policy caches "
                             "for the daemon's lifetime (the code says 'a few MiB')")


def test_an_earlier_decision_does_not_change_a_later_one() -> None:
    """(Held in review s14: kept as a guard.) The cached results are tuples and frozen Shapes;
    the same words decide the same under other rules, cold or warm."""
    strict = ExecRules(forbid=["rm -rf"], ask=["git push"], default="allow")
    loose = ExecRules(allow=["rm", "git"], default="ask")
    line = "sudo -u root env FOO=1 nice -n 5 rm -rf /tmp/x; git push --force"
    forget_worked_out()
    cold = [evaluate_exec(line, r, consume=False).action for r in (strict, loose)]
    warm = [evaluate_exec(line, r, consume=False).action for r in (loose, strict)][::-1]
    assert cold == warm
