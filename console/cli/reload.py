"""`pilothouse reload`: the daemon reads its config file again, validating first."""

from __future__ import annotations

import click

from console.cli.main import Context, dumps, friendly, pass_ctx


@click.command()
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
@friendly
def reload(c: Context, as_json: bool) -> None:
    """Reload the daemon's config (as SIGHUP and a change of the file do). A bad file is refused
    with file, line and reason, and the policy in force stays."""
    with c.client(autostart=False) as client:
        result = client.call("config.reload")
    if as_json:
        click.echo(dumps(result))
        return
    click.echo(f"reloaded {', '.join(result['files'])}: "
               f"{len(result['diff'])} change(s)" if result["diff"] else "reloaded: no policy change")
    for line in result["diff"]:
        click.echo(f"  {line}")
