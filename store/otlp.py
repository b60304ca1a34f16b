"""A copy of the audit history for the security team's collector: each security event and each
witness line as an OpenTelemetry log record, sent with OTLP over HTTP (the JSON encoding of
the OTLP specification, POST to `/v1/logs`), the way Codex and Claude Code telemetry is
already collected. Standard library only: no SDK to install for it.

The writer thread only queues (bounded, never blocking a commit); one sender thread batches
and posts. When the collector is down, records are dropped and counted, and the next record
that goes out carries the count (`pilothouse.dropped`), so a gap is visible on the far side.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from typing import Any

log = logging.getLogger("pilothouse.store")

MAX_QUEUE = 10_000
MAX_BATCH = 512


def _value(v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    return {"stringValue": v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)}


def _attrs(d: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": _value(v)} for k, v in d.items() if v is not None]


class OtlpExporter:
    """Call it with a record's name, body, time and attributes; it is sent soon after."""

    def __init__(self, endpoint: str, *, service: str = "pilothouse", timeout: float = 5.0) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._resource = {"attributes": _attrs({"service.name": service})}
        self._q: deque[dict[str, Any]] = deque()
        self._wake = threading.Event()
        self._closing = False
        self.sent = 0
        self.dropped = 0
        self._dropped_reported = 0
        self._thread = threading.Thread(target=self._run, name="audit-otlp", daemon=True)
        self._thread.start()

    def __call__(self, name: str, body: str, ts: float, attributes: dict[str, Any]) -> None:
        if self._closing or len(self._q) >= MAX_QUEUE:
            self.dropped += 1
            return
        self._q.append({"timeUnixNano": str(int(ts * 1e9)), "severityNumber": 9,
                        "severityText": "INFO", "body": {"stringValue": body},
                        "attributes": _attrs({"event.name": name, **attributes})})
        self._wake.set()

    def event(self, row: dict[str, Any]) -> None:
        """One committed event (as the store returns it)."""
        self(row["kind"], row.get("text") or row["kind"], row["ts"], {
            "pilothouse.event.id": row["id"], "pilothouse.event.hash": row["hash"],
            "pilothouse.run_id": row.get("run_id"), "pilothouse.actor": row.get("actor"),
            "pilothouse.data": row.get("data")})

    def witness(self, line: str) -> None:
        """One witness line (store/witness.py), as it was written."""
        self("pilothouse.audit.head", line, time.time(), {})

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued (for at most `timeout`), then stop."""
        self._closing = True
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            self._wake.wait(0.5)
            self._wake.clear()
            while self._q:
                batch = [self._q.popleft() for _ in range(min(MAX_BATCH, len(self._q)))]
                self._post(batch)
            if self._closing:
                return

    def _post(self, records: list[dict[str, Any]]) -> None:
        dropped = self.dropped
        if dropped != self._dropped_reported:
            records[0]["attributes"] += _attrs({"pilothouse.dropped": dropped})
        body = json.dumps({"resourceLogs": [{"resource": self._resource, "scopeLogs": [{
            "scope": {"name": "pilothouse.audit"}, "logRecords": records}]}]}).encode()
        req = urllib.request.Request(self.endpoint, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - a URL the person configured
                resp.read()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            self.dropped += len(records)
            log.warning("audit copy to %s failed: %s", self.endpoint, exc)
            return
        self.sent += len(records)
        self._dropped_reported = dropped
