"""Well-known locations of the project and of shared, read-only test data."""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
REGISTRY_FILE = FIXTURES / "registry.toml"


def realdata_dir() -> Path | None:
    """``../shared/realdata`` (or ``$MBV2_PARITY_REALDATA``), or None when absent."""
    env = os.environ.get("MBV2_PARITY_REALDATA")
    cand = Path(env) if env else ROOT.parent / "shared" / "realdata"
    return cand if cand.is_dir() else None


def cache_root() -> Path:
    """Root of the weights cache when no ecosystem-specific location applies."""
    env = os.environ.get("MBV2_PARITY_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "mbv2-parity"


def default_workdir() -> Path:
    env = os.environ.get("MBV2_PARITY_WORKDIR")
    return Path(env) if env else ROOT / "build"
