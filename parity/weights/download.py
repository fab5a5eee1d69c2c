"""Upstream weight files: verified download into the ecosystem's cache. Framework-free.

``fetch`` (the ``pretrained`` weights mode) downloads the upstream file with pooch (HTTP with timeout and retries) into a private
staging directory, verifies it against the card's pin (full sha256 and/or torch-hub style hash prefix in
the file name) and only then moves it atomically into the cache: a corrupt, truncated or half-written
download never enters the cache. The cache is the ecosystem's own (``torch-hub``: ``$TORCH_HOME/hub/
checkpoints``, where torchvision and timm look too) unless ``$MBV2_PARITY_CACHE`` is set.

Offline (``MBV2_PARITY_OFFLINE=1``, or the host does not resolve/answer within ``CONNECT_TIMEOUT_S``)
a missing file raises ``WeightsUnavailable`` within seconds; tests turn it into a SKIP with the URL.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from .. import settings
from ..errors import EXIT_FAILED, ParityError
from ..frameworks import CACHES
from ..registry import WeightsRef


class WeightsUnavailable(ParityError):
    """The weights cannot be had here (offline, unreachable, HTTP error). Checks SKIP on this, with the reason."""

    exit_code = EXIT_FAILED

    def __init__(self, reason: str, url: str):
        super().__init__(f"{reason} (url: {url})")
        self.reason = reason
        self.url = url


class DownloadError(ParityError):
    """The transfer broke (truncated body) even after retries. Checks FAIL on this."""

    exit_code = EXIT_FAILED


class ChecksumError(ParityError):
    """Downloaded or cached bytes do not match the pin. Checks FAIL on this (never skip)."""

    exit_code = EXIT_FAILED


def effective_url(url: str) -> str:
    """Apply ``MBV2_PARITY_URL_REWRITE`` ("PREFIX=REPLACEMENT;..."): a mirror, or a test server on 127.0.0.1."""
    for src, dst in settings.url_rewrite_rules():
        if url.startswith(src):
            return dst + url[len(src):]
    return url


def cache_dir(ref: WeightsRef) -> Path:
    """The ecosystem's own cache (torch hub's checkpoints, keras's models, paddle's weights), where the frameworks
    look too, unless ``MBV2_PARITY_CACHE`` moves every cache under one root."""
    root = settings.cache_root()
    if root is not None:
        return root / ref.cache
    eco = CACHES.get(ref.cache)
    if eco is None:
        return settings.ecosystem_home("", "$XDG_CACHE_HOME/mbv2-parity") / ref.cache
    return settings.ecosystem_home(eco.home_var, eco.default_home) / eco.subdir


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


PICKLE_FORMATS = ("torch-pickle", "paddle-pickle")


def verify(path: Path, ref: WeightsRef) -> str:
    """Check ``path`` against the card's pin; returns its sha256 or raises ChecksumError.

    A pickle format (``torch.load``/``paddle.load`` can execute code from it) with no pin at all is refused:
    its bytes are never handed to a loader unverified.
    """
    digest = sha256_file(path)
    if ref.format in PICKLE_FORMATS and not (ref.sha256 or ref.hash_prefix):
        raise ChecksumError(f"{path.name}: {ref.format} file with no pinned sha256 in the registry; refusing to load "
                            f"a pickle unverified (its sha256 is {digest}: check it against upstream, then pin it)")
    if ref.sha256 and digest != ref.sha256.lower():
        raise ChecksumError(f"{path.name}: sha256 {digest} != pinned {ref.sha256}")
    if ref.hash_prefix and not digest.startswith(ref.hash_prefix.lower()):
        raise ChecksumError(f"{path.name}: sha256 {digest[:16]}... does not start with the published prefix "
                            f"{ref.hash_prefix} (corrupt or changed upstream file)")
    return digest


def _reachable(url: str) -> str | None:
    """None if a TCP connection to the URL's host opens within the connect timeout, else the reason."""
    u = urlparse(url)
    port = u.port or (443 if u.scheme == "https" else 80)
    try:
        with socket.create_connection((u.hostname or "", port), timeout=settings.connect_timeout()):
            return None
    except OSError as e:
        return f"cannot reach {u.hostname}:{port} ({type(e).__name__}: {e})"


@dataclass
class Fetched:
    path: Path
    sha256: str
    downloaded: bool


def fetch(ref: WeightsRef, *, retries: int | None = None, progress: bool = False) -> Fetched:
    """Return the verified local file for ``ref``, downloading it if needed."""
    target = cache_dir(ref) / ref.filename
    if target.is_file():
        try:
            return Fetched(target, verify(target, ref), False)
        except ChecksumError as e:
            bad = target.with_name(target.name + ".corrupt")
            os.replace(target, bad)
            logging.getLogger(__name__).warning("cached file failed verification, moved to %s: %s", bad, e)
    retries = settings.retries() if retries is None else retries
    if settings.offline():
        raise WeightsUnavailable("offline mode (MBV2_PARITY_OFFLINE/HF_HUB_OFFLINE) and not in the cache "
                                 f"{target.parent}", ref.url)
    url = effective_url(ref.url)
    why = _reachable(url)
    if why:
        raise WeightsUnavailable(why, url)

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target.parent))
    try:
        got = _pooch_get(url, ref.filename, staging, retries, progress, shown_url=ref.url)
        digest = verify(got, ref)  # raises ChecksumError: staging is removed below, cache untouched
        os.replace(got, target)    # same filesystem: atomic
        return Fetched(target, digest, True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _pooch_get(url: str, name: str, staging: Path, retries: int, progress: bool = False, shown_url: str = "") -> Path:
    """One pooch download into ``staging`` (timeouts, retries), with requests' errors mapped onto ours."""
    import pooch  # imported lazily: only needed when actually downloading
    import requests
    shown_url = shown_url or url
    repo = pooch.create(path=staging, base_url=url.rsplit("/", 1)[0] + "/", registry={name: None},
                        urls={name: url}, retry_if_failed=retries)
    downloader = pooch.HTTPDownloader(progressbar=progress, timeout=(settings.connect_timeout(), settings.read_timeout()))
    pooch.get_logger().setLevel(logging.WARNING)   # pooch's own Logger object, not logging.getLogger("pooch")
    try:
        return Path(repo.fetch(name, downloader=downloader))
    except requests.exceptions.HTTPError as e:
        raise WeightsUnavailable(f"HTTP error {e.response.status_code if e.response is not None else ''}", shown_url) from None
    except requests.exceptions.ChunkedEncodingError as e:  # body shorter than Content-Length
        raise DownloadError(f"{name}: truncated download after {retries} retries ({str(e)[:160]})") from None
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as e:
        raise WeightsUnavailable(f"{type(e).__name__}: {str(e)[:200]}", shown_url) from None


def download(url: str, dest: Path, *, retries: int | None = None) -> tuple[Path, str]:
    """Unverified download of ``url`` (after rewriting) into ``dest``, returning (path, sha256): for the drift
    watch, which must fetch a changed upstream file precisely because it no longer matches the pin. The file is
    only hashed and compared, never loaded, by the caller."""
    retries = settings.retries() if retries is None else retries
    url = effective_url(url)
    why = _reachable(url)
    if why:
        raise WeightsUnavailable(why, url)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=dest.parent))
    try:
        got = _pooch_get(url, url.rstrip("/").rsplit("/", 1)[-1], staging, retries)
        os.replace(got, dest)
        return dest, sha256_file(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
