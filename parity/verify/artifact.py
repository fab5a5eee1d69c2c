"""An artifact as `verify` sees it: its format, what the parent read of the file, what its runtime reports (I/O,
precision), and ``run``: a batch fed in the artifact's own layout and dtype, run in the worker of its stack; a crash
there is caught, retried one image at a time and reported. Framework-free."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..deploy.precisions import judged_as
from ..workers.process import WorkerCrashed
from .formats import ArtifactRefused, Format, detect

if TYPE_CHECKING:
    from ..harness import Harness

Array = npt.NDArray[Any]
CLASSES = (1000, 1001)
PRECISION_FROM = {"onnx": "read from the file: QDQ / fp16 tensors",
                  "ncnn": "the lower of the .bin's weight storage tags and what ncnn's default fp16 options measurably "
                          "do where it ran (measured each run)",
                  "mnn": "the lower of the file's weight storage and what MNN's precision normal measurably does "
                         "where it ran (measured each run) against precision high",
                  "executorch": "read from the file: its delegates' tensor datatypes"}


def sha256(path: Path) -> str:
    if path.is_dir():
        return ""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Artifact:
    path: Path
    fmt: Format
    file: dict[str, Any]                 # what the parent read of the file (structure.py), {} when nothing
    io: dict[str, Any] = field(default_factory=dict)
    precision: str = "fp32"
    detail: dict[str, Any] = field(default_factory=dict)
    version: str = ""
    notes: list[str] = field(default_factory=list)
    crashed_at: int | None = None
    fault: str = ""                      # injected worker fault (tests only)
    sha256: str = ""
    # options that make the runtime run the file at the file's own precision, where the runtime chose a lower one for
    # this CPU and can be told otherwise (OpenVINO's INFERENCE_PRECISION_HINT f32): identification runs with them, the
    # verdict judges what the deployment gets (the default)
    exact: dict[str, Any] = field(default_factory=dict)
    exact_precision: str = ""

    # ------------------------------------------------------------------ what the file declares
    @property
    def input_shape(self) -> list[int | None]:
        return list(self.io.get("input_shape") or [])

    @property
    def layout(self) -> str:
        s = self.input_shape
        if len(s) == 4 and s[3] == 3 and s[1] != 3:
            return "NHWC"
        return "NCHW"

    @property
    def size(self) -> int | None:
        s = self.input_shape
        if len(s) != 4:
            return None
        return s[1] if self.layout == "NHWC" else s[2]

    @property
    def batch(self) -> str:
        s = self.input_shape
        return "dynamic" if not s or s[0] is None else f"fixed {s[0]}"

    @property
    def classes(self) -> int:
        return int((self.io.get("output_shape") or [0])[-1] or 0)

    @property
    def quantized_input(self) -> tuple[float, int] | None:
        q = self.io.get("input_quantization")
        if self.io.get("input_dtype") in ("uint8", "int8") and q and q[0]:
            return float(q[0]), int(q[1])
        return None

    @property
    def structure(self) -> dict[str, Any]:
        return dict(self.file.get("structure") or {})

    def describe(self) -> list[str]:
        io, st = self.io, self.structure
        q = self.quantized_input
        lines = [f"format: {self.fmt.title} ({self.path.name}, run by {self.version or self.fmt.host})",
                 f"input: {io.get('input_name')} {self.input_shape} {self.layout} {io.get('input_dtype')}"
                 + (f", quantized: scale {q[0]:.6g} (1/{1 / q[0]:.4g}), zero point {q[1]}" if q else "")
                 + f"; batch {self.batch}",
                 f"output: {self.classes} classes" + (" (index 0 = background)" if self.classes == 1001 else "")
                 + f", {self.output_kind}" + (f", {io.get('output_dtype')}" if io.get("output_dtype") else ""),
                 f"runs at: {self.precision} ({PRECISION_FROM.get(self.fmt.name, 'read back from the runtime')})" + (
                     f"; weights {', '.join(self.file.get('weights', {}).get('granularity', []))}"
                     if self.file.get("weights", {}).get("granularity") else "")]
        measured = self.detail.get("fp16_options_effect") or self.detail.get("precision_normal_vs_high")
        if measured:
            what = "ncnn's default fp16 options against them off" if self.fmt.name == "ncnn" else \
                "MNN's precision normal against high"
            lines.append(f"measured on this machine: {what}: " + (
                "identical outputs" if measured.get("identical") else
                f"SQNR {measured.get('sqnr_db')} dB, max abs {measured.get('max_abs', 0):.3g}"))
        if st:
            lines.append(f"structure: stem {st.get('stem_channels')} ch, features {st.get('feature_channels')} ch, "
                         f"{st.get('convs')} conv units, padding {st.get('padding')}, {st.get('activation')}")
        return lines

    @property
    def output_kind(self) -> str:
        return "probabilities (softmax applied)" if self.structure.get("softmax") or \
            self.detail.get("output") == "probabilities" else "logits"

    @property
    def probabilities(self) -> bool:
        return self.output_kind.startswith("probabilities")

    # ------------------------------------------------------------------ running
    def feed(self, x: Array) -> Array:
        """A float batch in the artifact's layout -> what its input takes (quantized with the file's own scale and
        zero point when it takes integers)."""
        q = self.quantized_input
        if q is None:
            return np.ascontiguousarray(x, np.float32)
        info = np.iinfo(np.dtype(self.io["input_dtype"]))
        return np.clip(np.round(x / q[0] + q[1]), info.min, info.max).astype(np.float32)

    def _call(self, h: Harness, inp: str, options: dict[str, Any]) -> dict[str, Any]:
        opts = {**options, **({"fault": self.fault} if self.fault else {})}
        if self.fmt.host == "deploy":
            return h.deploy().artifact(self.fmt.name, str(self.path), inp, opts)
        return h.client(self.fmt.host).artifact(self.fmt.name, str(self.path), inp, opts)

    def load(self, h: Harness) -> None:
        r = self._call(h, "", {"probe_size": self.size or 224})
        worker_io = r.get("io") or {}
        self.io = {**worker_io, **{k: v for k, v in (self.file.get("io") or {}).items() if v not in (None, [], "")}}
        for k in ("input_quantization", "output_quantization"):
            if worker_io.get(k) is not None:
                self.io[k] = worker_io[k]
        if self.fmt.name == "onnx":           # ORT reports none: the file's QDQ / fp16
            self.precision = str(self.file.get("precision") or "fp32")
        elif self.fmt.name in ("ncnn", "mnn"):   # the weights' storage (read by the parent) and the runtime's measure
            # a file stored lower than its runtime computes is judged at the lower (deploy.precisions.judged_as)
            self.precision = judged_as(str(self.file.get("precision") or "fp32"), str(r.get("precision") or "fp32"))
        else:
            self.precision = str(r.get("precision") or "fp32")
        self.detail, self.version = dict(r.get("detail") or {}), str(r.get("version") or "")
        stored = str(self.file.get("precision") or "fp32")
        if self.fmt.exact_options and stored == "fp32" and self.precision != stored:
            self.exact, self.exact_precision = dict(self.fmt.exact_options), stored
            self.notes.append(f"{self.fmt.title}: its runtime runs this fp32 file at {self.precision} by default (read "
                              f"back: {self.detail.get('compute_layers')}); identified with {self.fmt.exact_how}, "
                              f"judged at {self.precision} (what a deployment with the default gets)")
        if self.classes not in CLASSES or len(self.input_shape) not in (0, 4):
            raise ArtifactRefused(f"{self.path.name}: not an ImageNet classifier (input {self.input_shape}, output "
                                  f"{self.io.get('output_shape')}): a file for another task",
                                  hint="verify checks MobileNetV2 classifiers: 1000 classes, or 1001 with background")

    def run(self, h: Harness, x: Array, exact: bool = False) -> Array:
        """Raw scores (N, classes) for a float batch in the artifact's layout; ``exact``: at the file's own precision
        where the runtime can be told so (``self.exact``), else as deployed."""
        inp = h.pool.put_array(self.feed(x), "verify")
        extra = self.exact if exact else {}
        try:
            try:
                r = self._call(h, inp, {"batch": 1 if self.crashed_at else 0, **extra})
            except WorkerCrashed as e:
                if len(x) < 2 or self.crashed_at:
                    raise
                self.crashed_at = len(x)
                self.notes.append(f"crashes at batch {len(x)}: ran one image at a time ({str(e).splitlines()[0]})")
                r = self._call(h, inp, {"batch": 1, **extra})
            y = np.load(r["output"]).astype(np.float64)
            Path(r["output"]).unlink(missing_ok=True)
        finally:
            Path(inp).unlink(missing_ok=True)
        q = self.io.get("output_quantization")
        if q and q[0] and self.io.get("output_dtype") in ("uint8", "int8"):
            y = (y - q[1]) * q[0]
        out: Array = y.reshape(len(x), -1)
        return out

    def scores(self, raw: Array) -> Array:
        """The 1000 ImageNet classes' scores (background class dropped)."""
        return raw[:, 1:] if raw.shape[1] == 1001 else raw


def open_artifact(path: Path) -> Artifact:
    """Detect and read the file (parent side): every refusal happens here, before any worker starts."""
    fmt = detect(path)
    file = fmt.inspect(path) if fmt.inspect else {}
    art = Artifact(path, fmt, file, sha256=sha256(path))
    io = file.get("io") or {}
    out = io.get("output_shape")
    if out and (out[-1] not in CLASSES):
        raise ArtifactRefused(f"{path.name}: not an ImageNet classifier (output {out}): a file for another task",
                              hint="verify checks MobileNetV2 classifiers: 1000 classes, or 1001 with background")
    shape = io.get("input_shape")
    if shape and (len(shape) != 4 or 3 not in (shape[1], shape[3])):
        raise ArtifactRefused(f"{path.name}: input {shape} is not an RGB image batch: a file for another task",
                              hint="verify checks image classifiers (N, 3, H, W) or (N, H, W, 3)")
    art.io = dict(io)
    art.notes += [str(n) for n in file.get("notes", [])]
    return art
