"""The wire format of both sockets: JSON lines, versioned, bounded; and JSON text itself.

One message per line, UTF-8 JSON objects. Three shapes:

    request   {"v": 1, "id": 7, "op": "run.start", "args": {...}}
    response  {"v": 1, "id": 7, "ok": true, "result": {...}}
              {"v": 1, "id": 7, "ok": false, "error": {"code": "...", "message": "...", "hint": "..."}}
    event     {"v": 1, "event": {"kind": "...", ...}}      (only after a subscribe request)

docs/protocol.md lists the operations; console.protocol holds their words (error codes, event
kinds, topics). Lines longer than the reader's bound are refused without being buffered whole:
inputs from inside a sandbox are hostile.

JSON text (loads, dumps, dumps_indented) is made by the C scanner and encoder the json package
runs, set up here without json's own modules: `import json` brings re and enum, about 5 ms of
every CLI start, and `ps --json` is little more than a start (issue 17). The text is json's:
tests/core/test_wire_json.py holds it equal to json.loads and json.dumps, errors included.
Where CPython's _json is missing, json itself does the work.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing's, without importing typing: every CLI start would pay for it
if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable
    from typing import Any

VERSION = 1
OPERATOR_MAX_LINE = 4 * 1024 * 1024
# What one answer or streamed page holds at most, as JSON: a row list past it is cut (`fitting`)
# or sent in parts (`batched`), so no client meets a message longer than it reads.
ANSWER_MAX_BYTES = 2 * 1024 * 1024
AGENT_MAX_LINE = 64 * 1024
MAX_BLANK_LINES = 64  # in a row; a client never needs more than one


class ProtocolError(Exception):
    """A peer sent something that is not a valid message."""


class MessageRefused(ProtocolError):
    """Input no client sends by mistake (too long, too deep, a flood of blank lines): answered
    once, then the connection is closed."""


class MessageTooLong(MessageRefused):
    """A line over the bound: the stream cannot be resynchronised, so the connection ends."""


class Encoded:
    """An answer's result together with its JSON text, made once where its rows were
    measured (`fitted`, in a reader thread): `encode` writes the text as it is, and code in
    the daemon's own process reads `value`."""

    __slots__ = ("value", "text")

    def __init__(self, value: Any, text: str) -> None:
        self.value, self.text = value, text


def encode(message: dict[str, Any]) -> bytes:
    result = message.get("result")
    if type(result) is Encoded:
        head = dumps({k: v for k, v in message.items() if k != "result"})
        return (f'{head[:-1]},"result":{result.text}}}\n').encode()
    return (dumps(message) + "\n").encode()


def request(req_id: int, op: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"v": VERSION, "id": req_id, "op": op, "args": args or {}}


def ok(req_id: Any, result: Any = None) -> dict[str, Any]:
    return {"v": VERSION, "id": req_id, "ok": True, "result": result}


def error(req_id: Any, failure: Any) -> dict[str, Any]:
    """An error response; `failure` is a console.protocol.Failure (anything with to_wire())."""
    return {"v": VERSION, "id": req_id, "ok": False, "error": failure.to_wire()}


def event(payload: dict[str, Any]) -> dict[str, Any]:
    return {"v": VERSION, "event": payload}


def size(value: Any) -> int:
    """Bytes of `value` as JSON on the wire."""
    return len(dumps(value, default=str).encode("utf-8", "surrogatepass"))


def batched(items: list[Any], most: int = ANSWER_MAX_BYTES,
            measure: Callable[[Any], int] = size) -> list[list[Any]]:
    """`items` in order, cut into lists whose measures add up to at most `most` (one item
    each at least)."""
    out: list[list[Any]] = [[]]
    total = 0
    for item in items:
        n = measure(item)
        if out[-1] and total + n > most:
            out.append([])
            total = 0
        out[-1].append(item)
        total += n
    return out if out[0] else []


def fitted(rows: list[Any], most: int = ANSWER_MAX_BYTES) -> tuple[list[Any], str]:
    """(the longest head of `rows` that one answer holds, at least one row; that head as a
    JSON list). An answer may hold fewer rows than asked for, and its reader pages on from
    the last (docs/protocol.md). Each row is serialized once, for its size and its text;
    rows past the first that does not fit are not serialized."""
    texts: list[str] = []
    total = 0
    for row in rows:
        text = dumps(row)
        total += len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
        if texts and total > most:
            break
        texts.append(text)
    return rows[:len(texts)], f"[{','.join(texts)}]"


def fitting(rows: list[Any], most: int = ANSWER_MAX_BYTES) -> list[Any]:
    """The rows of `fitted`, without their text."""
    return fitted(rows, most)[0]


def decode(line: bytes) -> dict[str, Any]:
    try:
        msg = loads(line)
        # A \\uD800-\\uDFFF escape: JSON allows one unpaired, but it is no UTF-8 text, and
        # every answer that carried it (approvals.list with the request in it) would fail to
        # encode. Encoding the message again finds one; only lines with such an escape pay.
        if b"\\ud" in line or b"\\uD" in line:
            encode(msg)
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    except UnicodeEncodeError:
        raise ProtocolError("not UTF-8 text: a string holds an unpaired surrogate escape "
                            "(\\ud800-\\udfff)") from None
    except RecursionError:
        raise MessageRefused("JSON nested too deeply") from None
    except ValueError as exc:
        if is_syntax_error(exc):
            raise ProtocolError(f"not JSON: {exc}") from None
        # e.g. an integer past Python's digit limit
        raise MessageRefused(f"JSON value out of range: {str(exc)[:120]}") from None
    if not isinstance(msg, dict):
        raise ProtocolError("a message must be a JSON object")
    if type(msg.get("v")) is not int or msg["v"] != VERSION:  # not true, not 1.0 (review h190)
        raise ProtocolError(f"unsupported protocol version {msg.get('v')!r}; this side speaks {VERSION}")
    return msg


def parse_request(msg: dict[str, Any]) -> tuple[Any, str, dict[str, Any]]:
    req_id = msg.get("id")
    op = msg.get("op")
    args = msg.get("args", {})
    if not isinstance(op, str) or not op:
        raise ProtocolError("a request needs an 'op' string")
    if not isinstance(args, dict):
        raise ProtocolError("'args' must be an object")
    if req_id is not None and not isinstance(req_id, int | str):
        raise ProtocolError("'id' must be a number or a string")
    return req_id, op, args


async def read_message(reader: asyncio.StreamReader, max_line: int) -> dict[str, Any] | None:
    """Read one message; None at end of stream. Raises ProtocolError on oversize or bad JSON.

    The StreamReader's own limit must be at least max_line (see open_limits)."""
    line = await read_line(reader, max_line)
    return None if line is None else decode(line)


async def read_line(reader: asyncio.StreamReader, max_line: int) -> bytes | None:
    """read_message's line, not yet decoded (its size counts against a teammate's bound)."""
    import asyncio  # here, so the blocking CLI client does not import asyncio at start
    for _ in range(MAX_BLANK_LINES + 1):
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            if not exc.partial.strip():
                return None
            line = exc.partial
        except asyncio.LimitOverrunError:
            raise MessageTooLong(f"message longer than {max_line} bytes") from None
        if len(line) > max_line:
            raise MessageTooLong(f"message longer than {max_line} bytes")
        if line.strip():
            return line
    raise MessageRefused(f"more than {MAX_BLANK_LINES} blank lines in a row")


# --- JSON text -------------------------------------------------------------------------------

_WHITESPACE = " \t\n\r"  # JSON's four (json.decoder's WHITESPACE, without the regex)
_INF = float("inf")

try:
    from _json import encode_basestring as _string
    from _json import make_encoder as _make_encoder
    from _json import make_scanner as _make_scanner
except ImportError:  # not CPython: json's own pure-Python parts
    _make_scanner = None  # type: ignore[assignment]


class _ScanContext:
    """What the C scanner reads from a json.JSONDecoder: json.loads' defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": -_INF, "Infinity": _INF, "NaN": float("nan")}.__getitem__


def _syntax_error(message: str, text: str, pos: int) -> ValueError:
    from json.decoder import JSONDecodeError  # only for text that is not JSON

    return JSONDecodeError(message, text, pos)


def is_syntax_error(exc: BaseException) -> bool:
    """A loads() error that says the text is not JSON (json.JSONDecodeError), as opposed to a
    value out of range (a ValueError too: an integer past Python's digit limit)."""
    decoder = sys.modules.get("json.decoder")  # raising one imported it
    return decoder is not None and isinstance(exc, decoder.JSONDecodeError)


if _make_scanner is not None:
    _scan = _make_scanner(_ScanContext())

    def loads(text: str | bytes) -> Any:
        """json.loads for str, or bytes of UTF-8 (strictly: json.loads would also take
        UTF-16 and UTF-32, and lone surrogates encoded in UTF-8)."""
        if not isinstance(text, str):
            text = bytes(text).decode("utf-8")
        if text.startswith("\ufeff"):
            raise _syntax_error("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        start = len(text) - len(text.lstrip(_WHITESPACE))  # lstrip copies only if it strips
        try:
            value, end = _scan(text, start)
        except StopIteration as stop:
            raise _syntax_error("Expecting value", text, stop.value) from None
        except SystemError:
            # The C scanner raises its syntax errors through json.decoder, and only when that
            # module is loaded (this module does not load it: every CLI start would pay);
            # otherwise it fails without an error. Load it, and read again for the real one.
            import json.decoder  # noqa: F401

            value, end = _scan(text, start)
        if text[end:].strip(_WHITESPACE):
            rest = text[end:]
            raise _syntax_error("Extra data", text, end + len(rest) - len(rest.lstrip(_WHITESPACE)))
        return value

    def dumps(value: Any, *, compact: bool = True, default: Callable[[Any], Any] | None = None) -> str:
        """json.dumps(value, ensure_ascii=False) on one line: separators (",", ":") when
        compact, else json's own (", ", ": ")."""
        if default is None:
            default = _unserializable
        comma, colon = (",", ":") if compact else (", ", ": ")
        encode = _make_encoder({}, default, _string, None, colon, comma, False, False, True)
        return "".join(encode(value, 0))
else:
    import json as _json_module

    def loads(text: str | bytes) -> Any:
        if not isinstance(text, str):
            text = bytes(text).decode("utf-8")
        return _json_module.loads(text)

    def dumps(value: Any, *, compact: bool = True, default: Callable[[Any], Any] | None = None) -> str:
        return _json_module.dumps(value, ensure_ascii=False, default=default,
                                  separators=(",", ":") if compact else (", ", ": "))

    def _string(text: str) -> str:
        return _json_module.encoder.encode_basestring(text)


def _unserializable(value: Any) -> Any:
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")


def _number(value: float) -> str:
    """A float as json writes it (allow_nan, as json.dumps by default)."""
    if value != value:
        return "NaN"
    if value == _INF:
        return "Infinity"
    if value == -_INF:
        return "-Infinity"
    return float.__repr__(value)


def dumps_indented(value: Any, *, default: Callable[[Any], Any] | None = None) -> str:
    """json.dumps(value, indent=2, ensure_ascii=False): what `--json` prints for a person to
    read and a script to parse. (json itself writes indented text in Python, not C, too.)"""
    out: list[str] = []
    _indented(value, out, "\n", default or _unserializable)
    return "".join(out)


def _indented(value: Any, out: list[str], newline: str, default: Callable[[Any], Any]) -> None:
    # The order of json.encoder's _make_iterencode: str, None, True, False, int, float, then
    # lists and tuples, dicts, and default() for anything else.
    if isinstance(value, str):
        out.append(_string(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        out.append(_number(value))
    elif isinstance(value, (list, tuple)):
        if not value:
            out.append("[]")
            return
        inner = newline + "  "
        out.append("[")
        for i, item in enumerate(value):
            out.append(inner if i == 0 else "," + inner)
            _indented(item, out, inner, default)
        out.append(newline + "]")
    elif isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        inner = newline + "  "
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            out.append(inner if i == 0 else "," + inner)
            out.append(_string(_key(key)))
            out.append(": ")
            _indented(item, out, inner, default)
        out.append(newline + "}")
    else:
        _indented(default(value), out, newline, default)


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, float):
        return _number(key)
    if key is True:
        return "true"
    if key is False:
        return "false"
    if key is None:
        return "null"
    if isinstance(key, int):
        return int.__repr__(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {key.__class__.__name__}")
