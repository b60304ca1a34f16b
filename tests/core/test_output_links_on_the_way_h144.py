"""Review h144: `-o FILE` refused a link only as the file itself. `-o out/events.csv` where the
agent left `out -> ~/.ssh` (a folder of the person's, or of root's for a root console) wrote
the export there, and a path under /dev or /proc (`/proc/self/cwd/...`) skipped the check. Now
no link an agent could have made is followed anywhere on the way (console.paths); root's
own links (`/var/run`) and the process's descriptors (`/dev/stdout`) still are."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from console.cli.output import open_output
from console.paths import LinkOnTheWay, open_folder_of


def agents_folder_link(tmp_path: Path) -> tuple[Path, Path]:
    victim = tmp_path / "dotssh"
    victim.mkdir()
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "out").symlink_to(victim)
    if os.geteuid() == 0:  # the agent is never root on the host: its link is another user's
        os.lchown(ws / "out", 65534, 65534)
    return ws, victim


@pytest.mark.parametrize("how", ["relative", "absolute", "deeper", "proc-cwd"])
def test_a_link_on_the_way_is_not_written_through(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        how: str) -> None:
    ws, victim = agents_folder_link(tmp_path)
    (victim / "sub").mkdir()
    monkeypatch.chdir(ws)
    path = {"relative": "out/events.csv", "absolute": str(ws / "out" / "events.csv"),
            "deeper": "out/sub/events.csv", "proc-cwd": "/proc/self/cwd/out/events.csv"}[how]
    with pytest.raises(SystemExit):
        open_output(path).close()
    assert sorted(p.name for p in victim.rglob("*")) == ["sub"], "written through the link"
    assert "is a link" in capsys.readouterr().err


def test_the_persons_own_paths_still_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "a")
    for path in ("b/x.csv", "./b/../b/y.csv", str(tmp_path / "a" / "b" / "z.csv"), "w.csv"):
        with open_output(path) as f:
            f.write("x\n")
    assert sorted(p.name for p in (tmp_path / "a").rglob("*.csv")) == [
        "w.csv", "x.csv", "y.csv", "z.csv"]
    open_output("/dev/null").close()
    out = open_output("/dev/stdout")
    out.close()
    read, write = os.pipe()
    try:
        with open_output(f"/proc/self/fd/{write}") as f:
            f.write("piped\n")
        assert os.read(read, 100) == b"piped\n"
    finally:
        os.close(read)
        os.close(write)


def test_roots_own_link_on_the_way_is_followed() -> None:
    if not (os.path.islink("/var/run") and os.lstat("/var/run").st_uid == 0):
        pytest.skip("no root's /var/run link here")
    fd, name = open_folder_of("/var/run/x")
    os.close(fd)
    assert name == "x"


def test_the_link_named_is_the_one_on_the_way(tmp_path: Path) -> None:
    ws, _ = agents_folder_link(tmp_path)
    with pytest.raises(LinkOnTheWay) as caught:
        open_folder_of(str(ws / "out" / "x.csv"))
    assert caught.value.link == str(ws / "out")
