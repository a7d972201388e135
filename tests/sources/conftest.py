from __future__ import annotations

import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.sources.layouts import machine

ENV_KEYS = (
    "HF_HOME",
    "HF_HUB_CACHE",
    "HUGGINGFACE_HUB_CACHE",
    "OLLAMA_MODELS",
    "LLAMA_CACHE",
    "XDG_CACHE_HOME",
    "XDG_CONFIG_HOME",
    "HF_TOKEN",
    "HF_ENDPOINT",
    "http_proxy",
    "https_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty HOME, with every variable that would point elsewhere removed and the Hub offline."""
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("HOME", str(h))
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    return h


@pytest.fixture
def populated(home, tmp_path):
    """HOME with the HF cache, ollama's store, LM Studio's and llama.cpp's folders filled (layouts.py)."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    return home, machine(home, scratch)


class _Handler(BaseHTTPRequestHandler):
    """Serves files of `server.root`; answers Range requests with 206 unless `server.ranges` is False
    (then 200 and the whole file, as a server without range support does). Logs each request."""

    def do_GET(self) -> None:
        server = self.server
        server.seen.append(
            {"path": self.path, "range": self.headers.get("Range"), "authorization": self.headers.get("Authorization")}
        )
        if server.redirect and self.path.startswith("/moved/"):  # as the Hub sends downloads to its CDN
            self.send_response(302)
            self.send_header("Location", server.redirect + self.path.removeprefix("/moved"))
            self.end_headers()
            return
        path = server.root / self.path.lstrip("/")
        if ".." in self.path or not path.is_file():
            self.send_error(404, "Not Found")
            return
        size = path.stat().st_size
        m = re.fullmatch(r"bytes=(\d+)-(\d+)", self.headers.get("Range") or "")
        if m and server.ranges:
            start, end = int(m.group(1)), min(int(m.group(2)), size - 1)
            start += server.shift  # a broken server: not the range asked for
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.send_header("Content-Length", str(end - start + 1))
            self.end_headers()
            with path.open("rb") as f:
                f.seek(start)
                body = f.read(end - start + 1)
            try:
                if server.drip:  # a server sending a byte at a time, slowly (bounded: the client hangs up)
                    for i in range(min(len(body), 200)):
                        self.wfile.write(body[i : i + 1])
                        self.wfile.flush()
                        time.sleep(server.drip)
                    return
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                server.aborted += 1
            return
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        try:
            with path.open("rb") as f:
                while chunk := f.read(1 << 16):
                    self.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError):
            server.aborted += 1  # the client hung up instead of reading the whole body

    def log_message(self, *args: object) -> None:
        pass


def _serve(root: Path, ranges: bool):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.root, server.ranges, server.seen, server.aborted = root, ranges, [], 0
    server.redirect, server.shift, server.drip = None, 0, 0.0
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server


@pytest.fixture
def http_root(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    return root


@pytest.fixture
def range_server(http_root):
    """A real HTTP server on 127.0.0.1 that answers Range requests."""
    server = _serve(http_root, ranges=True)
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def no_range_server(http_root):
    """A real HTTP server on 127.0.0.1 that ignores Range (200, the whole file)."""
    server = _serve(http_root, ranges=False)
    yield server
    server.shutdown()
    server.server_close()


def url(server, name: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/{name}"
