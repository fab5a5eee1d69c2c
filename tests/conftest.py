import os

import pytest

from parity.harness import Harness
from support import REGISTRY

# The CLI is written to be readable at 120 columns (README); pytest itself exports COLUMNS=80 to the processes it
# starts, which would fold every table the CLI tests read.
os.environ["COLUMNS"] = "120"


@pytest.fixture(scope="session", autouse=True)
def run_artifact_cache(tmp_path_factory):
    """The artifact cache across runs (parity.cache), shared by the whole test run (every xdist worker, every CLI
    process a test starts) in the run's own temporary directory, never the user's: the first test that needs a model,
    an export or a deployed file makes it, the others reuse it. Every check still computes its verdict on what it
    reuses (the cache stores what was produced, never a verdict), and the key holds every ingredient -- an injected
    fault is part of the card variant's build, an artifact fault part of the runtime's options -- so a faulted model
    is never a hit for a clean one (tests/test_cache*.py prove each ingredient). A test about making (workers started,
    what was built) runs with ``fresh`` below. MBV2_PARITY_ARTIFACTS given from outside is used as it is."""
    if os.environ.get("MBV2_PARITY_ARTIFACTS") or os.environ.get("MBV2_PARITY_NO_CACHE"):
        yield
        return
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base   # xdist: the run's common directory
    os.environ["MBV2_PARITY_ARTIFACTS"] = str(root / "artifacts")
    yield
    os.environ.pop("MBV2_PARITY_ARTIFACTS", None)


@pytest.fixture
def fresh(monkeypatch):
    """No artifact cache for this test: everything it checks is made in it (tests of building, worker starts, and
    what a cold run reports)."""
    monkeypatch.delenv("MBV2_PARITY_ARTIFACTS", raising=False)
    monkeypatch.setenv("MBV2_PARITY_NO_CACHE", "1")


@pytest.fixture(scope="session")
def harness(tmp_path_factory):
    with Harness(REGISTRY, workdir=tmp_path_factory.mktemp("harness")) as h:
        yield h


def pytest_collection_modifyitems(config, items):
    """A test that starts workers (through the `harness` fixture, also indirectly) is marked `workers`: `tox -e
    mutation` runs the judging tests without them (`-m "judging and not workers"`), a few seconds per mutant."""
    for item in items:
        if "harness" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.workers)
