"""A rule saved from an approval loads the whole config file: an edit the daemon had not taken
on the record (a reload whose record was withdrawn or not confirmed, or one the watcher had not
run yet) came into force with it, unrecorded, and the status still said the old policy stood
(review s33, helper 131). The save now refuses while the file on disk is not the one in force;
once a reload has recorded the edit, the save goes through."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from console.config.profile_rules import PlannedRule
from console.daemon.live_config import ConfigReloader, LiveConfig
from console.daemon.ops.approvals import _save_planned
from console.protocol import Failure
from store.waits import StoreStuck, StoreUncertain

EDITED = ('[profiles.demo]\ncommand = ["true"]\n\n[profiles.demo.network]\n'
          'allow = ["evil.example.net:443"]\n')


@pytest.mark.parametrize("error", [StoreStuck, StoreUncertain])
def test_a_rule_is_not_saved_into_a_file_whose_edit_is_not_in_force(tmp_path: Path,
                                                                     error: type) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[profiles.demo]\ncommand = ["true"]\n')
    live = LiveConfig(config)
    rows: list[tuple[str, dict[str, Any]]] = []
    stuck = {"on": True}

    async def record_security(kind: str, **kw: Any) -> dict[str, Any]:
        if stuck["on"]:
            raise error("timed out (test)")
        rows.append((kind, kw.get("data") or {}))
        return {"id": len(rows)}

    storage: Any = SimpleNamespace(record_security=record_security, key=b"k" * 32)
    reloader = ConfigReloader(live, storage, on_change=lambda: None)
    config.write_text(EDITED)  # a person's edit, whose reload cannot be recorded

    def in_force() -> bool:
        return any(r.text == "evil.example.net:443"
                   for r in live.cfg.profile("demo").network.allow)

    with pytest.raises(Failure):
        asyncio.run(reloader.reload("bob", "file-change"))
    assert not in_force()
    stuck["on"] = False  # the store answers again
    core: Any = SimpleNamespace(config=live, paths=SimpleNamespace(config_file=config),
                                reloader=reloader, store=storage)
    rule = [PlannedRule("demo", "exec", "allow", "make lint")]
    out = asyncio.run(_save_planned(core, SimpleNamespace(user="alice"), rule, "abcd"))
    assert "not in force yet" in out.get("error", ""), out
    assert not in_force() and not rows
    assert config.read_text() == EDITED  # nothing written
    asyncio.run(reloader.reload("bob", "reload"))  # recorded now, and in force
    assert in_force() and [k for k, _ in rows] == ["policy.changed"]
    out = asyncio.run(_save_planned(core, SimpleNamespace(user="alice"), rule, "abcd"))
    assert "error" not in out, out
    assert [k for k, _ in rows] == ["policy.changed", "policy.changed"]
    assert "make lint" in config.read_text()
