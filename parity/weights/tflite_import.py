"""TFLite MobileNetV2 -> canonical weights, framework-free (the ``tflite`` flatbuffer package, no TensorFlow).

* Reads the flatbuffer, takes the CONV_2D / DEPTHWISE_CONV_2D operators **in execution order** (TFLite tensor
  names are merged and unreliable): 52 conv units + the 1x1 classifier conv.
* Dequantizes every filter as ``(q - zero_point) * scale`` along its quantized dimension (per-channel int8 or
  per-tensor uint8) and every int32 bias with its own scale (input scale x filter scale).
* OHWI -> OIHW, depthwise ``[1, kh, kw, C]`` -> ``[C, 1, kh, kw]``.
* The BatchNorm is folded into the conv: represented exactly (``bn_eps=0``, see ``parity.canonical``).
* The classifier has 1001 outputs, index 0 = background: dropped, leaving the 1000 ILSVRC2012 classes.
* Stride-2 convs use TF "SAME" padding: the canonical file says ``padding=same``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .canonical import CLASSIFIER, UNITS, Canonical, CanonicalError

Array = npt.NDArray[Any]
_NP = {0: np.float32, 2: np.int32, 3: np.uint8, 9: np.int8, 7: np.int16, 4: np.int64}


@dataclass
class TfliteInfo:
    input_scale: float
    input_zero_point: int
    input_dtype: str
    num_classes: int
    quantization: str           # per-channel int8 | per-tensor uint8
    ops: list[str]


def _open(path: Path) -> tuple[Any, bytes, Any, Any]:
    import tflite
    buf = path.read_bytes()
    try:
        model = tflite.Model.GetRootAsModel(buf, 0)
        sg = model.Subgraphs(0)
    except Exception as e:  # noqa: BLE001 - a malformed flatbuffer raises anything
        raise CanonicalError(f"{path.name}: not a TFLite flatbuffer ({type(e).__name__})") from None
    return tflite, buf, model, sg


def _tensor(tflite: Any, model: Any, sg: Any, idx: int) -> tuple[Array, Array, Array, int]:
    t = sg.Tensors(idx)
    data = model.Buffers(t.Buffer()).DataAsNumpy()
    if isinstance(data, int) or data is None:
        raise CanonicalError(f"tensor {idx} has no constant data")
    arr = np.frombuffer(data.tobytes(), dtype=_NP[t.Type()]).reshape(t.ShapeAsNumpy())
    q = t.Quantization()
    scale = q.ScaleAsNumpy() if q is not None and q.ScaleLength() else np.array([1.0])
    zp = q.ZeroPointAsNumpy() if q is not None and q.ZeroPointLength() else np.array([0])
    dim = q.QuantizedDimension() if q is not None else 0
    return arr, np.asarray(scale, np.float64), np.asarray(zp, np.int64), dim


def _dequantize(arr: Array, scale: Array, zp: Array, dim: int) -> Array:
    if arr.dtype == np.float32:
        return np.asarray(arr, np.float32)
    shape = [1] * arr.ndim
    if scale.size > 1:
        shape[dim] = scale.size
    s, z = scale.reshape(shape), zp.reshape(shape) if zp.size > 1 else zp.reshape([1] * arr.ndim)
    return np.asarray((arr.astype(np.int64) - z) * s, np.float32)


def op_names(tflite: Any) -> dict[int, str]:
    from tflite.BuiltinOperator import BuiltinOperator
    return {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}


def read(path: str | Path) -> tuple[Canonical, TfliteInfo]:
    path = Path(path)
    if not path.is_file():
        raise CanonicalError(f"TFLite file not found: {path}")
    tflite, _, model, sg = _open(path)
    names = op_names(tflite)
    ops, convs = [], []
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "?")
        ops.append(name)
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            convs.append((name, op))
    if len(convs) != len(UNITS) + 1:
        raise CanonicalError(f"{path.name}: {len(convs)} conv operators, a MobileNetV2 has {len(UNITS) + 1} "
                             "(52 units + the 1x1 classifier)")
    tensors: dict[str, np.ndarray] = {}
    quant = set()
    for u, (name, op) in zip(UNITS, convs[:-1]):
        if (name == "DEPTHWISE_CONV_2D") != (u.kind == "depthwise"):
            raise CanonicalError(f"{path.name}: operator {name} where {u.label} expects "
                                 f"{'a depthwise' if u.kind == 'depthwise' else 'a regular'} conv")
        w, ws, wz, wd = _tensor(tflite, model, sg, op.Inputs(1))
        quant.add(f"{'per-channel' if ws.size > 1 else 'per-tensor'} {w.dtype}")
        wf = _dequantize(w, ws, wz, wd)
        wf = wf.transpose(3, 0, 1, 2) if u.kind == "depthwise" else wf.transpose(0, 3, 1, 2)  # -> OIHW
        b, bs, bz, bd = _tensor(tflite, model, sg, op.Inputs(2))
        bf = _dequantize(b, bs, bz, bd)
        c = wf.shape[0]
        tensors[f"{u.conv}.weight"] = np.ascontiguousarray(wf)
        tensors[f"{u.bn}.weight"] = np.ones(c, np.float32)
        tensors[f"{u.bn}.bias"] = bf.astype(np.float32)
        tensors[f"{u.bn}.running_mean"] = np.zeros(c, np.float32)
        tensors[f"{u.bn}.running_var"] = np.ones(c, np.float32)
        if u.stride == 2:
            from tflite.Padding import Padding
            opts_cls = tflite.DepthwiseConv2DOptions if name == "DEPTHWISE_CONV_2D" else tflite.Conv2DOptions
            opts = opts_cls()
            tab = op.BuiltinOptions()
            opts.Init(tab.Bytes, tab.Pos)
            if opts.Padding() != Padding.SAME:
                raise CanonicalError(f"{path.name}: {u.label} is not SAME-padded")
    _, op = convs[-1]
    w, ws, wz, wd = _tensor(tflite, model, sg, op.Inputs(1))
    b, bs, bz, bd = _tensor(tflite, model, sg, op.Inputs(2))
    wf = _dequantize(w, ws, wz, wd).reshape(w.shape[0], -1)
    bf = _dequantize(b, bs, bz, bd)
    if wf.shape[0] != 1001:
        raise CanonicalError(f"{path.name}: classifier has {wf.shape[0]} outputs, expected 1001 (background + 1000)")
    tensors[f"{CLASSIFIER}.weight"] = np.ascontiguousarray(wf[1:])
    tensors[f"{CLASSIFIER}.bias"] = np.ascontiguousarray(bf[1:])
    ti = sg.Tensors(sg.Inputs(0))
    q = ti.Quantization()
    info = TfliteInfo(float(q.ScaleAsNumpy()[0]), int(q.ZeroPointAsNumpy()[0]), _NP[ti.Type()].__name__, 1001,
                      ", ".join(sorted(quant)), ops)
    canon = Canonical(tensors, bn_eps=0.0, padding="same", source=f"tflite:{path.name}", width="1.0").validate()
    return canon, info
