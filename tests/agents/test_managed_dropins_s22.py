"""Review s22 (Claude Code's managed layer): an organisation's policy in the host's
`/etc/claude-code/managed-settings.d/*.json` drop-ins was lost inside every sandbox.

Claude Code (2.1.197) reads its managed layer from `/etc/claude-code/managed-settings.json` and
then each `managed-settings.d/*.json` (not starting with a dot), in name order, merged over it:
objects deeply, lists joined, other values replaced. Pilothouse binds its own folder at
`/etc/claude-code` in the sandbox, with one file merged from the host's managed-settings.json
only: a deny rule an organisation ships as a drop-in (`Read(**/.env)`, which Claude Code applies
to the tools no Pilothouse hook answers, Read among them), its own PreToolUse hook and its other
keys were gone inside, so the model read what the organisation's policy keeps from it. The merged
file now takes the drop-ins too, in Claude Code's order, with Pilothouse's keys forced last; a
change to a drop-in makes a prepared run folder stale, as a change to the base file does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from console.agents import CLAUDE_MANAGED_SETTINGS, HOOK_PATH, managed_settings, run_file_sources

ORG_HOOK = {"matcher": "*", "hooks": [{"type": "command", "command": "/usr/local/bin/org-audit"}]}


def _host(tmp_path: Path, base: dict | None, dropins: dict[str, object]) -> Path:
    host = tmp_path / "managed-settings.json"
    if base is not None:
        host.write_text(json.dumps(base))
    folder = tmp_path / "managed-settings.d"
    folder.mkdir()
    for name, data in dropins.items():
        (folder / name).write_text(data if isinstance(data, str) else json.dumps(data))
    return host


def _hook_commands(merged: dict) -> list[str]:
    return [h["command"] for entry in merged["hooks"]["PreToolUse"] for h in entry["hooks"]]


def test_an_organisations_drop_ins_reach_the_sandbox_in_claude_codes_order(tmp_path: Path) -> None:
    host = _host(tmp_path, {"permissions": {"deny": ["Read(**/.env)"]}, "model": "base"}, {
        "20-later.json": {"model": "later", "permissions": {"deny": ["Read(**/*.pem)"]}},
        "10-org.json": {"permissions": {"deny": ["Read(**/.env)", "Read(**/id_*)"]},
                        "hooks": {"PreToolUse": [ORG_HOOK]}, "env": {"ORG": "1"}},
        ".hidden.json": {"model": "hidden"},  # Claude Code skips these
        "notes.txt": "{}",  # and names that do not end in .json
        "30-broken.json": "{not json",  # and files it cannot read
    })
    merged = managed_settings(host)
    assert merged["permissions"]["deny"] == ["Read(**/.env)", "Read(**/id_*)", "Read(**/*.pem)"], merged
    assert merged["model"] == "later", merged
    assert merged["env"]["ORG"] == "1", merged
    assert _hook_commands(merged) == ["/usr/local/bin/org-audit", HOOK_PATH], merged["hooks"]


def test_drop_ins_without_a_base_file_count_too(tmp_path: Path) -> None:
    host = _host(tmp_path, None, {"50-org.json": {"permissions": {"deny": ["Read(**/.env)"]}}})
    merged = managed_settings(host)
    assert merged.get("permissions", {}).get("deny") == ["Read(**/.env)"], merged
    assert HOOK_PATH in _hook_commands(merged)


def test_a_drop_in_cannot_take_pilothouses_keys_away(tmp_path: Path) -> None:
    host = _host(tmp_path, {}, {"99-off.json": {
        "disableAllHooks": True, "allowManagedHooksOnly": False, "disableSkillShellExecution": False,
        "allowManagedMcpServersOnly": False, "sandbox": {"enabled": True},
        "env": {"CLAUDE_CODE_SHELL_PREFIX": "/workspace/x", "LD_PRELOAD": "/workspace/x.so"}}})
    merged = managed_settings(host)
    assert "disableAllHooks" not in merged
    for key in ("allowManagedHooksOnly", "disableSkillShellExecution", "allowManagedMcpServersOnly"):
        assert merged[key] is True, key
    assert merged["sandbox"] == {"enabled": False}
    assert merged["env"]["CLAUDE_CODE_SHELL_PREFIX"] == "" and merged["env"]["LD_PRELOAD"] == ""
    assert _hook_commands(merged) == [HOOK_PATH]


def test_no_host_settings_at_all_gives_ours(tmp_path: Path) -> None:
    assert managed_settings(tmp_path / "absent.json") == CLAUDE_MANAGED_SETTINGS


def test_a_drop_in_is_a_source_of_the_run_folder(tmp_path: Path, monkeypatch) -> None:
    """A prepared (spare) run folder holds a copy made earlier: an organisation's new drop-in
    must make it stale, as an edit of the base file does."""
    import console.agents as agents

    host = _host(tmp_path, {}, {"10-org.json": {}})
    monkeypatch.setattr(agents, "HOST_MANAGED_SETTINGS", host)
    sources = run_file_sources()
    assert tmp_path / "managed-settings.d" in sources, sources
    assert tmp_path / "managed-settings.d" / "10-org.json" in sources, sources
    os.remove(tmp_path / "managed-settings.d" / "10-org.json")
    assert tmp_path / "managed-settings.d" / "10-org.json" not in run_file_sources()
