"""Remote GGUF headers by HTTP range requests, against real servers on 127.0.0.1 (conftest.py):
only the header is fetched, a server that ignores Range is refused, every bound holds."""

from __future__ import annotations

import json
import os

import pytest

from tests.importers.helpers import write_llama_gguf
from tests.sources.conftest import url
from willitrun.errors import SpecError, UsageError
from willitrun.importers import spec_from_path
from willitrun.sources import remote
from willitrun.sources.remote import read_remote_gguf, remote_stream

PADDING = 64 << 20  # bytes after the tensors: a file far larger than its header, as real ones are


@pytest.fixture
def big_gguf(http_root):
    """A real GGUF header and tensors, then 64 MiB more (sparse): what the reader must not fetch."""
    path = write_llama_gguf(http_root / "Tiny-Q8_0.gguf")
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size + PADDING)
    return path


def test_header_by_ranges_gives_the_local_files_spec(range_server, big_gguf, home):
    spec, weights = read_remote_gguf(url(range_server, big_gguf.name))
    local_spec, local_weights = spec_from_path(big_gguf)
    assert spec.config == local_spec.config
    assert spec.architecture == local_spec.architecture == "llama"
    assert weights.total_bytes == local_weights.total_bytes
    assert weights.elements == local_weights.elements
    assert spec.sources["config"] == url(range_server, big_gguf.name)
    # the header is one first block: no byte of the padding beyond it was asked for
    assert len(range_server.seen) == 1
    assert range_server.seen[0]["range"] == f"bytes=0-{remote.FIRST_BLOCK - 1}"


def test_the_stream_fetches_blocks_that_double(range_server, big_gguf, home, monkeypatch):
    monkeypatch.setattr(remote, "FIRST_BLOCK", 4096)
    with remote_stream(url(range_server, big_gguf.name)) as s:
        assert s.size == big_gguf.stat().st_size
        first = s.read(10)
        s.seek(5000)
        s.read(100)
        assert first[:4] == b"GGUF"
    assert [r["range"] for r in range_server.seen] == ["bytes=0-4095", "bytes=5000-13191"]


def test_a_server_that_ignores_range_is_refused(no_range_server, big_gguf, home):
    with pytest.raises(UsageError, match=r"ignored the Range request \(HTTP 200"):
        read_remote_gguf(url(no_range_server, big_gguf.name))
    assert len(no_range_server.seen) == 1


def test_bounds_on_requests_and_bytes(range_server, big_gguf, home, monkeypatch):
    monkeypatch.setattr(remote, "FIRST_BLOCK", 64)
    with pytest.raises(UsageError, match="more than 3 range requests"):
        read_remote_gguf(url(range_server, big_gguf.name), max_requests=3)
    monkeypatch.setattr(remote, "FIRST_BLOCK", 1 << 20)
    with pytest.raises(UsageError, match="runs past 2,048 bytes fetched"):
        read_remote_gguf(url(range_server, big_gguf.name), max_bytes=2048)


def test_truncated_remote_file_is_a_spec_error(range_server, http_root, home):
    whole = write_llama_gguf(http_root / "whole.gguf").read_bytes()
    (http_root / "cut.gguf").write_bytes(whole[: len(whole) // 3])
    with pytest.raises(SpecError, match="truncated"):
        read_remote_gguf(url(range_server, "cut.gguf"))


def test_missing_file_and_bad_urls(range_server, home):
    with pytest.raises(UsageError, match="HTTP 404"):
        read_remote_gguf(url(range_server, "nothing.gguf"))
    with pytest.raises(UsageError, match="only http:// and https://"):
        remote_stream("ftp://127.0.0.1/x.gguf")
    with pytest.raises(UsageError, match=r"hf:ORG/NAME/FILE\.gguf"):
        remote.hf_url("hf:../x.gguf")


def test_nothing_listening_is_one_line(home):
    import socket

    with socket.socket() as s:  # a port that was free a moment ago: nothing answers there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(UsageError, match="cannot read"):
        read_remote_gguf(f"http://127.0.0.1:{port}/x.gguf", timeout=5)


def test_hf_path_goes_to_the_endpoint_with_the_token(range_server, http_root, home, monkeypatch):
    target = http_root / "org" / "Tiny-GGUF" / "resolve" / "main" / "Tiny-Q8_0.gguf"
    target.parent.mkdir(parents=True)
    write_llama_gguf(target)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{range_server.server_address[1]}")
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    spec, _weights = read_remote_gguf("hf:org/Tiny-GGUF/Tiny-Q8_0.gguf")
    assert spec.architecture == "llama"
    assert range_server.seen[0]["path"] == "/org/Tiny-GGUF/resolve/main/Tiny-Q8_0.gguf"
    assert range_server.seen[0]["authorization"] == "Bearer hf_test"


def test_plain_urls_never_carry_the_token(range_server, big_gguf, home, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    read_remote_gguf(url(range_server, big_gguf.name))
    assert range_server.seen[0]["authorization"] is None


def test_cli_estimates_a_remote_gguf(range_server, big_gguf, home):
    from typer.testing import CliRunner

    from willitrun.cli import app

    result = CliRunner().invoke(app, [url(range_server, big_gguf.name), "--vram", "24", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    local = CliRunner().invoke(app, [os.fspath(big_gguf), "--vram", "24", "--json"])
    assert json.loads(local.stdout)["total_bytes"] == data["total_bytes"]


def test_redirects_are_followed_without_the_token(range_server, no_range_server, big_gguf, home, monkeypatch):
    # the "Hub" (no_range_server, another port: another host) redirects to the "CDN" (range_server)
    no_range_server.redirect = f"http://127.0.0.1:{range_server.server_address[1]}"
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{no_range_server.server_address[1]}/moved")
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    big = big_gguf.parent / "org" / "Tiny-GGUF" / "resolve" / "main"
    big.mkdir(parents=True)
    big_gguf.rename(big / big_gguf.name)
    spec, _ = read_remote_gguf(f"hf:org/Tiny-GGUF/{big_gguf.name}")
    assert spec.architecture == "llama"
    assert no_range_server.seen[0]["authorization"] == "Bearer hf_test"
    assert range_server.seen[0]["authorization"] is None  # never carried to another host
    assert range_server.seen[0]["range"] == f"bytes=0-{remote.FIRST_BLOCK - 1}"


def test_a_server_answering_another_range_is_refused(range_server, big_gguf, home):
    range_server.shift = 16
    with pytest.raises(UsageError, match="unusable Content-Range 'bytes 16-"):
        read_remote_gguf(url(range_server, big_gguf.name))


def test_a_deadline_bounds_the_whole_read(range_server, big_gguf, home, monkeypatch):
    import time

    range_server.drip = 0.02  # every byte in time for the socket timeout, the whole far too slow
    monkeypatch.setattr(remote, "FIRST_BLOCK", 4096)
    start = time.monotonic()
    with pytest.raises(UsageError, match="took too long"):
        read_remote_gguf(url(range_server, big_gguf.name), deadline=0.5, timeout=5)
    assert time.monotonic() - start < 3
