"""Construction without running anything: bwrap options, Docker config, plans, cgroups."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from console.sandbox.base import (
    Limits,
    SandboxSpec,
    prepare_run_dir,
    sandbox_env,
)
from console.sandbox.bwrap_args import build_args, etc_masks
from console.sandbox.cgroups import Limiter
from console.sandbox.docker import LABEL_OWNER, LABEL_RUN, DockerBackend, ImageInfo


def _spec(tmp_path: Path, **kw) -> SandboxSpec:
    ws = tmp_path / "ws"
    ws.mkdir(exist_ok=True)
    rd = tmp_path / "runs" / "r1"
    prepare_run_dir(rd)
    return SandboxSpec(run_id="r1", profile="p", command=["true"], workspace=ws, run_dir=rd,
                       env={"PATH": "/usr/bin:/bin", "API_KEY": "k"}, **kw)  # fmt: skip


def _pairs(args: list[str], flag: str) -> list[tuple[str, str]]:
    return [(args[i + 1], args[i + 2]) for i, a in enumerate(args) if a == flag]


def test_gpu_devices_are_bound_only_for_gpu_runs(tmp_path):
    fake = ["/dev/nvidia0", "/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/dri/renderD128"]
    args = build_args(_spec(tmp_path, gpu=True, gpus=[1, 3]), gpu_devices=fake)
    assert _pairs(args, "--dev-bind") == [(d, d) for d in fake]
    assert ("CUDA_VISIBLE_DEVICES", "1,3") in _pairs(args, "--setenv")
    no_gpu = build_args(_spec(tmp_path), gpu_devices=fake)
    assert "--dev-bind" not in no_gpu


def test_bwrap_options_isolate(tmp_path):
    spec = _spec(tmp_path)
    args = build_args(spec)
    for flag in ("--unshare-all", "--die-with-parent", "--new-session", "--clearenv"):
        assert flag in args
    assert args[args.index("--cap-drop") + 1] == "ALL"
    binds = _pairs(args, "--bind") + _pairs(args, "--bind-fd")
    ro = _pairs(args, "--ro-bind") + _pairs(args, "--ro-bind-fd")
    # Sources go by descriptor: what was opened is what is bound (no path resolved later).
    fd_targets = {t: os.readlink(f"/proc/self/fd/{s}") for s, t in _pairs(args, "--bind-fd")
                  + _pairs(args, "--ro-bind-fd")}  # fmt: skip
    assert fd_targets["/workspace"] == str(spec.workspace)
    assert fd_targets["/run/pilothouse"] == str(spec.run_dir)
    targets = {t for _, t in binds + ro}
    for forbidden in ("/", "/root", "/home", "/var/run", "/run", str(Path.home())):
        assert forbidden not in targets
    assert not any(s == "/var/run/docker.sock" or s.startswith("/root") for s, _ in binds + ro)
    env = dict(_pairs(args, "--setenv"))
    assert env["HOME"] == "/home/agent" and "/run/pilothouse/bin" in env["PATH"]


def test_etc_masks_hide_what_others_cannot_read(tmp_path):
    etc = tmp_path / "etc"
    (etc / "private").mkdir(parents=True)
    (etc / "private").chmod(0o700)
    (etc / "secret").write_text("s")
    (etc / "secret").chmod(0o640)  # a group's (root's alone needs no mask: test_review_h167)
    (etc / "public").write_text("p")
    (etc / "public").chmod(0o644)
    files, dirs = etc_masks(str(etc))
    assert str(etc / "secret") in files
    assert str(etc / "private") in dirs
    assert str(etc / "public") not in files


def test_protected_plan(tmp_path):
    from console.sandbox.protect import plan_protection

    ws = tmp_path
    plan = {b.rel: b.kind for b in plan_protection(ws).binds}
    assert plan[".git"] == "mask-dir" and plan[".pilothouse.toml"] == "mask-dir"
    assert plan[".claude"] == "mask-dir" and plan[".mcp.json"] == "mask-dir"  # no file for git
    (ws / ".git").mkdir()
    (ws / ".git/config").write_text("[include]\n\tpath = ../shared.cfg\n")
    (ws / "shared.cfg").write_text("")
    p = plan_protection(ws)
    plan = {b.rel: b.kind for b in p.binds}
    p.close()
    assert plan[".git"] == "pin" and plan[".git/config"] == "ro"
    assert plan[".git/hooks"] == "mask-dir" and plan[".git/commondir"] == "mask-file"
    assert plan[".git/worktrees"] == "mask-dir" and plan[".git/modules"] == "mask-dir"
    assert plan["shared.cfg"] == "ro"  # what the config includes is protected too
    assert ".git/objects" not in plan and ".git/refs" not in plan  # commits still work


def test_git_worktree_file_is_protected_whole(tmp_path):
    from console.sandbox.protect import plan_protection

    (tmp_path / ".git").write_text("gitdir: /elsewhere\n")
    p = plan_protection(tmp_path)
    assert {b.rel: b.kind for b in p.binds}[".git"] == "ro"
    p.close()


def test_view_mountpoints_are_removed_only_when_unused(tmp_path):
    from console.sandbox.identity import agent_identity
    from console.sandbox.view import WorkspaceView

    ws = tmp_path / "ws"
    ws.mkdir()
    rd = tmp_path / "runs" / "r1"
    prepare_run_dir(rd)
    rd2 = tmp_path / "runs" / "r2"
    prepare_run_dir(rd2)
    ident = agent_identity(ws, create=False)
    first = WorkspaceView.open(ws, rd, ident)
    second = WorkspaceView.open(ws, rd2, ident)
    try:
        assert (ws / ".pilothouse.toml").is_dir() and (ws / ".git").is_dir()
        first.close()
        assert (ws / ".pilothouse.toml").is_dir()  # the second run still relies on it
    finally:
        first.close()
        second.close()
    assert not (ws / ".pilothouse.toml").exists() and not (ws / ".git").exists()


def test_a_sibling_ending_while_a_view_is_planned_leaves_its_masks(tmp_path, monkeypatch):
    """The second run plans while the first is live (its mask mountpoints read as real files),
    then the first ends before the second's mounts are made: the masks stay. Before, the first
    run removed them there and the second failed with `move_mount onto .pilothouse.toml: No
    such file or directory` (seen once in CI, tests/tui/test_tmux.py, session 12)."""
    from console.sandbox import view as view_mod
    from console.sandbox.identity import agent_identity
    from console.sandbox.view import WorkspaceView

    ws = tmp_path / "ws"
    ws.mkdir()
    rd, rd2 = tmp_path / "runs" / "r1", tmp_path / "runs" / "r2"
    prepare_run_dir(rd)
    prepare_run_dir(rd2)
    ident = agent_identity(ws, create=False)
    first = WorkspaceView.open(ws, rd, ident)
    real_plan = view_mod.plan_protection

    def plan_then_sibling_ends(fd):  # the interleaving a busy daemon can produce
        plan = real_plan(fd)
        first.close()
        return plan

    monkeypatch.setattr(view_mod, "plan_protection", plan_then_sibling_ends)
    second = WorkspaceView.open(ws, rd2, ident)
    try:
        assert (ws / ".pilothouse.toml").is_dir() and (ws / ".git").is_dir()
    finally:
        second.close()
    assert not (ws / ".pilothouse.toml").exists() and not (ws / ".git").exists()


def test_env_keeps_spec_values_and_adds_basics(tmp_path):
    env = sandbox_env(_spec(tmp_path, gpus=[0]))
    assert env["API_KEY"] == "k"
    assert env["HTTPS_PROXY"] == "http://127.0.0.1:3128"
    assert env["CUDA_VISIBLE_DEVICES"] == "0"
    assert env["PILOTHOUSE_RUN_DIR"] == "/run/pilothouse"


def test_prepare_run_dir_writes_wrappers(tmp_path):
    helper = tmp_path / "inside.py"
    helper.write_text("print('hi')\n")
    rd = tmp_path / "run"
    assert prepare_run_dir(rd, helper) == []
    for cmd in ("ph-ask", "ph-guard", "ph-claude-hook"):
        w = rd / "bin" / cmd
        assert os.access(w, os.X_OK)
        assert f'inside.py" {cmd} "$@"' in w.read_text()
    assert (rd / "bin" / "inside.py").read_text() == "print('hi')\n"
    notes = prepare_run_dir(tmp_path / "run2", tmp_path / "missing.py")
    assert notes and "missing" in notes[0]


# --- cgroups -------------------------------------------------------------------------------


def _fake_v2(tmp_path: Path) -> Path:
    base = tmp_path / "cg2" / "user.slice" / "me"
    base.mkdir(parents=True)
    (base / "cgroup.controllers").write_text("cpu memory pids io\n")
    (base / "cgroup.subtree_control").write_text("")
    (base / "cgroup.procs").write_text("")
    return base


def test_cgroup_v2_delegated_subtree(tmp_path, monkeypatch):
    base = _fake_v2(tmp_path)
    # In a fake tree, mkdir does not create the kernel's files; pre-create what we write to.
    real_mkdir = Path.mkdir

    def mkdir(self, *a, **kw):
        real_mkdir(self, *a, **kw)
        for f in ("cgroup.subtree_control", "cgroup.procs"):
            if not (self / f).exists():
                (self / f).write_text("")

    monkeypatch.setattr(Path, "mkdir", mkdir)
    lim = Limiter.detect(
        v1_root=tmp_path / "nov1", v2_mount=tmp_path / "cg2", v2_own="/user.slice/me"
    )
    assert lim.mode == "v2", lim.detail
    rl = lim.create("owner-r1", Limits(memory_bytes=1 << 30, pids=100, cpus=1.5))
    d = base / "pilothouse" / "owner-r1"
    assert (d / "memory.max").read_text() == str(1 << 30)
    assert (d / "pids.max").read_text() == "100"
    assert (d / "cpu.max").read_text() == "150000 100000"
    assert "+memory" in (base / "cgroup.subtree_control").read_text()
    assert rl.enforced == {"memory": "cgroup v2", "pids": "cgroup v2", "cpu": "cgroup v2"}


def test_cgroup_v2_not_delegated_falls_back(tmp_path):
    base = _fake_v2(tmp_path)
    (base / "cgroup.controllers").write_text("io\n")
    lim = Limiter.detect(
        v1_root=tmp_path / "nov1", v2_mount=tmp_path / "cg2", v2_own="/user.slice/me"
    )
    assert lim.mode == "rlimit"
    assert "not delegated" in lim.detail
    assert lim.can_enforce()["cpu"].startswith("not enforced")


# --- docker --------------------------------------------------------------------------------


def test_docker_config(tmp_path):
    spec = _spec(tmp_path, gpu=True, gpus=[2], image="img",
                 limits=Limits(memory_bytes=512 << 20, pids=64, cpus=0.5))  # fmt: skip
    (spec.workspace / ".git").mkdir()
    b = DockerBackend(client=object(), owner="me")
    kw = b.container_config(spec, ImageInfo("sha256:x", True, False), (1000, 1000))
    assert kw["network_mode"] == "none" and kw["read_only"] and kw["init"]
    assert kw["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in kw["security_opt"]
    assert kw["user"] == "1000:1000"
    assert kw["pids_limit"] == 64 and kw["mem_limit"] == 512 << 20
    assert kw["memswap_limit"] == 512 << 20 and kw["nano_cpus"] == 500_000_000
    assert kw["labels"][LABEL_RUN] == "r1" and kw["labels"][LABEL_OWNER]
    assert kw["environment"]["CUDA_VISIBLE_DEVICES"] == "2"
    req = kw["device_requests"][0]
    assert req["DeviceIDs"] == ["2"] and req["Capabilities"] == [["gpu"]]
    assert kw["entrypoint"][:2] == ["/bin/sh", "-c"] and kw["command"] == ["true"]
    mounts = {m["Target"]: m for m in kw["mounts"]}
    assert mounts["/workspace"]["ReadOnly"] is False
    assert mounts["/run/pilothouse"]["ReadOnly"] is True
    assert "privileged" not in kw and "/home/agent" in kw["tmpfs"]


def test_docker_without_shell_runs_the_command_directly(tmp_path):
    spec = _spec(tmp_path, image="img")
    spec.command = ["/busybox", "echo", "hi"]
    kw = DockerBackend(client=object(), owner="me").container_config(
        spec, ImageInfo("sha256:x", False, False), (65534, 65534)
    )
    assert kw["entrypoint"] == ["/busybox"] and kw["command"] == ["echo", "hi"]


@pytest.mark.parametrize("requested", ["bogus", "docker"])
def test_select_refuses_with_reasons(requested):
    from console.sandbox.base import SandboxError
    from console.sandbox.choose import choose_backend

    with pytest.raises(SandboxError) as e:
        choose_backend(requested, None)
    assert str(e.value)


def test_select_none_is_marked():
    from console.sandbox.choose import choose_backend

    assert choose_backend("none", None).name == "none"


def test_direct_wrappers_start_the_helper_without_a_shell(tmp_path, monkeypatch):
    import subprocess
    import sys

    helper = tmp_path / "inside.py"
    helper.write_text("import sys\n\ndef run_and_exit(argv):\n"
                      "    print(argv, sys.flags.no_site, sys.flags.ignore_environment,\n"
                      "          '' in sys.path or '.' in sys.path)\n    sys.exit(3)\n")
    rd = tmp_path / "run"
    assert prepare_run_dir(rd, helper, interpreter=sys.executable) == []
    # A module named like the helper in the agent's working folder is never the one imported.
    planted = tmp_path / "cwd"
    planted.mkdir()
    (planted / "inside.py").write_text("def run_and_exit(argv):\n    print('planted')\n")
    for cmd in ("ph-ask", "ph-guard", "ph-claude-hook"):
        w = rd / "bin" / cmd
        assert w.read_text().startswith(f"#!{sys.executable} -SE\n")
        done = subprocess.run([str(w), "exec", "--", "ls"], capture_output=True, text=True,
                              cwd=planted, env={"PYTHONPATH": str(planted)}, timeout=30)
        assert done.returncode == 3, done.stderr
        assert done.stdout.strip() == f"[{cmd!r}, 'exec', '--', 'ls'] 1 1 False"


def test_the_helper_ends_without_the_interpreters_teardown_and_its_output_whole(tmp_path):
    """Every hook call starts the helper; the interpreter's teardown took 1.3-1.6 ms of each.
    run_and_exit ends the process once standard output and error are flushed: an exit handler
    (the teardown's work) never runs, and what the helper wrote all arrives."""
    import subprocess

    from console.sandbox import inside

    program = ("import atexit, sys\n"
               f"sys.path.insert(0, {str(Path(inside.__file__).parent)!r})\n"
               "import inside\n"
               "atexit.register(lambda: print('TEARDOWN', flush=True))\n"
               "inside.run_and_exit(['ph-ask', 'exec', '--', 'git', 'push'])\n")
    env = {"PILOTHOUSE_AGENT_SOCK": str(tmp_path / "no-such.sock")}
    done = subprocess.run(["/usr/bin/python3", "-S", "-c", program], capture_output=True,
                          text=True, env=env, timeout=30)
    assert "TEARDOWN" not in done.stdout + done.stderr
    assert done.returncode == 2, done  # could not ask: an error, never an approval
    assert done.stderr.startswith("ph-ask: ") and done.stderr.endswith("\n"), done.stderr
