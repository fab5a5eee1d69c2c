"""TorchScript, the deployment runtime of the torch stack (seed 004): ``torch.jit.trace``, save, load, run, and the
model's root operator list (``torch.jit.export_opnames``, what a custom mobile build is made from). ``torch-quantized``
(torchvision models) is torchvision's quantized model (``torch_quantized``) saved and run the same way, on the
quantized engine the runtime names."""
from __future__ import annotations

import contextlib
import functools
import os
import warnings

import numpy as np
import torch

from .artifacts import ArtifactHost
from .base import AdapterError, timed

CHUNK = 32



@functools.lru_cache(maxsize=8)
def load_script(path: str, _mtime: int, _engine: str):
    """One loaded module per (file, its mtime, the quantized engine) in this worker: eval calls it once per batch;
    a quantized module packs its weights for the engine set when it is loaded."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.load(path).eval()


def forward_chunked(m, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate([m(torch.from_numpy(np.ascontiguousarray(x[i:i + CHUNK], np.float32))).numpy()
                               for i in range(0, len(x), CHUNK)])


RUNTIMES = ("torchscript", "torch-quantized")


def _hosted(runtime: str) -> None:
    if runtime not in RUNTIMES:
        raise AdapterError(f"{runtime!r} is not a runtime of the torch stack ({', '.join(RUNTIMES)})")


def onnx_of_quantized(q, path: str, hw: int) -> dict:
    """torch's ONNX export of a quantized model (the TorchScript-based exporter: the dynamo one takes no eager
    quantized modules): the file, or torch's refusal in one line."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(q, (torch.zeros(1, 3, hw, hw),), path, opset_version=17, dynamo=False,
                              input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    except RuntimeError as e:   # torch.onnx's refusals (OnnxExporterError, SymbolicValueError) are RuntimeErrors
        first = next((ln for ln in str(e).splitlines() if ln.strip()), "")
        first = first if len(first) <= 300 else f"{first[:140]} ... {first[-150:]}"
        return {"refused": f"{type(e).__name__}: {first}"}
    return {"path": path}


def trace_save(model, path: str, made: dict, hw: int) -> dict:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # trace's deprecation and tracer warnings; the result is checked by parity
        traced = torch.jit.trace(model.eval(), torch.zeros(1, 3, hw, hw))
        traced.save(path)
        ops = sorted(torch.jit.export_opnames(traced))
    return {"path": path, "made_by": {"tool": "torch.jit.trace + save", "torch": torch.__version__, "opnames": ops,
                                      **made}}


class TorchScriptDeploy(ArtifactHost):
    HOSTS = ("torchscript",)

    def deploy_export(self, model, runtime: str, path: str, options: dict) -> dict:
        _hosted(runtime)
        hw = int(getattr(model, "_mbv2_input_size", 224))
        if runtime != "torch-quantized":
            return trace_save(model, path, {}, hw)
        from .torch_quantized import quantize, quantized_engine
        calib = np.load(options["calib"]) if options.get("calib") else None
        with quantized_engine(options["engine"]):
            q, made = quantize(model, options["engine"], float(options.get("width_mult") or 1.0), calib,
                               options.get("quantized_state"), path + ".state.pth")
            made["onnx_export"] = onnx_of_quantized(q, path + ".onnx", hw)
            return trace_save(q, path, made, hw)

    def deploy_run(self, runtime: str, path: str, x: np.ndarray, options: dict) -> tuple:
        _hosted(runtime)
        threads = int(options.get("threads") or 0)
        saved = torch.get_num_threads()
        if threads:
            torch.set_num_threads(threads)
        try:
            engine: contextlib.AbstractContextManager = contextlib.nullcontext()
            if runtime == "torch-quantized":   # a quantized module packs its weights for the engine set at load
                from .torch_quantized import quantized_engine
                engine = quantized_engine(options["engine"])
            with engine:
                m, y, times = _load_run(path, x, options)
        finally:
            torch.set_num_threads(saved)
        ops = torch.jit.export_opnames(m)
        quant = [o for o in ops if o.startswith("quantized::")]
        dtypes = sorted({str(p.dtype) for p in m.parameters()})
        detail = {"opnames": len(ops), "quantized_ops": quant, "param_dtypes": dtypes}
        if runtime == "torch-quantized":
            detail["engine_set"] = options["engine"]   # set for load and run; torch reads no engine back per module
        return y, "int8" if quant else "fp32", detail, times


def _load_run(path: str, x: np.ndarray, options: dict) -> tuple:
    m = load_script(path, os.stat(path).st_mtime_ns, torch.backends.quantized.engine)
    y = forward_chunked(m, x)
    return m, y, timed(lambda: forward_chunked(m, x), int(options.get("repeats") or 0))
