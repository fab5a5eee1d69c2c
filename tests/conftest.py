import os

import pytest

from parity.harness import Harness
from support import REGISTRY

# The CLI is written to be readable at 120 columns (README); pytest itself exports COLUMNS=80 to the processes it
# starts, which would fold every table the CLI tests read.
os.environ["COLUMNS"] = "120"


@pytest.fixture(scope="session")
def harness(tmp_path_factory):
    with Harness(REGISTRY, workdir=tmp_path_factory.mktemp("harness")) as h:
        yield h
