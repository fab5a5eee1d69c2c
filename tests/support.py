"""Shared test helpers (test modules import this, never conftest): the registry, card selections, and one-line
wrappers running a check by kind."""
from __future__ import annotations

from parity import checks, frameworks
from parity.registry import load_registry

REGISTRY = load_registry()
CARDS = list(REGISTRY)  # every card of every framework is in the matrix
REFERENCE = [REGISTRY.get(f.reference_card) for f in frameworks.FRAMEWORKS.values()]   # one per framework


def spec_check(h, card):
    return checks.run("spec", h, card)


def meta_check(h, card):
    return checks.run("meta", h, card)


def counts_check(h, card, mode="seeded"):
    return checks.run("counts", h, card, mode=mode)


def nontrivial_check(h, card, mode="seeded"):
    return checks.run("nontrivial", h, card, mode=mode)


def onnx_check(h, card, mode="seeded", opset=17, **kw):
    return checks.run("onnx", h, card, mode=mode, opset=opset, **kw)


def preprocess_check(h, card, images, **kw):
    return checks.run("preprocess", h, card, images=images, **kw)


def e2e_check(h, card, mode, images, **kw):
    return checks.run("end-to-end", h, card, mode=mode, images=images, **kw)
