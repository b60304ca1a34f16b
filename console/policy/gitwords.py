"""What git does with its own words: the options before its subcommand, and configuration
that runs a command (`git -c core.sshCommand=...`, `alias.*`), for unwrap.py."""

from __future__ import annotations

# git's own options before its subcommand: `git -c x=y -C dir push` is a push.
GIT_ARGS = {"-c", "-C", "--git-dir", "--work-tree", "--namespace", "--config-env",
            "--super-prefix", "--exec-path", "--list-cmds", "--attr-source",  # (git 2.42+)
            "--shallow-file"}  # undocumented; the next word is its value (review h154)
# git configuration that runs a command (the neighbours of alias.*), as `-c key=value` or
# `--config-env key=VAR` before the subcommand, or written by `git config`.
GIT_RUNS = ("alias.", "core.sshcommand", "core.pager", "core.fsmonitor", "core.editor",
            "core.hookspath", "core.askpass", "core.gitproxy", "core.alternaterefs",
            "credential.", "diff.external", ".textconv", ".command", ".driver", "filter.",
            "pager.", "sequence.editor", "gpg.", "difftool.", "mergetool.", "merge.tool",
            "diff.tool", "interactive.", "uploadpack.", "include.", "includeif.", "remote.",
            "url.", "protocol.", "submodule.", "sendemail.", "web.browser", "browser.", "man.",
            "help.browser", "init.templatedir", ".cmd", "imap.", "hook.", "trailer.", "guitool.")


def git_runs_config(words: list[str]) -> bool:
    """Whether git is given configuration that runs a command: `-c`/`--config-env` values
    before its subcommand, or any word of `git config` (not file names or messages)."""
    for at, word in enumerate(words):
        if word.rsplit("/", 1)[-1] != "git":  # git, or a path to it
            continue
        stage = words[at:]
        values, k = [], 1
        while k < len(stage) and stage[k].startswith("-"):
            w = stage[k]
            if w in ("-c", "--config-env") and k + 1 < len(stage):
                values.append(stage[k + 1])
                k += 2
                continue
            if w.startswith(("-c", "--config-env=")):
                values.append(w.split("=", 1)[1] if w.startswith("--") else w[2:])
            k += 2 if w in GIT_ARGS else 1
        if stage[k : k + 1] == ["config"]:
            values += stage[k + 1 :]
        if stage[k : k + 1] == ["clone"]:  # `clone -c KEY=VALUE`: set before it fetches (review s31)
            values += _clone_config(stage[k + 1 :])
        if any(key in v.lower() for v in values for key in GIT_RUNS):
            return True
    return False


def _clone_config(words: list[str]) -> list[str]:
    """`git clone`'s -c/--config values: -c V, -cV, in a cluster of short flags (-qc V, -qcV),
    --config[=]V and its abbreviations down to --co (git takes any unambiguous one: review
    s31, helper 107 ran a hook with --co and -qc)."""
    found = []
    for k, w in enumerate(words):
        name, eq, value = w.partition("=")
        if name.startswith("--") and len(name) >= 4 and "--config".startswith(name):
            found += [value] if eq else words[k + 1 : k + 2]
        elif w.startswith("-") and not w.startswith("--") and "c" in w:
            rest = w[w.index("c") + 1 :]  # the cluster's -c takes the rest, or the next word
            found += [rest] if rest else words[k + 1 : k + 2]
    return found


def skip_git_options(words: list[str]) -> list[str]:
    i, n = 1, len(words)
    while i < n and words[i].startswith("-"):
        i += 2 if words[i] in GIT_ARGS else 1
    return [words[0], *words[i:]]


# filter-branch's options whose value is a shell command it runs (for every commit).
_FILTERS = ("--env-filter", "--tree-filter", "--index-filter", "--parent-filter", "--msg-filter",
            "--commit-filter", "--tag-name-filter", "--setup")


# Subcommands' options whose value is a command git runs (review s30: --upload-pack,
# --receive-pack and --exec were not read, nor an abbreviation such as `rebase --exe`).
_RUNS_OPTIONS = {
    "rebase": ("-x", "--exec"), "difftool": ("-x", "--extcmd"),
    "fetch": ("--upload-pack",), "pull": ("--upload-pack",), "ls-remote": ("--upload-pack",),
    "clone": ("-u", "--upload-pack"), "fetch-pack": ("--upload-pack", "--exec"),
    "push": ("--receive-pack", "--exec"), "send-pack": ("--receive-pack", "--exec"),
    "archive": ("--exec",),
}


def git_commands(words: list[str]) -> list[str]:
    """Command strings git runs from its subcommand's words (its own options already gone):
    the options of _RUNS_OPTIONS, `grep -O<pager>`, `submodule foreach CMD` (in each
    submodule), `bisect run CMD ARGS` (at each step), and filter-branch's filters. Several
    words are read both as one shell line and as argv."""
    sub = words[1:2]
    rest: list[str] = []
    if sub and sub[0] in _RUNS_OPTIONS:
        return _option_values(words[2:], _RUNS_OPTIONS[sub[0]])
    if sub == ["grep"]:  # -O<pager>, --open-files-in-pager=<pager>: only ever attached
        return [w[2:] if w.startswith("-O") else w.split("=", 1)[1] for w in words[2:]
                if (w.startswith("-O") and len(w) > 2) or (w.startswith("--o") and "=" in w
                    and "--open-files-in-pager".startswith(w.split("=", 1)[0]))]
    if sub in (["submodule"], ["submodule--helper"]):
        k = 2
        while k < len(words) and words[k].startswith("-"):
            k += 1
        if words[k : k + 1] == ["foreach"]:
            k += 1
            while k < len(words) and words[k].startswith("-") and words[k] != "--":
                k += 1
            rest = words[k + (words[k : k + 1] == ["--"]) :]
    elif sub == ["bisect"] and words[2:3] == ["run"]:
        rest = words[3:]
    elif sub == ["filter-branch"]:
        return _option_values(words[2:], _FILTERS)
    if not rest:
        return []
    import shlex

    return [rest[0]] if len(rest) == 1 else [" ".join(rest), shlex.join(rest)]


def _option_values(words: list[str], names: tuple[str, ...]) -> list[str]:
    """The values of these options as git's parse-options reads them: `--exec CMD`, `--exec=CMD`
    and any prefix git takes (`--ex=CMD`, down to `--e`), `-x CMD`, `-xCMD`, and the option in a
    cluster of short ones (`-ix CMD`, review s30)."""
    found = []
    shorts = [n[1] for n in names if not n.startswith("--")]
    for k, w in enumerate(words):
        name, eq, value = w.partition("=")
        after = words[k + 1] if k + 1 < len(words) else ""
        if name.startswith("--") and len(name) >= 3 and any(
                long.startswith(name) for long in names if long.startswith("--")):
            found.append(value if eq else after)
        elif w.startswith("-") and not w.startswith("--"):
            at = min((i for i in (w.find(c, 1) for c in shorts) if i > 0), default=0)
            if at:
                found.append(w[at + 1 :] or after)
    return found
