"""What the inbox and the gates record, and how: security events committed before they take
effect, the rest batched, floods aggregated (console/daemon/floods.py), and every gate event
published on the bus for the consoles.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from console.daemon.bus import Bus
from console.daemon.floods import FloodControl, Fold
from console.daemon.live_config import LiveConfig
from console.daemon.storage import Storage
from console.text import destination

# Events the gate reports that must be durable before the connection proceeds.
SECURITY_NET_EVENTS = frozenset({"net.decision", "net.sni_mismatch"})
# Gate events a flood could repeat: aggregated per (run, kind, subject, decision) per second,
# each summary keeping what told its repeats apart (floods.Fold). A tunnel refused for its
# hello, or one that closed, was a row each: 26,000 a minute from one run (review s30).
NET_FOLDS = {
    "net.decision": Fold(listed=("method", "target", "address")),
    "net.rejected": Fold(listed=("method", "target", "reason")),
    "net.error": Fold(listed=("stage", "error")),
    "net.sni_mismatch": Fold(listed=("sni", "detail")),
    "net.closed": Fold(listed=("address",), summed=("bytes_up", "bytes_down")),
}
FLOOD_NET_EVENTS = frozenset(NET_FOLDS)
_DECIDED_BY = ("action", "how", "status", "stage")  # the field a gate event's outcome is in

GateRecord = Callable[[str, dict[str, Any]], Awaitable[None]]


class Recording:
    def __init__(self, storage: Storage, bus: Bus, config: LiveConfig) -> None:
        self.storage = storage
        self.bus = bus
        self.floods = FloodControl(self._emit_summary,
                                   lambda: config.cfg.bounds.events_per_second, folds=NET_FOLDS)

    def _emit_summary(self, kind: str, run_id: str | None, text: str,
                      data: dict[str, Any]) -> None:
        self.storage.record(kind, run_id=run_id, text=text, data=data, actor="daemon")

    def admit(self, run_id: str | None, kind: str, subject: str, decision: str,
              data: dict[str, Any]) -> bool:
        """Write this event's row now (True), or count it into this second's summary."""
        self.floods.start()
        return self.floods.admit(run_id, kind, subject, decision, data)

    def recorded(self, run_id: str | None, kind: str, subject: str, decision: str) -> None:
        """The row admit() let through is written (committed, for a security event)."""
        self.floods.recorded(run_id, kind, subject, decision)

    def start(self) -> None:
        """The flood windows' timer runs from the first run on (idempotent)."""
        self.floods.start()

    def refused(self, run_id: str, what: str) -> None:
        """A connection to `what` (gate, agent.sock) refused at a limit: counted, one row."""
        self.floods.refused(run_id, what)

    def run_ended(self, run_id: str) -> None:
        """Write the run's counted rows now."""
        self.floods.flush(run_id)

    async def close(self) -> None:
        await self.floods.stop()

    async def approval(self, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        """The inbox's record(): committed before the inbox goes on (it raises on failure)."""
        text = data.get("text") or data.get("summary") or data.get("subject") or ""
        actor = data.get("decided_by") or data.get("actor")
        return await self.storage.record_security(
            kind, run_id=data.get("run_id"), actor=actor, text=str(text)[:500], data=data)

    def for_gate(self, run_id: str) -> GateRecord:
        async def record(kind: str, data: dict[str, Any]) -> None:
            # [v6]:port: `::1:8443` reads as the address ::1:8443, another host (review h166)
            where = destination(data.get("host", ""), data.get("port", ""))
            text = f"{data.get('action') or ''} {where}".strip()
            flood_key = None
            if kind in FLOOD_NET_EVENTS and not data.get("asked"):
                subject = destination(data.get("host") or data.get("target", ""),
                                      data.get("port", ""))
                decision = str(next((data[k] for k in _DECIDED_BY if data.get(k)), "-"))
                flood_key = (run_id, kind, subject, decision)
                if not self.admit(*flood_key, data):
                    return  # counted into this second's summary row
            event = {"kind": kind, "run_id": run_id, "ts": time.time(), **data}
            if kind in SECURITY_NET_EVENTS:
                # Raises on failure: the gate then refuses the connection (fail closed), and
                # the key stays unseen (floods.py), so a retry is not let through unrecorded.
                await self.storage.record_security(kind, run_id=run_id, text=text, data=data,
                                                   actor=_actor(data))
            else:
                self.storage.record(kind, run_id=run_id, text=text, data=data)
            if flood_key is not None:
                self.recorded(*flood_key)
            self.bus.publish(event)

        return record


def _actor(data: dict[str, Any]) -> str | None:
    prov = data.get("provenance") or {}
    return prov.get("person") if isinstance(prov, dict) else None
