"""TFLite (seed 004 quotes it at 70.8 %): the keras models converted by ``TFLiteConverter`` -- float, or full-integer
int8 with a representative dataset (the calibration set, preprocessed with the card's spec) -- and run in the LiteRT
interpreter in the TensorFlow worker; and ``tflite-file``: a given .tflite (the real int8 deployments in
``../shared/realdata/tflite/``) run on the same tensors."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..harness import Skip
from ..paths import realdata_dir
from ..weights.modes import REAL_TFLITE
from . import register
from .base import Target
from .hosted import HostedRuntime

if TYPE_CHECKING:
    from ..registry import Card


class TfLiteRuntime(HostedRuntime):
    family = "tflite"
    honors = ("calib_dir", "calib_images")
    runtime = "tflite"
    suffix = ".tflite"

    def export_options(self, target: Target) -> dict[str, Any]:
        if self.options["precision"] != "int8":
            return {"precision": "float"}
        from ..deploy.calibration import calibration
        calib = calibration(target.harness, target.card.preprocess, self.options["calib_dir"],
                            self.options["calib_images"])
        self.calib = calib.to_dict()
        return {"precision": "int8", "calib": calib.path, "calib_fingerprint": calib.fingerprint}


class TfLiteFileRuntime(HostedRuntime):
    """A .tflite file given by path (default: the shared TF2 PTQ MobileNetV2), on the card's input tensors; its input
    quantization is applied by the interpreter side, its background class dropped."""

    family = "tflite"
    honors = ("path",)
    runtime = "tflite"
    suffix = ".tflite"
    INPUT = 224   # the shared file's input size

    def __init__(self, name: str, precision: str = "int8", threads: int = 0, path: str | None = None) -> None:
        super().__init__(name, precision=precision, threads=threads)
        self.options["path"] = path

    @classmethod
    def fits(cls, card: Card, mode: str) -> str:
        why = super().fits(card, mode)
        if why:
            return why
        if mode != "real":
            return ("the shared int8 .tflite runs its own weights: compare it with --weights real (the same file's "
                    "weights, dequantized, in the native model)")
        if card.preprocess.crop_size != cls.INPUT:
            return f"the shared .tflite takes {cls.INPUT}x{cls.INPUT} inputs; {card.id} crops {card.preprocess.crop_size}"
        return ""

    def unfit(self, card: Card, mode: str) -> str:
        # a file given by path is the caller's to pair with weights; the shared one needs its own (--weights real)
        return HostedRuntime.fits.__func__(type(self), card, mode) if self.options.get("path") else self.fits(card, mode)  # type: ignore[attr-defined]

    def load(self, target: Target) -> None:
        why = self.unfit(target.card, target.mode)
        if why:
            raise Skip(why)
        self.target = target
        path = self.options.get("path") or (realdata_dir() or Path("/nonexistent")).joinpath(*REAL_TFLITE)
        if not Path(path).is_file():
            raise Skip(f"no .tflite file at {path} (../shared/realdata is absent?)")
        self.path, self.made_by = str(path), {"tool": "given file", "path": str(path)}
        self.ran = self._run(target.harness.probe_tensor(target.card.preprocess)[0][:1], {})


register("tflite", TfLiteRuntime, tags=("deploy",), precision="fp32", doc="TFLite float (TFLiteConverter), keras models")
register("tflite-int8", TfLiteRuntime, tags=("deploy",), precision="int8",
         doc="TFLite full-integer int8 (representative dataset), keras models")
register("tflite-file", TfLiteFileRuntime, tags=("deploy",), precision="int8",
         doc="a given .tflite (default: the shared real TF2 PTQ int8 MobileNetV2) in the LiteRT interpreter")
