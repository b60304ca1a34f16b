"""`pilothouse`: the console (default), the daemon, and commands for people and scripts.

One module per command group; this one builds the top-level group from the table below
(console.cli.parsing: commands declared with decorators, parsed by argparse). Every
listing command has --json. Expected failures print what happened, why and what to do (with
--json also as a JSON object, stdout's last line: docs/protocol.md), and exit non-zero without
a traceback.

Start-up stays light: a command's module is imported when that command runs (or when --help
lists them all), only that command's parser is built, and the command imports what it needs
inside itself. `--version` loads no command module and no argparse; `ps --json` and
`approvals --json` load neither rich nor textual.
"""

from __future__ import annotations

from console import __version__
from console.cli.context import Context, pass_ctx
from console.cli.parsing import Command, group, option

TYPE_CHECKING = False  # typing's, without importing typing: every CLI start would pay for it
if TYPE_CHECKING:
    from collections.abc import Iterator

# Every top-level command and the module of console.cli that defines it (in its COMMANDS).
WHERE = {
    "tui": "daemon", "daemon": "daemon", "status": "daemon",
    "run": "runs", "ps": "runs", "logs": "runs", "stop": "runs", "profiles": "runs",
    "demo-workspace": "runs",
    "approvals": "approvals", "approve": "approvals", "deny": "approvals", "grants": "approvals",
    "revoke": "approvals",
    "policy": "policy",
    "reload": "config",
    "history": "history", "export": "history", "audit": "history", "prune": "history",
    "gpu": "gpu", "report": "gpu",
    "trace": "workload", "replay": "workload", "replay-report": "workload",
    "doctor": "doctor",
}


class CommandTable:
    """The group's commands by name, each module imported on first use of one of its commands.
    (A mapping by hand, not collections.abc's MutableMapping: importing collections, and
    importlib for import_module, cost a CLI start more than the class saves.)"""

    def __init__(self, where: dict[str, str]) -> None:
        self.where = dict(where)
        self.loaded: dict[str, Command] = {}

    def __getitem__(self, name: str) -> Command:
        if name not in self.loaded:
            module = __import__(f"console.cli.{self.where[name]}", fromlist=["COMMANDS"])
            for command in module.COMMANDS:
                self.loaded.setdefault(command.name, command)
        return self.loaded[name]

    def __contains__(self, name: object) -> bool:
        return name in self.where or name in self.loaded

    def __setitem__(self, name: str, command: Command) -> None:
        self.loaded[name] = command

    def __delitem__(self, name: str) -> None:
        self.where.pop(name, None)
        del self.loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted({*self.where, *self.loaded}))

    def __len__(self) -> int:
        return len({*self.where, *self.loaded})


@group("pilothouse", commands=CommandTable(WHERE), alone=True, setup=Context,
       version=__version__)
@option("--config", metavar="FILE", help="Config file (else PILOTHOUSE_CONFIG, else the user file).")
@pass_ctx
def main(c: Context) -> None:
    """Pilothouse: a terminal control room for coding agents."""
    main.commands["tui"].invoke(c)


if __name__ == "__main__":
    main()
