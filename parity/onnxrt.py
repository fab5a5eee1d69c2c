"""ONNX side: structural checks and ONNX Runtime (CPU) inference, with graph optimizations off and on."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

OPT_LEVELS = {"off": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "on": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}


class OnnxCheckError(ValueError):
    pass


def check_model(path: str | Path) -> dict:
    """``onnx.checker`` (full check) + strict shape inference; returns a summary of the graph."""
    path = str(path)
    try:
        model = onnx.load(path)
        onnx.checker.check_model(model, full_check=True)
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    except Exception as e:  # onnx raises several unrelated types
        raise OnnxCheckError(f"{Path(path).name}: {type(e).__name__}: {str(e).splitlines()[0][:300]}") from None
    opsets = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    out = inferred.graph.output[0]
    dims = [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim]
    ops: dict[str, int] = {}
    for n in model.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    return {"opset": opsets.get("ai.onnx"), "ir_version": model.ir_version, "producer": f"{model.producer_name} {model.producer_version}",
            "nodes": len(model.graph.node), "ops": ops, "input": model.graph.input[0].name, "output": out.name,
            "output_shape": dims}


def session(path: str | Path, opt: str = "off", threads: int = 0, spinning: bool = True) -> ort.InferenceSession:
    """A cached session; the file's mtime is part of the key so a rewritten model is reloaded. ``spinning=False``
    stops ORT's idle threads from busy-waiting (they would steal the cores decode processes need)."""
    return _session(str(path), opt, threads, spinning, Path(path).stat().st_mtime_ns)


@lru_cache(maxsize=32)
def _session(path: str, opt: str, threads: int, spinning: bool, _mtime: int) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.graph_optimization_level = OPT_LEVELS[opt]
    so.log_severity_level = 3
    if threads:
        so.intra_op_num_threads = threads
    if not spinning:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


CHUNK = 32  # images per inference call: constant memory for any batch size


def run(path: str | Path, x: np.ndarray, opt: str = "off", spinning: bool = True, threads: int = 0) -> np.ndarray:
    sess = session(path, opt, threads=threads, spinning=spinning)
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: np.ascontiguousarray(x[i:i + CHUNK], dtype=np.float32)})[0]
                           for i in range(0, len(x), CHUNK)])
