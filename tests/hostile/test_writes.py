"""Nothing lost (issue 17 section 1): every file willitrun writes is written atomically.

Before: `import -o` over an existing spec on a full disk replaced it with a truncated file, and
`import -o` and `sweep --plot` on a full disk left 0-byte files. Now specs, plots and the catalog cache
go through files.write_atomic (a temporary file in the same folder, fsync, os.replace).

A full disk is faked at the narrowest boundary: `os.write` on a file descriptor open on the test's
folder writes what room is left and then raises ENOSPC, as a real full file system does; `os.fsync`
can be made to fail with EIO the same way (a write error that surfaces only at fsync, e.g. NFS).
Everything else (the command line, typer, the importers, matplotlib) runs for real.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from willitrun.cli import app
from willitrun.errors import ExitCode, UsageError
from willitrun.files import write_atomic

ROOT = Path(__file__).resolve().parents[2]
CONFIG = {
    "model_type": "llama",
    "hidden_size": 512,
    "num_hidden_layers": 2,
    "num_attention_heads": 8,
    "intermediate_size": 1024,
    "vocab_size": 1000,
}


class FullDisk:
    """A file system under `folder` with `room` bytes left: writes beyond it raise ENOSPC."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, folder: Path, room: int = 0, fsync_fails: bool = False):
        self.folder, self.room, self.writes = str(folder.resolve()), room, 0
        real_write, real_fsync = os.write, os.fsync

        def inside(fd: int) -> bool:
            try:
                return os.readlink(f"/proc/self/fd/{fd}").startswith(self.folder + os.sep)
            except OSError:
                return False

        def write(fd: int, data) -> int:  # type: ignore[no-untyped-def]
            if not inside(fd):
                return real_write(fd, data)
            self.writes += 1
            if self.room <= 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            n = real_write(fd, bytes(data[: self.room]))
            self.room -= n
            return n

        def fsync(fd: int) -> None:
            if fsync_fails and inside(fd):
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            real_fsync(fd)

        monkeypatch.setattr(os, "write", write)
        monkeypatch.setattr(os, "fsync", fsync)


needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd to fake a full disk")


def leftovers(folder: Path) -> list[str]:
    """Temporary files left behind (write_atomic names them .willitrun-*.tmp)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".willitrun-") or p.name.endswith(".tmp"))


@needs_proc
@pytest.mark.parametrize("room", [0, 10, 4096])
@pytest.mark.parametrize("fsync_fails", [False, True])
def test_write_atomic_keeps_the_old_file_on_a_full_disk(tmp_path, monkeypatch, room, fsync_fails):
    target = tmp_path / "spec.yaml"
    target.write_bytes(b"the old, good file\n")
    disk = FullDisk(monkeypatch, tmp_path, room=room if not fsync_fails else 1 << 20, fsync_fails=fsync_fails)
    with pytest.raises(UsageError) as info:
        write_atomic(target, b"x" * 10_000, "spec file")
    assert target.read_bytes() == b"the old, good file\n"
    assert leftovers(tmp_path) == []  # the temporary file is gone
    reason = os.strerror(errno.EIO if fsync_fails else errno.ENOSPC)
    assert str(info.value) == f"{target}: cannot write the spec file: {reason}"
    assert disk.writes >= 1  # the fake was on the path


@needs_proc
def test_write_atomic_on_a_full_disk_creates_nothing(tmp_path, monkeypatch):
    FullDisk(monkeypatch, tmp_path, room=100)
    with pytest.raises(UsageError):
        write_atomic(tmp_path / "new.yaml", b"y" * 1000)
    assert list(tmp_path.iterdir()) == []


def test_write_atomic_writes_whole_files_with_the_usual_permissions(tmp_path):
    new = tmp_path / "new.yaml"
    write_atomic(new, b"a" * 100_000)
    assert new.read_bytes() == b"a" * 100_000
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(new.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0o600
    old = tmp_path / "old.yaml"
    old.write_bytes(b"old")
    old.chmod(0o640)
    write_atomic(old, b"new")
    assert old.read_bytes() == b"new" and stat.S_IMODE(old.stat().st_mode) == 0o640
    assert leftovers(tmp_path) == []


def test_write_atomic_refuses_a_name_too_long_in_one_line(tmp_path):
    with pytest.raises(UsageError, match="file name too long"):
        write_atomic(tmp_path / ("a" * 300 + ".yaml"), b"x")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------------
# Through the commands
# --------------------------------------------------------------------------------------------------
runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args], env={"NO_COLOR": "1"})


@pytest.fixture
def config(tmp_path) -> Path:
    source = tmp_path / "src" / "config.json"
    source.parent.mkdir()
    source.write_text(json.dumps(CONFIG))
    return source


@needs_proc
def test_import_over_an_existing_spec_on_a_full_disk_keeps_it(tmp_path, monkeypatch, config):
    out = tmp_path / "out"
    out.mkdir()
    spec = out / "tiny.yaml"
    assert invoke("import", config, "-o", spec).exit_code == 0
    good = spec.read_bytes()
    FullDisk(monkeypatch, out, room=50)
    r = invoke("import", config, "-o", spec, "--force")
    assert r.exit_code == ExitCode.USAGE, r.output
    assert r.stderr == f"error: {spec}: cannot write the spec file: {os.strerror(errno.ENOSPC)}\n"
    assert spec.read_bytes() == good and leftovers(out) == []


@needs_proc
def test_import_into_a_folder_on_a_full_disk_leaves_no_empty_file(tmp_path, monkeypatch, config):
    out = tmp_path / "out"
    out.mkdir()
    FullDisk(monkeypatch, out)
    r = invoke("import", config, "-o", out)
    assert r.exit_code == ExitCode.USAGE and "No space left on device" in r.stderr
    assert list(out.iterdir()) == []


@needs_proc
@pytest.mark.parametrize("suffix", ["svg", "png"])
def test_sweep_plot_on_a_full_disk_leaves_no_empty_file(tmp_path, monkeypatch, suffix):
    pytest.importorskip("matplotlib")
    out = tmp_path / "plots"
    out.mkdir()
    plot = out / f"sweep.{suffix}"
    plot.write_bytes(b"an older plot")
    FullDisk(monkeypatch, out, room=100)
    r = invoke("sweep", "llama-2-7b", "--gpu", "rtx3090", "--plot", plot)
    assert r.exit_code == ExitCode.USAGE, r.output
    assert r.stderr.strip() == f"error: {plot}: cannot write the plot: {os.strerror(errno.ENOSPC)}"
    assert plot.read_bytes() == b"an older plot" and leftovers(out) == []


@needs_proc
def test_the_catalog_cache_survives_a_full_disk(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("WILLITRUN_CACHE_DIR", str(cache))
    assert invoke("llama-2-7b", "--gpu", "rtx3090", "-q").exit_code == 0
    [cache_file] = cache.glob("catalog-*.json")
    good = cache_file.read_bytes()
    FullDisk(monkeypatch, cache)
    # another model: the cache has something new to store, and cannot
    assert invoke("mistral-7b", "--gpu", "rtx3090", "-q").exit_code == 0  # a cache is never an error
    assert cache_file.read_bytes() == good and leftovers(cache) == []


def test_import_with_a_300_character_file_name(tmp_path, config):
    """Was an internal error (exit 70): Path.is_dir raised ENAMETOOLONG."""
    for name in ("a" * 300, "a" * 300 + ".yaml", "a" * 300 + "/tiny.yaml", "a" * 300 + "/b"):
        r = invoke("import", config, "-o", tmp_path / name)
        assert r.exit_code == ExitCode.USAGE, (name[:20], r.exit_code, r.output)
        assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1 and len(r.stderr) < 600, r.stderr


def test_a_plot_title_with_dollar_signs_is_text_not_math(tmp_path):
    """A `$...$` in a model's name reached matplotlib's math parser: exit 70 (ParseSyntaxException)."""
    pytest.importorskip("matplotlib")
    specs = tmp_path / "specs" / "model_specs"
    specs.mkdir(parents=True)
    text = (ROOT / "model_specs" / "llama-2-7b.yaml").read_text()
    lines = [
        ("id: dollar" if ln.startswith("id:") else 'name: "A $\\\\frac{1}{$ model"' if ln.startswith("name:") else ln)
        for ln in text.splitlines()
    ]
    (specs / "dollar.yaml").write_text("\n".join(lines) + "\n")
    plot = tmp_path / "sweep.svg"
    r = invoke("sweep", "dollar", "--specs-dir", specs.parent, "--gpu", "t4", "--plot", plot)
    assert r.exit_code == 0, r.output
    assert "$\\frac{1}{$" in plot.read_text()  # drawn as the characters it is


@needs_proc
@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_install_completion_on_a_full_disk_keeps_the_rc_file(tmp_path, monkeypatch, capsys, shell):
    """typer rewrites ~/.bashrc (~/.zshrc) whole; through the entry point it is written atomically."""
    import sys

    from willitrun import cli

    home = tmp_path / "home"
    home.mkdir()
    rc = home / f".{shell}rc"
    rc.write_text("# years of aliases\nalias ll='ls -l'\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")  # take the shell named
    monkeypatch.setattr(sys, "argv", ["willitrun", "--install-completion", shell])
    FullDisk(monkeypatch, home, room=10)
    assert cli._run() == ExitCode.USAGE
    assert rc.read_text() == "# years of aliases\nalias ll='ls -l'\n" and leftovers(home) == []
    assert f"{rc}: cannot write the file: {os.strerror(errno.ENOSPC)}" in capsys.readouterr().err


def test_install_completion_writes_through_a_symlinked_rc_file(tmp_path, monkeypatch):
    """A dotfile manager's ~/.bashrc -> dotfiles/bashrc symlink stays a symlink."""
    import sys

    from willitrun import cli

    home = tmp_path / "home"
    (home / "dotfiles").mkdir(parents=True)
    (home / "dotfiles" / "bashrc").write_text("# mine\n")
    (home / ".bashrc").symlink_to(home / "dotfiles" / "bashrc")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")
    monkeypatch.setattr(sys, "argv", ["willitrun", "--install-completion", "bash"])
    assert cli._run() == 0
    assert (home / ".bashrc").is_symlink() and "# mine\n" in (home / "dotfiles" / "bashrc").read_text()
    assert "willitrun.sh" in (home / "dotfiles" / "bashrc").read_text()
    assert (home / ".bash_completions" / "willitrun.sh").read_text().startswith("_willitrun_completion")
