"""A real OpenAI-compatible server running a real (tiny, random) model on CPU: llama-cpp-python's
server with the GGUF of tests/replay/tiny_gguf.py, on 127.0.0.1, in its own process.

Installed by `make model-server-install` into its own virtual environment (with gguf to write
the model and the openai SDK for the sandboxed client of the end-to-end test), from a wheel
built once and kept in the wheelhouse beside it. The venv is made from /usr/bin/python3 under
/usr/local, so a sandbox (which sees the host's /usr read-only) can run its Python too.

What it is and is not: real tokenisation, real streaming, real compute and timings, answers
of exactly max_tokens (the GGUF never samples end-of-sequence); nonsense text. Requests are
served one at a time (llama-cpp-python has one context). Its streams carry no usage (it
ignores stream_options); whole answers do.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PREFIX = Path(os.environ.get("PILOTHOUSE_BENCH_PREFIX", "/usr/local/lib/pilothouse-bench"))
VENV = PREFIX / "model-server"
PYTHON = VENV / "bin" / "python"
MODEL = "tiny-random"


def missing() -> str | None:
    """Why the server cannot run here, or None."""
    if not PYTHON.exists() or not list(VENV.glob("lib/python3*/site-packages/llama_cpp/server")):
        return (f"llama-cpp-python's server is not installed in {VENV} "
                "(run: make model-server-install)")
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LlamaServer:
    def __init__(self, folder: Path, *, n_ctx: int = 4096, start_timeout_s: float = 120.0,
                 size: tuple[int, int] = (64, 2), cpus: set[int] | None = None) -> None:
        """size: the GGUF's width and layers (tests/replay/tiny_gguf.py); cpus: the CPUs the
        server may run on (a benchmark keeps its clients off them)."""
        folder.mkdir(parents=True, exist_ok=True)
        self.gguf = folder / "tiny-random.gguf"
        subprocess.run([str(PYTHON), "-m", "tests.replay.tiny_gguf", str(self.gguf),
                        *map(str, size)], cwd=ROOT, check=True, capture_output=True, timeout=120)
        self.port = _free_port()
        self.log = folder / "llama-server.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [str(PYTHON), "-m", "llama_cpp.server", "--model", str(self.gguf),
                 "--model_alias", MODEL, "--host", "127.0.0.1", "--port", str(self.port),
                 "--n_ctx", str(n_ctx), "--interrupt_requests", "False", "--verbose", "False"],
                cwd=folder, stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
        deadline = time.monotonic() + start_timeout_s
        while True:
            try:
                with urllib.request.urlopen(f"{self.v1}/models", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"llama-cpp-python's server did not start: "
                                   f"{self.log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.2)

    @property
    def v1(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
