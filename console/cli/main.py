"""`pilothouse`: the console (default), the daemon, and commands for people and scripts.

One module per command group; this one only builds the group and adds theirs. Every listing
command has --json. Expected failures print what happened, why and what to do, and exit
non-zero without a traceback. Start-up stays light: a command imports what it needs when it
runs (`--version`, `ps --json` and `approvals --json` load neither rich nor textual).
"""

from __future__ import annotations

import click

from console import __version__
from console.cli import approvals, config, daemon, doctor, gpu, history, policy, runs, workload
from console.cli.context import Context


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config", metavar="FILE", help="Config file (else PILOTHOUSE_CONFIG, else the user file).")
@click.version_option(__version__, prog_name="pilothouse")
@click.pass_context
def main(ctx: click.Context, config: str | None) -> None:
    """Pilothouse: a terminal control room for coding agents."""
    ctx.obj = Context(config)
    if ctx.invoked_subcommand is None:
        ctx.invoke(daemon.tui)


for _group in (daemon, runs, approvals, policy, history, gpu, config, workload, doctor):
    for _command in _group.COMMANDS:
        main.add_command(_command)

if __name__ == "__main__":
    main()
