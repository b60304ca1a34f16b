"""aider's last word on its own environment in a sandbox: a read-only `.env` file in HOME that
aider loads after the workspace's (review h163).

aider has no hook: what it starts by itself is never put in front of a person, and the profile
keeps `--yes-always` on so that it refuses its model's shell commands (review s20). It still
starts programs of its own, and took them from the workspace: the `.env` at the repository's
top (the application's, so not read-only), which aider loads over its environment, and a
repository's `.aider.conf.yml` (read-only, but read). With the real aider 0.86.1, each of these
ran the repository's program after one ordinary edit, nobody asked:

- `python -m flake8`, aider's own lint after each edit, in the repository's top: `-m` puts
  that folder first on Python's path, so a `flake8.py` there ran (PYTHONSAFEPATH stops it);
- `GIT_CONFIG_COUNT`/`KEY_0`/`VALUE_0` in `.env` named a core.fsmonitor for aider's own
  `git commit`; `AIDER_LINT_CMD` there (or `lint-cmd:` in the YAML) named the lint command;
- `load:` in the YAML names a file of aider commands run at start, `/run CMD` among them;
  `set-env:` there sets variables after every env file (this one too);
- `BROWSER` in `.env` ran at aider's own opening of its documentation, `PYTHONWARNINGS` (a
  category in a module of the standard library that opens a page) or `PYTHONPYCACHEPREFIX`
  (a compiled flake8 `__main__` of the repository's) at its lint (review h191);
- `GIT_DIR` or `GIT_COMMON_DIR` in `.env` naming another git folder of the workspace gave git
  that folder's config, whose core.fsmonitor, or filter named by `.gitattributes`, ran at
  aider's own diff and commit (review h171). git refuses them empty, so they are set to
  `.git` and the work tree to `.`: relative, read where git runs, which for aider is its
  repository's top, so git uses the repository it would find by itself;
- `GIT_TEST_FSMONITOR` (git runs it as core.fsmonitor), `PYTHONPLATLIBDIR` (the standard
  library's folder) and `LOCPATH` with `GCONV_PATH` (a locale and a character-set converter,
  a shared object) at aider's own diff, commit and lint; `OPENSSL_CONF` and `PYTHONUSERBASE`
  at a person's own Python lint command (review h193);
- `AIDER_UPGRADE` or `AIDER_GUI` (aider runs pip at start, yes under --yes-always) with
  `PIP_NO_INDEX` and `PIP_FIND_LINKS` naming a folder of the workspace: pip ran the build
  backend of an sdist there; so did the boto3 install of a `bedrock/` model (review h202).

aider loads, with override, `~/.env`, the repository's `.env`, the current folder's, then the
file `--env-file` names, in that order; AIDER_ENV_FILE (set for every run, after the profile's
`setenv`: run_prep.run_env) names this one, so its values win over every `.env` and, being
in the environment, over every `.aider.conf.yml`. Only the person's own command line
(`--lint-cmd`, `--test-cmd`, `--load`, `--env-file`) comes before it. What aider starts inherits
these too: a test command of the person's that runs git elsewhere unsets `GIT_DIR`,
`GIT_WORK_TREE` and `GIT_COMMON_DIR` first; where `.git` is a file (a submodule,
`--separate-git-dir`) aider's own commits fail, as git takes no file for `GIT_COMMON_DIR`.
"""

from __future__ import annotations

from console.config.schema import RUN_PATH
from console.paths import INSIDE_HOME

AIDER_ENV_PATH = ".aider/pilothouse.env"  # in HOME
AIDER_ENV_FILE = f"{INSIDE_HOME}/{AIDER_ENV_PATH}"

EXTERNAL_DIFF = 'ph_diff() { diff -u -L "a/$1" -L "b/$1" "$2" "$5"; :; }; ph_diff'

# What a `.env` or a repository's config can no longer set for aider, and what it is then.
# A value left empty is, to the program that reads it, as if unset (git, Python, the loader,
# bash); git's GIT_CONFIG_COUNT must be a number.
PINNED: dict[str, str] = {
    "AIDER_YES_ALWAYS": "true",  # aider refuses its model's shell commands (review s20)
    # An entry for no language aider knows: the variable being set, no config file's
    # lint-cmd is taken, and aider's own lint (flake8, below) stays as it is.
    "AIDER_LINT_CMD": "pilothouse: true",
    "AIDER_TEST_CMD": "",  # a repository's test command, run after each edit under auto-test
    "AIDER_AUTO_TEST": "false",
    "AIDER_LOAD": "",  # a file of aider commands run at start (`/run CMD`)
    "AIDER_NOTIFICATIONS_COMMAND": "",
    # aider's own `set-env`, applied after every env file (this one too): set to one harmless
    # name, no config file's list is taken.
    "AIDER_SET_ENV": "PILOTHOUSE_AIDER_ENV=1",
    # aider's own pip runs (review h202): at start for --upgrade, --install-main-branch and
    # --gui (its extras), a newer version after --check-update, playwright to read a URL, and
    # a model's package (boto3 for a `bedrock/` model the person chose); "Run pip install?" is
    # answered yes under --yes-always. The options are off here; the pip left (a model's
    # package) builds nothing (PIP_* below).
    "AIDER_UPGRADE": "false",
    "AIDER_INSTALL_MAIN_BRANCH": "false",
    "AIDER_CHECK_UPDATE": "false",
    "AIDER_JUST_CHECK_UPDATE": "false",
    "AIDER_GUI": "false",
    "AIDER_DISABLE_PLAYWRIGHT": "true",
    # pip takes every option from a PIP_ variable: a `.env` naming a folder of the workspace
    # (PIP_FIND_LINKS, PIP_INDEX_URL=file:...) gave it an sdist whose build backend pip ran.
    # Wheels only (installing one runs nothing), no config file, nowhere writable to install
    # to (aider's venv is read-only), and no other Python or keyring program for pip to run.
    "PIP_CONFIG_FILE": "/dev/null",
    "PIP_ONLY_BINARY": ":all:",
    "PIP_NO_BINARY": ":none:",
    "PIP_PYTHON": "",
    "PIP_TARGET": "",
    "PIP_PREFIX": "",
    "PIP_ROOT": "",
    "PIP_USER": "0",
    "PIP_EDITABLE": "",
    "PIP_REQUIREMENT": "",
    "PIP_CONSTRAINT": "",
    "PIP_KEYRING_PROVIDER": "disabled",
    # Python: no folder of the workspace on the path of `python -m flake8` and the like.
    "PYTHONSAFEPATH": "1",
    "PYTHONPATH": "",
    "PYTHONHOME": "",
    # Python's own ways to run what a `.env` names (review h191): PYTHONWARNINGS imports each
    # -W category's module when Python starts (the standard library's `antigravity` opens a
    # page), PYTHONPYCACHEPREFIX is where Python takes compiled modules from (a `.pyc` stamped
    # with the installed source's time and size is run as that module), and BROWSER is the
    # program `webbrowser` runs: aider opens its documentation by itself under --yes-always.
    # `true` opens nothing (empty, webbrowser would look for another browser: gio, xdg-open).
    "PYTHONWARNINGS": "",
    "PYTHONPYCACHEPREFIX": "",
    "BROWSER": "true",
    # Review h193: the folder under Python's prefix its standard library is taken from (a path
    # there is used as given: `encodings` ran from the workspace at aider's own lint), and the
    # user site, whose `.pth` files run at start in a Python outside a venv (a person's own
    # lint command, `python3 ...`): off, not moved, as empty would name ~/.local.
    "PYTHONPLATLIBDIR": "",
    "PYTHONNOUSERSITE": "1",
    # OpenSSL's config, read at a Python's `import hashlib`: it loads the shared objects it
    # names (a person's own Python lint command ran one of the workspace's). aider's own
    # Python has read it before any `.env`. Empty: no config file, OpenSSL's defaults.
    "OPENSSL_CONF": "",
    # glibc (review h193): a locale of the workspace's (LOCPATH, with LC_ALL naming it) whose
    # character set has no built-in converter made the first conversion of aider's lint's
    # Python load one from GCONV_PATH, a shared object of the workspace's. Empty: glibc's own.
    "LOCPATH": "",
    "GCONV_PATH": "",
    # Where git finds the repository (review h171): a `.env` naming another git folder of the
    # workspace (GIT_DIR, or GIT_COMMON_DIR, where git reads the repository's config) gave git
    # that folder's config, which ran its core.fsmonitor or a filter the repository's
    # .gitattributes names at aider's own commit. git refuses these empty, so they name the
    # repository git would find itself: aider runs git in its repository's top, and a relative
    # value is taken from where git runs (a `.git` file, a submodule's or --separate-git-dir's,
    # is followed for GIT_DIR; as GIT_COMMON_DIR it is not, so there aider's commits fail).
    "GIT_DIR": ".git",
    "GIT_WORK_TREE": ".",
    "GIT_COMMON_DIR": ".git",
    # Read only when set: empty is as if unset.
    "GIT_ALTERNATE_OBJECT_DIRECTORIES": "",
    "GIT_CEILING_DIRECTORIES": "",
    "GIT_DISCOVERY_ACROSS_FILESYSTEM": "",
    "GIT_NAMESPACE": "",
    # git's config from the environment, and the programs it runs.
    "GIT_CONFIG_COUNT": "0",
    "GIT_CONFIG_PARAMETERS": "",
    "GIT_CONFIG_GLOBAL": f"{INSIDE_HOME}/.gitconfig",  # the run's own, read-only
    "GIT_CONFIG_SYSTEM": "/etc/gitconfig",
    "XDG_CONFIG_HOME": "",
    "GIT_EXEC_PATH": "",
    # Not empty: git runs an empty one as a program, so aider's `git diff HEAD` failed and it
    # committed no edit to a tracked file (s42). git hands this to the shell with its seven
    # arguments (path, old file, hash, mode, new file, hash, mode): a plain unified diff.
    "GIT_EXTERNAL_DIFF": EXTERNAL_DIFF,
    "GIT_PAGER": "",
    "GIT_EDITOR": "",
    "GIT_SEQUENCE_EDITOR": "",
    "GIT_SSH": "",
    "GIT_SSH_COMMAND": "",
    "GIT_ASKPASS": "",
    "SSH_ASKPASS": "",
    "GIT_PROXY_COMMAND": "",
    "GIT_TEMPLATE_DIR": "",
    # A knob of git's own tests that release builds honour: where no config names
    # core.fsmonitor, git runs it as the fsmonitor hook at every diff and commit (review h193).
    "GIT_TEST_FSMONITOR": "",
    # What every program starts with: the loader's, the shells', PATH and HOME as the run has them.
    "LD_PRELOAD": "",
    "LD_AUDIT": "",
    "LD_LIBRARY_PATH": "",
    "BASH_ENV": "",
    "ENV": "",
    "PATH": RUN_PATH,
    "HOME": INSIDE_HOME,
}


def aider_env_text() -> str:
    lines = ["# Written by Pilothouse: loaded by aider after the workspace's .env, so these hold."]
    lines += [f"{name}='{value}'" for name, value in PINNED.items()]  # quoted: read as written
    return "\n".join(lines) + "\n"
