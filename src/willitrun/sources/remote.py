"""A GGUF header read over HTTP without downloading the file: `hf:ORG/NAME/file.gguf` or an
http(s) URL to a .gguf, read through Range requests only (urllib, the standard library).

Bounded: at most files.GGUF_HEADER_CAP bytes fetched in all, at most MAX_REQUESTS requests, each
with a timeout. A server that ignores Range (it answers 200 with the whole body) is refused before a
byte of the body is read: the header alone is never worth a multi-gigabyte download.
"""

from __future__ import annotations

import http.client
import io
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from ..errors import UsageError
from ..files import GGUF_HEADER_CAP, safe_text

MAX_REQUESTS = 64  # a 15 MB vocabulary takes ~5 requests as blocks double from 1 MiB
FIRST_BLOCK = 1 << 20
MAX_BLOCK = 16 << 20
TIMEOUT_S = 30.0  # per connection and per read
DEADLINE_S = 120.0  # the whole header, however many requests: a server dripping bytes is cut off
HF_ENDPOINT = "https://huggingface.co"  # huggingface_hub constants.ENDPOINT (HF_ENDPOINT overrides it)
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")
_HF_PATH = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*/(?:[\w.+-]+/)*[\w.+-]+\.gguf", re.IGNORECASE)


def is_remote_gguf(source: str) -> bool:
    """`hf:ORG/NAME/….gguf` or an http(s) URL whose path ends in .gguf."""
    if source.startswith("hf:"):
        return source.lower().endswith(".gguf")
    if source.lower().startswith(("http://", "https://")):
        return urllib.parse.urlsplit(source).path.lower().endswith(".gguf")
    return False


def hf_url(source: str, env: Mapping[str, str] | None = None) -> str:
    """The download URL of `hf:ORG/NAME/path/file.gguf` on the Hub's `main` revision
    (huggingface_hub constants.HUGGINGFACE_CO_URL_TEMPLATE: {endpoint}/{repo_id}/resolve/{revision}/{filename})."""
    env = os.environ if env is None else env
    path = source.removeprefix("hf:").strip()
    if not _HF_PATH.fullmatch(path) or ".." in path:
        raise UsageError(
            f"{safe_text(source[:200])!r}: give a GGUF on the Hub as hf:ORG/NAME/FILE.gguf, e.g. "
            "hf:Qwen/Qwen3-8B-GGUF/Qwen3-8B-Q4_K_M.gguf"
        )
    org, name, file = path.split("/", 2)
    endpoint = (env.get("HF_ENDPOINT") or HF_ENDPOINT).rstrip("/")
    return f"{endpoint}/{org}/{name}/resolve/main/{urllib.parse.quote(file)}"


class _SameHostAuth(urllib.request.HTTPRedirectHandler):
    """Follow redirects (the Hub sends file downloads to a CDN), but never carry the Hub token to
    another host (huggingface_hub drops it on a cross-host redirect too)."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urllib.parse.urlsplit(newurl).netloc != urllib.parse.urlsplit(req.full_url).netloc:
            for key in ("Authorization",):
                new.headers.pop(key, None)
                new.unredirected_hdrs.pop(key, None)
        return new


class RangeStream(io.RawIOBase):
    """A read-only, seekable view of a remote file, fetched in blocks by Range requests (each block
    twice the last, up to MAX_BLOCK), within a budget of bytes and requests."""

    def __init__(
        self,
        url: str,
        label: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = TIMEOUT_S,
        max_bytes: int = GGUF_HEADER_CAP,
        max_requests: int = MAX_REQUESTS,
        deadline: float = DEADLINE_S,
    ) -> None:
        super().__init__()
        self.url, self.label, self.timeout = url, label, timeout
        self.deadline = time.monotonic() + deadline
        self.headers = dict(headers or {})
        self.max_bytes, self.max_requests = max_bytes, max_requests
        self.requests = self.fetched = 0
        self.block = FIRST_BLOCK
        self.pos = self.buf_start = 0
        self.buf = b""
        self.size = -1
        self._opener = urllib.request.build_opener(_SameHostAuth())
        self._fetch(0)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise OSError("negative seek position")
        self.pos = base + offset
        return self.pos

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        done = 0
        while done < len(view) and self.pos < self.size:
            off = self.pos - self.buf_start
            if not 0 <= off < len(self.buf):
                self._fetch(self.pos)
                off = 0
            n = min(len(view) - done, len(self.buf) - off)
            view[done : done + n] = self.buf[off : off + n]
            done += n
            self.pos += n
        return done

    def _fail(self, why: str) -> UsageError:
        return UsageError(f"{self.label}: {why}")

    def _left(self) -> float:
        """Seconds left before the deadline; none left is an error."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self._fail("reading the header took too long: refused")
        return left

    def _fetch(self, start: int) -> None:
        if self.requests >= self.max_requests:
            raise self._fail(f"the header needs more than {self.max_requests} range requests: refused")
        length = min(self.block, self.max_bytes - self.fetched)
        if self.size >= 0:
            length = min(length, self.size - start)
        if length <= 0:
            raise self._fail(f"the header runs past {self.max_bytes:,} bytes fetched: refused")
        headers = {**self.headers, "Range": f"bytes={start}-{start + length - 1}", "Accept-Encoding": "identity"}
        request = urllib.request.Request(self.url, headers=headers)
        self.requests += 1
        try:
            response = self._opener.open(request, timeout=min(self.timeout, self._left()))
        except urllib.error.HTTPError as exc:
            exc.close()
            raise self._fail(f"HTTP {exc.code} {safe_text(exc.reason)}") from None
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise self._fail(f"cannot read: {safe_text(str(reason))[:200]}") from None
        with response:
            data = self._body(response, start, length)
        self.fetched += len(data)
        self.block = min(self.block * 2, MAX_BLOCK)
        self.buf, self.buf_start = data, start

    def _body(self, response: Any, start: int, length: int) -> bytes:
        if response.status != 206:  # 200: the whole file is coming; not one byte of it is read
            raise self._fail(
                f"the server ignored the Range request (HTTP {response.status}, the whole file): only "
                "servers that answer byte ranges are read; download the file and pass its path"
            )
        header = (response.headers.get("Content-Range") or "").strip()
        m = _CONTENT_RANGE.fullmatch(header)
        if m is None or int(m.group(1)) != start or int(m.group(2)) < start:
            raise self._fail(f"unusable Content-Range {safe_text(header[:100])!r} for bytes {start}-")
        n, total = int(m.group(2)) - start + 1, int(m.group(3))
        if n > length or int(m.group(2)) >= total:
            raise self._fail(f"the server sent bytes {start}-{m.group(2)} of {total:,} when asked for {length:,}")
        if self.size < 0:
            self.size = total
        elif total != self.size:
            raise self._fail(f"the file changed size while being read ({self.size:,}, now {total:,} bytes)")
        chunks: list[bytes] = []
        got = 0
        try:
            while got < n:  # in pieces, so that the deadline holds against a server sending slowly
                self._left()
                chunk = response.read1(min(n - got, 1 << 20))  # what has arrived: the deadline is checked between
                if not chunk:
                    break
                chunks.append(chunk)
                got += len(chunk)
        except (OSError, http.client.HTTPException) as exc:
            raise self._fail(f"cannot read: {safe_text(str(exc))[:200]}") from None
        data = b"".join(chunks)
        if len(data) != n:
            raise self._fail(f"the server sent {len(data):,} bytes of the {n:,} its Content-Range announced")
        return data


def remote_stream(source: str, env: Mapping[str, str] | None = None, **kwargs: Any) -> RangeStream:
    """An open RangeStream for `hf:ORG/NAME/file.gguf` or an http(s) URL (HF_TOKEN sent to the Hub only)."""
    env = os.environ if env is None else env
    if source.startswith("hf:"):
        url = hf_url(source, env)
        token = env.get("HF_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
    else:
        parts = urllib.parse.urlsplit(source)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"{safe_text(source[:200])!r}: only http:// and https:// URLs are read")
        url, headers = source, {}
    label = safe_text(source if len(source) <= 300 else source[:300] + "…")
    return RangeStream(url, label, headers={"User-Agent": "willitrun", **headers}, **kwargs)


def read_remote_gguf(source: str, *, model_id: str | None = None, **kwargs: Any) -> tuple[Any, Any]:
    """(spec, WeightsOverride) from the header of a remote GGUF, read by Range requests only."""
    from ..importers import spec_from_gguf_header
    from ..importers.gguf_file import read_gguf_stream

    with remote_stream(source, **kwargs) as stream:
        header = read_gguf_stream(stream, stream.size, stream.label)  # type: ignore[arg-type]
    name = (
        urllib.parse.unquote(urllib.parse.urlsplit(source).path.rsplit("/", 1)[-1])
        if "://" in source
        else source.rsplit("/", 1)[-1]
    )
    return spec_from_gguf_header(
        header, stream.label, name.removesuffix(".gguf").removesuffix(".GGUF"), model_id=model_id
    )
