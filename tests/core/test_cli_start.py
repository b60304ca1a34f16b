"""What the CLI loads and touches at start: the commands scripts run in a loop load no heavy
module, importing the CLI or the daemon loads no textual, and --config is no environment change.
(Their speed is a bench row, bench/sandbox.py, never a timing here.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, Daemon, needs_bwrap
from tests.core.cli_invoke import invoke

HEAVY = ("textual", "rich", "sqlite_utils", "docker", "pynvml")

# Runs `pilothouse ARGS...` in this interpreter, then prints the heavy modules it loaded.
PROBE = """
import json, sys
from console.cli.main import main
heavy_names = set(sys.argv.pop(1).split(","))
try:
    main(sys.argv[1:], prog_name="pilothouse")
except SystemExit as exc:
    code = exc.code
heavy = sorted({m.split(".")[0] for m in sys.modules} & heavy_names)
print(json.dumps({"code": code, "heavy": heavy}), file=sys.stderr)
"""


def _probe(env: dict[str, str], *args: str) -> tuple[str, dict]:
    done = subprocess.run([sys.executable, "-c", PROBE, ",".join(HEAVY), *args], env=env, capture_output=True,
                          text=True, timeout=60)
    return done.stdout, json.loads(done.stderr.strip().splitlines()[-1])


def test_version_loads_nothing_heavy(daemon_env: dict[str, str]) -> None:
    out, seen = _probe(daemon_env, "--version")
    assert seen == {"code": 0, "heavy": []}
    assert out.startswith("pilothouse, version ")


def test_ps_and_approvals_json_load_nothing_heavy(daemon: Daemon) -> None:
    for args in (["ps", "--json"], ["ps", "--all", "--json"], ["approvals", "--json"]):
        out, seen = _probe(daemon.env, *args)
        assert seen == {"code": 0, "heavy": []}, args
        assert json.loads(out) == [], args


def test_importing_the_cli_and_the_daemon_loads_no_textual() -> None:
    code = ("import sys, console.cli.main, console.daemon.server; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'textual'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_config_option_leaves_the_environment_alone(tmp_path: Path) -> None:
    from console.cli.main import main

    config = tmp_path / "config.toml"
    config.write_text('[profiles.demo]\ncommand = ["true"]\n')
    before = os.environ.get("PILOTHOUSE_CONFIG")
    result = invoke(
        main, ["--config", str(config), "policy", "check", "--json", "demo", "--", "ls"],
        env={"PILOTHOUSE_HOME": str(tmp_path / "no-daemon-here")})
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["decision"] in ("allow", "ask", "deny")
    assert os.environ.get("PILOTHOUSE_CONFIG") == before


def test_the_version_is_the_package_metadata() -> None:
    import importlib.metadata

    import console

    done = subprocess.run([sys.executable, "-m", "console", "--version"], capture_output=True,
                          text=True, timeout=60)
    assert console.__version__ == importlib.metadata.version("pilothouse")
    assert done.stdout.strip() == f"pilothouse, version {console.__version__}"


def test_the_command_table_names_every_command_where_it_lives() -> None:
    import importlib

    from console.cli.main import WHERE, main

    found = {}
    for module in sorted(set(WHERE.values())):
        found |= {c.name: module for c in importlib.import_module(f"console.cli.{module}").COMMANDS}
    assert found == WHERE
    assert list(main.commands) == sorted(WHERE)


def test_version_imports_no_command_module() -> None:
    code = ("import sys\nfrom console.cli.main import main\ntry:\n    main(['--version'])\n"
            "except SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('console.cli.')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.splitlines()[-1] == ("['console.cli.context', 'console.cli.main', 'console.cli.output', "
                                          "'console.cli.parsing', 'console.cli.plain_words']"), done.stderr


def test_version_does_not_import_importlib_metadata() -> None:
    # importlib.metadata brings email, zipfile and csv: about one Python start of its own
    # (issue 17). The version is a literal the packaging metadata is built from.
    code = ("import sys\nfrom console.cli.main import main\ntry:\n    main(['--version'])\n"
            "except SystemExit:\n    pass\n"
            "print('importlib.metadata' in sys.modules, 'email' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.splitlines()[-1] == "False False", done.stderr


def test_version_loads_no_json_pathlib_or_re() -> None:
    # Installed without the development venv's editable finder (which imports pathlib and re
    # in every start), these were most of `--version`: 1.70x a bare start, 1.24x without.
    code = (f"import sys\nsys.path.insert(0, {str(REPO)!r})\nfrom console.cli.main import main\n"
            "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('json', 'pathlib', 're') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.splitlines()[-1] == "[]", done.stdout + done.stderr


def test_the_packaging_metadata_takes_the_version_from_the_package() -> None:
    # One source: pyproject.toml names console.__version__ rather than a second literal.
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "console.__version__"}


# What `ps --json` and `approvals --json` may not load: each of these was milliseconds of every
# call a script makes in a loop (issue 17; `python -X importtime`). json and re (through json's
# own regexes) for the wire and the output, enum (the protocol's vocabulary, and re's flags),
# pathlib (paths), argparse (with gettext and locale) for two flags, collections, contextlib and
# functools for a mapping base class, a suppress() and a wraps().
NOT_ON_THE_SCRIPT_PATH = ("json", "re", "enum", "pathlib", "argparse", "gettext", "locale",
                          "collections", "contextlib", "functools", "typing", "dataclasses",
                          "asyncio", "socket", "platformdirs")

LEAN_PROBE = f"""
import sys
sys.path.insert(0, {str(REPO)!r})
from console.cli.main import main
try:
    main(sys.argv[1:], prog_name="pilothouse")
except SystemExit as exc:
    code = exc.code
loaded = sorted(m for m in {NOT_ON_THE_SCRIPT_PATH!r} if m in sys.modules)
sys.stderr.write(repr((code, loaded)) + "\\n")
"""


def test_ps_and_approvals_json_load_no_stdlib_they_can_do_without(daemon: Daemon) -> None:
    # -S: as installed, without the development venv's editable finder (pathlib, re).
    for args in (["ps", "--json"], ["ps", "-a", "--json"], ["approvals", "--json"]):
        done = subprocess.run([sys.executable, "-S", "-c", LEAN_PROBE, *args], env=daemon.env,
                              capture_output=True, text=True, timeout=60)
        code, loaded = eval(done.stderr.strip().splitlines()[-1])  # noqa: S307 - our own repr
        assert (code, loaded) == (0, []), (args, done.stderr)
        assert json.loads(done.stdout) == [], args


def test_the_development_venv_starts_python_without_an_import_finder() -> None:
    # `make setup` installs the package editable through a plain .pth line. setuptools'
    # default editable mode adds an import finder instead, which imports pathlib and re in
    # every Python start of the venv: about 7 ms of each `pilothouse` command a person types.
    if not (Path(sys.prefix) / ".installed-stamp").exists():
        pytest.skip(f"{sys.prefix} is not the venv `make setup` makes")
    done = subprocess.run([sys.executable, "-c", "import sys, console\n"
                           "print(sorted(m for m in ('pathlib', 're') if m in sys.modules))"],
                          capture_output=True, text=True, timeout=60, cwd="/")
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


@needs_bwrap
def test_run_wait_with_a_workspace_loads_no_stdlib_it_can_do_without(
        daemon: Daemon, workspace: Path) -> None:
    """`run -w DIR` checks its path with a value type. That type imported argparse (with
    gettext and locale) on every call, 16 ms of the CLI's part of `run --wait` on this machine
    (bench/sandbox.py, s18), and so did a word after `--`: only a refusal needs it."""
    for args in (["run", "--wait", "-w", str(workspace), "shell"],  # the profile's command
                 ["run", "shell", "-w", str(workspace), "--wait", "--", "true"]):
        done = subprocess.run([sys.executable, "-S", "-c", LEAN_PROBE, *args], env=daemon.env,
                              capture_output=True, text=True, timeout=60)
        code, loaded = eval(done.stderr.strip().splitlines()[-1])  # noqa: S307 - our own repr
        assert (code, loaded) == (0, []), (args, done.stderr)
