"""TorchScript, the deployment runtime of the torch stack (seed 004): ``torch.jit.trace``, save, load, run, and the
model's root operator list (``torch.jit.export_opnames``, what a custom mobile build is made from)."""
from __future__ import annotations

import functools
import os
import warnings

import numpy as np
import torch

from .base import AdapterError, timed

CHUNK = 32



@functools.lru_cache(maxsize=8)
def load_script(path: str, _mtime: int):
    """One loaded module per (file, its mtime) in this worker: eval calls it once per batch."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.load(path).eval()


class TorchScriptDeploy:
    def deploy_export(self, model, runtime: str, path: str, options: dict) -> dict:
        if runtime != "torchscript":
            raise AdapterError(f"{runtime!r} is not a runtime of the torch stack (torchscript)")
        hw = int(getattr(model, "_mbv2_input_size", 224))
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # trace's deprecation and tracer warnings; the result is checked by parity
            traced = torch.jit.trace(model.eval(), torch.zeros(1, 3, hw, hw))
            traced.save(path)
            ops = sorted(torch.jit.export_opnames(traced))
        return {"path": path, "made_by": {"tool": "torch.jit.trace + save", "torch": torch.__version__,
                                          "opnames": ops}}

    def deploy_run(self, runtime: str, path: str, x: np.ndarray, options: dict) -> tuple:
        if runtime != "torchscript":
            raise AdapterError(f"{runtime!r} is not a runtime of the torch stack (torchscript)")
        threads = int(options.get("threads") or 0)
        saved = torch.get_num_threads()
        if threads:
            torch.set_num_threads(threads)
        try:
            m = load_script(path, os.stat(path).st_mtime_ns)

            def fwd(a: np.ndarray) -> np.ndarray:
                with torch.no_grad():
                    return np.concatenate([m(torch.from_numpy(np.ascontiguousarray(a[i:i + CHUNK], np.float32))).numpy()
                                           for i in range(0, len(a), CHUNK)])
            y = fwd(x)
            times = timed(lambda: fwd(x), int(options.get("repeats") or 0))
        finally:
            torch.set_num_threads(saved)
        ops = torch.jit.export_opnames(m)
        quant = [o for o in ops if o.startswith("quantized::")]
        dtypes = sorted({str(p.dtype) for p in m.parameters()})
        return y, "int8" if quant else "fp32", {"opnames": len(ops), "quantized_ops": quant, "param_dtypes": dtypes}, times
