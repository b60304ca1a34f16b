"""The built-in profiles load, validate, and keep their allowlists narrow and explained."""

from __future__ import annotations

import ipaddress
import json
import re
import tomllib

import pytest

from console.agents import (
    CLAUDE_SETTINGS,
    CODEX_CONFIG,
    HOME_DIRS,
    HOME_FILES,
    home_mounts,
    install_run_files,
)
from console.config import load as config

BUILT_IN = ("demo", "claude", "codex", "aider", "shell")


@pytest.fixture(scope="module")
def embedded() -> config.Config:
    return config.load(None)


@pytest.fixture(scope="module")
def raw() -> dict:
    return tomllib.loads(config.embedded_text())


def test_every_built_in_profile_is_there_and_complete(embedded: config.Config, raw: dict) -> None:
    assert set(BUILT_IN) <= set(embedded.profiles)
    for name in BUILT_IN:
        profile = embedded.profile(name)
        assert profile.command and all(isinstance(w, str) and w for w in profile.command), name
        assert len(profile.description) > 20, f"{name}: say what the profile is for"
        table = raw["profiles"][name]
        # Written out, not left to the defaults: a reader of profiles.toml sees the policy.
        assert isinstance(table.get("network"), dict), f"{name} has no [network] table"
        assert isinstance(table.get("exec"), dict), f"{name} has no [exec] table"
        assert table["network"].get("default") in ("allow", "ask", "deny")
        assert table["exec"].get("default") in ("allow", "ask", "deny")


def test_expected_commands_and_keys(embedded: config.Config) -> None:
    assert embedded.profile("demo").command == ["ph-demo-agent"]
    assert embedded.profile("claude").command == ["claude"]
    assert embedded.profile("codex").command == ["codex"]
    assert embedded.profile("aider").command == ["aider"]
    assert "ANTHROPIC_API_KEY" in embedded.profile("claude").env
    assert "OPENAI_API_KEY" in embedded.profile("codex").env
    # No built-in profile turns the sandbox off or names an image nobody documented.
    for name in BUILT_IN:
        assert embedded.profile(name).sandbox == "auto"
        assert embedded.profile(name).image is None


# Second-level labels under which anyone can register (co.uk, com.au): a wildcard over them is
# as wide as one over a top-level domain.
PUBLIC_SECOND_LEVEL = {"co", "com", "net", "org", "ac", "gov", "edu", "ne", "or"}


def too_wide(pattern: str) -> bool:
    """True for a host pattern that covers a whole top-level (or public second-level) domain."""
    host = pattern.rsplit(":", 1)[0] if pattern.count(":") == 1 else pattern
    try:
        ipaddress.ip_network(host.strip("[]"), strict=False)
        return False  # an address or a CIDR names itself
    except ValueError:
        pass
    wildcard = host.startswith("*")
    labels = host.removeprefix("**.").removeprefix("*.").split(".")
    if len(labels) < 2 or not all(labels) or "*" in "".join(labels):
        return True
    return wildcard and len(labels) == 2 and labels[0] in PUBLIC_SECOND_LEVEL


def test_the_width_check_itself() -> None:
    for wide in ("com", "*.com", "**.org", "**.co.uk", "*.com.au", "a*.b.com"):
        assert too_wide(wide), wide
    for narrow in ("pypi.org", "**.github.com", "api.anthropic.com", "127.0.0.1:8000",
                   "10.0.0.0/8", "*.example.co.uk"):
        assert not too_wide(narrow), narrow


def test_no_allow_rule_opens_a_whole_top_level_domain(embedded: config.Config) -> None:
    for name in BUILT_IN:
        for rule in embedded.profile(name).network.allow:
            assert not too_wide(rule.text), f"{name}: allow rule {rule.text!r} is too wide"


def test_each_allowlist_is_minimal_and_commented() -> None:
    expected = {
        "demo": {"pypi.org", "files.pythonhosted.org"},
        "claude": {"api.anthropic.com"},
        "codex": {"api.openai.com"},
        "aider": {"api.openai.com", "api.anthropic.com"},
        "shell": set(),
    }
    cfg = config.load(None)
    for name, hosts in expected.items():
        assert {r.text for r in cfg.profile(name).network.allow} == hosts, name
    # Every allow entry says why it is there, on its own line.
    text = config.embedded_text()
    for name in expected:
        for host in expected[name]:
            lines = [ln for ln in text.splitlines() if re.search(rf'"{re.escape(host)}"', ln)]
            assert lines and all("#" in ln for ln in lines), f"{name}: comment {host!r}"


def test_demo_policy_decides_the_way_the_demo_expects(embedded: config.Config) -> None:
    from console.policy import ExecRules

    rules = ExecRules.from_config(embedded.profile("demo").exec)

    def action(cmd: str) -> str:
        return rules.evaluate(cmd).action

    for cmd in ("ls -la", "cat README.md", "git status --short", "git diff --stat"):
        assert action(cmd) == "allow", cmd
    for cmd in ("pytest -q", "git push origin main", "pip install requests"):
        assert action(cmd) == "ask", cmd
    for cmd in ("rm -rf /", "git push --force origin main", "git reset --hard HEAD~3"):
        assert action(cmd) == "deny", cmd
    deny = {r.text for r in embedded.profile("demo").network.deny}
    assert deny == {"**.example-tracker.com"}


def test_run_folder_files(tmp_path) -> None:
    run_dir = tmp_path / "run"
    assert install_run_files(run_dir) == []
    wrapper = run_dir / "bin" / "ph-demo-agent"
    assert wrapper.stat().st_mode & 0o111 and (run_dir / "bin" / "demo.py").is_file()
    mounts = dict((inside, src) for src, inside in home_mounts(run_dir))
    # ~/.codex whole, its pinned files in it (review h170: no NAME.config.toml can be made there)
    assert set(mounts) == {f"/home/agent/{rel}" for rel in (*HOME_FILES, *HOME_DIRS, ".codex")
                           if not rel.startswith(".codex/")}
    assert {p.name for p in mounts["/home/agent/.codex"].iterdir()} >= {
        "config.toml", ".env", "environments.toml", "sessions", "sqlite", "log", "files"}
    assert all(not any(mounts[f"/home/agent/{rel}"].iterdir()) for rel in HOME_DIRS)  # empty
    settings = json.loads(mounts["/home/agent/.claude/settings.json"].read_text())
    assert settings == CLAUDE_SETTINGS
    hook = settings["hooks"]["PreToolUse"][0]
    assert hook["matcher"] == "*"  # every tool reaches the hook (it lets the read-only ones by)
    # By its full path: no PATH a settings layer or the agent sets can pick another one.
    # onFailure: a killed or failed hook blocks the call (newer Claude Code; older ignore it)
    assert hook["hooks"] == [{"type": "command", "command": "/run/pilothouse/bin/ph-claude-hook",
                              "timeout": 900, "onFailure": "block"}]
    assert settings["sandbox"] == {"enabled": False}
    codex = tomllib.loads((mounts["/home/agent/.codex"] / "config.toml").read_text())
    assert codex == tomllib.loads(CODEX_CONFIG)
    # its databases and log in folders of their own below the read-only ~/.codex (review h170)
    assert (codex["sqlite_home"], codex["log_dir"]) == ("/home/agent/.codex/sqlite",
                                                       "/home/agent/.codex/log")
    assert (codex["sandbox_mode"], codex["approval_policy"]) == ("danger-full-access", "never")
    assert codex["analytics"] == {"enabled": False}
    # unified_exec_tty: no terminal, so write_stdin (no hook sees it) has no stdin to type into (review s20)
    assert codex["features"] == {"plugins": False, "apps": False, "shell_snapshot": False,
                                 "unified_exec_tty": False}
    assert codex["allow_login_shell"] is False  # commands source nothing first (review s19)
    assert codex["hooks"]["PreToolUse"] == [{"matcher": "^(Bash|apply_patch)$", "hooks": [
        {"type": "command", "command": "/run/pilothouse/bin/ph-claude-hook", "timeout": 900}]}]
    # trusted under the key Codex gives the hook in the sandbox's HOME
    assert list(codex["hooks"]["state"]) == ["/home/agent/.codex/config.toml:pre_tool_use:0:0"]
    # git identity in HOME (aider would otherwise write one into the repository's config)
    gitconfig = mounts["/home/agent/.gitconfig"].read_text()
    assert "name = Pilothouse agent" in gitconfig and "email = agent@pilothouse.invalid" in gitconfig
    # aider: usage asked for in streams; its model-info cache present, so nothing is downloaded
    assert "include_usage: true" in mounts["/home/agent/.aider.model.settings.yml"].read_text()
    cache = mounts["/home/agent/.aider/caches/model_prices_and_context_window.json"]
    assert json.loads(cache.read_text())  # non-empty: an empty cache is fetched again


def test_managed_settings_close_what_no_hook_sees_over_the_hosts_own(tmp_path) -> None:
    """A skill's `!` shell lines and MCP servers the agent writes are never run by a hook's
    grace: our managed layer switches them off even where the host's managed settings say
    otherwise; the host's own allowed MCP servers stay its own (review I round 2, session 12)."""
    from console.agents import managed_settings

    host = tmp_path / "managed-settings.json"
    host.write_text(json.dumps({"disableSkillShellExecution": False,
                                "allowManagedMcpServersOnly": False,
                                "allowedMcpServers": [{"serverName": "org-docs"}]}))
    merged = managed_settings(host)
    assert merged["disableSkillShellExecution"] is True
    assert merged["allowManagedMcpServersOnly"] is True
    assert merged["allowedMcpServers"] == [{"serverName": "org-docs"}]
    ours = managed_settings(tmp_path / "absent.json")
    assert ours["disableSkillShellExecution"] is True and ours["allowedMcpServers"] == []
