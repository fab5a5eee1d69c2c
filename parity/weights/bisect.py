"""Layer-wise bisection: the first conv unit whose output diverges between two models (two frameworks, or a
native model and its ONNX export), with its error and its neighbours. Framework-free (workers give activations)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .. import frameworks
from ..registry import Card
from .canonical import UNITS
from .transplant import TransplantError, in_layout

if TYPE_CHECKING:
    from ..harness import Harness

Array = npt.NDArray[Any]
REL_TOL = 1e-4


@dataclass
class Bisection:
    first: int | None                  # unit index of the first divergence, None if none
    errors: list[float]                # per-unit max |a - b| / max |a|
    tol: float
    a: str
    b: str

    def message(self) -> str:
        if self.first is None:
            return f"{self.a} vs {self.b}: all {len(self.errors)} units agree (max rel error {max(self.errors):.1e})"
        i = self.first
        near = [f"{UNITS[k].label}: rel {self.errors[k]:.1e}" for k in (i - 1, i + 1) if 0 <= k < len(self.errors)]
        return (f"{self.a} vs {self.b}: first diverging layer {UNITS[i].label}, rel error {self.errors[i]:.1e} "
                f"(tolerance {self.tol:.0e}); neighbours: " + "; ".join(near))


def rel_errors(acts_a: list[Array], acts_b: list[Array]) -> list[float]:
    if len(acts_a) != len(acts_b):
        raise TransplantError(f"unit counts differ: {len(acts_a)} vs {len(acts_b)}")
    out = []
    for i, (x, y) in enumerate(zip(acts_a, acts_b)):
        for side, arr in (("first", x), ("second", y)):
            if not np.all(np.isfinite(arr)):
                raise TransplantError(f"non-finite activations (NaN/inf) at {UNITS[i].label if i < len(UNITS) else i} "
                                      f"of the {side} model: the comparison would be meaningless")
        if x.shape != y.shape:
            out.append(float("inf"))
            continue
        out.append(float(np.abs(x - y).max() / max(np.abs(x).max(), 1e-12)))
    return out


def _first(errs: list[float], tol: float) -> int | None:
    return next((i for i, e in enumerate(errs) if e > tol), None)


def native_activations(h: Harness, card: Card, mode: str, x_nchw: Array) -> list[Array]:
    built = h.build(card, mode)
    out = h.client(card.framework).activations(built.key, h.pool.put_array(in_layout(x_nchw, card.preprocess.layout),
                                                                              "bis"))
    with np.load(out) as z:
        return [z[f"arr_{i}"] for i in range(len(z.files))]


def bisect(h: Harness, card_a: Card, card_b: Card, mode: str, x_nchw: Array, tol: float = REL_TOL) -> Bisection:
    """First conv unit (BN output, before the activation) where two models' activations diverge."""
    errs = rel_errors(native_activations(h, card_a, mode, x_nchw), native_activations(h, card_b, mode, x_nchw))
    return Bisection(_first(errs, tol), errs, tol, card_a.id, card_b.id)


def onnx_unit_outputs(path: str | Path, x: Array, drop: tuple[int, ...] = ()) -> list[Array]:
    """Every BatchNormalization output of an ONNX graph (in node order) made a graph output and run in ONNX
    Runtime: the ONNX side of a native-vs-ONNX bisection. Needs an unfused graph (torch ``keep-bn`` export,
    paddle2onnx); a graph without BatchNormalization is refused with that reason."""
    import onnx
    import onnxruntime as ort
    model = onnx.load(str(path))
    bn_out = [n.output[0] for n in model.graph.node if n.op_type == "BatchNormalization"]
    if not bn_out:
        raise TransplantError(f"{Path(path).name}: no BatchNormalization nodes (the exporter folded them): a layer-wise "
                              "bisection needs an unfused export")
    known = {o.name for o in model.graph.output}
    for name in bn_out:
        if name not in known:
            model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    outs = sess.run(bn_out, {sess.get_inputs()[0].name: np.ascontiguousarray(x, np.float32)})
    return [np.asarray(o) for i, o in enumerate(outs) if i not in drop]


def bisect_onnx(h: Harness, card: Card, mode: str, x_nchw: Array, onnx_path: str | Path | None = None,
                tol: float = REL_TOL) -> Bisection:
    """Native (hooks on each BatchNorm) vs ONNX Runtime (each BatchNormalization output marked as a graph output)
    on the same tensor: the first conv unit whose output diverges."""
    fw = frameworks.get(card.framework)
    if fw.bisect_refused and onnx_path is None:
        raise TransplantError(f"{card.framework}: no native-vs-ONNX bisection: {fw.bisect_refused}")
    path = onnx_path or h.export(card, mode, exporter=fw.bisect_exporter).path
    native = native_activations(h, card, mode, x_nchw)
    onnx_acts = onnx_unit_outputs(path, in_layout(x_nchw, card.preprocess.layout), drop=fw.bisect_skip_units)
    errs = rel_errors(native, onnx_acts)
    return Bisection(_first(errs, tol), errs, tol, f"{card.id} native", f"{Path(path).name} (ONNX Runtime)")
