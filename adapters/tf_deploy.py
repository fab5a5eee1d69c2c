"""TFLite, the deployment runtime of the TensorFlow stack: ``TFLiteConverter`` float and full-integer int8 (a
representative dataset, int8 inputs and outputs), run in the LiteRT interpreter (``ai_edge_litert``; TensorFlow's own
``tf.lite.Interpreter`` where LiteRT is not installed). The precision it ran is read from the interpreter's own tensor
and operator details."""
from __future__ import annotations

import functools
import os
import time
import warnings

import numpy as np
import tensorflow as tf

from .artifacts import ArtifactHost
from .base import AdapterError, timed


def interpreter(path: str, threads: int = 0):
    """One interpreter per (file, its mtime, threads) in this worker: eval calls it once per batch."""
    return _interpreter(path, threads, os.stat(path).st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _interpreter(path: str, threads: int, _mtime: int):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # TF's own, deprecated in favour of LiteRT
        Interpreter = tf.lite.Interpreter
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Interpreter(model_path=path, num_threads=threads or None)


def executed_precision(itp) -> tuple[str, dict]:
    """int8 when the convolutions take int8 tensors; fp32 otherwise (fp16 weights are dequantized at load)."""
    tensors = {t["index"]: t for t in itp.get_tensor_details()}
    ops = itp._get_ops_details()
    conv_in = [str(np.dtype(tensors[op["inputs"][0]]["dtype"])) for op in ops
               if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") and len(op["inputs"])]
    counts = {d: conv_in.count(d) for d in sorted(set(conv_in))}
    names = [op["op_name"] for op in ops]
    # a file whose graph ends in SOFTMAX gives probabilities, not logits (the shared Coral files): said, so the check
    # compares it with the reference's softmax
    detail = {"conv_input_dtypes": counts, "ops": {n: names.count(n) for n in sorted(set(names))},
              "output": "probabilities" if "SOFTMAX" in names else "logits"}
    return ("int8" if counts.get("int8") or counts.get("uint8") else "fp32"), detail


def run(itp, x: np.ndarray) -> np.ndarray:
    inp, out = itp.get_input_details()[0], itp.get_output_details()[0]
    if list(inp["shape"]) != [1, *x.shape[1:]]:
        itp.resize_tensor_input(inp["index"], [1, *x.shape[1:]])
        itp.allocate_tensors()
    elif not getattr(itp, "_mbv2_allocated", False):
        itp.allocate_tensors()          # once, not inside the timed calls
        itp._mbv2_allocated = True
    s_in, z_in = inp["quantization"]
    s_out, z_out = out["quantization"]
    ys = []
    for img in x:
        a = img[None]
        if inp["dtype"] in (np.int8, np.uint8) and a.dtype == np.float32:
            info = np.iinfo(inp["dtype"])
            a = np.clip(np.round(a / s_in + z_in), info.min, info.max)
        itp.set_tensor(inp["index"], a.astype(inp["dtype"]))
        itp.invoke()
        q = itp.get_tensor(out["index"]).astype(np.float32)
        ys.append((q - z_out) * s_out if s_out else q)
    y = np.concatenate(ys)
    return y[:, 1:] if y.shape[1] == 1001 else y   # TF-slim/TFLite files: class 0 is background


DEBUG_IMAGES = 4   # images the quantization debugger runs (4.5 s for MobileNetV2 here)


def _sqnr_db(floats, quants, scale, zero_point) -> float:
    f = np.concatenate([np.ravel(a) for a in floats]).astype(np.float64)
    d = np.concatenate([(np.ravel(a).astype(np.float64) - zero_point) * scale for a in quants])
    noise = float(np.sum((f - d) ** 2))
    return float(10 * np.log10(max(float(np.sum(f ** 2)), 1e-300) / noise)) if noise else float("inf")


def layer_blame(conv, images: np.ndarray) -> dict:
    """Per quantized activation, the SQNR (dB) of float vs dequantized int8 on ``images``: TFLite's own
    ``QuantizationDebugger`` (it re-converts with numeric-verify ops), named by the op that writes the tensor."""
    opts = tf.lite.experimental.QuantizationDebugOptions(layer_direct_compare_metrics={"sqnr_db": _sqnr_db})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dbg = tf.lite.experimental.QuantizationDebugger(
            converter=conv, debug_dataset=lambda: ([images[i:i + 1]] for i in range(len(images))), debug_options=opts)
        dbg.run()
    acts = []
    for name, stats in dbg.layer_statistics.items():
        layer = name.removeprefix("NumericVerify/").rsplit(":", 1)[0].split(";")[0]
        acts.append([layer, float(stats["sqnr_db"])])
    return {"activations": sorted(acts, key=lambda kv: kv[1]), "weights": [], "images": len(images),
            "tool": "tf.lite.experimental.QuantizationDebugger"}


class TfLiteDeploy(ArtifactHost):
    HOSTS = ("tflite", "keras", "savedmodel")

    def deploy_export(self, model, runtime: str, path: str, options: dict) -> dict:
        if runtime == "keras-file":    # `verify`'s Keras artifact: the model saved by Keras itself (.keras or .h5)
            import keras
            model.save(path)
            return {"path": path, "made_by": {"tool": "keras.Model.save", "keras": keras.__version__}}
        if runtime == "savedmodel":    # `verify`'s SavedModel artifact: Keras's own export (a serving signature)
            import keras
            model.export(path, format="tf_saved_model", verbose=False)
            return {"path": path, "made_by": {"tool": "keras.Model.export(format='tf_saved_model')",
                                              "keras": keras.__version__}}
        if runtime != "tflite":
            raise AdapterError(f"{runtime!r} is not a runtime of the TensorFlow stack (tflite)")
        from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
        rows = int(model.inputs[0].shape[1])
        fn = tf.function(lambda x: model(x, training=False), input_signature=[tf.TensorSpec([1, rows, rows, 3])])
        # a frozen concrete function: from_keras_model works too (4x slower here), passing the Keras 3 model as the
        # trackable object writes a broken file (READ_VARIABLE ops, NaN outputs)
        conv = tf.lite.TFLiteConverter.from_concrete_functions([convert_variables_to_constants_v2(
            fn.get_concrete_function())])
        precision = options.get("precision", "float")
        settings: dict = {"precision": precision}
        if precision == "int8":
            calib = np.load(options["calib"])
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.representative_dataset = lambda: ([calib[i:i + 1]] for i in range(len(calib)))
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
            settings.update(optimizations="DEFAULT", supported_ops="TFLITE_BUILTINS_INT8", io="int8",
                            representative_images=len(calib))
        elif precision != "float":
            raise AdapterError(f"TFLite precision {precision!r}: float or int8")
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = conv.convert()
        with open(path, "wb") as f:
            f.write(data)
        made = {"tool": "tf.lite.TFLiteConverter.from_concrete_functions", "tensorflow": tf.__version__,
                "settings": settings, "seconds": time.perf_counter() - t0, "bytes": len(data)}
        if precision == "int8":
            made["layer_blame"] = layer_blame(conv, calib[:DEBUG_IMAGES])
        return {"path": path, "made_by": made}

    def deploy_run(self, runtime: str, path: str, x: np.ndarray, options: dict) -> tuple:
        if runtime != "tflite":
            raise AdapterError(f"{runtime!r} is not a runtime of the TensorFlow stack (tflite)")
        itp = interpreter(path, int(options.get("threads") or 0))
        y = run(itp, x)
        times = timed(lambda: run(itp, x), int(options.get("repeats") or 0))
        precision, detail = executed_precision(itp)
        return y, precision, detail, times
