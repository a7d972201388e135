"""Host memory detection (detect/host.py) on directories laid out as /proc and /sys are, and on this machine."""

from __future__ import annotations

from pathlib import Path

from willitrun.detect.host import cgroup_limit, host_memory, linux_memory, mac_memory, parse_meminfo

# The first lines of a real /proc/meminfo (proc(5): "MemAvailable ... An estimate of how much memory is
# available for starting new applications, without swapping"), values in kB = 1024 bytes.
MEMINFO = "MemTotal:       32768000 kB\nMemFree:         1000000 kB\nMemAvailable:   20000000 kB\nBuffers:  10 kB\n"


def lay_out(root: Path, meminfo: str = MEMINFO, cgroup: str = "0::/\n", files: dict[str, str] | None = None) -> Path:
    (root / "proc" / "self").mkdir(parents=True)
    (root / "proc" / "meminfo").write_text(meminfo)
    (root / "proc" / "self" / "cgroup").write_text(cgroup)
    for rel, text in (files or {}).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_meminfo_is_read_in_kibibytes():
    assert parse_meminfo(MEMINFO) == (32768000 * 1024, 20000000 * 1024)
    assert parse_meminfo("MemTotal: lots\n") is None
    assert parse_meminfo("MemTotal:       99999999999999999 kB\n") is None  # past any machine: refused


def test_no_cgroup_limit_keeps_the_machine(tmp_path):
    root = lay_out(tmp_path, files={"sys/fs/cgroup/memory.max": "max\n"})
    m = linux_memory(root)
    assert m is not None and (m.total_bytes, m.available_bytes) == (32768000 * 1024, 20000000 * 1024)
    assert m.source == "/proc/meminfo"


def test_a_container_limit_bounds_total_and_available(tmp_path):
    """cgroup v2: a 16 GiB container with 10 GiB in use has 6 GiB to give, whatever the host has."""
    root = lay_out(
        tmp_path,
        cgroup="0::/docker/abc\n",
        files={
            "sys/fs/cgroup/docker/abc/memory.max": f"{16 << 30}\n",
            "sys/fs/cgroup/docker/abc/memory.current": f"{10 << 30}\n",
        },
    )
    m = linux_memory(root)
    assert m is not None and (m.total_bytes, m.available_bytes) == (16 << 30, 6 << 30)
    assert "cgroup" in m.source


def test_cgroup_v1_unlimited_is_no_limit(tmp_path):
    root = lay_out(
        tmp_path,
        cgroup="4:memory:/a\n",
        files={"sys/fs/cgroup/memory/a/memory.limit_in_bytes": "9223372036854771712\n"},
    )
    assert cgroup_limit(root) is None
    root2 = lay_out(
        tmp_path / "b", cgroup="4:memory:/a\n", files={"sys/fs/cgroup/memory/a/memory.limit_in_bytes": f"{8 << 30}\n"}
    )
    assert cgroup_limit(root2) == (8 << 30, None)


def test_hostile_cgroup_paths_are_not_followed(tmp_path):
    root = lay_out(tmp_path, cgroup="0::/../../etc\n", files={"etc/memory.max": "1024\n"})
    assert cgroup_limit(root) is None


def test_missing_files_give_none(tmp_path):
    assert linux_memory(tmp_path) is None


def test_macos_sysctl_through_a_recorded_answer():
    assert mac_memory(lambda argv, timeout: "103079215104\n").total_bytes == 96 << 30  # an M2 Max 96 GB
    assert mac_memory(lambda argv, timeout: None) is None


def test_platforms_without_a_reader_give_none():
    assert host_memory(system="Plan9") is None
    assert host_memory(lambda argv, timeout: f"{64 << 30}\n", system="Darwin").total_bytes == 64 << 30


def test_this_machine():
    """The real path: whatever this machine is, what is available never exceeds the total."""
    m = host_memory()
    if m is not None:
        assert m.total_bytes > 0
        assert m.available_bytes is None or 0 <= m.available_bytes <= m.total_bytes
