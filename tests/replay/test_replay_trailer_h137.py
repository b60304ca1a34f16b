"""Attack review h137 on 1ca9d23: a chunked answer's trailer is read without a bound.

ChunkedBody bounds a chunk-size line (1 KiB) but keeps a trailer line that never ends in its
buffer whole: a hostile server sends `0\r\n` and then trailer bytes without a CRLF, and the replay
client holds (and copies, every read) all of it until its 600 s timeout. Secure: a trailer line
past MAX_HEAD is bad framing, as an over-long size line is.
"""

from __future__ import annotations

import pytest

from console.replay.client import ChunkedBody, ClientError


def test_an_endless_trailer_line_is_refused_not_held() -> None:
    body = ChunkedBody()
    assert body.feed(b"2\r\nok\r\n0\r\n") == b"ok"
    with pytest.raises(ClientError):
        for _ in range(64):  # 4 MiB of one trailer line
            body.feed(b"X" * 65536)
            assert len(body.buf) <= 128 * 1024, len(body.buf)
