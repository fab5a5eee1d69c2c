"""A plug-in from outside the core (loaded with MBV2_PARITY_PLUGINS=plugins_demo): one runtime and one check, one
module, to prove that adding either is one module and that both run in the matrix."""
from __future__ import annotations

import json

import numpy as np

from parity import checks, runtimes
from parity.checks import Check, CheckResult, Needs
from parity.runtimes.base import Runtime, RuntimeInfo, Target
from parity.runtimes.onnxruntime import run
from parity.spec import PreprocessSpec


class SingleThreadOrt(Runtime):
    """ONNX Runtime with one intra-op thread: the fp32 export, another execution configuration."""

    family = "demo"

    def load(self, target: Target) -> None:
        self.target = target
        self.path = target.harness.export(target.card, target.mode, target.opset, target.exporter).path

    def infer(self, x: np.ndarray) -> np.ndarray:
        return run(self.path, x, "on", threads=1)

    def info(self) -> RuntimeInfo:
        return RuntimeInfo(self.name, self.family, "demo", "fp32", {"threads": 1}, self.path)


runtimes.register("demo-ort-1thread", SingleThreadOrt, tags=("onnx-fp32",), doc="demo plug-in: ORT, one thread")


@checks.register
class ShippedSpec(Check):
    """demo plug-in: the exported ONNX file ships the card's preprocessing spec (its metadata_props)."""

    kind = "demo-shipped-spec"
    needs = Needs(weights=True)
    standard = True

    def run(self, h, card, mode="seeded", **params) -> CheckResult:
        from parity.onnxfile import metadata
        shipped = json.loads(metadata(h.export(card, mode).path)["mbv2_parity.preprocess"])["preprocess"]
        diffs = card.preprocess.differences(PreprocessSpec.from_dict(shipped))
        return CheckResult(card.id, self.kind, "fail" if diffs else "pass",
                           "; ".join(diffs) or "the ONNX file ships the card's spec", mode)
