"""Prometheus text parsing, counter deltas, and scrapes of real local HTTP servers (asyncio
and http.server on 127.0.0.1) serving fixture metrics."""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from console.gpu.scrape import (
    CounterDeltas,
    Sample,
    ScrapeError,
    Scraper,
    detect,
    fetch,
    parse_line,
    parse_text,
    target_url,
)

VLLM = """\
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{{engine="0",model_name="qwen"}} {p0}
vllm:prompt_tokens_total{{engine="1",model_name="qwen"}} {p1}
# HELP vllm:generation_tokens_total Number of generation tokens processed.
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{{engine="0",model_name="qwen"}} {g0}
vllm:generation_tokens_total{{engine="1",model_name="qwen"}} {g1}
# HELP vllm:generation_tokens_created Number of generation tokens processed.
# TYPE vllm:generation_tokens_created gauge
vllm:generation_tokens_created{{engine="0",model_name="qwen"}} 1.7e+09
vllm:num_requests_running{{model_name="qwen"}} 3.0
"""
SGLANG = """\
# TYPE sglang:prompt_tokens_total counter
sglang:prompt_tokens_total{model_name="llama"} 1200.0
# TYPE sglang:generation_tokens_total counter
sglang:generation_tokens_total{model_name="llama"} 340.0
"""
LLAMACPP = """\
# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 6886
# HELP llamacpp:tokens_predicted_total Number of generation tokens processed.
# TYPE llamacpp:tokens_predicted_total counter
llamacpp:tokens_predicted_total 3469
llamacpp:prompt_tokens_seconds 2.37151
"""
TGI = """\
# TYPE tgi_request_generated_tokens histogram
tgi_request_generated_tokens_bucket{le="1"} 0
tgi_request_generated_tokens_bucket{le="+Inf"} 12
tgi_request_generated_tokens_sum 2400
tgi_request_generated_tokens_count 12
# TYPE tgi_request_input_length histogram
tgi_request_input_length_bucket{le="+Inf"} 12
tgi_request_input_length_sum 9000
tgi_request_input_length_count 12
"""


def vllm(p0: int, p1: int, g0: int, g1: int) -> str:
    return VLLM.format(p0=p0, p1=p1, g0=g0, g1=g1)


def test_parse_line_shapes() -> None:
    assert parse_line("# HELP x help text") is None and parse_line("   ") is None
    assert parse_line("up 1") == Sample("up", (), 1.0)
    assert parse_line("up 1 1700000000000") == Sample("up", (), 1.0)  # with a timestamp
    s = parse_line(r'x_total{path="/a,b",q="say \"hi\"\n",empty=""} 3.5e2')
    assert s is not None and s.value == 350.0
    assert s.labels == (("path", "/a,b"), ("q", 'say "hi"\n'), ("empty", ""))
    assert s.label("path") == "/a,b"
    assert parse_line('y{a="1",} +Inf').value == math.inf  # type: ignore[union-attr]
    assert math.isnan(parse_line("z NaN").value)  # type: ignore[union-attr]
    for bad in ("1abc 2", "x{a=1} 2", 'x{a="1"', "x", "x 1 2 3", "x abc"):
        with pytest.raises(ValueError):
            parse_line(bad)


def test_parse_text_counts_bad_lines_and_detects_servers() -> None:
    samples, bad = parse_text(vllm(10, 20, 1, 2) + "garbage{ line\n")
    assert bad == 1 and len(samples) == 6
    assert detect(samples) == "vllm"
    assert detect(parse_text(SGLANG)[0]) == "sglang"
    assert detect(parse_text(LLAMACPP)[0]) == "llama.cpp"
    assert detect(parse_text(TGI)[0]) == "tgi"
    assert detect(parse_text("up 1\n")[0]) is None


def test_counter_deltas_baseline_growth_reset_and_new_series() -> None:
    names = ("vllm:prompt_tokens_total", "vllm:generation_tokens_total")
    d = CounterDeltas()
    assert d.update(parse_text(vllm(100, 50, 10, 5))[0], names) == dict.fromkeys(names, 0.0)
    # +20 and +30 prompt, +7 and +0 generated
    assert d.update(parse_text(vllm(120, 80, 17, 5))[0], names) == {
        names[0]: 50.0, names[1]: 7.0}
    # engine 0 restarted (120 -> 4, 17 -> 2): its new values are the delta
    assert d.update(parse_text(vllm(4, 80, 2, 6))[0], names) == {names[0]: 4.0, names[1]: 3.0}
    # a new model appears: its whole value counts
    extra = 'vllm:generation_tokens_total{engine="0",model_name="other"} 9\n'
    assert d.update(parse_text(vllm(4, 80, 2, 6) + extra)[0], names)[names[1]] == 9.0


def test_target_url() -> None:
    assert target_url("127.0.0.1:8000") == "http://127.0.0.1:8000/metrics"
    assert target_url("http://localhost:8080/") == "http://localhost:8080/metrics"
    assert target_url("http://[::1]:9/stats/prom?x=1") == "http://[::1]:9/stats/prom?x=1"


# --- against real local servers ----------------------------------------------------------------


class Served:
    """An asyncio HTTP server on 127.0.0.1 answering each GET with the next body."""

    def __init__(self, bodies: list[str], *, chunked: bool = False, status: str = "200 OK",
                 stall: bool = False) -> None:
        self.bodies, self.chunked, self.status, self.stall = bodies, chunked, status, stall
        self.requests: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        self.requests.append(head)
        if self.stall:  # never answer; wait for the client to give up and hang up
            await reader.read()
            writer.close()
            return
        body = (self.bodies.pop(0) if len(self.bodies) > 1 else self.bodies[0]).encode()
        if self.chunked:
            payload = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 50]), body[i:i + 50])
                               for i in range(0, len(body), 50)) + b"0\r\n\r\n"
            headers = b"Transfer-Encoding: chunked\r\n"
        else:
            payload, headers = body, b"Content-Length: %d\r\n" % len(body)
        writer.write(b"HTTP/1.1 " + self.status.encode() + b"\r\nContent-Type: text/plain; "
                     b"version=0.0.4\r\n" + headers + b"\r\n" + payload)
        await writer.drain()
        writer.close()


@pytest.fixture
async def serve() -> AsyncIterator:
    servers: list[asyncio.base_events.Server] = []

    async def start(served: Served) -> str:
        server = await asyncio.start_server(served.handle, "127.0.0.1", 0)
        servers.append(server)
        return f"127.0.0.1:{server.sockets[0].getsockname()[1]}"

    yield start
    for server in servers:
        server.close()


async def test_scrape_vllm_deltas_and_reset(serve) -> None:  # type: ignore[no-untyped-def]
    served = Served([vllm(1000, 0, 300, 0), vllm(1100, 50, 340, 10), vllm(30, 0, 12, 0)])
    target = await serve(served)
    seen: list[tuple[str, int, int]] = []
    scraper = Scraper([target], on_delta=lambda url, p, g, ts: seen.append((url, p, g)))
    t = scraper.targets[0]
    assert await scraper.scrape(t) == (0, 0)  # the baseline
    assert await scraper.scrape(t) == (150, 50)  # +100 +50 prompt, +40 +10 generated
    assert await scraper.scrape(t) == (30, 12)  # the server restarted
    assert seen == [(f"http://{target}/metrics", 0, 0), (f"http://{target}/metrics", 150, 50),
                    (f"http://{target}/metrics", 30, 12)]
    status = scraper.status()[0]
    assert status["kind"] == "vllm" and status["ok"] and status["generation_tokens"] == 62
    assert served.requests[0].startswith(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:")


@pytest.mark.parametrize("text, kind, delta", [
    (SGLANG, "sglang", (100, 10)),
    (LLAMACPP, "llama.cpp", (100, 10)),
    (TGI, "tgi", (100, 10)),
])
async def test_scrape_each_server_kind(serve, text: str, kind: str,  # type: ignore[no-untyped-def]
                                       delta: tuple[int, int]) -> None:
    bumped = (text.replace("1200.0", "1300.0").replace("340.0", "350.0")
              .replace("6886", "6986").replace("3469", "3479")
              .replace("_sum 9000", "_sum 9100").replace("_sum 2400", "_sum 2410"))
    target = await serve(Served([text, bumped], chunked=True))
    scraper = Scraper([target])
    assert await scraper.scrape(scraper.targets[0]) == (0, 0)
    assert await scraper.scrape(scraper.targets[0]) == delta
    assert scraper.targets[0].kind == kind


async def test_scrape_failures_are_reported_with_backoff(serve) -> None:  # type: ignore[no-untyped-def]
    not_found = await serve(Served(["nope"], status="404 Not Found"))
    no_counters = await serve(Served(["up 1\n"]))
    stalled = await serve(Served(["x"], stall=True))
    scraper = Scraper([not_found, no_counters, stalled, "127.0.0.1:9"], timeout_s=0.3,
                      clock=lambda: 100.0)
    results = await asyncio.gather(*(scraper.scrape(t) for t in scraper.targets))
    assert results == [None, None, None, None]
    errors = [t.error or "" for t in scraper.targets]
    assert "answered '404 Not Found'" in errors[0]
    assert "no token counters" in errors[1]
    assert "no answer within 0.3 s" in errors[2]
    assert errors[3].startswith("http://127.0.0.1:9/metrics: ")
    assert all(t.next_at == 100.0 + 4.0 for t in scraper.targets)  # 2 s x 2^1 after 1 failure
    assert not any(s["ok"] for s in scraper.status())


async def test_fetch_refuses_other_schemes() -> None:
    with pytest.raises(ScrapeError, match="only http"):
        await fetch("https://127.0.0.1:1/metrics")


@pytest.fixture
def stdlib_server() -> Iterator[tuple[str, list[str]]]:
    """http.server in a thread: HTTP/1.0, no Content-Length, body until close."""
    bodies = [LLAMACPP, LLAMACPP.replace("3469", "3500")]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            body = (bodies.pop(0) if len(bodies) > 1 else bodies[0]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}", bodies
    server.shutdown()
    server.server_close()


async def test_scrape_stdlib_http_server(stdlib_server: tuple[str, list[str]]) -> None:
    target, _ = stdlib_server
    scraper = Scraper([target])
    assert await scraper.scrape(scraper.targets[0]) == (0, 0)
    assert await scraper.scrape(scraper.targets[0]) == (0, 31)


async def test_run_loop_scrapes_on_schedule(serve) -> None:  # type: ignore[no-untyped-def]
    target = await serve(Served([vllm(0, 0, 0, 0), vllm(0, 0, 5, 0), vllm(0, 0, 9, 0)]))
    seen: list[int] = []
    scraper = Scraper([target], interval_s=0.1, on_delta=lambda u, p, g, ts: seen.append(g))
    task = asyncio.create_task(scraper.run())
    for _ in range(100):
        await asyncio.sleep(0.02)
        if sum(seen) >= 9:
            break
    task.cancel()
    assert sum(seen) == 9 and seen[0] == 0
