"""The doctor reports every check with a status a person can act on."""

from __future__ import annotations

from console.paths import resolve
from console.sandbox import doctor


def test_run_checks_shapes(tmp_path):
    findings = doctor.run_checks(resolve(tmp_path))
    names = [f.name for f in findings]
    for expected in ("bubblewrap", "user namespaces", "network bridge", "docker", "nvml", "disk"):
        assert expected in names
    assert all(f.status in ("ok", "warning", "error") for f in findings)
    nvml = next(f for f in findings if f.name == "nvml")
    assert nvml.status in ("ok", "warning")  # no driver is never an error


def test_apparmor_restriction_gets_the_exact_fix(monkeypatch):
    values = {
        "/proc/sys/user/max_user_namespaces": "15000",
        doctor.APPARMOR_SYSCTL: "1",
    }
    monkeypatch.setattr(doctor, "_read", lambda p: values.get(p))
    monkeypatch.setattr(doctor.os, "geteuid", lambda: 1000)
    f = doctor.check_userns()
    assert f.status == "error"
    assert "apparmor_restrict_unprivileged_userns" in f.detail
    assert "profile bwrap /usr/bin/bwrap flags=(unconfined)" in f.fix
    assert "userns," in f.fix
    assert "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0" in f.fix


def test_userns_disabled_debian(monkeypatch):
    values = {"/proc/sys/kernel/unprivileged_userns_clone": "0",
              "/proc/sys/user/max_user_namespaces": "0"}  # fmt: skip
    monkeypatch.setattr(doctor, "_read", lambda p: values.get(p))
    monkeypatch.setattr(doctor.os, "geteuid", lambda: 1000)
    f = doctor.check_userns()
    assert "unprivileged_userns_clone=1" in f.fix and "max_user_namespaces=15000" in f.fix


def test_no_nvml_is_a_warning(monkeypatch):
    import sys
    import types

    fake = types.ModuleType("pynvml")

    def init() -> None:
        raise RuntimeError("NVML Shared Library Not Found")

    fake.nvmlInit = init  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    f = doctor.check_nvml()
    assert f.status == "warning" and "no NVIDIA driver" in f.detail
