"""Queries, full-text search with awkward user text, paging, export, durations."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlite_utils
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store import history
from store.db import open_db
from store.history import fts_query
from store.writer import StoreWriter

T0 = 1_700_000_000.0
EVENTS = [
    # kind, run, text, data
    ("net.decision", "r1", "CONNECT pypi.org:443 allowed by rule pypi.org", {"decision": "allow"}),
    ("net.decision", "r2", "CONNECT tracker.example-tracker.com:443 denied", {"decision": "deny"}),
    ("net.request", "r1", "GET http://10.0.0.1/admin", {"decision": "ask"}),
    ("exec.request", "r1", "rm -rf build/", {"decision": "ask"}),
    ("exec.decided", "r1", "rm -rf build/ approved by alice", {"decision": "allow"}),
    ("exec.request", "r2", "git push origin main", None),
    ("approval.decided", "r2", "foo:bar \"quoted\" NEAR(x) AND OR NOT *", {"decision": "deny"}),
    ("network", "r3", "not a net. event, shares the prefix letters", None),
]


@pytest.fixture
def reader(make_writer: Callable[..., StoreWriter], db_path: Path) -> Iterator[sqlite_utils.Database]:
    w = make_writer()
    for i, (kind, run, text, data) in enumerate(EVENTS):
        w.record(kind, run_id=run, actor="agent", text=text, data=data, ts=T0 + i * 60)
    for i in range(30):
        w.record_output("r1", "stdout", f"line {i} compiling module_{i}", ts=T0 + i)
    w.record_output("r1", "stderr", "error: foo:bar not found -- rm -rf?", ts=T0 + 40)
    w.record_output("r2", "stdout", "another run line 1", ts=T0 + 41)
    w.close()
    db = open_db(db_path, readonly=True)
    yield db
    db.close()


def _ids(rows: list[dict]) -> list[int]:
    return [r["id"] for r in rows]


def test_newest_first_and_paging(reader: sqlite_utils.Database) -> None:
    assert _ids(history.query_events(reader)) == [8, 7, 6, 5, 4, 3, 2, 1]
    pages, before = [], None
    while True:
        page = history.query_events(reader, before_id=before, limit=3)
        if not page:
            break
        pages.append(_ids(page))
        before = page[-1]["id"]
    assert pages == [[8, 7, 6], [5, 4, 3], [2, 1]]


def test_filters(reader: sqlite_utils.Database) -> None:
    assert _ids(history.query_events(reader, run_id="r2")) == [7, 6, 2]
    assert _ids(history.query_events(reader, kind="net.decision")) == [2, 1]
    assert _ids(history.query_events(reader, kind="net.")) == [3, 2, 1]
    assert _ids(history.query_events(reader, kind="net.*")) == [3, 2, 1]
    assert _ids(history.query_events(reader, kind="net")) == []  # exact
    assert _ids(history.query_events(reader, since=T0 + 120, until=T0 + 300)) == [5, 4, 3]
    assert _ids(history.query_events(reader, decision="deny")) == [7, 2]
    assert _ids(history.query_events(reader, decision="ask", run_id="r1", kind="exec.")) == [4]
    row = history.query_events(reader, limit=8)[-1]
    assert row["data"] == {"decision": "allow"} and row["actor"] == "agent" and len(row["hash"]) == 64


@pytest.mark.parametrize("text, expected", [
    ("rm -rf", [5, 4]),
    ("rm -rf build/", [5, 4]),
    ("foo:bar", [7]),
    ('"quoted"', [7]),
    ("NEAR(x)", [7]),
    ("AND OR NOT", [7]),
    ("*", []),
    ("pypi", [1]),
    ("PyPI.org:443", [1]),
    ("approv*", [7, 5]),  # text "approved" and kind "approval.decided"
    ("alice rm", [5]),
    ("exec", [6, 5, 4]),  # the kind is searchable too
    ("nothing-like-this", []),
    ("-", []),
    ("'", []),
    ('"', []),
    ("(", []),
])
def test_search_events_with_user_text(reader: sqlite_utils.Database, text: str,
                                      expected: list[int]) -> None:
    assert _ids(history.query_events(reader, search=text)) == expected


def test_search_combines_with_filters_and_pages(reader: sqlite_utils.Database) -> None:
    assert _ids(history.query_events(reader, search="rm", decision="allow")) == [5]
    assert _ids(history.query_events(reader, search="CONNECT", before_id=2)) == [1]
    assert _ids(history.query_events(reader, search="   ")) == [8, 7, 6, 5, 4, 3, 2, 1]  # blank: no search


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(text=st.text(min_size=0, max_size=40))
def test_any_search_text_is_safe(reader: sqlite_utils.Database, text: str) -> None:
    history.query_events(reader, search=text)
    history.query_output(reader, "r1", search=text)


@given(text=st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=30))
def test_fts_query_quotes_every_term(text: str) -> None:
    q = fts_query(text)
    if q is not None:
        assert q.startswith('"') and "\x00" not in q


def test_iter_events_oldest_first_streams_everything(reader: sqlite_utils.Database) -> None:
    assert _ids(list(history.iter_events(reader, chunk=3))) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert _ids(list(history.iter_events(reader, chunk=2, kind="net."))) == [1, 2, 3]
    assert _ids(list(history.iter_events(reader, chunk=1, search="rm -rf"))) == [4, 5]
    assert _ids(history.query_events_after(reader, after_id=6)) == [7, 8]


def test_query_output(reader: sqlite_utils.Database) -> None:
    last = history.query_output(reader, "r1", limit=5)
    assert [r["line"] for r in last][-1].startswith("error: foo:bar") and len(last) == 5
    assert _ids(last) == sorted(_ids(last))  # oldest first even when taking the tail
    after = history.query_output(reader, "r1", after_id=last[0]["id"], limit=2)
    assert _ids(after) == [last[1]["id"], last[2]["id"]]
    older = history.query_output(reader, "r1", before_id=last[0]["id"], limit=3)
    assert _ids(older)[-1] == last[0]["id"] - 1 and len(older) == 3
    assert len(history.query_output(reader, "r1", limit=10_000)) == 31
    assert [r["stream"] for r in history.query_output(reader, "r1", search="foo:bar")] == ["stderr"]
    assert [r["line"] for r in history.query_output(reader, "r1", search="rm -rf?")] == [
        "error: foo:bar not found -- rm -rf?"]
    assert len(history.query_output(reader, "r1", search="module_1*")) == 11



def test_tail_after_starts_a_tail_read_forward(reader: sqlite_utils.Database) -> None:
    """`logs --tail N` pages forward from tail_after: the same lines as the last N at once."""
    for n, search in ((5, None), (1, None), (31, None), (500, None), (4, "module_1*")):
        after = history.tail_after(reader, "r1", n, search)
        forward = history.query_output(reader, "r1", after_id=after, limit=10_000, search=search)
        assert _ids(forward) == _ids(history.query_output(reader, "r1", limit=n, search=search))
    assert history.tail_after(reader, "r1", 0) == 0
    assert history.tail_after(reader, "r1", 3, "nothing-matches-this") == 0
    assert history.tail_after(reader, "no-such-run", 3) == 0
    assert history.query_output(reader, "r2", search="compiling") == []


def test_export_jsonl_and_csv(reader: sqlite_utils.Database) -> None:
    rows = list(history.iter_events(reader))
    out = io.StringIO()
    assert history.export(rows, "jsonl", out) == 8
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["id"] for r in lines] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert lines[0]["data"] == {"decision": "allow"} and lines[0]["time"].startswith("2023-11-14T22:13:20")
    out = io.StringIO()
    assert history.export(iter(rows), "csv", out) == 8
    parsed = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [int(r["id"]) for r in parsed] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert parsed[6]["text"] == EVENTS[6][2]  # quotes and commas survive
    assert json.loads(parsed[0]["data"]) == {"decision": "allow"}
    assert list(parsed[0])[:4] == ["id", "ts", "time", "run_id"]
    with pytest.raises(ValueError, match="jsonl or csv"):
        history.export(rows, "xml", io.StringIO())


def test_live_reader_sees_commits(make_writer: Callable[..., StoreWriter], db_path: Path) -> None:
    w = make_writer()
    w.commit("first")
    db = open_db(db_path, readonly=True)
    assert _ids(history.query_events(db)) == [1]
    w.commit("second", ts=time.time())
    assert _ids(history.query_events(db)) == [2, 1]
    db.close()


# --- every plan returns exactly what a plain filter would --------------------------------------

KINDS = ["net.decision", "net.request", "exec.request", "approval.decided", "gpu.sample", "netx"]
WORDS = ["alpha", "beta", "gamma", "rm -rf", "foo:bar"]


@pytest.fixture(scope="module")
def shuffled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[sqlite_utils.Database, list[dict]]]:
    """400 events with timestamps out of id order (clock steps, callers' own ts)."""
    import os
    import random

    rng = random.Random(3)
    path = tmp_path_factory.mktemp("shuffled") / "h.db"
    w = StoreWriter(path, os.urandom(32)).start()
    for i in range(400):
        w.record(rng.choice(KINDS), run_id=rng.choice(["a", "b", "c", None]),
                 text=" ".join(rng.sample(WORDS, 2)),
                 data={"decision": rng.choice(["allow", "deny"])} if i % 3 else None,
                 ts=T0 + i * 10 + rng.choice([0, 0, 0, -2000, 3000]))
    w.close()
    db = open_db(path, readonly=True)
    yield db, history.query_events_after(db, limit=10_000)
    db.close()


def _expected(rows: list[dict], run_id: str | None, kind: str | None, word: str | None,
              since: float | None, until: float | None, decision: str | None) -> list[int]:
    out = []
    for r in rows:
        if run_id is not None and r["run_id"] != run_id:
            continue
        if kind is not None and not (r["kind"].startswith(kind) if kind.endswith(".") else r["kind"] == kind):
            continue
        if word is not None and word not in r["text"]:
            continue
        if since is not None and r["ts"] < since:
            continue
        if until is not None and r["ts"] >= until:
            continue
        if decision is not None and (r["data"] or {}).get("decision") != decision:
            continue
        out.append(r["id"])
    return out[::-1]


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(run_id=st.sampled_from([None, "a", "b", "zz"]),
       kind=st.sampled_from([None, "net.", "net.decision", "exec.", "netx", "nope."]),
       word=st.sampled_from([None, "alpha", "rm -rf", "foo:bar"]),
       since=st.none() | st.integers(0, 4200), width=st.none() | st.integers(0, 4200),
       decision=st.sampled_from([None, "allow", "deny"]), limit=st.integers(1, 30),
       _cap=st.sampled_from([5, 20_000]))
def test_query_events_matches_a_plain_filter(shuffled: tuple[sqlite_utils.Database, list[dict]],
                                             monkeypatch_cap: None, run_id: str | None,
                                             kind: str | None, word: str | None,
                                             since: int | None, width: int | None,
                                             decision: str | None, limit: int, _cap: int) -> None:
    db, rows = shuffled
    history._RANGE_CAP = _cap  # both the bounded and the unbounded plan, each time
    lo = None if since is None else T0 + since
    hi = None if width is None else T0 + (since or 0) + width
    expected = _expected(rows, run_id, kind, word, lo, hi, decision)
    got, before = [], None
    while True:
        page = history.query_events(db, run_id=run_id, kind=kind, search=word, since=lo,
                                    until=hi, decision=decision, before_id=before, limit=limit)
        got += _ids(page)
        if len(page) < limit:
            break
        before = page[-1]["id"]
    assert got == expected
    assert _ids(list(history.iter_events(db, chunk=limit, run_id=run_id, kind=kind, search=word,
                                         since=lo, until=hi, decision=decision))) == expected[::-1]


@pytest.fixture
def monkeypatch_cap() -> Iterator[None]:
    saved = history._RANGE_CAP
    yield
    history._RANGE_CAP = saved
