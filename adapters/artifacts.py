"""`mbv2-parity verify`: a user's deployed file, read and run by its own runtime in the worker of the stack that hosts
it (``parity.verify.formats`` says which). One function per format, each imported lazily, returning what the runtime
itself reports:

* ``io``: input name, shape (None for a dynamic dimension), dtype, quantization (scale, zero point) of the first
  input; output shape and dtype (and quantization) of the first output;
* ``precision`` it runs (read back: the runtime's tensor dtypes / quantized ops / compiled layers) and ``detail``;
* with an input batch: the raw outputs (no background class dropped, no softmax undone: the parent interprets them).

The input arrives as the parent made it, already in the artifact's layout and dtype; a file with a fixed batch of 1
is run one image at a time. ``options.fault = "crash_above_batch:N"`` kills this worker (SIGSEGV) when a call carries
more than N images: the injected crash of ``tests/test_verify.py`` (a real mobile-optimized quantized TorchScript
MobileNetV2 does this at batch 2 under torch 2.14).
"""
from __future__ import annotations

import os
import signal
from typing import Any

import numpy as np

from .base import AdapterError


def _fault(options: dict, n: int) -> None:
    fault = str(options.get("fault") or "")
    if fault.startswith("crash_above_batch:") and n > int(fault.split(":", 1)[1]):
        os.kill(os.getpid(), signal.SIGSEGV)


def _dims(shape: Any) -> list[int | None]:
    return [int(d) if isinstance(d, (int, np.integer)) and int(d) > 0 else None for d in shape]


def _loop(fn: Any, x: np.ndarray, batch: int | None) -> np.ndarray:
    """Run ``fn`` over ``x`` in calls of ``batch`` images (None: all at once)."""
    if batch is None or len(x) <= batch:
        return np.asarray(fn(x))
    return np.concatenate([np.asarray(fn(x[i:i + batch])) for i in range(0, len(x), batch)])


# ---------------------------------------------------------------------------------------------------- ONNX (ORT)
def onnx(path: str, x: np.ndarray | None, options: dict) -> dict:
    import onnxruntime as ort
    so = ort.SessionOptions()
    if options.get("threads"):
        so.intra_op_num_threads = int(options["threads"])
    try:
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - ORT's refusal of a file is one line for the user
        raise AdapterError(f"ONNX Runtime cannot load {os.path.basename(path)}: {str(e).splitlines()[0][:300]}") from None
    i, o = sess.get_inputs()[0], sess.get_outputs()[0]
    types = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(uint8)": "uint8", "tensor(int8)": "int8"}
    io = {"input_name": i.name, "input_shape": _dims(i.shape), "input_dtype": types.get(i.type, i.type),
          "output_shape": _dims(o.shape), "output_dtype": types.get(o.type, o.type)}
    out: dict[str, Any] = {"io": io, "version": f"onnxruntime {ort.__version__}"}
    if x is not None:
        batch = 1 if io["input_shape"][0] == 1 else int(options.get("batch") or 0) or None

        def fn(a: np.ndarray) -> np.ndarray:
            _fault(options, len(a))
            return sess.run(None, {i.name: a.astype(io["input_dtype"])})[0]
        out["y"] = _loop(fn, x, batch)
    return out


# ---------------------------------------------------------------------------------------------------- TFLite
def tflite(path: str, x: np.ndarray | None, options: dict) -> dict:
    from .tf_deploy import executed_precision, interpreter
    itp = interpreter(path, int(options.get("threads") or 0))
    inp, outd = itp.get_input_details()[0], itp.get_output_details()[0]
    sig = list(inp.get("shape_signature", inp["shape"]))
    io = {"input_name": inp["name"], "input_shape": [None if int(d) < 0 else int(d) for d in sig],
          "input_dtype": np.dtype(inp["dtype"]).name, "input_quantization": [float(v) for v in inp["quantization"]],
          "output_shape": [int(d) for d in outd["shape"]], "output_dtype": np.dtype(outd["dtype"]).name,
          "output_quantization": [float(v) for v in outd["quantization"]]}
    itp.allocate_tensors()
    precision, detail = executed_precision(itp)
    out: dict[str, Any] = {"io": io, "precision": precision, "detail": detail}
    try:
        import ai_edge_litert
        out["version"] = f"ai-edge-litert {getattr(ai_edge_litert, '__version__', '?')}"
    except ImportError:
        import tensorflow as tf
        out["version"] = f"tf.lite {tf.__version__}"
    if x is not None:
        fixed = list(inp["shape"])
        ys = []
        for k in range(len(x)):          # TFLite files are batch-1 (the interpreter resizes only what allows it)
            _fault(options, 1)
            a = x[k:k + 1].astype(inp["dtype"])
            if list(a.shape) != fixed:
                itp.resize_tensor_input(inp["index"], list(a.shape))
                itp.allocate_tensors()
                fixed = list(a.shape)
            itp.set_tensor(inp["index"], a)
            itp.invoke()
            ys.append(itp.get_tensor(outd["index"]).copy())
        out["y"] = np.concatenate(ys)
    return out


# ---------------------------------------------------------------------------------------------------- TorchScript
def _engine_for(m: Any) -> tuple[str, list[str], set[str]]:
    """The quantized engine a TorchScript file needs: read from its operators (``prepacked::`` / XNNPACK ops of
    ``optimize_for_mobile`` and per-tensor weights: QNNPACK; per-channel: FBGEMM) and what this torch offers."""
    import torch
    ops = torch.jit.export_opnames(m)
    supported = list(torch.backends.quantized.supported_engines)
    quant = [o for o in ops if o.startswith("quantized::")]
    schemes: set[str] = set()
    if not quant:
        return "", ops, schemes
    for _, p in m.state_dict().items() if hasattr(m, "state_dict") else []:
        if getattr(p, "is_quantized", False):
            schemes.add(str(p.qscheme()))
    # a scripted quantized conv / linear keeps its weights packed (``_packed_params``, a ScriptObject, not in the
    # state dict): read each one's qscheme from its unpacked weight
    for _, sub in m.named_modules():
        packed = getattr(sub, "_packed_params", None)
        if isinstance(packed, torch.ScriptObject) and packed._has_method("unpack"):
            w = packed.unpack()[0]
            if getattr(w, "is_quantized", False):
                schemes.add(str(w.qscheme()))
    want = "fbgemm" if any("per_channel" in s for s in schemes) and not any("prepacked" in o for o in ops) else "qnnpack"
    return (want if want in supported else next((e for e in supported if e != "none"), "")), ops, schemes


def torchscript(path: str, x: np.ndarray | None, options: dict) -> dict:
    import torch
    with torch.no_grad():
        m = torch.jit.load(path, map_location="cpu").eval()
        engine, ops, schemes = _engine_for(m)
        saved = torch.backends.quantized.engine
        if engine:
            torch.backends.quantized.engine = engine
            m = torch.jit.load(path, map_location="cpu").eval()   # weights are packed for the engine set at load
        try:
            quant = [o for o in ops if o.startswith("quantized::")]
            dtypes = sorted({str(p.dtype) for p in m.parameters()} | {str(b.dtype) for b in m.buffers()})
            out: dict[str, Any] = {"precision": "int8" if quant else ("fp16" if dtypes == ["torch.float16"] else "fp32"),
                                   "detail": {"quantized_ops": quant[:20], "engine_set": engine or None,
                                              "weight_qschemes": sorted(schemes),
                                              "mobile_optimized": any(o.startswith(("prepacked::", "xnnpack")) for o in ops),
                                              "param_dtypes": dtypes},
                                   "version": f"torch {torch.__version__}"}
            hw = int(options.get("probe_size") or 224)
            out["io"] = {"input_name": "input", "input_shape": [None, 3, None, None], "input_dtype": "float32",
                         "output_dtype": "float32"}
            probe = m(torch.zeros(1, 3, hw, hw))
            out["io"]["output_shape"] = [None, *list(probe.shape[1:])]
            if x is not None:
                batch = int(options.get("batch") or 0) or None

                def fn(a: np.ndarray) -> np.ndarray:
                    _fault(options, len(a))
                    return m(torch.from_numpy(np.ascontiguousarray(a, np.float32))).float().numpy()
                out["y"] = _loop(fn, x, batch or 32)
        finally:
            torch.backends.quantized.engine = saved
    return out


# ---------------------------------------------------------------------------------------------------- Paddle
def _paddle_declared(prefix: str) -> tuple[list[int | None], str]:
    """The input shape the model file declares (the predictor's handle knows none before a reshape): its feed
    variable (a .pdmodel program) or its ``pd_op.data`` op (a PIR .json program), read in static mode."""
    import paddle as pd
    dynamic = pd.in_dynamic_mode()
    pd.enable_static()
    try:
        prog, feeds, _ = pd.static.load_inference_model(prefix, pd.static.Executor(pd.CPUPlace()))
        block = prog.global_block()
        if hasattr(block, "var"):
            shape = list(block.var(feeds[0]).shape)
        else:
            shape = next(list(op.result(0).shape) for op in block.ops if op.name() in ("pd_op.data", "pd_op.feed"))
        return [None if int(d) < 0 else int(d) for d in shape], ""
    except Exception as e:  # noqa: BLE001 - the shape is then unknown (and said so), the predictor still runs the file
        return [], f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
    finally:
        if dynamic:
            pd.disable_static()


def paddle(path: str, x: np.ndarray | None, options: dict) -> dict:
    import paddle as pd
    params = os.path.splitext(path)[0] + ".pdiparams"
    cfg = pd.inference.Config(path, params)
    cfg.disable_glog_info()
    pred = pd.inference.create_predictor(cfg)
    h_in = pred.get_input_handle(pred.get_input_names()[0])
    h_out = pred.get_output_handle(pred.get_output_names()[0])
    shape, why = _paddle_declared(os.path.splitext(path)[0])
    out: dict[str, Any] = {"io": {"input_name": pred.get_input_names()[0], "input_shape": shape,
                                  "input_dtype": "float32", "output_dtype": "float32"},
                           "precision": "fp32", "detail": {"onednn": cfg.mkldnn_enabled(),
                                                           **({"input_shape_unread": why} if why else {})},
                           "version": f"paddlepaddle {pd.__version__}"}

    def fn(a: np.ndarray) -> np.ndarray:
        _fault(options, len(a))
        b = np.ascontiguousarray(a, np.float32)
        h_in.reshape(b.shape)
        h_in.copy_from_cpu(b)
        pred.run()
        return h_out.copy_to_cpu()
    hw = int(options.get("probe_size") or 224)
    out["io"]["output_shape"] = [None, *fn(np.zeros((1, 3, hw, hw), np.float32)).shape[1:]]
    if x is not None:
        out["y"] = _loop(fn, x, int(options.get("batch") or 0) or 32)
    return out


# ---------------------------------------------------------------------------------------------------- OpenVINO
def openvino(path: str, x: np.ndarray | None, options: dict) -> dict:
    import openvino as ov
    core = ov.Core()
    model = core.read_model(path)
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"} if options.get("f32") else {})
    i, o = compiled.inputs[0], compiled.outputs[0]
    ps = i.get_partial_shape()
    shape = [None if d.is_dynamic else int(d.get_length()) for d in ps]
    rt = compiled.get_runtime_model()
    precs = [n.get_rt_info()["runtimePrecision"].astype(str) for n in rt.get_ordered_ops()
             if n.get_rt_info()["layerType"].astype(str) in ("Convolution", "GroupConvolution", "FullyConnected", "MatMul")]
    counts = {p: precs.count(p) for p in sorted(set(precs))}
    top = max(counts, key=lambda k: counts[k]) if counts else "f32"
    names = {"f32": "fp32", "bf16": "bf16", "f16": "fp16", "u8": "int8", "i8": "int8"}
    out: dict[str, Any] = {"io": {"input_name": i.get_any_name(), "input_shape": shape,
                                  "input_dtype": i.get_element_type().to_dtype().name,
                                  "output_shape": [None if d.is_dynamic else int(d.get_length())
                                                   for d in o.get_partial_shape()],
                                  "output_dtype": "float32"},
                           "precision": names.get(top, top), "detail": {"compute_layers": counts},
                           "version": f"openvino {ov.__version__}"}
    if x is not None:
        batch = 1 if shape and shape[0] == 1 else int(options.get("batch") or 0) or 32
        req = compiled.create_infer_request()

        def fn(a: np.ndarray) -> np.ndarray:
            _fault(options, len(a))
            return np.asarray(req.infer({0: a})[o]).copy()
        out["y"] = _loop(fn, x, batch)
    return out


# ---------------------------------------------------------------------------------------------------- Keras / SavedModel
def keras(path: str, x: np.ndarray | None, options: dict) -> dict:
    import keras as k
    import tensorflow as tf
    if os.path.isdir(path):
        layer = k.layers.TFSMLayer(path, call_endpoint="serving_default")
        sig = tf.saved_model.load(path).signatures["serving_default"]
        spec = next(iter(sig.structured_input_signature[1].values()))
        shape = [None if d is None else int(d) for d in spec.shape]

        def call(a: np.ndarray) -> np.ndarray:
            r = layer(a)
            return np.asarray(next(iter(r.values())) if isinstance(r, dict) else r)
        name = spec.name
    else:
        model = k.saving.load_model(path, compile=False)
        shape = [None if d is None else int(d) for d in model.inputs[0].shape]

        def call(a: np.ndarray) -> np.ndarray:
            return np.asarray(model(a, training=False))
        name = model.inputs[0].name
    out: dict[str, Any] = {"io": {"input_name": str(name), "input_shape": shape, "input_dtype": "float32",
                                  "output_dtype": "float32"}, "precision": "fp32", "detail": {},
                           "version": f"tensorflow {tf.__version__}, keras {k.__version__}"}
    probe = [1, *[(d or 224) for d in shape[1:]]]
    out["io"]["output_shape"] = [None, *call(np.zeros(probe, np.float32)).shape[1:]]
    if x is not None:

        def fn(a: np.ndarray) -> np.ndarray:
            _fault(options, len(a))
            return call(np.ascontiguousarray(a, np.float32))
        out["y"] = _loop(fn, x, int(options.get("batch") or 0) or 32)
    return out


# ---------------------------------------------------------------------------------------------------- ExecuTorch
def pte(path: str, x: np.ndarray | None, options: dict) -> dict:
    """A .pte read as the ExecuTorch host's ``pte_run`` reads it: the ``forward`` method's input and output tensor
    specs (ExecuTorch's MethodMeta: the shape it was exported at, e.g. batch fixed 1), its delegates and the datatypes
    of their tensors (the precision), the operators left outside them; run by the ExecuTorch runtime in chunks of the
    method's input batch."""
    import executorch.version

    from .executorch import load_method, read_pte, run_outputs
    read = read_pte(path, "forward")
    if len(read["inputs"]) != 1 or not read["outputs"]:
        raise AdapterError(f"{os.path.basename(path)}: its forward takes {len(read['inputs'])} inputs and gives "
                           f"{len(read['outputs'])} outputs; verify runs one image input to one score output")
    i, o = read["inputs"][0], read["outputs"][0]
    io = {"input_name": "forward[0]", "input_shape": [int(d) for d in i["shape"]], "input_dtype": i["dtype"],
          "output_shape": [int(d) for d in o["shape"]], "output_dtype": o["dtype"]}
    out: dict[str, Any] = {"io": io, "precision": read["precision"] or "fp32",
                           "detail": {"delegates": read["delegates"], "operators": read["operators"][:20],
                                      "methods": read["methods"],
                                      **({} if read["precision"] else {"delegated": "nothing: ExecuTorch's portable "
                                                                                    "kernels run it in fp32"})},
                           "version": f"executorch {executorch.version.__version__}"}
    if x is not None:
        method = load_method(path, os.stat(path).st_mtime_ns, "forward")
        step = io["input_shape"][0] if io["input_shape"] else len(x)
        _fault(options, step)
        out["y"] = run_outputs(method, x, read["inputs"])[0]
    return out


# ---------------------------------------------------------------------------------------------------- ncnn / MNN
def _against(fn: Any, strict: Any, shape: list[int]) -> dict:
    """What the runtime's default configuration does to the numbers on this machine, measured: one fixed input
    (seeded normal noise, ``shape``) run by ``fn`` (the default: what a deployment gets) and by ``strict`` (the same
    file with the runtime's reduced-precision paths switched off). Equal outputs: those paths do not run here."""
    a = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    y, ref = np.asarray(fn(a), np.float64), np.asarray(strict(a), np.float64)
    err = float(((y - ref) ** 2).sum())
    return {"max_abs": float(np.abs(y - ref).max()), "identical": err == 0.0,
            "sqnr_db": None if err == 0.0 else round(float(10 * np.log10((ref ** 2).sum() / err)), 1)}


def _ncnn_net(ncnn: Any, path: str, options: dict, fp16: bool) -> Any:
    net = ncnn.Net()
    if options.get("threads"):
        net.opt.num_threads = int(options["threads"])
    if not fp16:
        for k in ("use_fp16_storage", "use_fp16_arithmetic", "use_fp16_packed", "use_bf16_storage"):
            setattr(net.opt, k, False)
    binary = os.path.splitext(path)[0] + ".bin"
    if net.load_param(path) != 0 or net.load_model(binary) != 0:
        raise AdapterError(f"ncnn cannot load {os.path.basename(path)} + {os.path.basename(binary)}",
                           hint="a text .param written with its .bin by the same conversion (pnnx, onnx2ncnn)")
    return net


def ncnn_model(path: str, x: np.ndarray | None, options: dict) -> dict:
    """A text .param + its .bin, run by ncnn's Python binding with its default options (what a deployment gets; they
    are reported, with the ``cpu_support_*`` answers of this ncnn build on this CPU). What the fp16 options change
    here is measured (``_against``: the same file with them off); the file's weight storage is read by the parent.
    ncnn has no batch: one image (C, H, W) per extractor. Its input and output blobs are the net's own."""
    import ncnn
    net, strict = _ncnn_net(ncnn, path, options, True), _ncnn_net(ncnn, path, options, False)
    in_name, out_name = next(iter(net.input_names())), list(net.output_names())[-1]
    opt = {k: bool(getattr(net.opt, k)) for k in ("use_fp16_storage", "use_fp16_arithmetic", "use_fp16_packed",
                                                  "use_bf16_storage", "use_int8_inference", "use_vulkan_compute")}
    cpu = {k[len("cpu_support_"):]: bool(getattr(ncnn, k)()) for k in sorted(dir(ncnn)) if k.startswith("cpu_support_")}

    def runner(n: Any) -> Any:
        def fn(a: np.ndarray) -> np.ndarray:
            _fault(options, len(a))
            ys = []
            for k in range(len(a)):
                ex = n.create_extractor()
                ex.input(in_name, ncnn.Mat(np.ascontiguousarray(a[k], np.float32)))
                ret, out = ex.extract(out_name)
                if ret != 0:
                    raise AdapterError(f"ncnn could not extract {out_name!r} (code {ret})")
                ys.append(np.array(out, np.float32).reshape(-1))
            return np.stack(ys)
        return fn
    fn = runner(net)
    hw = int(options.get("probe_size") or 224)
    effect = _against(fn, runner(strict), [1, 3, hw, hw])
    out: dict[str, Any] = {"io": {"input_name": in_name, "input_shape": [None, 3, None, None], "input_dtype": "float32",
                                  "output_name": out_name, "output_dtype": "float32",
                                  "output_shape": [None, int(fn(np.zeros((1, 3, hw, hw), np.float32)).shape[1])]},
                           "detail": {"option": opt, "cpu_support": cpu, "fp16_options_effect": effect},
                           "precision": "fp32" if effect["identical"] else "fp16",
                           "version": f"ncnn {ncnn.__version__}"}
    if x is not None:
        out["y"] = _loop(fn, x, int(options.get("batch") or 0) or 32)
    return out


def _mnn_session(mnn: Any, itp: Any, precision: str, options: dict) -> tuple[Any, list[int], list[str]]:
    """A CPU session at ``precision``: a function running a batch through it (the input resized to the batch), the
    input's shape, the first input's and output's names."""
    sess = itp.createSession({"backend": "CPU", "precision": precision, "numThread": int(options.get("threads") or 1)})
    t = itp.getSessionInput(sess)
    dim = t.getDimensionType()
    state = {"shape": tuple(int(d) for d in t.getShape())}

    def fn(a: np.ndarray) -> np.ndarray:
        _fault(options, len(a))
        a = np.ascontiguousarray(a, np.float32)
        if tuple(a.shape) != state["shape"]:
            itp.resizeTensor(t, tuple(a.shape))
            itp.resizeSession(sess)
            state["shape"] = tuple(a.shape)
        t.copyFrom(mnn.Tensor(tuple(a.shape), mnn.Halide_Type_Float, a, dim))
        itp.runSession(sess)
        o = itp.getSessionOutput(sess)
        oshape = tuple(int(d) for d in o.getShape())
        host = mnn.Tensor(oshape, mnn.Halide_Type_Float, np.zeros(oshape, np.float32), mnn.Tensor_DimensionType_Caffe)
        o.copyToHostTensor(host)
        return np.array(host.getNumpyData(), np.float32).reshape(oshape)
    names = [next(iter(itp.getSessionInputAll(sess)), ""), next(iter(itp.getSessionOutputAll(sess)), "")]
    return fn, [int(d) for d in t.getShape()], names


def mnn_model(path: str, x: np.ndarray | None, options: dict) -> dict:
    """A .mnn run by MNN's Interpreter in a CPU session at precision ``normal`` (MNN's default). What that precision
    changes here against ``high`` is measured (``_against``); how the file stores its weights (fp32, fp16, 8-bit) is
    read by the parent. The input's shape, dimension order and dtype are the session's (read from the file); a batch
    of another size is run by resizing the input tensor."""
    import MNN
    itp = MNN.Interpreter(path)
    fn, shape, (in_name, out_name) = _mnn_session(MNN, itp, "normal", options)
    strict = _mnn_session(MNN, itp, "high", options)[0]
    if len(shape) != 4:
        raise AdapterError(f"MNN reads input shape {shape} from {os.path.basename(path)}: not an image batch")
    probe = [1, *shape[1:]]
    effect = _against(fn, strict, probe)
    out: dict[str, Any] = {"io": {"input_name": in_name, "input_shape": shape, "input_dtype": "float32",
                                  "output_name": out_name, "output_dtype": "float32",
                                  "output_shape": [shape[0], *fn(np.zeros(probe, np.float32)).shape[1:]]},
                           "precision": "fp32" if effect["identical"] else "fp16",
                           "detail": {"session": {"backend": "CPU", "precision": "normal"},
                                      "precision_normal_vs_high": effect},
                           "version": f"MNN {MNN.version()}"}
    if x is not None:
        out["y"] = _loop(fn, x, 1 if shape[0] == 1 else int(options.get("batch") or 0) or 32)
    return out


RUNNERS = {"onnx": onnx, "tflite": tflite, "torchscript": torchscript, "paddle": paddle, "openvino": openvino,
           "keras": keras, "savedmodel": keras, "executorch": pte, "ncnn": ncnn_model, "mnn": mnn_model}


def run(fmt: str, path: str, x: np.ndarray | None, options: dict) -> dict:
    fn = RUNNERS.get(fmt)
    if fn is None:
        raise AdapterError(f"no runner for format {fmt!r} in this worker")
    return fn(path, x, options)


class ArtifactHost:
    """The ``artifact`` op's hook, mixed into every adapter whose stack hosts a format."""

    HOSTS: tuple[str, ...] = ()

    def artifact(self, fmt: str, path: str, x: np.ndarray | None, options: dict) -> dict:
        if fmt not in self.HOSTS:
            raise AdapterError(f"format {fmt!r} is not run by this worker (it runs {', '.join(self.HOSTS)})")
        return run(fmt, path, x, options)
