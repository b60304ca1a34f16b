"""Config: the DESIGN.md format loads; a bad file is refused whole with file, line and reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.config import load as config
from console.config.load import ConfigError, load
from console.config.units import parse_duration, parse_size

GOOD = """
[defaults]
sandbox = "auto"               # auto | bwrap | docker | none
approval_timeout = "120s"

[profiles.mine]
command = ["ph-demo-agent"]
workspace = "."
gpu = false
limits = { memory = "4g", pids = 512, cpus = 2.0 }

[profiles.mine.network]
default = "ask"
allow = ["pypi.org", "files.pythonhosted.org", "**.github.com", "127.0.0.1:8000"]
deny  = ["**.example-tracker.com"]
ports = [80, 443]

[profiles.mine.exec]
default = "ask"
allow  = ["git status", "git diff", "pytest"]
ask    = ["git push", "pip install"]
forbid = ["rm -rf /"]
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "config.toml"
    p.write_text(text)
    return p


def test_design_example_loads_with_sources(tmp_path: Path) -> None:
    f = write(tmp_path, GOOD)
    cfg = load(f)
    demo = cfg.profile("mine")
    assert demo.limits.memory_bytes == 4 * 2**30
    assert demo.limits.pids == 512 and demo.limits.cpus == 2.0
    assert demo.approval_timeout == 120
    assert [r.text for r in demo.network.allow][2] == "**.github.com"
    github = demo.network.allow[2]
    assert github.file == str(f) and github.line == 14
    forbid = demo.exec.forbid[0]
    assert forbid.text == "rm -rf /" and forbid.line == 22
    assert demo.source == f"{f}:6"


def test_embedded_profiles_all_validate() -> None:
    cfg = load(None)
    assert "demo" in cfg.profiles and "shell" in cfg.profiles
    assert cfg.files == [config.EMBEDDED]


def test_user_profile_extends_embedded(tmp_path: Path) -> None:
    embedded = load(None).profile("demo")
    f = write(tmp_path, '[profiles.demo]\ncommand = ["true"]\n[profiles.demo.exec]\nallow = ["make"]\n')
    demo = load(f).profile("demo")
    assert demo.command == ["true"]
    assert [r.text for r in demo.exec.allow] == [r.text for r in embedded.exec.allow] + ["make"]
    assert demo.exec.allow[-1].source == f"{f}:4"
    assert demo.exec.forbid == embedded.exec.forbid
    assert demo.limits == embedded.limits


def test_a_rules_only_table_extends_a_profile(tmp_path: Path) -> None:
    f = write(tmp_path, '[profiles.demo.network]\nallow = ["example.org"]\n')
    demo = load(f).profile("demo")
    assert demo.command == load(None).profile("demo").command
    assert demo.network.allow[-1].text == "example.org"


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ('[defaults]\nsandbox = "chroot"\n', 2, "must be one of auto, bwrap, docker, none"),
        ('[defaults]\napproval_timeout = "soon"\n', 2, "not a duration"),
        ('[profiles.x]\ncommand = ["a"]\nlimits = { memory = "lots" }\n', 3, "not a size"),
        ('[profiles.x]\ncommand = []\n', 2, "command must be a non-empty list"),
        ('[profiles.x]\ncommand = ["a"]\n[profiles.x.network]\nallow = [\n  "ok.com",\n  "*",\n]\n', 6, "'*'"),
        ('[profiles.x]\ncommand = ["a"]\n[profiles.x.network]\ndeny = ["*.com"]\n', 4, "*.com"),
        ('[profiles.x]\ncommand = ["a"]\n[profiles.x.network]\nallow = ["a*.b.com"]\n', 4, "a*.b.com"),
        ('[profiles.x]\ncommand = ["a"]\ncolour = "red"\n', 3, "unknown key 'colour'"),
        ('[profiles.x]\ncommand = ["a"]\n[profiles.x.exec]\nallow = ["git \\"push"]\n', 4, "cannot read it as shell words"),
        ('[profiles.x]\ncommand = ["a"]\n[profiles.x.network]\nports = [0]\n', 4, "ports"),
        ('[gpu]\nsample_hz = 50\n', 2, "0.2 to 10"),
        ('[defaults\nsandbox = "auto"\n', 1, "not valid TOML"),
        ('[surprise]\n', 1, "unknown key 'surprise'"),
        ('[profiles.nosuch.exec]\nallow = ["ls"]\n', 1, "command must be a non-empty list"),
        ('[profiles."new one".network]\ndeny = ["x.com"]\n', 1, "profile name 'new one'"),
        ('[defaults]\napproval_timeout = inf\n', 2, "too large"),
        ('[profiles.x]\ncommand = ["a"]\nlimits = { memory = "' + "9" * 400 + 'g" }\n', 3, "too large"),
        ('[profiles.x]\ncommand = ["a"]\nlimits = { cpus = nan }\n', 3, "cpus must be a number"),
        ('[gpu]\nprice_kwh = inf\n', 2, "price_kwh must be a number"),
        ('[profiles.x]\ncommand = ["a"]\ndescription = 5\n', 3, "description must be text"),
    ],
)
def test_bad_files_are_refused_with_line(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    f = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load(f)
    assert info.value.file == str(f)
    assert info.value.line == line, str(info.value)
    assert fragment in str(info.value)
    assert str(info.value).startswith(f"{f}:{line}: ")


def test_unknown_profile_names_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="known: .*demo"):
        load(write(tmp_path, GOOD)).profile("nope")


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        config.load_explicit(tmp_path / "absent.toml")


@pytest.mark.parametrize(("text", "seconds"), [("120s", 120), ("10m", 600), ("2h", 7200), ("1d", 86400),
                                               ("500ms", 0.5), (30, 30), ("1.5h", 5400)])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10x", "-5s", "0s", True, "s"])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(("text", "size"), [("4g", 4 << 30), ("512m", 512 << 20), ("64k", 64 << 10),
                                            ("1.5g", int(1.5 * (1 << 30))), (1000, 1000), ("2GiB", 2 << 30)])
def test_sizes(text: object, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "4x", "-1g", "0", False])
def test_bad_sizes(text: object) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


def test_the_config_imports_nothing_above_it() -> None:
    """config sits below gate, sandbox, gpu, agents and the daemon (DESIGN.md, Code layout)."""
    import subprocess
    import sys

    code = ("import sys, console.config.load, console.config.edit, console.config.units\n"
            "above = ('console.sandbox', 'console.gate', 'console.gpu', 'console.daemon', "
            "'console.client', 'console.cli', 'console.tui', 'textual')\n"
            "print(sorted(m for m in sys.modules if m.startswith(above)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
