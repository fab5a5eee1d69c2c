import os
import sys
from pathlib import Path

import pytest

from parity.registry import load_registry
from parity.runner import Harness

REGISTRY = load_registry()
HARNESS_FRAMEWORKS = ("torchvision", "timm")  # adapters delivered so far (issue 3)
CARDS = [c for c in REGISTRY if c.framework in HARNESS_FRAMEWORKS]


@pytest.fixture(scope="session")
def harness(tmp_path_factory):
    with Harness(REGISTRY, workdir=tmp_path_factory.mktemp("harness")) as h:
        yield h
