"""The console. This first version attaches to the daemon and shows the live runs; the full
dashboard (inbox, network feed, GPU strip, screens) is issue 6.

Workers talk to the daemon and post messages; only message handlers touch widgets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Static

from console.client import AsyncClient, ClientError
from console.paths import Paths

COLUMNS = ("id", "profile", "backend", "state", "command")


class DaemonEvent(Message):
    def __init__(self, event: dict[str, Any]) -> None:
        super().__init__()
        self.event = event


class RunsLoaded(Message):
    def __init__(self, runs: list[dict[str, Any]]) -> None:
        super().__init__()
        self.runs = runs


class Problem(Message):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class PilothouseApp(App[None]):
    TITLE = "Pilothouse"
    BINDINGS = [Binding("q", "quit", "Quit", id="quit")]

    def __init__(self, paths: Paths) -> None:
        super().__init__()
        self.paths = paths

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("connecting to the daemon...", id="status")
        table: DataTable[str] = DataTable(id="runs", cursor_type="row")
        for col in COLUMNS:
            table.add_column(col, key=col)
        yield table
        yield Footer()

    def on_mount(self) -> None:
        self.attach()

    @work(exclusive=True, group="daemon")
    async def attach(self) -> None:
        client = AsyncClient(self.paths)
        try:
            await client.open()
            self.post_message(RunsLoaded(await client.call("runs.list")))
            await client.subscribe(["run"])
            async for event in client.events():
                self.post_message(DaemonEvent(event))
                if event.get("kind") == "client.disconnected":
                    break
        except ClientError as exc:
            self.post_message(Problem(f"{exc.message} {exc.hint}"))
        finally:
            await client.close()

    def on_runs_loaded(self, message: RunsLoaded) -> None:
        self.query_one("#status", Static).update(
            f"attached to {self.paths.operator_sock} - start a run with: pilothouse run demo"
        )
        for run in message.runs:
            self._upsert(run)

    def on_daemon_event(self, message: DaemonEvent) -> None:
        event = message.event
        if event.get("kind") == "run.state":
            self._upsert(event["run"])
        elif event.get("kind") == "client.disconnected":
            self.query_one("#status", Static).update("the daemon went away")

    def on_problem(self, message: Problem) -> None:
        self.query_one("#status", Static).update(message.text)

    def _upsert(self, run: dict[str, Any]) -> None:
        table = self.query_one("#runs", DataTable)
        cells = [run["id"], run["profile"], run["backend"], run["state"], " ".join(run["command"])]
        if run["id"] in table.rows:
            for col, value in zip(COLUMNS, cells, strict=True):
                table.update_cell(run["id"], col, value)
        else:
            table.add_row(*cells, key=run["id"])


def run_app(paths: Paths, config_file: Path | None) -> None:
    PilothouseApp(paths).run()
