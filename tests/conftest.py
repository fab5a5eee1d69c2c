import os
import sys
from pathlib import Path

import pytest

from parity.registry import load_registry
from parity.runner import Harness

REGISTRY = load_registry()
CARDS = list(REGISTRY)  # every card of every framework is in the matrix


@pytest.fixture(scope="session")
def harness(tmp_path_factory):
    with Harness(REGISTRY, workdir=tmp_path_factory.mktemp("harness")) as h:
        yield h
