"""torchvision's own quantized MobileNetV2 (``torchvision.models.quantization``), run by torch's quantized engine in
the torch worker: ``torch-qnnpack`` (the engine and qconfig of the published ``IMAGENET1K_QNNPACK_V1``) and
``torch-fbgemm`` (torchvision's fbgemm qconfig: per-channel weights).

With ``--weights pretrained`` the artifact is the published quantized file (the card's ``deployed_weights`` entry,
downloaded and verified like any upstream file), else torchvision's recipe applied to the card's float weights and
calibrated on the calibration set. Either way the worker saves TorchScript and reports the quantized ops and the engine
it ran (the engine is the one it set: torch reads no engine back per module; the weights' qschemes are read back);
what torchvision's quantizable model changes before quantizing (ReLU6 -> ReLU) is measured at export and, when it is
what breaks float weights, named as the suspect of a failing verdict."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import frameworks
from ..harness import Skip
from . import register
from .base import Array, RuntimeInfo, Target
from .hosted import HostedRuntime

if TYPE_CHECKING:
    from ..registry import Card
    from ..weights.download import Fetched

# the framework whose quantization recipe this is: the one whose stack hosts the runtime (parity.frameworks)
HOST = ", ".join(f.name for f in frameworks.FRAMEWORKS.values() if "torch-quantized" in f.deploy_runtimes)
ARCHITECTURE_SUSPECT_DB = 10.0   # below this the unquantized quantizable model alone is the loss (measured: 0.3 dB)


class TorchQuantizedRuntime(HostedRuntime):
    family = "torch-quantized"
    honors = ("calib_dir", "calib_images")
    runtime = "torch-quantized"
    suffix = ".pt"

    def __init__(self, name: str, precision: str = "int8", threads: int = 0, calib_dir: str | None = None,
                 calib_images: int = 1000, engine: str = "qnnpack") -> None:
        super().__init__(name, precision=precision, threads=threads, calib_dir=calib_dir, calib_images=calib_images)
        self.options["engine"] = engine
        self.onnx: dict[str, Any] = {}
        self.published: dict[str, Any] = {}

    def unfit(self, card: Card, mode: str) -> str:
        why = self.fits(card, mode)
        if not why and mode == "pretrained" and self.name not in (card.raw.get("deployed_weights") or {}):
            why = (f"{card.id} has no published {self.name} weights (registry deployed_weights.{self.name}); "
                   "with other weights it quantizes the card's float model")
        return why

    def export_options(self, target: Target) -> dict[str, Any]:
        card, engine = target.card, self.options["engine"]
        opts: dict[str, Any] = {"engine": engine, "width_mult": float(card.build.get("width_mult", 1.0))}
        if target.mode == "pretrained":   # the published file; the calibration set then only measures the ReLU change
            got = published_file(card, self.name)
            opts.update(quantized_state=str(got.path), quantized_state_sha256=got.sha256)
            self.published = {"path": str(got.path), "sha256": got.sha256, "downloaded": got.downloaded}
        from ..deploy.calibration import calibration
        calib = calibration(target.harness, card.preprocess, self.options["calib_dir"], self.options["calib_images"])
        self.calib = calib.to_dict()
        return {**opts, "calib": calib.path, "calib_fingerprint": calib.fingerprint}

    def _run(self, x: Array, extra: dict[str, Any]) -> dict[str, Any]:
        return super()._run(x, {"engine": self.options["engine"], **extra})

    def load(self, target: Target) -> None:
        super().load(target)
        self.onnx = self._onnx_export(target)

    def _onnx_export(self, target: Target) -> dict[str, Any]:
        """torch's ONNX export of the quantized model, run in ONNX Runtime against torch's engine on the probes."""
        said = dict(self.made_by.get("onnx_export") or {})
        if "path" not in said or not Path(said["path"]).is_file():
            return said
        from ..compare import ONNX_FP32, compare_logits
        from .onnxruntime import run
        x = target.harness.probe_tensor(target.card.preprocess)[0]
        try:
            y = run(said["path"], x, opt="on")
        except Exception as e:  # noqa: BLE001 - ORT refusing torch's file is the finding, recorded in one line
            return {**said, "ort_refused": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"}
        m = compare_logits(self.infer(x), y, ONNX_FP32).metrics     # recorded, not judged (README "Deployment")
        return {**said, "vs_engine": {**m, "probes": len(x)}}

    def info(self) -> RuntimeInfo:
        info = super().info()
        info.detail["onnx_export"] = self.onnx
        if self.published:
            info.detail["published_weights"] = self.published
        made = self.made_by
        if made.get("weight_qschemes") and set(made["weight_qschemes"]) != {made.get("recipe_scheme")}:
            info.notes.append(f"weights are {', '.join(sorted(made['weight_qschemes']))}, not the "
                              f"{made.get('recipe_scheme')} the {self.options['engine']} recipe makes: "
                              "the loaded file decides")
        arch = made.get("architecture_sqnr_db")
        if arch is not None and arch < ARCHITECTURE_SUSPECT_DB and "loaded_state" not in made:
            # float weights through the recipe; a loaded (QAT) state was trained with the swap, so it is no suspect
            info.detail["suspect"] = (
                f"{HOST}'s quantizable MobileNetV2 replaces ReLU6 with ReLU ({made['relu6_replaced_by_relu']}"
                f" modules, _replace_relu): unquantized it is already {arch:.1f} dB from the float model "
                f"({made['architecture_top1_agree']:.0%} top-1 agreement on "
                f"{made['architecture_images']} calibration images); the published quantized weights are "
                "quantization-aware trained with it, float weights trained with ReLU6 need QAT too")
        return info


def published_file(card: Card, runtime: str) -> Fetched:
    """The card's published quantized weights for ``runtime`` (registry ``deployed_weights``), fetched and verified."""
    from ..registry import WeightsRef
    from ..weights.download import WeightsUnavailable, fetch
    entry = (card.raw.get("deployed_weights") or {})[runtime]   # unfit() has said why when there is none
    try:
        return fetch(WeightsRef(**entry))
    except WeightsUnavailable as e:
        raise Skip(f"published {runtime} weights unavailable: {e}") from None


register("torch-qnnpack", TorchQuantizedRuntime, tags=("deploy",), precision="int8", engine="qnnpack",
         doc=f"{HOST}'s quantized MobileNetV2 (eager recipe, per-tensor weights) on torch's QNNPACK engine")
register("torch-fbgemm", TorchQuantizedRuntime, tags=("deploy",), precision="int8", engine="fbgemm",
         doc=f"{HOST}'s quantized MobileNetV2 (eager recipe, per-channel weights) on torch's FBGEMM engine")
