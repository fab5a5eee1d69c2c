"""The deployment-toolchain host (stack ``deploy``, tox env ``w-deploy``): OpenVINO (CPU plugin), NNCF post-training
quantization, ONNX Runtime's static quantization and its qdq_loss_debug, onnxconverter-common's fp16 conversion.

None of them is a deep-learning framework, but each pins its own numpy and runs native code: they live in a worker of
their own, so their pins never constrain the core and a crash in a plugin never takes the parent down. Arrays travel as
.npy files, models as files; every answer reports what the toolchain itself says it did (versions, settings used,
precision read back from the compiled model).
"""
from __future__ import annotations

import itertools
import os
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from parity.kit import sqnr_db
from parity.workers.protocol import DEPLOY_OPS, unknown_op

from .base import AdapterError, call_op, timed

# ORT static quantization, every default pinned (they changed between releases: QOperator/QUInt8 until 1.11)
ORT_QUANT: dict[str, Any] = {"quant_format": "QDQ", "activation_type": "QInt8", "weight_type": "QInt8", "reduce_range": False,
             "extra_options": {"ActivationSymmetric": False, "WeightSymmetric": True, "CalibMovingAverage": False,
                               "CalibPercentile": 99.999,
                               # ORT's default, pinned: set, it *drops* the images of a collect_data call that reaches
                               # it without computing their ranges (onnxruntime#18893, still in 1.32: "No data is
                               # collected" on 16 images). Memory is bounded by feeding in strides (stride_for).
                               "CalibMaxIntermediateOutputs": None}}
OV_COMPUTE = ("Convolution", "FullyConnected", "MatMul", "GroupConvolution")
OV_BLAME = ("Convolution", "GroupConvolution", "MatMul")     # the layers an IR's blame names (graph ops, not runtime)
PRECISION_NAMES = {"f32": "fp32", "bf16": "bf16", "f16": "fp16", "u8": "int8", "i8": "int8", "dynamic": "dynamic"}


class Adapter:
    framework = "deploy"

    def __init__(self) -> None:
        self.compiled: dict[str, Any] = {}
        self._ids = itertools.count()
        self._core: Any = None

    # ------------------------------------------------------------------ dispatch
    def handle(self, op: str, params: dict[str, Any]) -> Any:
        fn = getattr(self, f"op_{op}", None)
        if op not in DEPLOY_OPS or fn is None:
            raise AdapterError(unknown_op(op, self.framework))
        return call_op(fn, params)

    def versions(self) -> dict[str, str]:
        import nncf
        import onnx
        import onnxconverter_common
        import onnxruntime
        import openvino
        return {"openvino": openvino.__version__, "nncf": nncf.__version__, "onnxruntime": onnxruntime.__version__,
                "onnxconverter-common": onnxconverter_common.__version__, "onnx": onnx.__version__,
                "numpy": np.__version__}

    def op_ping(self) -> dict:
        return {"pong": True}

    def op_contract(self) -> dict:
        implemented = [o for o in DEPLOY_OPS if hasattr(self, f"op_{o}")]
        return {"framework": self.framework, "implemented": implemented, "unsupported": {},
                "missing": [o for o in DEPLOY_OPS if o not in implemented]}

    # ------------------------------------------------------------------ conversions
    def op_fp16(self, src: str, dst: str) -> dict:
        """fp16 weights and activations, float32 inputs/outputs kept (``keep_io_types``)."""
        import onnx
        import onnxconverter_common
        from onnxconverter_common import float16

        from .onnx_static import fold_static_shapes
        # shape arithmetic of a fixed input size folded first (timm's TF-SAME pads: the converter breaks it)
        model, folded = fold_static_shapes(onnx.load(src))
        m = float16.convert_float_to_float16(model, keep_io_types=True)
        onnx.save(m, dst)
        return {"path": dst, "made_by": {"tool": "onnxconverter-common", "version": onnxconverter_common.__version__,
                                         "call": "float16.convert_float_to_float16(model, keep_io_types=True)",
                                         "static_shapes_folded": folded}}

    def op_quantize(self, src: str, dst: str, calib: str, tool: str, method: str = "minmax",
                    granularity: str = "per-channel") -> dict:
        """Static post-training int8: ``tool`` ``ort`` (QDQ ONNX, every default pinned) or ``nncf-openvino`` (an
        OpenVINO IR quantized by NNCF)."""
        x = np.load(calib)
        if tool == "ort":
            return self._quantize_ort(src, dst, x, method, granularity)
        if tool == "nncf-openvino":
            return self._quantize_nncf(src, dst, x, method, granularity)
        raise AdapterError(f"unknown quantization tool {tool!r}; known: ort, nncf-openvino")

    def _quantize_ort(self, src: str, dst: str, x: np.ndarray, method: str, granularity: str) -> dict:
        import onnxruntime
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quant_pre_process, quantize_static
        methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                   "percentile": CalibrationMethod.Percentile}
        if method not in methods:
            raise AdapterError(f"unknown calibration method {method!r}; known: {sorted(methods)}")
        with tempfile.TemporaryDirectory() as tmp:
            import onnx

            from .onnx_static import fold_static_shapes
            # shape arithmetic of a fixed input size folded first: timm's TF-SAME pads otherwise leave a file that
            # ORT 1.32 cannot initialize with session.x64quantprecision=1 ("Attempt to replace the existing tensor")
            model, folded = fold_static_shapes(onnx.load(src))
            static = os.path.join(tmp, "static.onnx")
            onnx.save(model, static)
            pre = os.path.join(tmp, "pre.onnx")
            quant_pre_process(static, pre)
            reader = _Reader(src, x)
            extra = {**ORT_QUANT["extra_options"], "CalibStridedMinMax": stride_for(len(x))}
            settings = {**ORT_QUANT, "extra_options": extra, "per_channel": granularity == "per-channel",
                        "calibrate_method": method}
            quantize_static(pre, dst, reader, quant_format=QuantFormat.QDQ, per_channel=settings["per_channel"],
                            reduce_range=False, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                            calibrate_method=methods[method], extra_options=extra)
        return {"path": dst, "made_by": {"tool": "onnxruntime.quantization.quantize_static",
                                         "version": onnxruntime.__version__, "pre_process": "quant_pre_process",
                                         "static_shapes_folded": folded,
                                         "settings": settings, "calibration_images": len(x)}}

    def _quantize_nncf(self, src: str, dst: str, x: np.ndarray, method: str, granularity: str) -> dict:
        import nncf
        import openvino as ov
        if granularity != "per-channel" or method != "minmax":
            raise AdapterError("nncf-openvino quantizes weights per channel with its own range estimators "
                               "(preset PERFORMANCE): ask for per-channel minmax")
        model = ov.convert_model(src)
        q = nncf.quantize(model, nncf.Dataset([x[i:i + 1] for i in range(len(x))]), subset_size=len(x),
                          preset=nncf.QuantizationPreset.PERFORMANCE)
        ov.save_model(q, dst)
        return {"path": dst, "made_by": {"tool": "nncf.quantize(openvino model)", "version": nncf.__version__,
                                         "settings": {"preset": "PERFORMANCE", "subset_size": len(x),
                                                      "fast_bias_correction": True},
                                         "calibration_images": len(x)}}

    # ------------------------------------------------------------------ OpenVINO runtime
    @property
    def core(self) -> Any:
        if self._core is None:
            import openvino as ov
            self._core = ov.Core()
        return self._core

    def op_ov_load(self, path: str, config: dict[str, Any], threads: int = 0) -> dict:
        """Compile for the CPU plugin with ``config`` (empty = the plugin's own defaults on the CPU it runs on), then read
        back the precision it chose and what every compute layer really runs."""
        import openvino as ov
        cfg = dict(config)
        if threads:
            cfg["INFERENCE_NUM_THREADS"] = int(threads)
        compiled = self.core.compile_model(self.core.read_model(path), "CPU", cfg)
        handle = f"ov-{next(self._ids)}"
        self.compiled[handle] = compiled
        hint = compiled.get_property("INFERENCE_PRECISION_HINT")
        hint = hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)
        layers: Counter[str] = Counter()
        for op in compiled.get_runtime_model().get_ordered_ops():
            info = op.get_rt_info()
            if info["layerType"].astype(str) in OV_COMPUTE:
                layers[info["runtimePrecision"].astype(str)] += 1
        caps = list(self.core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
        ran = PRECISION_NAMES.get(layers.most_common(1)[0][0], layers.most_common(1)[0][0]) if layers else "unknown"
        return {"handle": handle, "hint": PRECISION_NAMES.get(hint, hint), "compute_layers": dict(layers),
                "precision": ran, "capabilities": caps, "config": cfg, "version": ov.__version__,
                "device": self.core.get_property("CPU", "FULL_DEVICE_NAME")}

    def op_ov_infer(self, handle: str, input: str) -> dict:
        compiled = self._compiled(handle)
        x = np.load(input)
        out = compiled.outputs[0]
        y = np.concatenate([compiled(x[i:i + 1])[out] for i in range(len(x))])
        dst = str(Path(input).with_suffix("")) + f".{handle}.out.npy"
        np.save(dst, np.asarray(y, np.float32))
        return {"output": dst}

    def op_ov_bench(self, handle: str, input: str, repeats: int) -> dict:
        """Latency of one call on the whole batch, ``repeats`` times, timed inside this process."""
        compiled = self._compiled(handle)
        x = np.load(input)
        req = compiled.create_infer_request()
        req.infer(x)
        return {"times": timed(lambda: req.infer(x), repeats)}

    def op_ov_release(self, handle: str) -> dict:
        self.compiled.pop(handle, None)
        return {"released": handle}

    def _compiled(self, handle: str) -> Any:
        if handle not in self.compiled:
            raise AdapterError(f"no compiled model {handle!r} in this worker (load it first)")
        return self.compiled[handle]

    def op_ov_convert(self, src: str, dst: str) -> dict:
        """An ONNX file converted to OpenVINO IR (.xml + .bin) by OpenVINO's own converter, fp32 weights kept."""
        import openvino as ov
        ov.save_model(ov.convert_model(src), dst, compress_to_fp16=False)
        return {"path": dst, "made_by": {"tool": "openvino.convert_model + save_model(compress_to_fp16=False)",
                                         "version": ov.__version__}}

    def op_artifact(self, format: str, path: str, input: str, options: dict) -> dict:
        from .artifacts import run
        from .base import artifact_reply
        if format not in ARTIFACTS:
            raise AdapterError(f"format {format!r} is not run by the deploy host (it runs {', '.join(ARTIFACTS)})")
        return artifact_reply(run(format, path, np.load(input) if input else None, options), input)

    def op_convert(self, src: str, dst: str, tool: str, options: dict) -> dict:
        """An ONNX file converted by another deployment toolchain's own converter (`verify`'s ncnn and MNN files)."""
        return convert(src, dst, tool, options)

    def op_ov_double_scale(self, src: str, dst: str, index: int) -> dict:
        return ov_double_scale(self.core, src, dst, index)

    # ------------------------------------------------------------------ layer blame
    def op_layer_errors(self, float_path: str, quant_path: str, calib: str, images: int = 8) -> dict:
        """Per-tensor SQNR (dB) between the float model and the quantized one. A QDQ ONNX file: as onnxruntime's
        qdq_loss_debug computes it, every activation the quantized graph quantizes (float output vs the quantized
        model's dequantized one) and every weight (float vs dequantized). An OpenVINO IR (NNCF): every compute layer's
        output and weight (``_ov_layer_errors``)."""
        x = np.load(calib)[:images]
        if quant_path.endswith(".xml"):
            return ov_layer_errors(self.core, float_path, quant_path, x)
        from onnxruntime.quantization import qdq_loss_debug as d
        with tempfile.TemporaryDirectory() as tmp:
            fa, qa = os.path.join(tmp, "f.onnx"), os.path.join(tmp, "q.onnx")
            d.modify_model_output_intermediate_tensors(float_path, fa)
            d.modify_model_output_intermediate_tensors(quant_path, qa)
            float_acts = d.collect_activations(fa, _Reader(float_path, x))
            quant_acts = d.collect_activations(qa, _Reader(quant_path, x))
        match = d.create_activation_matching(quant_acts, float_acts)
        act = {k: float(v["xmodel_err"]) for k, v in d.compute_activation_error(match).items() if "xmodel_err" in v}
        wts = {k: float(v) for k, v in d.compute_weight_error(d.create_weight_matching(float_path, quant_path)).items()}
        return {"activations": act, "weights": wts, "images": len(x)}


def ov_double_scale(core: Any, src: str, dst: str, index: int) -> dict:
    """The ``index``-th weight (in graph order) of an NNCF IR dequantized with twice its scale: the Constant
    that multiplies the Convert of the int8 weight is replaced by its double, the IR saved at ``dst``."""
    import openvino as ov
    model = core.read_model(src)
    scales = []
    for op in model.get_ordered_ops():
        if op.get_type_name() not in OV_BLAME:
            continue
        w = op.input_value(1).get_node()
        while w.get_type_name() in ("Reshape", "Unsqueeze"):
            w = w.input_value(0).get_node()
        const = [i for i in w.inputs() if i.get_source_output().get_node().get_type_name() == "Constant"]
        if w.get_type_name() == "Multiply" and const:
            scales.append((op.get_friendly_name(), const[0]))
    if not scales:   # the IR is not what NNCF makes (Constant i8 -> Convert -> Multiply by a scale): a bug, not a typo
        raise AdapterError(f"{src}: no weight decompression (Convert -> Multiply by a constant scale) found")
    if not 0 <= index < len(scales):
        return {"weights": len(scales), "path": "", "node": ""}
    name, port = scales[index]
    old = np.asarray(port.get_source_output().get_node().get_data())
    port.replace_source_output(ov.op.Constant(np.ascontiguousarray(old * 2)).output(0))
    ov.save_model(model, dst, compress_to_fp16=False)
    return {"weights": len(scales), "path": dst, "node": name}


def ov_layer_errors(core: Any, float_path: str, quant_path: str, x: np.ndarray) -> dict:
    """OpenVINO's counterpart of qdq_loss_debug's cross-model error for an NNCF IR. NNCF keeps the float graph's
    layer names, so each Convolution/GroupConvolution/MatMul of the IR is matched by name to the float model's
    (``convert_model`` of the same ONNX). Per layer, both models are cut at that layer (an ``ov.Model`` whose
    result is the layer's output), compiled at f32 precision hint (the IR still runs its int8 layers) and run:
    the SQNR of the two outputs is the error accumulated up to that layer. Cutting, not extra results: extra
    results on the int8 IR break the CPU plugin's low-precision fusions and change what it computes (measured:
    logits at -4.8 dB against the plain IR). Weights: the IR's decompression subgraph (Constant i8 -> Convert ->
    Multiply by the scale) evaluated against the float constant."""
    import openvino as ov
    fm, qm = ov.convert_model(float_path), core.read_model(quant_path)
    fops = {o.get_friendly_name(): o for o in fm.get_ordered_ops()}
    qops = {o.get_friendly_name(): o for o in qm.get_ordered_ops()}
    names = [n for n, o in qops.items() if o.get_type_name() in OV_BLAME and n in fops]
    if not names:
        raise AdapterError(f"{quant_path}: no compute layer of the IR has a name in the float model {float_path}")

    def cut(model: Any, op: Any) -> np.ndarray:
        c = core.compile_model(ov.Model([op.output(0)], model.get_parameters(), "cut"), "CPU",
                                {"INFERENCE_PRECISION_HINT": "f32"})
        return np.concatenate([np.asarray(c(x[i:i + 1])[c.outputs[0]], np.float64) for i in range(len(x))])
    acts = {}
    for n in names:
        acts[n] = sqnr_db(cut(fm, fops[n]), cut(qm, qops[n]))
    wts: dict[str, float] = {}
    for n in names:
        try:
            wf, wq = _ov_const(fops[n].input_value(1).get_node()), _ov_const(qops[n].input_value(1).get_node())
        except ValueError:
            continue    # computed from an input (an activation x activation MatMul) or an op the walk does not know
        wts[n] = sqnr_db(wf, wq)
    return {"activations": acts, "weights": wts, "images": len(x),
            "tool": "OpenVINO per-layer outputs, NNCF IR vs float model"}


def _ov_const(node: Any) -> np.ndarray:
    """The value of a constant subgraph (a weight and its decompression: Constant, Convert, Multiply, Subtract, Add,
    Reshape); ValueError for anything computed from an input."""
    t = node.get_type_name()
    if t == "Constant":
        return np.asarray(node.get_data(), np.float64)
    if t not in ("Convert", "Multiply", "Subtract", "Add", "Reshape", "Unsqueeze", "Squeeze"):
        raise ValueError(f"{t} {node.get_friendly_name()} is not a constant subgraph")
    ins = [_ov_const(i.get_source_output().get_node()) for i in node.inputs()]
    if t == "Convert":
        return ins[0]
    if t in ("Multiply", "Subtract", "Add"):
        return {"Multiply": np.multiply, "Subtract": np.subtract, "Add": np.add}[t](ins[0], ins[1])
    if t in ("Reshape", "Unsqueeze", "Squeeze"):
        return ins[0].reshape(tuple(node.get_output_shape(0)))
    raise ValueError(f"{t} {node.get_friendly_name()} is not a constant subgraph")


def _Reader(model_path: str, x: np.ndarray) -> Any:  # noqa: N802 - a class factory: the base is imported lazily
    """ORT's CalibrationDataReader over a tensor of calibration images (one image per call)."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader

    name = onnx.load(model_path, load_external_data=False).graph.input[0].name

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.feeds = [{name: x[i:i + 1]} for i in range(len(x))]
            self.it = iter(self.feeds)

        def get_next(self) -> dict | None:
            return next(self.it, None)

        def rewind(self) -> None:
            self.it = iter(self.feeds)

        def __len__(self) -> int:
            return len(self.feeds)

        def set_range(self, start_index: int, end_index: int) -> None:
            self.it = iter(self.feeds[start_index:end_index])

    return Reader()


def stride_for(n: int, most: int = 16) -> int:
    """The images per ``collect_data`` call (ORT's CalibStridedMinMax, which must divide n): a calibrator keeps every
    image's activations until the reader is exhausted -- 1000 images through entropy were an OOM kill at 22 GB
    here; fed at most 16 at a time, each call merges its ranges (or histograms) and clears."""
    return next(d for d in range(min(most, n), 0, -1) if n % d == 0)


# ---------------------------------------------------------------------- ncnn / MNN converters (`verify`'s files)
ARTIFACTS = ("onnx", "openvino", "ncnn", "mnn")


def convert(src: str, dst: str, tool: str, options: dict) -> dict:
    """``pnnx`` (the binary its wheel ships, run by path: the wheel's Python helper imports torch, which this env does
    not have): ONNX -> ncnn ``dst`` (.param) + .bin, weights fp16 unless ``options.fp16`` is false (pnnx's default is
    fp16); ``mnnconvert``: MNN's converter (``_tools.mnnconvert``, not the ``mnnconvert`` script, whose wrapper posts
    a usage log over the network) ONNX -> ``dst`` (.mnn), fp32 weights (``--fp16`` with ``options.fp16``)."""
    import importlib.util
    import shutil
    import subprocess
    import sys

    import onnx
    t0 = time.perf_counter()
    out = Path(dst).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    if tool == "pnnx":
        spec = importlib.util.find_spec("pnnx")
        if spec is None or not spec.submodule_search_locations:
            raise AdapterError("pnnx is not installed in the deploy env", hint="tox -e w-deploy installs it")
        exe = Path(next(iter(spec.submodule_search_locations))) / "pnnx"
        dims = [d.dim_value or 1 for d in onnx.load(src, load_external_data=False).graph.input[0].type.tensor_type.shape.dim]
        fp16 = 1 if options.get("fp16", True) else 0
        with tempfile.TemporaryDirectory() as tmp:
            t = Path(tmp)          # pnnx writes its simplified ONNX beside its input: a copy here, not the user's dir
            src = str(shutil.copy(src, t / "model.onnx"))
            cmd = [str(exe), src, f"inputshape=[{','.join(map(str, dims))}]", f"fp16={fp16}", f"ncnnparam={out}",
                   f"ncnnbin={out.with_suffix('.bin')}", f"ncnnpy={t / 'n.py'}", f"pnnxparam={t / 'p.param'}",
                   f"pnnxbin={t / 'p.bin'}", f"pnnxpy={t / 'p.py'}", f"pnnxonnx={t / 'p.onnx'}"]
            r = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        made = {"tool": "pnnx", "args": cmd[2:4], "fp16_weights": bool(fp16)}
    elif tool == "mnnconvert":
        cmd = [sys.executable, "-c", "import sys, _tools; sys.exit(_tools.mnnconvert(['mnnconvert'] + sys.argv[1:]))",
               "-f", "ONNX", "--modelFile", src, "--MNNModel", str(out), "--bizCode", "mbv2-parity",
               *(["--fp16"] if options.get("fp16") else [])]
        r = subprocess.run(cmd, capture_output=True, text=True)
        made = {"tool": "mnnconvert", "args": ["-f", "ONNX", *cmd[12:]], "fp16_weights": bool(options.get("fp16"))}
    else:
        raise AdapterError(f"unknown converter {tool!r}", hint="pnnx or mnnconvert")
    if not out.is_file():
        tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no output"]
        raise AdapterError(f"{tool} wrote no {out.name} (exit {r.returncode}): {tail[0][:300]}")
    return {"path": str(out), "made_by": {**made, "seconds": round(time.perf_counter() - t0, 2)}}
