"""What the parent reads of an artifact without a framework (``onnx``, the ``tflite`` flatbuffer package, XML): its
I/O as the file declares it, its structure (stem and feature widths, conv count, TF-SAME vs symmetric padding, ReLU6 vs
ReLU, classes, softmax at the end), the precision its weights are stored in, and the preprocessing metadata it carries.
Each reader refuses a truncated or damaged file in one line. Framework-free."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from .formats import ArtifactRefused

DAMAGED_HINT = "the file is incomplete or damaged: copy it again"


def _structure(stem: int | None, feature: int | None, convs: int, paddings: list[str], acts: Counter[str],
               classes: int | None, softmax: bool) -> dict[str, Any]:
    padding = "same" if "same" in paddings else ("symmetric" if paddings else "unknown")
    activation = "ReLU6" if acts.get("relu6") else ("ReLU" if acts.get("relu") else "unknown")
    return {"stem_channels": stem, "feature_channels": feature, "convs": convs, "padding": padding,
            "activation": activation, "activations": dict(acts), "classes": classes, "softmax": softmax}


# ------------------------------------------------------------------------------------------------------------ ONNX
def _onnx_dims(vi: Any) -> list[int | None]:
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in vi.type.tensor_type.shape.dim]


def onnx_structure(p: Path) -> dict[str, Any]:
    import onnx
    from onnx import numpy_helper
    try:
        m = onnx.load(str(p))
    except Exception as e:  # noqa: BLE001 - protobuf raises DecodeError and friends on a cut file
        raise ArtifactRefused(f"{p.name}: not a readable ONNX file ({type(e).__name__}: truncated or damaged)",
                              hint=DAMAGED_HINT) from None
    g = m.graph
    if not g.node or not g.output:
        raise ArtifactRefused(f"{p.name}: an ONNX file with no graph", hint=DAMAGED_HINT)
    inits = {i.name: i for i in g.initializer}
    producer = {o: n for n in g.node for o in n.output}

    def const(name: str) -> Any:
        n = producer.get(name)
        while n is not None and n.op_type in ("DequantizeLinear", "Cast", "Identity") and n.input[0] not in inits:
            n = producer.get(n.input[0])
        key = n.input[0] if n is not None and n.op_type in ("DequantizeLinear", "Cast", "Identity") else name
        return inits.get(key)

    convs = [n for n in g.node if n.op_type in ("Conv", "QLinearConv", "ConvInteger")]
    shapes = []
    for n in convs:
        w = const(n.input[3 if n.op_type == "QLinearConv" else 1])
        shapes.append(list(w.dims) if w is not None else None)
    paddings = []
    for n in convs:
        a = {x.name: onnx.helper.get_attribute_value(x) for x in n.attribute}
        if list(a.get("strides", [1, 1])) != [2, 2]:
            continue
        auto = a.get("auto_pad", b"NOTSET")
        pads = list(a.get("pads", [0, 0, 0, 0]))
        src = producer.get(n.input[0])
        if auto in (b"SAME_UPPER", b"SAME_LOWER") or (pads and pads[:2] != pads[2:]):
            paddings.append("same")
        elif src is not None and src.op_type == "Pad":
            pv = const(src.input[1]) if len(src.input) > 1 else None
            arr = numpy_helper.to_array(pv).tolist() if pv is not None else []
            half = len(arr) // 2
            paddings.append("same" if not arr or arr[:half] != arr[half:] else "symmetric")
        elif any(pads):
            paddings.append("symmetric")
    acts: Counter[str] = Counter("relu6" if n.op_type == "Clip" else "relu" for n in g.node if n.op_type in ("Clip", "Relu"))
    ident = {i.name for i in inits.values()}
    inputs = [i for i in g.input if i.name not in ident]

    dims = _onnx_dims
    etypes = {1: "float32", 10: "float16", 2: "uint8", 3: "int8"}
    out_dims = dims(g.output[0])
    last = producer.get(g.output[0].name)
    while last is not None and last.op_type in ("Flatten", "Reshape", "Squeeze", "Identity"):
        last = producer.get(last.input[0])
    ops = Counter(n.op_type for n in g.node)
    floats = Counter(etypes.get(i.data_type, str(i.data_type)) for i in g.initializer if len(i.dims) == 4)
    precision = "int8" if ops.get("QLinearConv") or ops.get("DequantizeLinear") or ops.get("ConvInteger") else (
        "fp16" if floats.get("float16", 0) > floats.get("float32", 0) else "fp32")
    conv_shapes = [s for s in shapes if s]
    classifier = out_dims[-1] if out_dims else None
    gemm = [const(n.input[1]) for n in g.node if n.op_type in ("Gemm", "MatMul")]
    feature = None
    for w in gemm:
        if w is not None and len(w.dims) == 2:
            d0, d1 = (int(d) for d in w.dims)   # (classes, features) with transB, else (features, classes)
            feature = d1 if d0 in (1000, 1001) else d0
    if feature is None and conv_shapes:
        feature = int(conv_shapes[-1][1])
    n_units = len(conv_shapes) - (1 if conv_shapes and conv_shapes[-1][0] in (1000, 1001) else 0)
    return {"io": {"input_name": inputs[0].name if inputs else "", "input_shape": dims(inputs[0]) if inputs else [],
                   "input_dtype": etypes.get(inputs[0].type.tensor_type.elem_type, "?") if inputs else "?",
                   "output_shape": out_dims},
            "structure": _structure(conv_shapes[0][0] if conv_shapes else None, feature, n_units, paddings, acts,
                                    classifier, last is not None and last.op_type == "Softmax"),
            "precision": precision, "ops": dict(ops),
            "metadata": {pr.key: pr.value for pr in m.metadata_props},
            "producer": f"{m.producer_name} {m.producer_version}".strip()}


# ------------------------------------------------------------------------------------------------------------ TFLite
_NP = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 9: "int8", 7: "int16", 4: "int64"}
_ITEM = {"float32": 4, "float16": 2, "int32": 4, "uint8": 1, "int8": 1, "int16": 2, "int64": 8}


def _tflite_read(p: Path, tflite: Any) -> tuple[Any, Any, list[tuple[str, Any]]]:
    """The model, its first subgraph and its (op name, op) list; every constant tensor checked whole, else refused."""
    from ..weights.tflite_import import op_names
    buf = p.read_bytes()
    size = len(buf)
    try:
        model = tflite.Model.GetRootAsModel(buf, 0)
        sg = model.Subgraphs(0)
        names = op_names(tflite)
        ops = []
        for i in range(sg.OperatorsLength()):
            op = sg.Operators(i)
            code = model.OperatorCodes(op.OpcodeIndex())
            ops.append((names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "?"), op))
        # every constant tensor's data must be there, whole: a cut file fails here (or raises while reading)
        for t in range(sg.TensorsLength()):
            ten = sg.Tensors(t)
            b = model.Buffers(ten.Buffer())
            n = b.DataLength()
            if n == 0 and b.Offset() > 1:
                if b.Offset() + b.Size() > size:
                    raise ValueError("buffer beyond the end of the file")
                continue
            if n:
                shape = ten.ShapeAsNumpy()
                want = int(np.prod(shape)) * _ITEM.get(_NP.get(ten.Type(), ""), 0) if not isinstance(shape, int) else 0
                if want and want != n:
                    raise ValueError(f"tensor {t} holds {n} bytes, its shape needs {want}")
                b.DataAsNumpy()
    except ArtifactRefused:
        raise
    except Exception as e:  # noqa: BLE001 - a cut or damaged flatbuffer raises anything
        raise ArtifactRefused(f"{p.name}: not a readable TFLite model ({type(e).__name__}: {e}; truncated or "
                              "damaged)", hint=DAMAGED_HINT) from None
    return model, sg, ops


def _tflite_quant(t: Any) -> list[float] | None:
    q = t.Quantization()
    if q is None or not q.ScaleLength():
        return None
    return [float(q.ScaleAsNumpy()[0]), float(q.ZeroPointAsNumpy()[0])]


def _tflite_metadata(p: Path) -> dict[str, Any]:
    try:
        from ..audit.importers import read
        _, decl, _ = read(p, "tflite-metadata")
        return {"normalization": decl.to_dict()["fields"], "notes": decl.notes}
    except Exception:  # noqa: BLE001 - no metadata (or unreadable metadata) is simply no metadata
        return {}


def tflite_structure(p: Path) -> dict[str, Any]:
    import tflite
    from tflite.ActivationFunctionType import ActivationFunctionType as Act
    from tflite.Padding import Padding
    model, sg, ops = _tflite_read(p, tflite)

    def tshape(idx: int) -> list[int]:
        s = sg.Tensors(idx).ShapeAsNumpy()
        return [] if isinstance(s, int) else [int(v) for v in s]
    convs: list[Any] = []
    paddings: list[str] = []
    acts: Counter[str] = Counter()
    producer = {}
    for name, op in ops:
        for k in range(op.OutputsLength()):
            producer[op.Outputs(k)] = (name, op)
    for name, op in ops:
        if name not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            continue
        convs.append(tshape(op.Inputs(1)))
        opts = (tflite.DepthwiseConv2DOptions if name == "DEPTHWISE_CONV_2D" else tflite.Conv2DOptions)()
        tab = op.BuiltinOptions()
        opts.Init(tab.Bytes, tab.Pos)
        act = opts.FusedActivationFunction()
        acts["relu6" if act == Act.RELU6 else "relu" if act == Act.RELU else "none"] += 1
        if opts.StrideH() == 2:
            if opts.Padding() == Padding.SAME:
                paddings.append("same")
            else:
                src = producer.get(op.Inputs(0))
                if src is not None and src[0] in ("PAD", "PADV2"):
                    pads = sg.Tensors(src[1].Inputs(1))
                    arr = model.Buffers(pads.Buffer()).DataAsNumpy()
                    v = np.frombuffer(arr.tobytes(), np.int32).reshape(-1, 2) if not isinstance(arr, int) else None
                    paddings.append("same" if v is None or (v[1:3, 0] != v[1:3, 1]).any() else "symmetric")
    for name, _ in ops:
        if name in ("RELU6",):
            acts["relu6"] += 1
        elif name == "RELU":
            acts["relu"] += 1
    acts.pop("none", None)
    ti, to = sg.Tensors(sg.Inputs(0)), sg.Tensors(sg.Outputs(0))
    sig = ti.ShapeSignatureAsNumpy() if ti.ShapeSignatureLength() else ti.ShapeAsNumpy()

    quant = _tflite_quant
    fcs = [tshape(op.Inputs(1)) for name, op in ops if name == "FULLY_CONNECTED"]
    feature = fcs[-1][1] if fcs else (convs[-1][3] if convs else None)
    units = len(convs) - (1 if convs and convs[-1][0] in (1000, 1001) else 0)
    weight_types = Counter(_NP.get(sg.Tensors(op.Inputs(1)).Type(), "?") for name, op in ops
                           if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"))
    precision = "int8" if weight_types.get("int8") or weight_types.get("uint8") else (
        "fp16" if "DEQUANTIZE" in [n for n, _ in ops] and weight_types.get("float16") else "fp32")
    meta = _tflite_metadata(p)
    wq = sorted({"per-channel" if (sg.Tensors(op.Inputs(1)).Quantization() is not None and
                                   sg.Tensors(op.Inputs(1)).Quantization().ScaleLength() > 1) else "per-tensor"
                 for name, op in ops if name in ("CONV_2D", "DEPTHWISE_CONV_2D")}) if precision == "int8" else []
    return {"io": {"input_name": ti.Name().decode(), "input_shape": [None if int(d) < 0 else int(d) for d in sig],
                   "input_dtype": _NP.get(ti.Type(), "?"), "input_quantization": quant(ti),
                   "output_shape": [int(d) for d in to.ShapeAsNumpy()], "output_dtype": _NP.get(to.Type(), "?"),
                   "output_quantization": quant(to)},
            "structure": _structure(convs[0][0] if convs else None, feature, units, paddings, acts,
                                    int(to.ShapeAsNumpy()[-1]), "SOFTMAX" in [n for n, _ in ops]),
            "precision": precision, "weights": {"types": dict(weight_types), "granularity": wq},
            "ops": dict(Counter(n for n, _ in ops)), "metadata": meta}


# ------------------------------------------------------------------------------------------------------------ OpenVINO
def openvino_structure(p: Path) -> dict[str, Any]:
    try:
        root = ET.parse(p).getroot()
    except ET.ParseError as e:
        raise ArtifactRefused(f"{p.name}: not a readable OpenVINO IR ({e}; truncated or damaged)",
                              hint=DAMAGED_HINT) from None
    layers = root.find("layers")
    if root.tag != "net" or layers is None:
        raise ArtifactRefused(f"{p.name}: an XML file that is not an OpenVINO IR", hint="give the model's .xml")
    kinds = Counter(layer.get("type") for layer in layers)
    meta: dict[str, Any] = {}
    rt = root.find("rt_info")
    if rt is not None:
        for key in ("mean_values", "scale_values", "reverse_input_channels", "layout", "source_layout"):
            el = rt.find(f".//{key}")
            if el is not None and el.get("value"):
                meta[key] = el.get("value")
    paddings, convs = [], []
    for layer in layers:
        if layer.get("type") not in ("Convolution", "GroupConvolution"):
            continue
        d = layer.find("data")
        convs.append(layer.get("name"))
        if d is not None and d.get("strides") == "2,2":
            paddings.append("same" if d.get("pads_begin") != d.get("pads_end") else "symmetric")
    acts: Counter[str] = Counter({"relu6": kinds.get("Clamp", 0), "relu": kinds.get("ReLU", 0)})
    fq = kinds.get("FakeQuantize", 0)
    return {"io": {}, "structure": _structure(None, None, len(convs), paddings, +acts, None,
                                              bool(kinds.get("SoftMax"))),
            "precision": "int8" if fq else "fp32", "ops": dict(kinds), "metadata": meta}
