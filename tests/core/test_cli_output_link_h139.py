"""Review h139: `-o FILE` of an export is written through no link an agent left in its
workspace (`events.csv -> /etc/shadow`, written by a person or root who exports there)."""

from __future__ import annotations

import pytest

from console.cli.output import open_output


def test_output_refuses_a_link_and_leaves_its_target(tmp_path, capsys):
    target = tmp_path / "theirs"
    target.write_text("precious\n")
    (tmp_path / "events.csv").symlink_to(target)
    with pytest.raises(SystemExit):
        open_output(str(tmp_path / "events.csv"))
    assert target.read_text() == "precious\n"
    assert "link" in capsys.readouterr().err


def test_output_plain_file_and_dev_stdout_still_work(tmp_path):
    with open_output(str(tmp_path / "out.jsonl")) as f:
        f.write("x\n")
    assert (tmp_path / "out.jsonl").read_text() == "x\n"
    open_output("/dev/null").close()  # under /dev a link stays allowed (`-o /dev/stdout`)
