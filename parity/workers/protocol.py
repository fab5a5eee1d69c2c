"""The worker op contract: every operation the core asks an adapter for, in one place. Framework-free; the adapter
base class (``adapters/base.py``) dispatches by it and the typed client (``parity.workers.client``) calls by it.

Transport: one JSON line per request ``{"op": NAME, "params": {...}}`` on the worker's stdin, one JSON line per
reply ``{"ok": true, "result": {...}}`` or ``{"ok": false, "kind": EXC, "error": TEXT, "hint": TEXT}`` on a
private copy of its stdout. Arrays travel as ``.npy``/``.npz`` files, models as files (paths in the JSON).

An op is *required* (every adapter implements it) or *optional* (an adapter may declare it unsupported, with the
reason, in ``BaseAdapter.UNSUPPORTED``). ``hooks`` are the adapter methods the op needs; an adapter implements the
op when it overrides them. A test asks every worker for its ``contract`` and checks it against this table.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Op:
    name: str
    params: tuple[str, ...]
    returns: tuple[str, ...]
    doc: str
    hooks: tuple[str, ...] = ()
    optional: bool = False


OPS: dict[str, Op] = {o.name: o for o in (
    Op("ping", (), ("pong",), "liveness"),
    Op("contract", (), ("framework", "implemented", "unsupported", "missing"), "which ops this adapter implements"),
    Op("derive_spec", ("card",), ("spec",), "the preprocessing spec derived from the framework's own API",
       ("derive_spec",)),
    Op("meta", ("card",), ("url", "source", "published", "card_fields", "meta"),
       "the framework's own metadata mapped onto registry terms: url, published {metric: {field, value}} as cited "
       "under registry source `source`, card_fields {'section.field': value}", ("meta",)),
    Op("build", ("card", "weights"), ("key", "params", "seconds"),
       "build the card's model with weights {mode: seeded|file|canonical, seed, calib | path}; construct- and "
       "weights-stage faults of card.build.faults apply here; model-stage ones on a copy", ("create", "seed_weights",
                                                                                             "forward", "count_params")),
    Op("run", ("key", "input"), ("output", "seconds"), "native forward of an .npy batch (the card's layout) -> "
       "logits .npy; output- and process-stage faults apply here", ("forward",)),
    Op("release", ("key",), ("released",), "forget a built model"),
    Op("export_onnx", ("key", "path", "opset", "exporter"), ("path", "sha256", "bytes", "exporter", "opset"),
       "the framework's own converter; exporter 'default', 'keep-bn' (the counting graph) or a named one",
       ("export_onnx",)),
    Op("count_native", ("key",), ("counts",), "FLOPs from the framework's own counters {counter: count}",
       ("count_native",), optional=True),
    Op("native_preprocess", ("card", "images", "out"), ("output", "shape"),
       "the framework's own loader + transforms on image files -> the model's input batch (.npy)",
       ("native_preprocess",)),
    Op("export_canonical", ("key", "path", "source"), ("path", "bn_eps", "padding"),
       "the model's weights as a canonical safetensors file", ("export_canonical",)),
    Op("activations", ("key", "input"), ("output", "units"),
       "each conv unit's BatchNorm output (pre-activation), NCHW, in unit order (.npz)", ("activations",)),
    Op("save_native", ("key", "path"), ("path", "bn_eps_written_for", "max_var_shift"),
       "the framework's native weight file for a stock model (variance shifted to its epsilon)", ("save_native",)),
    Op("weight_shapes", ("card",), ("shapes",), "{tensor: shape} of the card's architecture (what a weight file must "
       "hold), named as file_shapes names them", ("state_shapes",), optional=True),
    Op("file_shapes", ("card", "path"), ("shapes",), "{tensor: shape} a native weight file holds (read without loading "
       "it into a model; pickles through the restricted loaders), named as the card's model names them",
       ("file_shapes",), optional=True),
    Op("tflite_run", ("path", "input"), ("output", "input_quantization"),
       "the TFLite interpreter on a uint8 NHWC batch: dequantized scores, background class dropped",
       ("tflite_run",), optional=True),
    Op("deploy_export", ("key", "runtime", "path", "options"), ("path", "made_by"),
       "the model converted for a deployment runtime of this stack (tflite: TFLiteConverter float/int8; "
       "torchscript: torch.jit.trace + save + export_opnames; paddle-inference: paddle.jit.save)", ("deploy_export",),
       optional=True),
    Op("deploy_run", ("runtime", "path", "input", "options"), ("output", "precision", "detail", "times"),
       "run a deployed artifact in this stack's runtime (threads, precision); with options.repeats > 0 also the "
       "seconds of each call, timed in the worker", ("deploy_run",), optional=True),
    Op("artifact", ("format", "path", "input", "options"), ("io", "precision", "detail", "version", "output"),
       "`verify`: a user's deployed file read and run by its own runtime (adapters/artifacts.py): its I/O as the "
       "runtime reports it, the precision it runs, and with an input (.npy, '' for none) the raw outputs",
       ("artifact",), optional=True),
)}


# The deployment-toolchain host (adapters/deploy.py, stack `deploy`): no model of its own, files in and out.
DEPLOY_OPS: dict[str, Op] = {o.name: o for o in (
    Op("ping", (), ("pong",), "liveness"),
    Op("contract", (), ("framework", "implemented", "unsupported", "missing"), "which ops this host implements"),
    Op("fp16", ("src", "dst"), ("path", "made_by"), "fp16 ONNX (onnxconverter-common, float32 inputs/outputs kept)"),
    Op("quantize", ("src", "dst", "calib", "tool", "method", "granularity"), ("path", "made_by"),
       "static int8: tool `ort` (QDQ ONNX, defaults pinned) or `nncf-openvino` (OpenVINO IR), calibration .npy"),
    Op("ov_load", ("path", "config", "threads"), ("handle", "hint", "compute_layers", "precision", "capabilities"),
       "compile for the OpenVINO CPU plugin; read back the precision hint and every compute layer's precision"),
    Op("ov_infer", ("handle", "input"), ("output",), "run a compiled model on an .npy batch"),
    Op("ov_bench", ("handle", "input", "repeats"), ("times",), "latency of one batch call, timed in the worker"),
    Op("ov_release", ("handle",), ("released",), "forget a compiled model"),
    Op("layer_errors", ("float_path", "quant_path", "calib", "images"), ("activations", "weights"),
       "per-layer SQNR (dB) float vs quantized: a QDQ ONNX (onnxruntime qdq_loss_debug) or an NNCF IR (cut models)"),
    Op("ov_double_scale", ("src", "dst", "index"), ("weights", "path", "node"),
       "fault injection: the index-th weight's dequantization scale doubled in a copy of an int8 IR (path '' "
       "when the IR has fewer weights)"),
    Op("ov_convert", ("src", "dst"), ("path", "made_by"),
       "an ONNX file converted to OpenVINO IR by openvino.convert_model (fp32 weights kept): `verify`'s IR artifact"),
    Op("artifact", ("format", "path", "input", "options"), ("io", "precision", "detail", "version", "output"),
       "`verify`: an ONNX file (ONNX Runtime), an OpenVINO IR, an ncnn .param + .bin or an MNN file read and run as "
       "given (adapters/artifacts.py)"),
    Op("convert", ("src", "dst", "tool", "options"), ("path", "made_by"),
       "an ONNX file converted by tool `pnnx` (ncnn .param + .bin; options.fp16, pnnx's default true) or "
       "`mnnconvert` (.mnn; options.fp16, default false): `verify`'s ncnn and MNN artifacts"),
)}


# The ExecuTorch host (adapters/executorch.py, stack `executorch`): builds the torch stack's cards with their own
# adapter code (the same card and weights as the torch worker), lowers them to .pte files and runs them in the
# ExecuTorch runtime; `pte_run` takes any .pte file, made here or not.
EXECUTORCH_OPS: dict[str, Op] = {o.name: o for o in (
    OPS["ping"], OPS["contract"], OPS["build"], OPS["run"], OPS["release"],
    Op("deploy_export", ("key", "runtime", "path", "options"), ("path", "made_by"),
       "the built model lowered to a .pte: torch.export -> (executorch-int8: PT2E with the XNNPACK quantizer, "
       "calibrated on options.calib) -> to_edge_transform_and_lower with the XNNPACK partitioner; made_by records "
       "the lowered program's delegates and what stayed outside them"),
    Op("deploy_run", ("runtime", "path", "input", "options"), ("output", "precision", "detail", "times"),
       "a .pte run in the ExecuTorch runtime on an .npy batch (one image per call at the exported batch size); the "
       "precision read back from the file's XNNPACK delegates (their tensor datatypes)"),
    Op("pte_run", ("path", "input", "method"), ("method", "methods", "inputs", "outputs", "delegates", "operators",
                                                "precision", "output"),
       "any .pte file: its methods, the method's input/output tensor specs (ExecuTorch MethodMeta), the backends it "
       "delegates to with each delegate's size and tensor datatypes, the operators left outside delegates; with an "
       "input .npy ('' for none) the method run on it, outputs as .npz"),
    Op("artifact", ("format", "path", "input", "options"), ("io", "precision", "detail", "version", "output"),
       "`verify`: a user's .pte read as pte_run reads it (MethodMeta shapes and dtypes, delegates' datatypes) and run "
       "in the ExecuTorch runtime (adapters/artifacts.py)"),
)}


def unknown_op(op: str, framework: str) -> str:
    return f"unknown op {op!r} for {framework} worker; the contract has {sorted(OPS)}"
