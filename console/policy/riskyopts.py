"""Options and operands that run a program or write a file: what an allow rule never carries
past its own words unless it names them (execshape.CommandPattern.beyond).

Read wide on purpose: a word read as risky that is not costs one question; one missed runs or
writes unasked. Each program reads its own options, so a `--` ends them here only where it
cannot be the value of the option before it (git's `--decorate-refs -- --output=F`, sort's
`-T -- -o F`: review s32), and never for find, whose expression follows it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# Long options risky for any program (and their unambiguous abbreviations, which GNU getopt and
# git accept): they name a program to run or a file to write.
_RISKY_LONG = (
    "--output", "--output-file", "--output-document", "--output-directory", "--pre", "--exec",
    "--exec-batch", "--upload-pack", "--receive-pack", "--to-command", "--use-compress-program",
    "--compress-program", "--checkpoint-action", "--info-script", "--new-volume-script", "--rsh",
    "--rsync-path", "--ext-diff", "--open-files-in-pager", "--config-env", "--exec-path",
    "--in-place", "--upload-file", "--unzip-command", "--remote-name", "--dump-header",
    "--cookie-jar", "--append-output", "--directory-prefix", "--log-file",
)
# Short options (letters, alone or in a cluster) risky for one program.
_RISKY_SHORT = {
    "sort": "o", "curl": "oOKTDc", "wget": "OoaPe", "sed": "i", "rsync": "e", "ssh": "oFE",
    "fd": "xX", "fdfind": "xX", "tar": "IFxcruA", "zip": "T", "yq": "i", "less": "oOk",
    "git": "O", "perl": "ie", "ruby": "ie", "strace": "o", "iconv": "o", "shuf": "o",
    "file": "C",  # file -C (--compile) compiles the magic it reads into NAME.mgc
    # man -P PAGER and -H[BROWSER] run them; scp and sftp -S run a program as ssh, -o can be a
    # ProxyCommand and -F a config holding one, -D runs a local sftp server; man -C reads a
    # config naming the pager; wget -e runs a
    # wgetrc command (output_document=FILE, use_askpass=PROGRAM).
    "man": "PHC", "scp": "SoFD", "sftp": "SoFD",
    # less -k FILE reads a lesskey file, whose #env section can set LESSOPEN=|CMD (s33); ssh -E
    # writes its log to a file; pytest -o sets an ini value (cache_dir: where it writes).
    "pytest": "o",
    # make -E TEXT evaluates TEXT as a makefile line ($(shell CMD) runs); coverage's reports
    # write where -o (a file) and -d (a folder) say; ruff -o is --output-file.
    "make": "E", "coverage": "od", "ruff": "o",
}
# Long options risky for one program only (any unambiguous abbreviation counts too).
_RISKY_LONG_FOR = {
    "tar": ("--extract", "--get", "--create", "--update", "--append", "--catenate",
            "--concatenate", "--delete", "--rsh-command", "--rmt-command", "--index-file",
            "--volno-file"),
    "less": ("--log-file", "--LOG-FILE", "--lesskey-file", "--lesskey-src", "--lesskey-content"),
    # pytest --basetemp DIR empties DIR first (`~` is a home: review s33, helper 123); the others
    # write a file, and --pastebin posts the results to a web service.
    "pytest": ("--basetemp", "--cov-report", "--junitxml", "--junit-xml", "--debug", "--report-log",
               "--resultlog", "--result-log", "--pastebin", "--override-ini"),
    "npm": ("--logs-dir", "--cache"),
    "make": ("--eval",),
    "coverage": ("--data-file",),
    "ruff": ("--fix", "--unsafe-fixes", "--add-noqa", "--output-file", "--cache-dir"),
    "file": ("--compile",),
    "rg": ("--hostname-bin",),  # ripgrep 14 runs it to learn the host name
    "man": ("--pager", "--html", "--config-file"),
    "wget": ("--use-askpass", "--execute", "--config", "--save-cookies", "--hsts-file",
             "--rejected-log", "--warc-file"),
    "curl": ("--remote-name-all", "--trace", "--trace-ascii", "--libcurl", "--stderr",
             "--output-dir", "--create-dirs", "--etag-save", "--hsts", "--alt-svc"),
}
# Options of one git subcommand that run a program: short letters, long names (any unambiguous
# abbreviation). `git clone -c core.hooksPath=DIR` and `--template=DIR` run DIR's hooks,
# `clone -u` is --upload-pack, `rebase -x` is --exec.
_RISKY_GIT = {"clone": ("cu", ("--template", "--config")), "init": ("", ("--template",)),
              "rebase": ("x", ()), "ls-remote": ("u", ()), "difftool": ("x", ("--extcmd",)),
              "archive": ("o", ()), "format-patch": ("o", ())}  # -o: --output(-directory)
# Programs whose first word may be a cluster of options without a dash (`tar xf a.tar`).
_DASHLESS_FIRST = {"tar", "ar"}
# Single-dash words that are whole options (find's predicates).
_RISKY_WORDS = {
    "sqlite3": {"-init"},  # reads dot commands from a file
    "find": {"-exec", "-execdir", "-ok", "-okdir", "-delete", "-fprint", "-fprint0", "-fprintf",
             "-fls"},
}
_MIN_ABBREV = 1  # GNU getopt takes any unambiguous prefix: for sort, `--o=FILE` is --output
# Programs that read options past a `--` whatever came before it: find's expression follows it,
# and tar's first word may be a cluster whose letters take the next words as values (`tar tfC
# a.tar -- --to-command=X`: `--` is -C's value; review s32, helper 118).
_READS_PAST_DASHES = {"find", "tar"}
# sqlite3's SQL that writes a file or loads code, in any case (a dot command is matched apart).
# The shell's own SQL functions too: writefile() writes a file, edit() runs an editor (review s32,
# helper 118: `select edit('x', 'touch M')` ran touch).
_SQLITE_RISKY = re.compile(r"load_extension|\battach\b|\bvacuum\b.*\binto\b|\bbackup\b"
                           r"|\bwritefile\b|\bedit\s*\(", re.IGNORECASE | re.DOTALL)
# Programs whose Nth operand is a file they write (`uniq IN OUT`, `xxd IN OUT`), and their
# options that take a value as the next word (that word is not an operand).
_OUTPUT_OPERAND = {"uniq": (2, {"-f", "-s", "-w"}),
                   "json.tool": (2, {"--indent"}),  # python -m json.tool IN OUT
                   "xxd": (2, {"-c", "-g", "-l", "-o", "-s", "-n", "-cols", "-groupsize", "-len",
                               "-offset", "-seek", "-name"})}


# Other names of a program whose tables apply (Debian's pytest-3, GNU make as gmake).
_SAME_AS = {"py.test": "pytest", "pytest-3": "pytest", "gmake": "make"}
# Programs that take a `NAME=VALUE` word as a variable that runs (make: `X=$(shell CMD)`, and
# SHELL / .SHELLFLAGS choose the recipes' shell).
_VARIABLE_WORDS = {"make"}
_VARIABLE = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.-]*\s*[:+?!]?=")
# Programs that take no abbreviation of a long option (argparse with allow_abbrev off): only
# their own whole names count (`pytest --co` is its --collect-only).
_WHOLE_NAMES = {"pytest"}


def has_table(program: str) -> bool:
    """Whether options or operands of this program in particular are known to run or write."""
    program = _SAME_AS.get(program, program)
    return program == "git" or any(program in t for t in (
        _RISKY_SHORT, _RISKY_LONG_FOR, _RISKY_WORDS, _OUTPUT_OPERAND))


def dashes_end_options(before: str) -> bool:
    """Whether a `--` after the word `before` ends the options: not when it may be that
    option's value, which only the program knows, so any option may take it."""
    return not (before.startswith("-") and "=" not in before and before != "--")


def written_operand(words: Sequence[str]) -> tuple[int, str] | None:
    """(index, word) of the operand a program of _OUTPUT_OPERAND writes, when the command has
    one."""
    spec = _OUTPUT_OPERAND.get(words[0]) if words else None
    if spec is None:
        return None
    nth, takes_value = spec
    operands, k, ended = 0, 1, False
    while k < len(words):
        w = words[k]
        if ended or w == "-" or not w.startswith("-"):
            operands += 1
            if operands == nth:
                return k, w
        elif w == "--":
            ended = True
        elif w in takes_value:
            k += 1
        k += 1
    return None


def _risky_long(word: str, program: str = "", more: Sequence[str] = ()) -> bool:
    name = word.split("=", 1)[0]
    shortest = len(name) + 1 if program in _WHOLE_NAMES else _MIN_ABBREV + 2
    return any(name == opt or (len(name) >= shortest and opt.startswith(name))
               for opt in (*_RISKY_LONG, *_RISKY_LONG_FOR.get(program, ()), *more))


def _remote_archive(word: str, before: str) -> bool:
    """tar's archive named `host:file` (`-f h:f`, `tf h:f`, `--file=h:f`, `--file h:f`)."""
    joined = word.startswith("--f") and "=" in word
    name = word.split("=", 1)[1] if joined else word
    if name.startswith("-") or ":" not in name.split("/", 1)[0]:
        return False
    return joined or (before.startswith("--f") and "=" not in before) or (
        before[-1:] == "f" and not before.startswith("--"))


def risky_options(program: str, words: Sequence[str], subcommand: str = "",
                  before: str = "") -> list[str]:
    """The words (after a rule's own; `before` is the last of those) that are options known to
    run a program or write a file; for git, those of its subcommand too."""
    found = []
    program = _SAME_AS.get(program, program)
    git_short, more = _RISKY_GIT.get(subcommand, ("", ())) if program == "git" else ("", ())
    short = _RISKY_SHORT.get(program, "") + git_short
    whole = _RISKY_WORDS.get(program, set())
    first = before in ("", program)  # the program's own first word comes first here
    for k, w in enumerate(words):
        prior, before = before, w
        if w == "--" and program not in _READS_PAST_DASHES and dashes_end_options(prior):
            break
        if k == 0 and first and program in _DASHLESS_FIRST and w and not w.startswith("-"):
            w = "-" + w  # `tar xf a.tar` is `tar -xf a.tar`
        if w in whole or (w.startswith("--") and _risky_long(w, program, more)):
            found.append(w)
        elif w.startswith("-") and not w.startswith("--") and not whole and any(c in short for c in w[1:]):
            found.append(w)
        elif program == "curl" and "%output{" in w:  # --write-out's %output{FILE} writes FILE
            found.append(w)
        elif program == "unzip" and w.startswith("-") and "-" in w[1:]:
            found.append(w)  # `-qo-l`: a `-` in a cluster negates the next letter (-l, -t)
        elif program == "sqlite3" and (re.match(r"\.[A-Za-z]", w) or _SQLITE_RISKY.search(w)):
            found.append(w)  # a dot command (.shell, .output F) or SQL that writes or loads
        elif program == "tar" and _remote_archive(w, prior):
            found.append(w)  # `-f host:file`: tar runs rsh (or ssh) to reach the archive
        elif program in _VARIABLE_WORDS and _VARIABLE.match(w):
            found.append(w)
    return found
