"""Review h144: a trace's block_size (up to MAX_TOKENS) was drawn whole for every hash id, even
when the prompt keeps one word of it: three one-word requests with block_size 20M took 4.7 s
of CPU and 330 MB, on the event loop every lane's TTFT and inter-token times are taken on.
Now only the words the prompt keeps are drawn, and they are the same words."""

from __future__ import annotations

import tracemalloc

from console.replay.workload import Request, prompt


def test_a_huge_block_size_draws_only_the_words_kept() -> None:
    """Counted in bytes allocated, not CPU time (a loaded machine's pace aside): two blocks of
    2M words drawn whole are a list of 16 MB at least; the three words kept, a few KB."""
    req = Request(input_length=3, output_length=1, hash_ids=[7, 8])
    tracemalloc.start()
    try:
        text = prompt(req, 2_000_000, salt="s", shared=frozenset({8}))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024, peak
    assert text == prompt(req, 3, salt="s", shared=frozenset({8}))
    assert len(text.split()) == 3


def test_the_words_are_those_of_the_whole_block() -> None:
    req = Request(input_length=700, output_length=1, hash_ids=[1, 2])
    whole = " ".join(prompt(Request(1024, 1, [1, 2]), 512).split()[:700])
    assert prompt(req, 512) == whole
