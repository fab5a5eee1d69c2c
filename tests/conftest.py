import os

import pytest

from parity.harness import Harness
from support import REGISTRY

# The CLI is written to be readable at 120 columns (README); pytest itself exports COLUMNS=80 to the processes it
# starts, which would fold every table the CLI tests read.
os.environ["COLUMNS"] = "120"
# The artifact cache across runs (parity.cache) is off in the tests unless a cache directory is given: a test's
# verdict comes from what it made itself; the cache's own tests turn it on in a directory of their own.
if not os.environ.get("MBV2_PARITY_ARTIFACTS"):
    os.environ.setdefault("MBV2_PARITY_NO_CACHE", "1")


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
