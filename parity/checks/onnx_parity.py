"""onnx: native logits vs every fp32 ONNX runtime (``parity.runtimes`` tagged ``onnx-fp32``: ONNX Runtime with graph
optimizations off and on) on the probe batch, judged with ``ONNX_FP32``; a genuine failure is bisected to the
first diverging layer. Faults (``parity.faults``): ``input`` ones go to the runtime side, all others to the native
(reference) side."""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from .. import faults as F
from .. import runtimes
from ..compare import ONNX_FP32, Comparison, Tolerance, compare_logits
from ..harness import DEFAULT_OPSET, Harness
from ..registry import Card
from . import register
from .base import Check, CheckResult, Needs


def swap_hw(x: np.ndarray, layout: str) -> np.ndarray:
    return np.ascontiguousarray(np.swapaxes(x, *((-1, -2) if layout == "NCHW" else (1, 2))))


INPUT_FAULTS = {"transposed_input": swap_hw}


@register
class OnnxParity(Check):
    kind = "onnx"
    needs = Needs(weights=True, runtimes=("native", "onnx-fp32"))
    standard = True

    def name(self, opset: int = DEFAULT_OPSET, exporter: str = "default", **params: Any) -> str:
        return f"onnx-opset{opset}" + (f"-{exporter}" if exporter != "default" else "")

    def run(self, h: Harness, card: Card, mode: str = "seeded", opset: int = DEFAULT_OPSET, exporter: str = "default",
            fault: str | None = None, tol: Tolerance = ONNX_FP32, runtime_names: list[str] | None = None,
            **params: Any) -> CheckResult:
        x, x_path = h.probe_tensor(card.preprocess)
        parsed = F.parse(fault) if fault else None
        ref_card = card.variant(faults=[str(parsed)]) if parsed and parsed.stage != "input" else card
        ref = h.native(ref_card, mode, x_path)
        x_rt = INPUT_FAULTS[parsed.name](x, card.preprocess.layout) if parsed and parsed.stage == "input" else x
        comps: list[Comparison] = []
        infos = {}
        for name in runtime_names or runtimes.names("onnx-fp32"):
            with runtimes.create(name) as rt:
                t0 = time.perf_counter()
                rt.load(runtimes.Target(h, card, mode, opset, exporter))
                h.time(card, "ort_session", time.perf_counter() - t0)
                t0 = time.perf_counter()
                y = rt.infer(x_rt)
                h.time(card, "ort_inference", time.perf_counter() - t0)
                comps.append(compare_logits(ref, y, tol, name))
                infos[name] = rt.info().to_dict()
        exp = h.export(card, mode, opset, exporter)
        failures = [f"{c.label}: {f}" for c in comps for f in c.failures]
        metrics: dict[str, Any] = {c.label: c.metrics for c in comps}
        metrics["onnx"] = {"sha256": exp.sha256, "bytes": exp.bytes, "exporter": exp.exporter, "opset": exp.opset,
                           "nodes": exp.check["nodes"], "producer": exp.check["producer"], "path": exp.path,
                           "spec_json": exp.spec_json}
        metrics["runtimes"] = infos
        reason = "; ".join(failures) if failures else " | ".join(c.summary() for c in comps)
        if failures and parsed is None:
            reason += " | " + bisect_message(h, card, mode, x)
        return CheckResult(card.id, self.name(opset=opset, exporter=exporter), "fail" if failures else "pass", reason,
                           mode, metrics)


def bisect_message(h: Harness, card: Card, mode: str, x: np.ndarray) -> str:
    """A genuine (not injected) parity failure: name the first diverging layer, native vs ONNX."""
    from ..weights.bisect import bisect_onnx
    try:
        x_nchw = x if card.preprocess.layout == "NCHW" else np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        return "bisection: " + bisect_onnx(h, card, mode, x_nchw).message()
    except Exception as e:  # never hide the parity failure behind a bisection problem  # noqa: BLE001
        return f"bisection unavailable: {type(e).__name__}: {str(e)[:160]}"
