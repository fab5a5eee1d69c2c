"""The real download path (pooch + verification + atomic move) against a real HTTP server on 127.0.0.1."""
import hashlib
import http.server
import os
import socket
import threading
import time

import pytest

from parity.registry import WeightsRef
from parity.weights import download as weights

PAYLOAD = os.urandom(200_000)
SHA = hashlib.sha256(PAYLOAD).hexdigest()
PREFIX = SHA[:8]

pytestmark = pytest.mark.judging  # pure: no workers


class Handler(http.server.BaseHTTPRequestHandler):
    hits: dict = {}

    def log_message(self, *a):
        pass

    def do_GET(self):
        self.path.rsplit("/", 1)[-1]
        Handler.hits[self.path] = Handler.hits.get(self.path, 0) + 1
        body = PAYLOAD
        if self.path.startswith("/corrupt/"):
            body = bytes([PAYLOAD[0] ^ 0xFF]) + PAYLOAD[1:]
        if self.path.startswith("/missing/"):
            self.send_error(404)
            return
        if self.path.startswith("/flaky/") and Handler.hits[self.path] == 1:
            self.send_error(500)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path.startswith("/truncated/"):
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MBV2_PARITY_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MBV2_PARITY_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return tmp_path / "cache" / "torch-hub"


def ref(base, kind, **kw):
    return WeightsRef(url=f"{base}/{kind}/mobilenet_v2-{PREFIX}.pth", cache="torch-hub", **kw)


def leftovers(cache):
    return sorted(p.name for p in cache.rglob("*")) if cache.exists() else []


def test_good_download_verified_and_cached(server, cache):
    got = weights.fetch(ref(server, "good", hash_prefix=PREFIX, sha256=SHA))
    assert got.downloaded and got.sha256 == SHA and got.path.read_bytes() == PAYLOAD
    assert leftovers(cache) == [f"mobilenet_v2-{PREFIX}.pth"]  # no staging left behind
    again = weights.fetch(ref(server, "good", hash_prefix=PREFIX))
    assert not again.downloaded


def test_corrupt_copy_rejected_nothing_cached(server, cache):
    with pytest.raises(weights.ChecksumError, match="published prefix"):
        weights.fetch(ref(server, "corrupt", hash_prefix=PREFIX))
    assert leftovers(cache) == []
    with pytest.raises(weights.ChecksumError, match="pinned"):
        weights.fetch(ref(server, "corrupt", sha256=SHA))
    assert leftovers(cache) == []


def test_truncated_copy_rejected_nothing_cached(server, cache):
    with pytest.raises((weights.DownloadError, weights.ChecksumError)):
        weights.fetch(ref(server, "truncated", hash_prefix=PREFIX), retries=1)
    assert leftovers(cache) == []


def test_server_error_is_retried(server, cache):
    got = weights.fetch(ref(server, "flaky", hash_prefix=PREFIX), retries=2)
    assert got.sha256 == SHA


def test_http_404_is_unavailable(server, cache):
    with pytest.raises(weights.WeightsUnavailable, match="404"):
        weights.fetch(ref(server, "missing", hash_prefix=PREFIX), retries=0)


def test_corrupt_cached_file_is_moved_aside_and_redownloaded(server, cache):
    cache.mkdir(parents=True)
    (cache / f"mobilenet_v2-{PREFIX}.pth").write_bytes(b"garbage")
    got = weights.fetch(ref(server, "good", hash_prefix=PREFIX))
    assert got.downloaded and got.sha256 == SHA
    assert (cache / f"mobilenet_v2-{PREFIX}.pth.corrupt").exists()


def test_offline_mode_fails_fast(server, cache, monkeypatch):
    monkeypatch.setenv("MBV2_PARITY_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises(weights.WeightsUnavailable, match="offline mode"):
        weights.fetch(ref(server, "good", hash_prefix=PREFIX))
    assert time.perf_counter() - t0 < 1


def test_unreachable_host_fails_fast(cache):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    t0 = time.perf_counter()
    with pytest.raises(weights.WeightsUnavailable, match="cannot reach"):
        weights.fetch(WeightsRef(url=f"http://127.0.0.1:{port}/x-{PREFIX}.pth", hash_prefix=PREFIX, cache="torch-hub"))
    assert time.perf_counter() - t0 < 10


def test_unpinned_pickle_is_never_handed_to_a_loader(server, cache):
    """paddle.load/torch.load unpickle: a .pdparams with no pin in the registry is refused after download."""
    r = WeightsRef(url=f"{server}/good/MobileNetV2_pretrained.pdparams", cache="torch-hub", format="paddle-pickle")
    with pytest.raises(weights.ChecksumError, match="no pinned sha256"):
        weights.fetch(r)
    assert leftovers(cache) == []
    pinned = WeightsRef(url=r.url, cache="torch-hub", format="paddle-pickle", sha256=SHA)
    assert weights.fetch(pinned).sha256 == SHA
