"""Checksum verification and the download paths (parity.weights.download) exactly, against an HTTP server on
127.0.0.1 started here: cache locations, URL rewriting, reachability, what `fetch` returns and logs, retries (the
explicit argument over the environment), read timeouts, dropped and truncated transfers, the staging directory,
and the unverified `download` of the drift watch. Per-test request counters: nothing carries over between tests."""
import contextlib
import hashlib
import http.server
import logging
import os
import socket
import threading
import time
import types

import pooch
import pytest

from parity.registry import WeightsRef
from parity.weights import download as weights

pytestmark = pytest.mark.judging

PAYLOAD = bytes(range(256)) * 800                 # 204,800 bytes
SHA = hashlib.sha256(PAYLOAD).hexdigest()
PREFIX = SHA[:8]
NAME = f"mobilenet_v2-{PREFIX}.pth"


class Handler(http.server.BaseHTTPRequestHandler):
    hits: dict = {}

    def log_message(self, *a):
        pass

    def do_GET(self):
        Handler.hits[self.path] = Handler.hits.get(self.path, 0) + 1
        kind = self.path.split("/")[1]
        if kind == "missing":
            self.send_error(404)
            return
        if kind == "flaky" and Handler.hits[self.path] == 1:
            self.send_error(500)
            return
        if kind == "drop":                        # accept the connection, answer nothing
            self.close_connection = True
            return
        if kind == "slow":
            time.sleep(1.5)
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        if kind == "truncated":
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        with contextlib.suppress(OSError):        # the client gave up (read timeout)
            self.wfile.write(PAYLOAD)


@pytest.fixture(scope="module")
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A private cache, online, default timeouts and retries, no rewriting, pooch's retry pause recorded (not slept),
    fresh request counters."""
    for var in ("MBV2_PARITY_OFFLINE", "HF_HUB_OFFLINE", "MBV2_PARITY_URL_REWRITE", "MBV2_PARITY_RETRIES",
                "MBV2_PARITY_READ_TIMEOUT", "MBV2_PARITY_CONNECT_TIMEOUT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MBV2_PARITY_CACHE", str(tmp_path / "cache"))
    sleeps = []
    monkeypatch.setattr(pooch.core, "time", types.SimpleNamespace(sleep=sleeps.append))
    Handler.hits = {}
    return types.SimpleNamespace(cache=tmp_path / "cache" / "torch-hub", sleeps=sleeps, tmp=tmp_path)


def ref(base, kind, **kw):
    return WeightsRef(url=f"{base}/{kind}/{NAME}", cache="torch-hub", **kw)


def listing(d):
    return sorted(p.name for p in d.rglob("*")) if d.exists() else []


# --- errors, URL rewriting, cache locations, verification --------------------------------------------------------

def test_weights_unavailable_keeps_reason_and_url():
    e = weights.WeightsUnavailable("offline", "https://h/x.pth")
    assert (e.reason, e.url, str(e)) == ("offline", "https://h/x.pth", "offline (url: https://h/x.pth)")


def test_url_rewrite_first_matching_prefix(monkeypatch):
    monkeypatch.setenv("MBV2_PARITY_URL_REWRITE",
                       "https://download.pytorch.org/models/=http://127.0.0.1:9/m/;https://download.pytorch.org/=x/")
    assert weights.effective_url("https://download.pytorch.org/models/mobilenet_v2-b0353104.pth") == (
        "http://127.0.0.1:9/m/mobilenet_v2-b0353104.pth")
    assert weights.effective_url("https://download.pytorch.org/other.pth") == "x/other.pth"
    assert weights.effective_url("https://example.org/models/a.pth") == "https://example.org/models/a.pth"


def test_cache_dirs_are_the_ecosystems_own(tmp_path, monkeypatch):
    for var in ("MBV2_PARITY_CACHE", "TORCH_HOME", "KERAS_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))

    def cache(name):
        return weights.cache_dir(WeightsRef(url="https://h/x", cache=name))

    assert cache("torch-hub") == tmp_path / "home" / ".cache" / "torch" / "hub" / "checkpoints"
    assert cache("keras") == tmp_path / "home" / ".keras" / "models"
    assert cache("paddle") == tmp_path / "home" / ".cache" / "paddle" / "weights"
    assert cache("mbv2-parity") == tmp_path / "home" / ".cache" / "mbv2-parity" / "mbv2-parity"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    assert cache("torch-hub") == tmp_path / "th" / "hub" / "checkpoints"
    assert cache("mbv2-parity") == tmp_path / "xdg" / "mbv2-parity" / "mbv2-parity"
    monkeypatch.setenv("MBV2_PARITY_CACHE", str(tmp_path / "one"))
    assert cache("torch-hub") == tmp_path / "one" / "torch-hub" and cache("keras") == tmp_path / "one" / "keras"


def test_sha256_of_a_file_larger_than_one_read(tmp_path):
    data = os.urandom((1 << 20) + 12345)
    (tmp_path / "w.bin").write_bytes(data)
    assert weights.sha256_file(tmp_path / "w.bin") == hashlib.sha256(data).hexdigest()
    (tmp_path / "empty").write_bytes(b"")
    assert weights.sha256_file(tmp_path / "empty") == hashlib.sha256(b"").hexdigest()


def test_verify_messages(tmp_path):
    f = tmp_path / NAME
    f.write_bytes(b"garbage")
    digest = hashlib.sha256(b"garbage").hexdigest()
    with pytest.raises(weights.ChecksumError) as e:
        weights.verify(f, WeightsRef(url="https://h/x", hash_prefix=PREFIX))
    assert str(e.value) == (f"{NAME}: sha256 {digest[:16]}... does not start with the published prefix {PREFIX} "
                            "(corrupt or changed upstream file)")
    with pytest.raises(weights.ChecksumError) as e:
        weights.verify(f, WeightsRef(url="https://h/x", sha256=SHA))
    assert str(e.value) == f"{NAME}: sha256 {digest} != pinned {SHA}"
    assert weights.verify(f, WeightsRef(url="https://h/x", sha256=digest.upper(), hash_prefix=digest[:8].upper(),
                                        format="torch-pickle")) == digest


# --- reachability --------------------------------------------------------------------------------------------------

class Refused:
    def __init__(self):
        self.calls = []

    def __call__(self, address, timeout=None):
        self.calls.append((address, timeout))
        raise ConnectionRefusedError("refused")


def test_unreachable_host_message_port_and_connect_timeout(monkeypatch):
    refused = Refused()
    monkeypatch.setattr(weights.socket, "create_connection", refused)
    monkeypatch.setenv("MBV2_PARITY_CONNECT_TIMEOUT", "0.25")
    assert weights._reachable("https://weights.example/m/x.pth") == (
        "cannot reach weights.example:443 (ConnectionRefusedError: refused)")
    assert weights._reachable("http://weights.example/m/x.pth") == (
        "cannot reach weights.example:80 (ConnectionRefusedError: refused)")
    assert weights._reachable("http://weights.example:8080/x.pth").startswith("cannot reach weights.example:8080 (")
    assert refused.calls == [(("weights.example", 443), 0.25), (("weights.example", 80), 0.25),
                             (("weights.example", 8080), 0.25)]


def test_reachable_host(server):
    assert weights._reachable(server + "/good/x") is None


# --- fetch -----------------------------------------------------------------------------------------------------------

def test_fetch_downloads_then_serves_the_cache(server, env):
    assert weights.fetch(ref(server, "good", sha256=SHA)) == weights.Fetched(env.cache / NAME, SHA, True)
    assert weights.fetch(ref(server, "good", sha256=SHA)) == weights.Fetched(env.cache / NAME, SHA, False)
    assert Handler.hits == {f"/good/{NAME}": 1}
    assert listing(env.cache) == [NAME]


def test_fetch_stages_beside_the_cache_and_cleans_up(server, env, monkeypatch):
    """The download lands in a private .staging-* directory inside the cache directory (same filesystem: the final
    move is atomic), which is removed afterwards, whether the bytes verified or not."""
    seen = []
    real = weights._pooch_get

    def spy(url, name, staging, *a, **kw):
        seen.append((staging.parent, staging.name, staging.is_dir()))
        return real(url, name, staging, *a, **kw)

    monkeypatch.setattr(weights, "_pooch_get", spy)
    weights.fetch(ref(server, "good", hash_prefix=PREFIX))
    with pytest.raises(weights.ChecksumError):
        weights.fetch(WeightsRef(url=f"{server}/good/other-deadbeef.pth", hash_prefix="deadbeef", cache="torch-hub"))
    assert [(parent, name.startswith(".staging-"), is_dir) for parent, name, is_dir in seen] == [
        (env.cache, True, True)] * 2
    assert listing(env.cache) == [NAME]


def test_corrupt_cached_file_is_logged_moved_aside_and_replaced(server, env, caplog):
    env.cache.mkdir(parents=True)
    (env.cache / NAME).write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING, logger="parity.weights.download"):
        got = weights.fetch(ref(server, "good", hash_prefix=PREFIX))
    assert got == weights.Fetched(env.cache / NAME, SHA, True)
    digest = hashlib.sha256(b"garbage").hexdigest()
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records if r.name.startswith("parity")] == [
        ("parity.weights.download", logging.WARNING,
         f"cached file failed verification, moved to {env.cache / (NAME + '.corrupt')}: {NAME}: sha256 {digest[:16]}... "
         f"does not start with the published prefix {PREFIX} (corrupt or changed upstream file)")]
    assert (env.cache / (NAME + ".corrupt")).read_bytes() == b"garbage"


def test_offline_names_the_cache_and_the_upstream_url(server, env, monkeypatch):
    monkeypatch.setenv("MBV2_PARITY_OFFLINE", "1")
    r = ref(server, "good", hash_prefix=PREFIX)
    with pytest.raises(weights.WeightsUnavailable) as e:
        weights.fetch(r)
    assert (e.value.reason, e.value.url) == (
        f"offline mode (MBV2_PARITY_OFFLINE/HF_HUB_OFFLINE) and not in the cache {env.cache}", r.url)
    assert Handler.hits == {}


def test_fetch_through_a_mirror_with_another_file_name(server, env, monkeypatch):
    """A rewrite rule may map the whole upstream URL onto a differently named file: that file is downloaded and
    cached under the upstream name."""
    upstream = f"https://download.example/models/{NAME}"
    monkeypatch.setenv("MBV2_PARITY_URL_REWRITE", f"{upstream}={server}/good/mirrored-copy.bin")
    got = weights.fetch(WeightsRef(url=upstream, hash_prefix=PREFIX, cache="torch-hub"))
    assert got == weights.Fetched(env.cache / NAME, SHA, True)
    assert Handler.hits == {"/good/mirrored-copy.bin": 1}


def test_fetch_errors_name_the_upstream_url_or_the_host_tried(server, env, monkeypatch):
    upstream = f"https://download.example/models/{NAME}"
    monkeypatch.setenv("MBV2_PARITY_URL_REWRITE", f"https://download.example/models/={server}/missing/")
    with pytest.raises(weights.WeightsUnavailable) as e:
        weights.fetch(WeightsRef(url=upstream, hash_prefix=PREFIX, cache="torch-hub"), retries=0)
    assert (e.value.reason, e.value.url) == ("HTTP error 404", upstream)
    monkeypatch.setattr(weights.socket, "create_connection", Refused())
    with pytest.raises(weights.WeightsUnavailable) as e:
        weights.fetch(WeightsRef(url=upstream, hash_prefix=PREFIX, cache="torch-hub"))
    host = server.removeprefix("http://")
    assert e.value.reason == f"cannot reach {host} (ConnectionRefusedError: refused)"
    assert e.value.url == f"{server}/missing/{NAME}"


def test_explicit_retries_override_the_environment(server, env, monkeypatch):
    monkeypatch.setenv("MBV2_PARITY_RETRIES", "3")
    with pytest.raises(weights.WeightsUnavailable, match="HTTP error 500"):
        weights.fetch(ref(server, "flaky", hash_prefix=PREFIX), retries=0)
    assert env.sleeps == []
    Handler.hits = {}
    assert weights.fetch(ref(server, "flaky", hash_prefix=PREFIX), retries=1).sha256 == SHA
    assert env.sleeps == [1] and Handler.hits == {f"/flaky/{NAME}": 2}


def test_retries_default_to_the_environment(server, env, monkeypatch):
    monkeypatch.setenv("MBV2_PARITY_RETRIES", "1")
    assert weights.fetch(ref(server, "flaky", hash_prefix=PREFIX)).downloaded
    assert env.sleeps == [1]


def test_dropped_connection_is_unavailable(server, env):
    r = ref(server, "drop", hash_prefix=PREFIX)
    with pytest.raises(weights.WeightsUnavailable) as e:
        weights.fetch(r, retries=0)
    assert e.value.url == r.url and e.value.reason.startswith("ConnectionError: ('Connection aborted.'")
    assert listing(env.cache) == []


def test_read_timeout_is_honoured(server, env, monkeypatch):
    monkeypatch.setenv("MBV2_PARITY_READ_TIMEOUT", "0.3")
    t0 = time.perf_counter()
    with pytest.raises(weights.WeightsUnavailable) as e:
        weights.fetch(ref(server, "slow", hash_prefix=PREFIX), retries=0)
    assert time.perf_counter() - t0 < 1.2
    assert e.value.reason.startswith("ReadTimeout: ") and "read timeout=0.3" in e.value.reason


def test_truncated_transfer_is_a_download_error(server, env):
    with pytest.raises(weights.DownloadError) as e:
        weights.fetch(ref(server, "truncated", hash_prefix=PREFIX), retries=0)
    head = f"{NAME}: truncated download after 0 retries ("
    msg = str(e.value)
    assert msg.startswith(head) and msg.endswith(")") and "IncompleteRead" in msg
    assert len(msg) - len(head) - 1 <= 160                   # the transport's detail, at most 160 characters
    assert listing(env.cache) == []


def test_a_download_logs_no_pooch_info_lines(server, env):
    """pooch's "Downloading file ... to .../.staging-..." INFO line is meant to be silenced (WARNING and up only)."""
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    pooch_logger = pooch.get_logger()
    pooch_logger.addHandler(handler)
    try:
        weights.fetch(ref(server, "good", hash_prefix=PREFIX))
    finally:
        pooch_logger.removeHandler(handler)
    assert [r.getMessage() for r in records if r.levelno < logging.WARNING] == []


# --- download (the drift watch's unverified fetch) -------------------------------------------------------------------

def test_download_into_new_directories_and_again(server, env):
    dest = env.tmp / "a" / "b" / "new.bin"
    assert weights.download(f"{server}/good/{NAME}", dest) == (dest, SHA)
    assert dest.read_bytes() == PAYLOAD and listing(dest.parent) == ["new.bin"]
    dest.write_bytes(b"old")
    assert weights.download(f"{server}/good/{NAME}", dest) == (dest, SHA)      # replaces, in an existing directory
    assert listing(dest.parent) == ["new.bin"]


def test_download_is_not_verified_and_follows_the_rewrite(server, env, monkeypatch):
    monkeypatch.setenv("MBV2_PARITY_URL_REWRITE", f"https://upstream.example/={server}/good/")
    _dest, sha = weights.download("https://upstream.example/changed-upstream.pth", env.tmp / "w" / "x.bin")
    assert sha == SHA and Handler.hits == {"/good/changed-upstream.pth": 1}


def test_download_stages_beside_the_destination(server, env, monkeypatch):
    seen = []
    real = weights._pooch_get

    def spy(url, name, staging, retries, *a, **kw):
        seen.append((url, name, staging.parent, staging.name[:9], staging.is_dir(), retries))
        return real(url, name, staging, retries, *a, **kw)

    monkeypatch.setattr(weights, "_pooch_get", spy)
    monkeypatch.setenv("MBV2_PARITY_RETRIES", "4")
    dest = env.tmp / "d" / "new.bin"
    weights.download(f"{server}/good/{NAME}", dest)
    weights.download(f"{server}/good/{NAME}", dest, retries=0)
    assert seen == [(f"{server}/good/{NAME}", NAME, dest.parent, ".staging-", True, 4),
                    (f"{server}/good/{NAME}", NAME, dest.parent, ".staging-", True, 0)]
    assert listing(dest.parent) == ["new.bin"]


def test_download_retries_default_to_the_environment(server, env, monkeypatch):
    monkeypatch.setenv("MBV2_PARITY_RETRIES", "1")
    assert weights.download(f"{server}/flaky/{NAME}", env.tmp / "x.bin")[1] == SHA
    assert env.sleeps == [1]
    with pytest.raises(weights.WeightsUnavailable, match="HTTP error 500"):
        weights.download(f"{server}/flaky/other.pth", env.tmp / "y.bin", retries=0)


def test_download_errors_name_the_url_tried(server, env, monkeypatch):
    monkeypatch.setenv("MBV2_PARITY_URL_REWRITE", f"https://upstream.example/={server}/missing/")
    with pytest.raises(weights.WeightsUnavailable) as e:
        weights.download("https://upstream.example/x.pth", env.tmp / "x.bin", retries=0)
    assert (e.value.reason, e.value.url) == ("HTTP error 404", f"{server}/missing/x.pth")
    monkeypatch.setattr(weights.socket, "create_connection", Refused())
    with pytest.raises(weights.WeightsUnavailable) as e:
        weights.download("https://upstream.example/x.pth", env.tmp / "x.bin")
    host = server.removeprefix("http://")
    assert (e.value.reason, e.value.url) == (f"cannot reach {host} (ConnectionRefusedError: refused)",
                                             f"{server}/missing/x.pth")
    assert listing(env.tmp) == []
