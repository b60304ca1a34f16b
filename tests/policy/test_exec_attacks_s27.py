"""The s27 review of the policy engine (a helper attacking it, each case run with the real
tool where one was at hand): commands that run another command, and options that run a program
or write a file, which the rules did not see.

1. Package runners: forbid and ask rules saw through `npx CMD` but not through `npm exec`,
   `npm x`, `pnpm exec|dlx`, `pnpx`, `yarn exec|dlx`, `bunx`, `bun x`, `uvx`, `uv run`,
   `uv tool run`, `poetry run`, `pipx run`, `conda run` and the like: with an allow rule for
   the tool, `npm exec -- rm -rf ~` was allowed (npm ran the script given so).
   Wrappers only a default of allow let through: chpst, sem, rlwrap, sshpass, screen, and
   capsh's `-- -c CMD`.
2. git subcommands that run a command: `git submodule foreach CMD`, `git bisect run CMD`,
   and filter-branch's filters, were read as git's own words only.
3. Options that run a program, carried by an allow rule that does not name them: man -P/-H
   (--pager, --html), scp/sftp -S and -o (ProxyCommand), -F, sftp -D, wget --use-askpass.
4. Options that write a file: wget -e/--execute (a wgetrc command: output_document=...),
   wget --config, curl's --write-out with %output{FILE}.
5. The short spelling of an option whose long one is asked: git archive -o, git format-patch -o.
"""

from __future__ import annotations

import pytest

from console.policy import ExecRules

RULES = ExecRules(
    allow=["npm", "pnpm", "yarn", "bun", "uv", "poetry", "pipx", "conda", "pdm", "hatch",
           "pipenv", "git submodule", "git bisect", "git filter-branch", "man", "scp", "sftp",
           "wget", "curl", "git archive", "git format-patch", "capsh", "git submodule--helper",
           "git rebase", "git difftool", "sem", "tmux", "screen"],
    ask=["git push"],
    forbid=["rm -rf /", "rm -rf ~", "git push --force"],
    default="ask",
)
OPEN = ExecRules(ask=["git push"], forbid=["rm -rf /", "rm -rf ~"], default="allow")

DENIED = [
    "npm exec -- rm -rf ~", "npm x rm -rf /", "npm exec --package=foo -- rm -rf /",
    "npm --prefix /tmp exec -- rm -rf /", "npm exec -p foo rm -rf /",
    "pnpm exec rm -rf /", "pnpm --filter app exec rm -rf /", "pnpm dlx rm -rf /",
    "pnpm dlx -c 'rm -rf /'", "pnpx rm -rf /",
    "yarn exec rm -rf /", "yarn dlx -p foo rm -rf /", "bunx rm -rf /", "bun x rm -rf /",
    "uvx rm -rf /", "uv run rm -rf /", "uv run --with requests rm -rf /",
    "uv tool run rm -rf /", "uv --directory /tmp run rm -rf /", "uvx --from foo rm -rf /",
    "poetry run rm -rf /", "poetry -C /tmp run rm -rf /", "pipx run --spec foo rm -rf /",
    "conda run -n base rm -rf /", "mamba run -n base rm -rf /", "micromamba run -n x rm -rf /",
    "pdm run rm -rf /", "hatch run rm -rf /", "pipenv run rm -rf /", "rye run rm -rf /",
    "git submodule foreach rm -rf ~", "git submodule foreach 'rm -rf ~'",
    "git submodule --quiet foreach --recursive 'rm -rf /'", "git bisect run rm -rf ~",
    "git filter-branch --tree-filter 'rm -rf /' HEAD",
    "git submodule foreach git push --force",
    # The second look (a helper attacking the first fix, each run with the real tool):
    "npm --call 'rm -rf /' exec", "npm -c 'rm -rf /' x",
    "npm --loglevel silent exec --yes -- rm -rf /", "npm --location global exec --yes -- rm -rf /",
    "npm exec --script-shell sh --yes -- rm -rf /", "npm exec --before 2020-01-01 --yes -- rm -rf /",
    "npm exe --yes -- rm -rf /", "uv tool --quiet run rm -rf /", "yarn workspace app exec rm -rf /",
    "hatch run test:rm -rf /", "hatch env run -- rm -rf /", "bun exec 'rm -rf /'",
    "pnpm exec --shell-mode=true 'rm -rf /'", "sem 'rm -rf /'",
    "capsh -+ -c 'rm -rf /'", "capsh --shell=/bin/rm -- -rf /", "capsh --shell=/bin/sh -+ -c 'rm -rf /'",
    "git submodule--helper foreach 'rm -rf /'", "git rebase --exec 'rm -rf /' HEAD~1",
    "git rebase -x 'rm -rf /' HEAD~1", "git difftool -x 'rm -rf /'", "git difftool --extcmd='rm -rf /'",
    "tmux new-session -d 'rm -rf /'", "tmux -c 'rm -rf /'", "tmux new -s x -d rm -rf /",
]
ASKED = [
    "uv run git push origin main", "npm exec -- git push", "poetry run git push",
    "git submodule foreach git push", "git bisect run git push",
    "man -P 'rm -rf x' ls", "man --pager=./evil ls", "man -H ls", "man --html=./evil ls",
    "scp -S ./evil a h.invalid:b", "scp -oProxyCommand=./evil.sh a h.invalid:b",
    "scp -F ./cfg a h.invalid:b", "sftp -S ./evil.sh h.invalid", "sftp -D ./server",
    "sftp -o ProxyCommand=./evil h.invalid",
    "wget --use-askpass=./evil.sh http://127.0.0.1:9/", "wget -e output_document=/tmp/x "
    "http://127.0.0.1:9/", "wget --execute output_document=/tmp/x http://127.0.0.1:9/",
    "wget --config=./rc http://127.0.0.1:9/",
    "curl -w '%output{/home/agent/.bashrc}echo pwned' http://x.invalid/",
    "curl --write-out '%output{>>f}x' http://x.invalid/",
    "git archive -o /tmp/x HEAD", "git format-patch -o /tmp/x HEAD~1",
    "npm exe git push", "capsh -+ -c 'git push'", "capsh --shell=/usr/bin/git -- push origin main",
    "git submodule--helper foreach --recursive -- 'git push'", "scp -D /tmp/x a h.invalid:b",
    "man -C ./evil.conf ls", "man --config-file=./evil.conf ls",
    "screen -X stuff 'git push'", "tmux send-keys 'git push' Enter",
]
OPEN_DENIED = [
    "chpst -u nobody rm -rf /", "sem -j 2 rm -rf /", "rlwrap rm -rf /",
    "sshpass -p secret rm -rf /", "screen -dmS x rm -rf /", "capsh -- -c 'rm -rf /'",
]
STILL_ALLOWED = [
    "npm install", "npm exec --help", "uv pip install requests", "poetry install",
    "git submodule update --init", "git bisect good", "man ls", "scp a h.invalid:b",
    "wget http://127.0.0.1:9/x", "curl -w '%{http_code}' http://x.invalid/",
    "git archive HEAD", "git format-patch HEAD~1", "uv run pytest -q",
    "npm x -- prettier --check .", "git submodule foreach git status", "git bisect run make test",
    "capsh --print", "man git-push", "conda run -n x python x.py", "npm exec --yes -- prettier .",
]


@pytest.mark.parametrize("command", DENIED)
def test_a_runner_does_not_hide_a_forbidden_command(command: str) -> None:
    assert RULES.evaluate(command).action == "deny", command


@pytest.mark.parametrize("command", ASKED)
def test_what_the_allow_rule_does_not_name_is_asked(command: str) -> None:
    assert RULES.evaluate(command).action == "ask", command


@pytest.mark.parametrize("command", OPEN_DENIED)
def test_wrappers_under_a_default_of_allow(command: str) -> None:
    assert OPEN.evaluate(command).action == "deny", command


@pytest.mark.parametrize("command", STILL_ALLOWED)
def test_the_tools_own_work_stays_allowed(command: str) -> None:
    assert RULES.evaluate(command).action == "allow", command


def test_readings_are_bounded_and_what_is_not_followed_is_asked() -> None:
    """Each runner with an option not known to take a value doubles the readings: followed
    a bounded number of times (a 4 KiB line of them was minutes of work per decision, in the
    daemon's loop), and a command past them is asked, never allowed by the runner's rule."""
    from console.policy.unwrap import MAX_WRAPPERS, unwrap_stages

    for line in (("npm exec --a " * 400)[:4000] + "ls", ("npm exec " + "--a x " * 8) * 60,
                 ("uv run --a " * 400)[:4000]):
        assert len(unwrap_stages(line.split())) <= 2 * MAX_WRAPPERS, line[:40]
        assert RULES.evaluate(line).action == "ask", line[:40]
    # --zz: an option npm is not known to give a value (--before was, until s30 listed it)
    deep = "npm exec --zz X npm exec --zz Y npm exec --zz Z rm -rf /"
    assert RULES.evaluate(deep).action == "deny"  # past the readings, matched flat (review h154)
    assert RULES.evaluate("npm exec --zz X npm exec --zz Y rm -rf /").action in ("ask", "deny")
    assert RULES.evaluate(deep.replace("--zz", "--before")).action == "deny"  # read through
