"""Paddle Inference, the deployment runtime of the Paddle stack (seed 003): the ``paddle.inference`` predictor on the
``paddle.jit.save``d model, oneDNN on (its CPU default). bf16 is asked with ``enable_mkldnn_bfloat16`` and read back
with ``paddle.base.core.supports_bfloat16()`` (Paddle falls back to fp32 silently where the CPU lacks it)."""
from __future__ import annotations

import functools
import os

import numpy as np
import paddle
from paddle.static import InputSpec

from .artifacts import ArtifactHost
from .base import AdapterError, timed


@functools.lru_cache(maxsize=8)
def predictor(path: str, bf16: bool, threads: int, _mtime: int) -> tuple:
    """One predictor per (file, its mtime, precision, threads) in this worker: eval calls it once per batch."""
    cfg = paddle.inference.Config(path, os.path.splitext(path)[0] + ".pdiparams")
    cfg.enable_mkldnn()
    precision = "fp32"
    if bf16:
        cfg.enable_mkldnn_bfloat16()
        precision = "bf16" if paddle.base.core.supports_bfloat16() else "fp32"
    if threads:
        cfg.set_cpu_math_library_num_threads(threads)
    cfg.disable_glog_info()
    return precision, cfg, paddle.inference.create_predictor(cfg)


class PaddleInferenceDeploy(ArtifactHost):
    HOSTS = ("paddle",)

    def deploy_export(self, model, runtime: str, path: str, options: dict) -> dict:
        if runtime != "paddle-inference":
            raise AdapterError(f"{runtime!r} is not a runtime of the Paddle stack (paddle-inference)")
        prefix = os.path.splitext(path)[0]
        paddle.jit.save(model, prefix, input_spec=[InputSpec([None, 3, 224, 224], "float32", "x")])
        model.eval()
        model_file = next(prefix + s for s in (".json", ".pdmodel") if os.path.isfile(prefix + s))
        return {"path": model_file, "made_by": {"tool": "paddle.jit.save", "paddle": paddle.__version__,
                                                "params": prefix + ".pdiparams"}}

    def deploy_run(self, runtime: str, path: str, x: np.ndarray, options: dict) -> tuple:
        if runtime != "paddle-inference":
            raise AdapterError(f"{runtime!r} is not a runtime of the Paddle stack (paddle-inference)")
        precision, cfg, pred = predictor(path, options.get("precision") == "bf16", int(options.get("threads") or 0),
                                         os.stat(path).st_mtime_ns)
        h_in = pred.get_input_handle(pred.get_input_names()[0])
        h_out = pred.get_output_handle(pred.get_output_names()[0])

        def fwd(a: np.ndarray) -> np.ndarray:
            outs = []
            for i in range(0, len(a), 32):
                b = np.ascontiguousarray(a[i:i + 32], np.float32)
                h_in.reshape(b.shape)
                h_in.copy_from_cpu(b)
                pred.run()
                outs.append(h_out.copy_to_cpu())
            return np.concatenate(outs)
        y = fwd(x)
        times = timed(lambda: fwd(x), int(options.get("repeats") or 0))
        return y, precision, {"onednn": cfg.mkldnn_enabled(), "bf16_supported": bool(paddle.base.core.supports_bfloat16())}, times
