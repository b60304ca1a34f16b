"""Review h193 (aider, a `.env` at the repository's top): variables of the loader, git and
Python, none of them named in the read-only env file aider loads last (review h163,
console/agents/aider_env.py), that made what aider starts by itself run the repository's code.
With the real aider 0.86.1 under bubblewrap (and Docker, the image's own aider, Python and git),
after one ordinary edit, nobody asked:

- GIT_TEST_FSMONITOR, a knob of git's own tests that release builds honour: where no config
  names core.fsmonitor, git runs it as the fsmonitor hook at every index refresh, so at aider's
  own `git diff` and `git commit`;
- PYTHONPLATLIBDIR, the folder under Python's prefix that holds its standard library (and
  lib-dynload): a path there is taken as given, so `python -m flake8`, aider's own lint, ran
  the repository's `encodings` package before anything of its own;
- LOCPATH with LC_ALL naming a locale of the repository's, whose character set no converter
  of glibc's built in handles, and GCONV_PATH naming a folder of the repository's: the first
  multibyte conversion of that same lint's Python (its arguments, at start) loaded a shared
  object from the workspace (both are pinned: where the system has such a locale, GCONV_PATH
  alone might do; not tried).

And, at a person's own lint command, a Python outside aider's venv that imports hashlib (as
many Python tools do; it runs with aider's environment, `.env` and the read-only file too):

- OPENSSL_CONF, the config OpenSSL reads at `import hashlib`: it loaded a provider, a shared
  object of the workspace's (aider's own Python reads it before the `.env`: nothing there);
- PYTHONUSERBASE, the user site, whose `.pth` files run at start where Python is not a venv.

The rest are planted too, each leaving a file of its own, and ran nothing: OPENSSL_MODULES and
OPENSSL_ENGINES (nothing loads a provider or an engine by name), PYTHONINSPECT with
PYTHONSTARTUP and SHELL (they act only on a terminal, and a run has none), NODE_OPTIONS,
PERL5OPT and RUBYOPT (aider starts none of them).

One real aider run (7-10 s) for each lint checks them all: with the proven ones pinned, nothing
cuts a later one short (before, the first to run ended that Python).
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Daemon, needs_bwrap

from .aider_edit import AIDER_EDIT, edit_app
from .model_server import ModelServer
from .real_harness import agent_fixtures

pytestmark = needs_bwrap
aider, backend, model_server, daemon_env = agent_fixtures(AIDER_EDIT)

INSIDE = "/workspace"  # where the sandbox shows the workspace
PY_VERSIONS = ("3.9", "3.10", "3.11", "3.12", "3.13")  # the sandbox's Python, whichever it is

# A shared object that leaves its mark when loaded (MARK is given when it is compiled).
MARK_SO = """#include <fcntl.h>
#include <unistd.h>
__attribute__((constructor)) static void planted(void) { close(open(MARK, O_CREAT | O_WRONLY, 0644)); }
"""


def mark(name: str) -> str:
    return f"{INSIDE}/ran-{name}"


def shared_object(ws: Path, rel: str, name: str) -> None:
    (ws / rel).parent.mkdir(parents=True, exist_ok=True)
    src = ws.parent / f"{name}.c"
    src.write_text(MARK_SO)
    subprocess.run(["cc", "-shared", "-fPIC", f'-DMARK="{mark(name)}"', "-o", str(ws / rel), str(src)],
                   check=True)


def write(ws: Path, rel: str, text: str, mode: int = 0o644) -> None:
    (ws / rel).parent.mkdir(parents=True, exist_ok=True)
    (ws / rel).write_text(text)
    (ws / rel).chmod(mode)


def touch_py(name: str) -> str:
    """Python that marks without `open` (not yet there while `encodings` is imported)."""
    return f"import posix; posix.close(posix.open({mark(name)!r}, posix.O_CREAT | posix.O_WRONLY))\n"


def plant(ws: Path) -> str:
    """The repository's files, and its `.env`."""
    env = [f"GIT_TEST_FSMONITOR='touch {mark('git_test_fsmonitor')} #'"]
    # Python's standard library from the workspace: its landmark (os.py) and `encodings`.
    env.append(f"PYTHONPLATLIBDIR={INSIDE}/plat")
    for v in PY_VERSIONS:
        write(ws, f"plat/python{v}/os.py", "")
        write(ws, f"plat/python{v}/encodings/__init__.py", touch_py("platlibdir"))
    # A locale of the repository's whose character set is EVIL, and glibc's converter for it.
    charmap = gzip.decompress(Path("/usr/share/i18n/charmaps/ANSI_X3.4-1968.gz").read_bytes())
    charmap_file = ws.parent / "EVIL.charmap"
    charmap_file.write_text(charmap.decode().replace("<code_set_name> ANSI_X3.4-1968",
                                                     "<code_set_name> EVIL"))
    (ws / "loc").mkdir()
    subprocess.run(["localedef", "--no-archive", "-i", "C", "-f", str(charmap_file),
                    str(ws / "loc" / "xx")], check=True, capture_output=True)
    write(ws, "gconv/gconv-modules", "module EVIL// INTERNAL evil 1\nmodule INTERNAL EVIL// evil 1\n")
    shared_object(ws, "gconv/evil.so", "gconv")
    env += [f"LOCPATH={INSIDE}/loc", "LC_ALL=xx", f"GCONV_PATH={INSIDE}/gconv"]
    # OpenSSL: a config that loads a provider of the repository's; providers and engines by name.
    shared_object(ws, "ossl/p.so", "openssl_conf")
    write(ws, "ossl/openssl.cnf", "openssl_conf = init\n[init]\nproviders = prov\n[prov]\n"
                                  f"planted = sect\n[sect]\nmodule = {INSIDE}/ossl/p.so\nactivate = 1\n")
    for name in ("legacy", "fips", "default", "base"):
        shared_object(ws, f"ossl/mods/{name}.so", "openssl_modules")
    for name in ("afalg", "padlock", "devcrypto", "capi", "loader_attic"):
        shared_object(ws, f"ossl/eng/{name}.so", "openssl_engines")
    env += [f"OPENSSL_CONF={INSIDE}/ossl/openssl.cnf", f"OPENSSL_MODULES={INSIDE}/ossl/mods",
            f"OPENSSL_ENGINES={INSIDE}/ossl/eng"]
    # Python's user site, its interactive start.
    for v in PY_VERSIONS:
        write(ws, f"ub/lib/python{v}/site-packages/planted.pth", touch_py("userbase"))
    write(ws, "startup.py", touch_py("inspect"))
    env += [f"PYTHONUSERBASE={INSIDE}/ub", "PYTHONINSPECT=1", f"PYTHONSTARTUP={INSIDE}/startup.py"]
    # The shell aider would run commands with; other interpreters' own start.
    write(ws, "sh.sh", f"#!/bin/sh\ntouch {mark('shell')}\nexec /bin/sh \"$@\"\n", 0o755)
    write(ws, "n.js", f"require('fs').writeFileSync({mark('node')!r}, 'x')\n")
    write(ws, "pl/Planted.pm", f"package Planted; open(my $f, '>', '{mark('perl')}'); 1;\n")
    write(ws, "r.rb", f"File.write({mark('ruby')!r}, 'x')\n")
    env += [f"SHELL={INSIDE}/sh.sh", f"NODE_OPTIONS='--require {INSIDE}/n.js'",
            "PERL5OPT=-MPlanted", f"PERL5LIB={INSIDE}/pl", f"RUBYOPT=-r{INSIDE}/r.rb"]
    return "\n".join(env) + "\n"


# Under Docker, the image's own aider, Python and git, the same file and variables.
CASES = [("aiders_own", "bwrap"), ("persons_own", "bwrap"), ("aiders_own", "docker")]


def ran(ws: Path) -> list[str]:
    return sorted(p.name.removeprefix("ran-") for p in ws.glob("ran-*"))


@pytest.mark.skipif(shutil.which("cc") is None or shutil.which("localedef") is None,
                    reason="needs cc and localedef to build the planted shared objects and locale")
@pytest.mark.parametrize(("lint", "backend"), CASES, indirect=["backend"])
def test_loader_git_and_python_variables_in_dot_env_start_nothing_in_aider(
        lint: str, backend: str, aider: str, model_server: ModelServer, daemon: Daemon,
        workspace: Path) -> None:
    (workspace / ".env").write_text(plant(workspace))
    # A person's own lint is on the command line, before the read-only file.
    options = ("--lint-cmd", 'python: python3 -c "import hashlib"') if lint == "persons_own" else ()
    ws, out, person = edit_app(daemon, aider, workspace, backend, model_server, options=options)
    assert model_server.posts("/chat/completions"), out
    assert (ws / "app.py").read_text() == "x = 2\n", f"the edit was not made:\n{out}"
    assert ran(ws) == [], f"the repository's code ran unasked for: {ran(ws)}\n{out}"
    assert person.asked("exec") == []
