"""The reader's work grows with the line, not with its square: a line an agent sends through
agent.sock (4 KiB at most) is decided on the daemon's event loop, so a shape that costs time
growing with the square of its length would stall every run for as long as the agent likes to
send it (review G, session 12: 2.4 KB of nested `${a:-...}` in double quotes took 0.3 s).

Counted, not timed: the characters the brace scanner walks over, against the line's length."""

from __future__ import annotations

import pytest

from console.policy import ExecRules, shellscan


def nested(levels: int, quoted: bool) -> str:
    body = "$(true)"
    for _ in range(levels):
        body = "${a:-" + body + "}"
    return f'echo "{body}"' if quoted else f"echo {body}"


@pytest.mark.parametrize("quoted", [True, False], ids=["in double quotes", "bare"])
def test_nested_expansions_are_read_in_time_linear_in_the_line(quoted: bool, monkeypatch) -> None:
    walked = [0]
    real = shellscan.close_brace

    def counting(s: str, i: int) -> int:
        end = real(s, i)
        walked[0] += end - i
        return end

    monkeypatch.setattr(shellscan, "close_brace", counting)
    rules = ExecRules(allow=["echo"])
    for levels in (100, 400):
        walked[0] = 0
        line = nested(levels, quoted)
        assert rules.evaluate(line).action == "ask"  # a substitution: never allowed
        # Each nesting level of the reader (MAX_DEPTH) may walk the line a few times over.
        assert walked[0] <= 12 * len(line), (levels, walked[0], len(line))


def test_a_4k_line_of_braces_is_walked_once_per_reading(monkeypatch) -> None:
    """Every `{` looked for the end of its word from where it stood: 4 KiB of them walked the
    line once per brace (about 8 s, review G round 2, session 12). $'...' and eval read the line
    again at each nesting level (MAX_DEPTH), each reading once."""
    walked = [0]
    real = shellscan.word_end

    def counting(s: str, i: int) -> int:
        end = real(s, i)
        walked[0] += end - i
        return end

    monkeypatch.setattr(shellscan, "word_end", counting)
    prefix = "eval $'x' eval $'x' eval $'x' eval $'x' "
    line = prefix + "{" * (4096 - len(prefix))
    assert ExecRules(allow=["echo"], default="allow").evaluate(line).action != "allow"
    assert walked[0] <= 40 * len(line), (walked[0], len(line))
