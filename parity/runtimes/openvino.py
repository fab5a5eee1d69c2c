"""OpenVINO's CPU plugin on the card's exported ONNX (or an NNCF-quantized IR), in the deploy host worker.

Precisions: ``f32`` (``INFERENCE_PRECISION_HINT=f32``), ``default`` (the plugin's own choice on the CPU it runs on: bf16
where the plugin reports BF16 among its capabilities, else f32), ``bf16`` (where it reports BF16; skipped with what it
reported where it does not) and
``int8`` (NNCF post-training quantization). What it ran is read back from the compiled model: the precision hint and
every Convolution/FullyConnected/MatMul layer's ``runtimePrecision``, never what was asked for.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..harness import Skip
from . import register
from .base import Array, Runtime, RuntimeInfo, Target

CONFIGS: dict[str, dict[str, str]] = {"f32": {"INFERENCE_PRECISION_HINT": "f32"}, "default": {},
                                      "bf16": {"INFERENCE_PRECISION_HINT": "bf16"}, "int8": {}}
NORMAL = {"f32": "fp32", "bf16": "bf16", "int8": "int8", "default": "default"}


def no_bf16(caps: list[str], cpu: dict[str, Any] | None = None) -> str:
    """Why ``openvino-bf16`` cannot run here, from what the plugin and /proc/cpuinfo reported (never assumed)."""
    from ..machine import describe, read_cpu
    return (f"OpenVINO's CPU plugin reports no BF16 (OPTIMIZATION_CAPABILITIES: {', '.join(caps)}) on "
            f"{describe(cpu or read_cpu())}: bf16 cannot run here")


class OpenVinoRuntime(Runtime):
    family = "openvino"
    honors = ("calib_dir", "calib_images", "fault")

    def __init__(self, name: str, precision: str = "f32", threads: int = 0, calib_dir: str | None = None,
                 calib_images: int = 1000, method: str = "minmax", granularity: str = "per-channel",
                 config: dict[str, str] | None = None, load_precision: str | None = None,
                 fault: str | None = None) -> None:
        if precision not in CONFIGS:
            raise ValueError(f"{name}: OpenVINO precision {precision!r}: one of {', '.join(CONFIGS)}")
        if fault and (load_precision or precision) != "int8":
            raise ValueError(f"{name}: fault {fault} damages an int8 IR; this runtime makes none")
        super().__init__(name, precision=precision, threads=threads, calib_dir=calib_dir, calib_images=calib_images,
                         method=method, granularity=granularity, load_precision=load_precision, fault=fault)
        # `config` replaces the configuration of the precision (fault injection: another precision's settings)
        self.config = dict(CONFIGS[precision] if config is None else config)
        self.loaded: Any = None
        self.path = ""
        self.made_by: dict[str, Any] = {}

    @property
    def requested(self) -> str:
        return NORMAL[self.options["precision"]]

    @property
    def promise(self) -> str | None:
        """The precision this runtime promises to run (``default`` promises nothing: it is judged by what it used)."""
        return None if self.options["precision"] == "default" else self.requested

    def load(self, target: Target) -> None:
        self.target = target
        o = self.options
        if (o["load_precision"] or o["precision"]) == "int8":   # load_precision: fault injection (another IR)
            from ..deploy import artifacts
            from ..deploy.calibration import calibration
            calib = calibration(target.harness, target.card.preprocess, o["calib_dir"], o["calib_images"])
            art = artifacts.int8(target.harness, target.card, target.mode, target.opset, calib, "nncf-openvino",
                                 o["method"], o["granularity"], o["fault"])
            self.path, self.made_by = art.path, art.made_by
        else:
            self.path = target.harness.export(target.card, target.mode, target.opset, target.exporter).path
        self.loaded = target.harness.deploy().ov_load(Path(self.path), self.config, o["threads"])
        caps = self.loaded.capabilities
        if o["precision"] == "bf16" and "BF16" not in caps:
            self.close()
            raise Skip(no_bf16(caps))

    def infer(self, x: Array) -> Array:
        assert self.target is not None
        h = self.target.harness
        path = h.pool.put_array(np.ascontiguousarray(x, np.float32), "ov")
        out = h.deploy().ov_infer(self.loaded.handle, path)
        y: Array = np.load(out)
        Path(out).unlink(missing_ok=True)
        Path(path).unlink(missing_ok=True)
        return y

    def bench(self, x: Array, repeats: int) -> list[float]:
        assert self.target is not None
        path = self.target.harness.pool.put_array(np.ascontiguousarray(x, np.float32), "ov-bench")
        return self.target.harness.deploy().ov_bench(self.loaded.handle, path, repeats)

    def info(self) -> RuntimeInfo:
        ld = self.loaded
        notes = []
        if self.requested != "default" and ld.precision != self.requested:
            notes.append(f"asked for {self.requested}, the CPU plugin runs {ld.precision} (hint {ld.hint}, compute "
                         f"layers {ld.compute_layers})")
        return RuntimeInfo(self.name, self.family, ld.version, ld.precision,
                           {**{k: v for k, v in self.options.items() if v is not None}, "config": ld.config},
                           self.path, notes, {"hint": ld.hint, "compute_layers": ld.compute_layers,
                                              "capabilities": ld.capabilities, "made_by": self.made_by,
                                              "requested": self.requested})

    def close(self) -> None:
        if self.loaded is not None and self.target is not None:
            self.target.harness.deploy().ov_release(self.loaded.handle)
            self.loaded = None


for _p, _doc in (("f32", "INFERENCE_PRECISION_HINT=f32"), ("default", "the CPU plugin's own choice (bf16 where it reports BF16)"),
                 ("bf16", "INFERENCE_PRECISION_HINT=bf16, where the plugin reports BF16"),
                 ("int8", "an NNCF post-training int8 IR")):
    register(f"openvino-{_p}", OpenVinoRuntime, tags=("deploy",), precision=_p, doc=f"OpenVINO CPU: {_doc}")
