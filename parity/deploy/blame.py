"""Layer blame: where a quantized model loses precision. Per-tensor SQNR (dB) between the float model and the quantized
one, computed in the deploy host: for a QDQ file by onnxruntime's ``qdq_loss_debug`` (every activation the quantized
graph quantizes and every weight), named by the ONNX node that produces each tensor (torch and paddle exports carry
the module path, e.g. ``/features/features.4/conv/conv.1/conv.1.0/Conv``); for an NNCF IR per compute layer through
cut models (``adapters/deploy.py`` ``ov_layer_errors``), named by OpenVINO's layer name (the ONNX node's name, e.g.
``Conv__409/WithoutBiases``), which the ONNX table below leaves as it is."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnx

if TYPE_CHECKING:
    from ..harness import Harness

WORST = 5


@dataclass
class Blame:
    activations: list[tuple[str, float]]   # (layer, SQNR dB), worst first
    weights: list[tuple[str, float]]
    images: int

    def worst(self, n: int = WORST) -> str:
        acts = ", ".join(f"{k} {v:.1f} dB" for k, v in self.activations[:n])
        wts = ", ".join(f"{k} {v:.1f} dB" for k, v in self.weights[:n])
        return f"lowest activation SQNR: {acts}" + (f"; lowest weight SQNR: {wts}" if wts else "")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Blame:
        """A blame an artifact recorded when it was made (TFLite's QuantizationDebugger)."""
        return cls([(str(k), float(v)) for k, v in d["activations"]], [(str(k), float(v)) for k, v in d["weights"]],
                   int(d["images"]))

    def to_dict(self) -> dict[str, Any]:
        return {"activations": self.activations, "weights": self.weights, "images": self.images}


def _producers(path: str) -> dict[str, str]:
    """tensor -> 'op_type node_name' of the float graph (the layer a tensor belongs to)."""
    m = onnx.load(path, load_external_data=False)
    inits = {i.name for i in m.graph.initializer}
    out = {o: f"{n.op_type} {n.name}" for n in m.graph.node for o in n.output}
    for n in m.graph.node:                         # a weight belongs to the node that consumes it
        for i in n.input:
            if i in inits:
                out.setdefault(i, f"{n.op_type} {n.name}")
    return out


def blame(h: Harness, float_path: str, quant_path: str, calib_path: str, images: int = 8) -> Blame:
    r = h.deploy().layer_errors(Path(float_path), Path(quant_path), calib_path, images)
    names = _producers(float_path)

    def ranked(d: dict[str, float]) -> list[tuple[str, float]]:
        return sorted(((names.get(k, k), float(v)) for k, v in d.items()), key=lambda kv: kv[1])
    return Blame(ranked(r["activations"]), ranked(r["weights"]), int(r["images"]))
