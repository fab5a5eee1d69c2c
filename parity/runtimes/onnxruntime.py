"""ONNX Runtime (CPU) on the exported ONNX file, graph optimizations off and on. Framework-free.

``session``/``run`` are the shared helpers (a session cache keyed on the file's mtime, constant-memory chunked
inference); ``OrtRuntime`` is the runtime plug-in.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import onnxruntime as ort

from . import register
from .base import Array, Runtime, RuntimeInfo, Target

OPT_LEVELS = {"off": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "on": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
CHUNK = 32  # images per inference call: constant memory for any batch size


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


def run(path: str | Path, x: Array, opt: str = "off", spinning: bool = True, threads: int = 0) -> Array:
    sess = session(path, opt, threads=threads, spinning=spinning)
    name = sess.get_inputs()[0].name
    return np.concatenate([np.asarray(sess.run(None, {name: np.ascontiguousarray(x[i:i + CHUNK], dtype=np.float32)})[0])
                           for i in range(0, len(x), CHUNK)])


class OrtRuntime(Runtime):
    """The card's fp32 ONNX export in ONNX Runtime's CPU provider."""

    family = "onnxruntime"

    def __init__(self, name: str, opt: str = "off", threads: int = 0, spinning: bool = True) -> None:
        super().__init__(name, opt=opt, threads=threads, spinning=spinning)
        self.path = ""

    def load(self, target: Target) -> None:
        self.target = target
        self.path = target.harness.export(target.card, target.mode, target.opset, target.exporter).path
        session(self.path, self.options["opt"], self.options["threads"], self.options["spinning"])

    def infer(self, x: Array) -> Array:
        return run(self.path, x, self.options["opt"], self.options["spinning"], self.options["threads"])

    def info(self) -> RuntimeInfo:
        sess = session(self.path, self.options["opt"], self.options["threads"], self.options["spinning"])
        dtype = sess.get_inputs()[0].type  # tensor(float): the fp32 graph runs fp32 kernels on the CPU provider
        return RuntimeInfo(self.name, self.family, ort.__version__, "fp32" if dtype == "tensor(float)" else dtype,
                           dict(self.options), self.path)


register("ort-opt-off", OrtRuntime, tags=("onnx-fp32",), opt="off",
         doc="ONNX Runtime CPU, graph optimizations off: the exported graph as written")
register("ort-opt-on", OrtRuntime, tags=("onnx-fp32", "eval"), opt="on",
         doc="ONNX Runtime CPU, all graph optimizations (Conv+BN folding, fusions)")
