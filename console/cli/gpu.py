"""`pilothouse gpu` and `report`: GPUs, tokens, energy and cost, live and per run."""

from __future__ import annotations

import time
from typing import Any

from console.cli.context import Context, friendly, json_option, pass_ctx
from console.cli.output import clear_screen, echo, table, visible
from console.cli.parsing import argument, command, option


def _num(value: Any, fmt: str = "{:.1f}") -> str:
    if isinstance(value, int | float):
        return fmt.format(value)
    return "n/a" if value is None or str(value).startswith("n/a") else str(value)


def _show_gpu(snap: dict[str, Any]) -> None:
    echo(snap["status"])
    if snap["gpus"]:
        table([[str(g["index"]), str(g["name"])[:22], _num(g.get("power_w")),
                _num(g.get("power_limit_w"), "{:.0f}"), _num(g.get("util_gpu"), "{:.0f}%"),
                f"{_num(g.get('mem_used_mib'), '{:.0f}')}/{_num(g.get('mem_total_mib'), '{:.0f}')}",
                _num(g.get("temp_c"), "{:.0f}C"), _num(g.get("sm_clock_mhz"), "{:.0f}"),
                "LOST" if g.get("lost") else ""]
               for g in snap["gpus"]],
              ["GPU", "NAME", "WATTS", "LIMIT", "UTIL", "MEM MIB", "TEMP", "SM MHZ", ""])
    live = snap.get("live") or {}
    echo(f"tokens/s {_num(live.get('tok_s'))}  output tokens/s {_num(live.get('tok_s_out'))}  "
         f"J/token {_num(live.get('j_per_token'), '{:.3f}')}  "
         f"$/Mtok {_num(live.get('usd_per_mtok'), '{:.4f}')}  (board power)")
    runs = snap.get("runs") or {}
    if runs:
        table([[run_id, _num(r.get("tok_s")), _num(r.get("j_per_token"), "{:.3f}"),
                str(r.get("total_tokens_in", 0)), str(r.get("total_tokens_out", 0)),
                _num(r.get("total_energy_j")), _num(r.get("total_cost_usd"), "{:.6f}"),
                _num(r.get("gpu_memory_mib"), "{:.0f}")] for run_id, r in runs.items()],
              ["RUN", "TOK/S", "J/TOKEN", "TOKENS IN", "TOKENS OUT", "ENERGY J", "COST $", "GPU MIB"])


@command()
@json_option
@option("--watch", is_flag=True, help="Refresh every second until interrupted.")
@pass_ctx
@friendly
def gpu(c: Context, watch: bool) -> None:
    """GPUs like nvidia-smi, plus tokens/s, J/token and cost per agent."""

    def show(snap: dict[str, Any]) -> None:
        if watch:
            clear_screen()
        _show_gpu(snap)

    with c.client() as client:
        while True:
            # One line per snapshot: with --watch, a stream of JSON lines.
            c.emit(client.call("gpu"), show, one_line=True)
            if not watch:
                return
            time.sleep(1)


def _show_report(rep: dict[str, Any]) -> None:
    run, m, a = rep["run"], rep["metering"] or {}, rep["activity"]
    if rep.get("warning"):
        echo(f"WARNING: {visible(rep['warning'])}: the file was edited; the recorded events "
             "hold the truth (run `pilothouse audit verify`)")
    echo(f"run {run['id']}  {run['profile']} in {run['backend']}  {run['state']}"
         f"  exit {run.get('exit_code')}")
    echo(f"  command   {visible(' '.join(run.get('command') or []))}")
    echo(f"  tokens    in {m.get('tokens_in', run.get('tokens_in', 0))}"
         f"  out {m.get('tokens_out', run.get('tokens_out', 0))}")
    energy, cost = m.get("energy_j", run.get("energy_j")), m.get("cost_usd", run.get("cost"))
    echo(f"  energy    {_num(energy, '{:.1f} J')}  cost {_num(cost, '${:.6f}')}"
         f"  J/token {_num(m.get('j_per_token'), '{:.3f}')}"
         f"  $/Mtok {_num(m.get('usd_per_mtok'), '{:.4f}')}")
    for why in sorted({str(w) for w in (m.get("missing") or {}).values()}):
        echo(f"            n/a: {visible(why)}")
    echo(f"  approvals asked {a['approvals_asked']}, approved {a['approved']}, denied "
         f"{a['denied_by_person']}; by policy: allowed {a['policy_allowed']}, denied {a['policy_denied']}")
    if a.get("allows_not_applied"):
        echo(f"  {a['allows_not_applied']} allow(s) recorded after their wait ended: refused, "
             "not applied (`pilothouse policy why` shows each)")
    net = ", ".join(f"{k} {v}" for k, v in sorted(a["net"].items())) or "none"
    conns = a["connections"]
    echo(f"  network   decisions: {net}; {conns['count']} connections, "
         f"{conns['bytes_up']} bytes up, {conns['bytes_down']} down")


@command()
@argument("run_id", metavar="RUN")
@json_option
@pass_ctx
@friendly
def report(c: Context, run_id: str) -> None:
    """One run: tokens, energy, cost, approvals and network."""
    with c.client() as client:
        rep = client.call("report", run=run_id)
    c.emit(rep, _show_report)


COMMANDS = (gpu, report)
