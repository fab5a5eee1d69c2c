"""end-to-end: what a deployment ships -- image file -> the framework's own preprocessing -> native model, vs image
file -> the reference preprocessing of the card's spec -> the deployment runtime (ONNX Runtime by default)."""
from __future__ import annotations

from typing import Any

from .. import runtimes
from ..compare import ONNX_FP32, Tolerance, compare_logits
from ..harness import DEFAULT_OPSET, Harness
from ..preprocess import preprocess_batch
from ..registry import Card
from . import register
from .base import Check, CheckResult, Needs


@register
class EndToEnd(Check):
    kind = "end-to-end"
    needs = Needs(weights=True, runtimes=("native", "ort-opt-on"), images=True)

    def run(self, h: Harness, card: Card, mode: str = "seeded", images: list[Any] | None = None,
            opset: int = DEFAULT_OPSET, tol: Tolerance = ONNX_FP32, runtime: str = "ort-opt-on",
            **params: Any) -> CheckResult:
        images = list(images or [])
        ref_logits = h.native(card, mode, h.native_tensor(card, images))
        with runtimes.create(runtime) as rt:
            rt.load(runtimes.Target(h, card, mode, opset))
            y = rt.infer(preprocess_batch(images, card.preprocess))
        c = compare_logits(ref_logits, y, tol, "end-to-end")
        return CheckResult(card.id, "end-to-end", "fail" if c.failures else "pass", "; ".join(c.failures) or c.summary(),
                           mode, {"end-to-end": c.metrics})
