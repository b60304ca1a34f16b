"""The one operator client: the blocking and asyncio sides share connect and answers, and
nothing is reached through a module `__getattr__`."""

from __future__ import annotations

import ast
import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from console.client import aio
from console.client.sync import Client, ClientError
from tests.conftest import REPO, Daemon


def test_no_module_getattr_shims() -> None:
    found = []
    for root in ("console", "widgets", "store"):
        for path in sorted((REPO / root).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            found += [f"{path.relative_to(REPO)}:{node.lineno}" for node in tree.body
                      if isinstance(node, ast.FunctionDef) and node.name == "__getattr__"]
    assert found == []


def test_the_blocking_client_does_not_import_asyncio() -> None:
    code = "import sys, console.client.sync; print('asyncio' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr


def test_both_sides_read_the_same_answers(daemon: Daemon) -> None:
    from console.paths import resolve

    paths = resolve(daemon.home)
    with Client(paths, autostart=False) as client:
        hello = client.call("hello")
        with pytest.raises(ClientError) as blocking:
            client.call("run.get", run="no-such-run")

    async def through_asyncio() -> tuple[dict, ClientError, list[dict]]:
        client = aio.AsyncClient(paths)
        await client.open(autostart=False)
        try:
            got = await client.call("hello")
            try:
                await client.call("run.get", run="no-such-run")
            except ClientError as exc:
                err = exc
        finally:
            await client.close()
        streamed = [e async for e in aio.stream(paths, "export")]
        return got, err, streamed

    got, err, streamed = asyncio.run(through_asyncio())
    assert got["pid"] == hello["pid"] and got["protocol"] == hello["protocol"]
    assert (err.code, err.message) == (blocking.value.code, blocking.value.message)
    assert streamed[-1]["kind"] == "stream.result"


def test_no_import_circle_in_the_client_or_the_cli() -> None:
    from tests.house.import_graph import circles, graph

    mine = [c for c in circles(graph(REPO))
            if any(m.startswith(("console.client", "console.cli")) for m in c)]
    assert mine == []


def test_importing_the_package_loads_no_metadata_reader() -> None:
    code = "import sys, console; print(console.__version__, 'importlib.metadata' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.split()[1] == "False", done.stderr


def test_a_call_on_a_line_the_daemon_closed_fails_as_a_client_error(tmp_path: Path) -> None:
    """The daemon went away (it closed the connection) and the console sent a decision before
    its link noticed: asyncio's drain raised ConnectionResetError, which no caller expects
    from the client (they catch ClientError), and the console's decision worker closed the
    console with it."""
    from console.paths import resolve

    paths = resolve(tmp_path / "home")
    sock_path = paths.operator_sock
    sock_path.parent.mkdir(parents=True, exist_ok=True)

    async def closing_daemon() -> ClientError | BaseException | None:
        async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()

        server = await asyncio.start_unix_server(hang_up, path=str(sock_path))
        client = aio.AsyncClient(paths)
        try:
            await client.open(autostart=False)
            async for event in client.events():  # the client saw the line close
                if event.get("kind") == "client.disconnected":
                    break
            try:
                await client.call("approval.decide", id="rq01", allow=True, scope="once")
            except BaseException as exc:  # noqa: BLE001 - which kind is what is tested
                return exc
            return None
        finally:
            await client.close()
            server.close()

    failed = asyncio.run(closing_daemon())
    assert isinstance(failed, ClientError), repr(failed)
    assert failed.code == "disconnected"
