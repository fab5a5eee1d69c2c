"""deploy: what a deployment runs -- a runtime at a precision (``parity.runtimes`` tagged ``deploy``: ONNX Runtime
fp16/int8, OpenVINO f32/default/bf16/int8, TFLite float/int8, TorchScript, Paddle Inference) -- against the fp32 native
reference on the probe batch (synthetic and real images), judged by the precision it actually ran
(``parity.deploy.precisions``). It also fails when a runtime runs another precision than it promised (read back from
the runtime), and when a quantized artifact was calibrated on images preprocessed with another spec than the card's.
A quantized artifact's failure (QDQ ONNX, NNCF IR) names the layers that lose the most (``parity.deploy.blame``)."""
from __future__ import annotations

import logging
import time
from typing import Any

from .. import faults as F
from .. import runtimes
from ..deploy.precisions import SEEDED_NOT_JUDGED, judge, judged_as
from ..errors import UsageError
from ..harness import DEFAULT_OPSET, Harness, Skip
from ..registry import Card
from . import register
from .base import Check, CheckResult, Needs
from .onnx_parity import INPUT_FAULTS

log = logging.getLogger(__name__)


def recorded_calibration(info: Any) -> dict[str, Any] | None:
    """The calibration an artifact was made with, as the artifact file itself records it (ONNX metadata_props or the
    IR's sidecar), else as the runtime reported it."""
    from ..deploy.artifacts import made_by
    on_disk = made_by(info.artifact).get("calibration") if info.artifact.endswith((".onnx", ".xml")) else None
    got = on_disk or info.detail.get("made_by", {}).get("calibration") or info.detail.get("calibration")
    return dict(got) if got else None


def softmax(z: Any) -> Any:
    import numpy as np
    e = np.exp(np.asarray(z, np.float64) - np.max(z, axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def judge_output(ref: Any, y: Any, precision: str, label: str, probs: bool, seeded: bool = False) -> Any:
    """``judge`` of a runtime's output against the reference logits; ``probs``: the output is probabilities (a file
    ending in softmax), compared with the reference's softmax, the logits judged for being non-trivial."""
    return judge(softmax(ref) if probs else ref, y, precision, label, logits=ref if probs else None, seeded=seeded)


@register
class DeployCheck(Check):
    kind = "deploy"
    needs = Needs(weights=True, runtimes=("native",))

    def name(self, runtime: str = "", **params: Any) -> str:
        return f"deploy-{runtime}"

    def run(self, h: Harness, card: Card, mode: str = "seeded", runtime: str = "", options: dict[str, Any] | None = None,
            opset: int = DEFAULT_OPSET, blame: bool = True, fault: str | None = None, **params: Any) -> CheckResult:
        if runtime not in runtimes.names("deploy"):
            raise UsageError(f"unknown deploy runtime {runtime!r}", hint=f"one of {', '.join(runtimes.names('deploy'))}")
        x, x_path = h.probe_tensor(card.preprocess)
        parsed = F.parse(fault) if fault else None
        options = dict(options or {})
        if parsed and parsed.stage == "artifact":
            if "fault" not in runtimes.quantizes(runtime):
                takers = [n for n in runtimes.names("deploy") if "fault" in runtimes.quantizes(n)]
                raise UsageError(f"fault {parsed}: {runtime} makes no artifact it applies to",
                                 hint=f"artifact faults apply to {', '.join(takers)}")
            options["fault"] = str(parsed)        # the runtime damages its own artifact
        ref_card = card.variant(faults=[str(parsed)]) if parsed and parsed.stage not in ("input", "artifact") else card
        x_rt = INPUT_FAULTS[parsed.name](x, card.preprocess.layout) if parsed and parsed.stage == "input" else x
        with runtimes.create(runtime, **options) as rt:
            unfit = rt.unfit(card, mode)
            if unfit:                             # before any model is built
                raise Skip(f"{runtime}: {unfit}")
            ref = h.native(ref_card, mode, x_path)
            t0 = time.perf_counter()
            rt.load(runtimes.Target(h, card, mode, opset))      # makes (or reuses) its artifact
            h.time(card, "deploy_load", time.perf_counter() - t0)
            t0 = time.perf_counter()
            y = rt.infer(x_rt)
            h.time(card, "deploy_inference", time.perf_counter() - t0)
            info = rt.info()
            promise = getattr(rt, "promise", None)
            artifact = getattr(getattr(rt, "art", None), "precision", None) or info.options.get("precision", "fp32")
        fails = []
        if promise and promise != info.precision:
            fails.append(f"runs {info.precision}, not the {promise} it promises ({'; '.join(info.notes)})")
        calib = recorded_calibration(info)
        if calib and calib.get("spec") != card.preprocess.digest():
            fails.append(f"calibrated on images preprocessed with another spec ({calib.get('spec')}) than the "
                         f"card's ({card.preprocess.digest()})")
        probs = info.detail.get("executed", {}).get("output") == "probabilities"   # a file that ends in softmax
        precision = judged_as(str(artifact), info.precision)
        c = judge_output(ref, y, precision, runtime, probs, seeded=mode == "seeded")
        if precision in SEEDED_NOT_JUDGED and mode == "seeded" and not fails:
            # seeded weights are not trained: only the structural checks above judge them (precisions.py has why)
            raise Skip(f"{runtime}: {precision} on seeded weights is not judged ({SEEDED_NOT_JUDGED[precision]}: "
                       f"{c.summary()}); promise and calibration spec checked; use real weights")
        fails += c.failures
        metrics: dict[str, Any] = {runtime: c.metrics, "judged_as": precision, "runtime": info.to_dict()}
        reason = "; ".join(fails) or (f"{info.precision} ({precision} budget): " + c.summary())
        # a measured precision loss of trained weights: where it is (scheme or kernels, which layers) is worth a run;
        # a broken promise or calibration spec alone, or seeded weights' int8 noise, is not such a loss
        loss = bool(c.failures) and mode != "seeded"
        split, scheme_loses = ("", False)
        if loss and precision == "int8" and info.artifact.endswith(".onnx"):
            split, scheme_loses = self._split(ref, x_rt, info, probs, runtime, metrics)
        if loss and info.detail.get("suspect") and not scheme_loses:   # a hazard the runtime names for what it ran
            reason += f" | suspect: {info.detail['suspect']}"
        if split:
            reason += " | " + split
        recorded = info.detail.get("made_by", {}).get("layer_blame")
        if loss and blame and recorded:           # the artifact's own tool measured it (TFLite)
            from ..deploy.blame import Blame
            metrics["blame"] = recorded
            reason += f" | {recorded.get('tool', 'layer blame')}: " + Blame.from_dict(recorded).worst()
        elif loss and blame and info.artifact.endswith((".onnx", ".xml")) and precision == "int8":
            reason += " | " + self._blame(h, card, mode, opset, info, metrics)
        return CheckResult(card.id, self.name(runtime=runtime), "fail" if fails else "pass", reason, mode, metrics)

    @staticmethod
    def _split(ref: Any, x: Any, info: Any, probs: bool, runtime: str, metrics: dict[str, Any]) -> tuple[str, bool]:
        """Scheme or kernels: the QDQ file run with graph optimizations off is the quantization scheme alone
        (fake-quantized float: every QuantizeLinear/DequantizeLinear pair evaluated as written, no integer kernel);
        where it passes and the integer kernels fail, the runtime's kernels lose what the scheme keeps. Returns the
        sentence and whether the scheme itself fails (then a kernel suspect the runtime names is beside the point)."""
        from ..runtimes.onnxruntime import run
        u = run(info.artifact, x, opt="off")
        cu = judge_output(ref, u, "int8", f"{runtime} unfused", probs)
        metrics["unfused"] = cu.metrics
        where = "the quantization scheme itself" if cu.failures else f"{runtime}'s integer kernels, not the scheme"
        return (f"the QDQ file run unfused (the scheme alone, no integer kernel): {cu.summary()}: the loss is in "
                f"{where}", bool(cu.failures))

    @staticmethod
    def _blame(h: Harness, card: Card, mode: str, opset: int, info: Any, metrics: dict[str, Any]) -> str:
        from ..deploy.blame import blame
        try:
            calib = recorded_calibration(info) or {}
            images = h.workdir / "calibration" / f"{calib.get('images')}-{calib.get('spec')}.npy"
            b = blame(h, h.export(card, mode, opset).path, info.artifact,
                      str(images) if images.is_file() else h.probe_tensor(card.preprocess)[1])
        except Exception as e:
            log.warning("layer blame failed for %s %s", card.id, info.name, exc_info=True)
            return f"layer blame unavailable: {type(e).__name__}: {str(e)[:160]}"
        metrics["blame"] = b.to_dict()
        return b.worst()
