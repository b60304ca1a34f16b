"""The operations served on operator.sock: one table merged explicitly from each area's own,
the same names docs/protocol.md lists, and the daemon's modules import nothing above them."""

from __future__ import annotations

import re

import pytest

from console.daemon.ops import table
from console.daemon.ops.base import Op
from tests.conftest import REPO
from tests.house.import_graph import circles, graph

ROW = re.compile(r"^\| (`[a-z.]+`(?: / `[a-z.]+`)*)( \*decides\*)?", re.M)


def documented() -> dict[str, bool]:
    text = (REPO / "docs" / "protocol.md").read_text().split("## agent.sock")[0]
    out = {}
    for names, decides in ROW.findall(text):
        listed = re.findall(r"`([a-z.]+)`", names)
        for i, name in enumerate(listed):  # "a / b *decides*": the mark is b's
            out[name] = bool(decides) and i == len(listed) - 1
    return out


def test_the_table_is_what_the_docs_list() -> None:
    docs = documented()
    assert set(table.OPERATIONS) == set(docs)
    assert {n for n, op in table.OPERATIONS.items() if op.decides} == {n for n, d in docs.items() if d}


def test_every_area_table_is_merged_and_a_name_twice_is_refused() -> None:
    assert sum(len(t) for t in table.AREAS) == len(table.OPERATIONS)

    async def nothing(*_: object) -> None:
        return None

    with pytest.raises(RuntimeError, match="hello"):
        table.merge(({"hello": Op(nothing)}, {"hello": Op(nothing)}))


def test_the_daemon_imports_no_client_cli_or_console_and_no_circle() -> None:
    edges = graph(REPO)
    daemon = {m: t for m, t in edges.items() if m.startswith("console.daemon")}
    upward = {m: sorted(t for t in ts if t.startswith(("console.client", "console.cli",
                                                          "console.tui", "widgets")))
              for m, ts in daemon.items()}
    assert not {m: t for m, t in upward.items() if t}
    assert not [c for c in circles(edges) if any(m.startswith("console.daemon") for m in c)]
