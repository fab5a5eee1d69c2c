"""ONNX Runtime (CPU) on the exported ONNX file, graph optimizations off and on. Framework-free.

``session``/``run`` are the shared helpers (a session cache keyed on the file's mtime, constant-memory chunked
inference); ``OrtRuntime`` is the runtime plug-in.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from . import register
from .base import Array, Runtime, RuntimeInfo, Target

OPT_LEVELS = {"off": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "on": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
CHUNK = 32  # images per inference call: constant memory for any batch size
# ORT's CPU arena keeps the peak of a session's largest call: ~400-700 MB after a chunk of 32 at 224 px, so the
# cached sessions of a few cards held 8 GB in `tox -e parity`. A call of more than BULK images shrinks the arena
# back when it ends (~140 MB per MobileNetV2 session, weights included); bench's batches (1 and 8) keep ORT's
# default allocation.
BULK = 8
SESSIONS = 8  # sessions cached: a card's checks reuse theirs; the next cards' evict them
_SHRINK = ort.RunOptions()
_SHRINK.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")


# ORT's int8 kernel modes on x86-64: "default" (u8s8 through VPMADDUBSW, whose int16 pair sums saturate on CPUs without
# VNNI) or "exact" (session.x64quantprecision=1: int8 promoted to int16 before the multiply, ORT PR #12088)
INT8_KERNEL_CONFIG: dict[str, tuple[tuple[str, str], ...]] = {"default": (), "exact": (("session.x64quantprecision", "1"),)}


def session(path: str | Path, opt: str = "off", threads: int = 0, spinning: bool = True,
            config: tuple[tuple[str, str], ...] = ()) -> ort.InferenceSession:
    """A cached session; the file's mtime is part of the key so a rewritten model is reloaded. ``spinning=False``
    stops ORT's idle threads from busy-waiting (they would steal the cores decode processes need); ``config``: more
    session config entries."""
    return _session(str(path), opt, threads, spinning, config, Path(path).stat().st_mtime_ns)


@lru_cache(maxsize=SESSIONS)
def _session(path: str, opt: str, threads: int, spinning: bool, config: tuple[tuple[str, str], ...],
             _mtime: int) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.graph_optimization_level = OPT_LEVELS[opt]
    so.log_severity_level = 3
    if threads:
        so.intra_op_num_threads = threads
    if not spinning:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    for k, v in config:
        so.add_session_config_entry(k, v)
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def run(path: str | Path, x: Array, opt: str = "off", spinning: bool = True, threads: int = 0,
        config: tuple[tuple[str, str], ...] = ()) -> Array:
    sess = session(path, opt, threads=threads, spinning=spinning, config=config)
    name = sess.get_inputs()[0].name
    opts = _SHRINK if len(x) > BULK else None
    return np.concatenate([np.asarray(sess.run(None, {name: np.ascontiguousarray(x[i:i + CHUNK], dtype=np.float32)},
                                               opts)[0])
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


INT8_KERNELS = {"QLinearConv", "ConvInteger", "MatMulInteger", "QLinearMatMul", "QGemm", "QLinearAdd",
                "QLinearGlobalAveragePool", "DynamicQuantizeLinear"}


def executed_precision(path: str | Path) -> tuple[str, dict[str, Any]]:
    """What ONNX Runtime's CPU provider really runs for a model, read from the graph it optimizes it into (level
    EXTENDED: where QDQ pairs become integer kernels): ``int8`` when integer kernels remain, ``fp16`` when compute
    nodes take fp16 inputs, else ``fp32`` -- an fp16 file whose weights ORT upcasts through Cast nodes runs fp32."""
    import tempfile
    from collections import Counter

    import onnx
    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        so.optimized_model_filepath = str(Path(tmp) / "opt.onnx")
        so.log_severity_level = 3
        ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        m = onnx.load(so.optimized_model_filepath)
    ops = Counter(n.op_type for n in m.graph.node)
    casts = Counter(onnx.TensorProto.DataType.Name(next(a.i for a in n.attribute if a.name == "to"))
                    for n in m.graph.node if n.op_type == "Cast")
    inits = {i.name: onnx.TensorProto.DataType.Name(i.data_type) for i in m.graph.initializer}
    cast_out = {n.output[0]: onnx.TensorProto.DataType.Name(next(a.i for a in n.attribute if a.name == "to"))
                for n in m.graph.node if n.op_type == "Cast"}
    conv_w = [inits.get(n.input[1]) or cast_out.get(n.input[1], "computed") for n in m.graph.node
              if n.op_type in ("Conv", "FusedConv", "Gemm", "MatMul", "FusedGemm") and len(n.input) > 1]
    detail = {"int8_kernels": sum(ops[k] for k in INT8_KERNELS), "casts": dict(casts),
              "float_compute_weights": dict(Counter(conv_w)), "ops": dict(ops)}
    if detail["int8_kernels"]:
        return "int8", detail
    if any(w == "FLOAT16" for w in conv_w):
        return "fp16", detail
    return "fp32", detail


def cpu_int8(cpuinfo: str | None = None) -> dict[str, Any]:
    """What the CPU offers ORT's int8 kernels, read from ``/proc/cpuinfo`` (``cpuinfo``: a recorded text; ORT does not
    report its kernel choice): on x86-64 without a VNNI flag, MLAS multiplies u8 x s8 with VPMADDUBSW, whose int16 pair
    sums saturate (ORT issues #14642, #16105; PR #24220 adds a saturation checker for that path)."""
    from ..machine import VNNI_FLAGS, describe, read_cpu
    cpu = read_cpu(cpuinfo)
    flags = set(cpu["flags"])
    x86 = cpu["machine"] in ("x86_64", "amd64") or "avx2" in flags
    vnni = sorted(f for f in VNNI_FLAGS if f in flags)
    return {"machine": cpu["machine"], "x86": x86, "vnni": vnni, "known": cpu["known"],
            "saturating": bool(x86 and cpu["known"] and not vnni), "read": describe(cpu)}


# What ORT says when it refuses a file the suite made, and what is known of it upstream (the check cites it)
KNOWN_REFUSALS = {
    "Attempt to replace the existing tensor": "an ORT graph-optimizer failure on re-optimizing initializers "
                                              "(graph.cc/graph_utils.cc AddInitializedOrtValue); no upstream report "
                                              "of it with session.x64quantprecision was found",
}


def refused(path: str | Path, config: tuple[tuple[str, str], ...], e: Exception) -> Exception:
    """ORT's refusal of a suite-made file as the check's failure: runtime, version, config, its message, what is known."""
    from ..errors import RuntimeRefused
    msg = " ".join(str(e).split())[:300]
    known = next((why for k, why in KNOWN_REFUSALS.items() if k in msg), "")
    return RuntimeRefused(f"onnxruntime {ort.__version__} cannot create a session for {Path(path).name} (session "
                          f"config {dict(config) or 'default'}): {type(e).__name__}: {msg}"
                          + (f" [known: {known}]" if known else ""))


class OrtDeployRuntime(Runtime):
    """A deployed artifact of the card in ONNX Runtime CPU: ``fp16`` (onnxconverter-common) or ``int8`` (ORT static
    quantization, QDQ). Reports the precision ORT really runs (``executed_precision``)."""

    family = "onnxruntime"
    honors = ("calib_dir", "calib_images", "granularity", "method", "fault")

    def __init__(self, name: str, precision: str = "fp16", method: str = "minmax", granularity: str = "per-channel",
                 calib_dir: str | None = None, calib_images: int = 1000, opt: str = "on", threads: int = 0,
                 spinning: bool = True, fault: str | None = None, calib_spec: Any = None,
                 kernels: str = "default") -> None:
        if kernels not in INT8_KERNEL_CONFIG:
            raise ValueError(f"{name}: int8 kernels {kernels!r}: one of {', '.join(INT8_KERNEL_CONFIG)}")
        if precision != "int8" and (kernels != "default" or fault):
            raise ValueError(f"{name}: kernels={kernels!r} and fault={fault!r} apply to int8 artifacts only")
        super().__init__(name, precision=precision, method=method, granularity=granularity, calib_dir=calib_dir,
                         calib_images=calib_images, opt=opt, threads=threads, spinning=spinning, fault=fault,
                         kernels=kernels)
        self.calib_spec = calib_spec          # fault injection: calibration images preprocessed with another spec
        self.art: Any = None
        self.ran: tuple[str, dict[str, Any]] = ("", {})

    @property
    def promise(self) -> str | None:
        """int8 promises integer kernels; fp16 promises nothing about execution (ORT's CPU provider upcasts an fp16
        file through Cast nodes: said in the notes, judged by the artifact's fp16 budget)."""
        return "int8" if self.options["precision"] == "int8" else None

    def load(self, target: Target) -> None:
        from ..deploy import artifacts
        from ..deploy.calibration import calibration
        self.target = target
        o = self.options
        if o["precision"] == "fp16":
            self.art = artifacts.fp16_onnx(target.harness, target.card, target.mode, target.opset)
        elif o["precision"] == "int8":
            calib = calibration(target.harness, target.card.preprocess, o["calib_dir"], o["calib_images"],
                                preprocess_with=self.calib_spec)
            self.art = artifacts.int8(target.harness, target.card, target.mode, target.opset, calib, "ort",
                                      o["method"], o["granularity"], o["fault"])
        else:
            raise ValueError(f"{self.name}: precision {o['precision']!r}: fp16 or int8 (fp32 is ort-opt-off/on)")
        try:
            session(self.art.path, o["opt"], o["threads"], o["spinning"], self.config)
        except Exception as e:   # ORT's own exception types (pybind Fail, InvalidGraph, ...): it refuses the file
            raise refused(self.art.path, self.config, e) from e
        self.ran = executed_precision(self.art.path)

    @property
    def config(self) -> tuple[tuple[str, str], ...]:
        return INT8_KERNEL_CONFIG[self.options["kernels"]] if self.options["precision"] == "int8" else ()

    def infer(self, x: Array) -> Array:
        return run(self.art.path, x, self.options["opt"], self.options["spinning"], self.options["threads"],
                   self.config)

    def info(self) -> RuntimeInfo:
        notes = []
        detail: dict[str, Any] = {"made_by": self.art.made_by, "executed": self.ran[1]}
        if self.options["precision"] != self.ran[0]:
            notes.append(f"asked for {self.options['precision']}, ORT runs {self.ran[0]} "
                         f"(casts {self.ran[1].get('casts')}, int8 kernels {self.ran[1].get('int8_kernels')})")
        if self.ran[0] == "int8":
            cpu = cpu_int8()
            detail["cpu"] = cpu
            detail["session_config"] = dict(self.config)
            if cpu["saturating"] and self.options["kernels"] == "default":
                # a known hazard of what ran, said beside every verdict on it (deploy check and eval)
                detail["suspect"] = (f"ORT's x86 int8 kernels without VNNI (read: {cpu['read']}) multiply u8 x s8 "
                                     "with VPMADDUBSW, whose int16 sums saturate; ort-int8-exact "
                                     "(session.x64quantprecision=1) runs the same file without it")
                notes.append(detail["suspect"])
        return RuntimeInfo(self.name, self.family, ort.__version__, self.ran[0],
                           {k: v for k, v in self.options.items() if v is not None}, self.art.path, notes, detail)


register("ort-fp16", OrtDeployRuntime, tags=("deploy",), precision="fp16",
         doc="ONNX Runtime CPU on the fp16 ONNX (onnxconverter-common, float32 I/O kept)")
register("ort-int8", OrtDeployRuntime, tags=("deploy",), precision="int8",
         doc="ONNX Runtime CPU on a static int8 QDQ ONNX (ORT quantization; --quant, --calib-method)")
register("ort-int8-exact", OrtDeployRuntime, tags=("deploy",), precision="int8", kernels="exact",
         doc="ort-int8's file with session.x64quantprecision=1: no int16 saturation on x86 CPUs without VNNI")
