"""Well-known locations: the installed code, the fixtures (registry, golden fingerprints), shared read-only test
data, the default work directory. Framework-free."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from . import settings

PACKAGE = Path(__file__).resolve().parent          # parity/
ROOT = PACKAGE.parent                              # the checkout (or site-packages of a wheel install)
ADAPTERS = ROOT / "adapters"


def _fixtures() -> Path:
    """``fixtures/`` of the checkout; in a wheel it is installed as the package ``parity.fixtures``."""
    spec = importlib.util.find_spec("parity.fixtures")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return ROOT / "fixtures"


FIXTURES = _fixtures()
REGISTRY_FILE = FIXTURES / "registry.toml"
GOLDEN_DIR = FIXTURES / "golden"


def realdata_dir() -> Path | None:
    """``../shared/realdata`` beside the checkout (or ``$MBV2_PARITY_REALDATA``), or None when absent."""
    cand = settings.realdata() or ROOT.parent / "shared" / "realdata"
    return cand if cand.is_dir() else None


def default_workdir() -> Path:
    """``$MBV2_PARITY_WORKDIR``, else ``./build`` of the current directory (never inside an installed package); absolute
    (``workdir_path``)."""
    return workdir_path(settings.workdir() or Path("build"))


def workdir_path(raw: str | Path) -> Path:
    """A work directory as it enters (``--workdir``, ``$MBV2_PARITY_WORKDIR``, ``Harness(workdir=)``), made absolute once:
    workers run with their own directory as cwd and the work directory's code links on their PYTHONPATH, so a
    relative path would name another place there."""
    return Path(raw).expanduser().absolute()
