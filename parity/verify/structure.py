"""What the parent reads of an artifact without a framework (``onnx``, the ``tflite`` flatbuffer package, XML): its
I/O as the file declares it, its structure (stem and feature widths, conv count, TF-SAME vs symmetric padding, ReLU6 vs
ReLU, classes, softmax at the end), the precision its weights are stored in, and the preprocessing metadata it carries.
Each reader refuses a truncated or damaged file in one line. Framework-free."""
from __future__ import annotations

import re
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
# Model Optimizer writes every option into the IR's rt_info (``conversion_parameters``), those not given too: as "()"
# (mean_values, scale_values of an IR converted without them) or "{}" / "None"
MO_UNSET = ("", "()", "[]", "{}", "None")


def mo_values(v: str) -> list[float] | None:
    """Model Optimizer's ``--mean_values`` / ``--scale_values`` as it wrote them in the IR's rt_info: "[a,b,c]" or
    "input[a,b,c]" (the first input's; several inputs are comma-joined) or one value for every channel; None when
    unreadable."""
    m = re.search(r"\[([^\]]*)\]", v)
    try:
        nums = [float(t) for t in re.split(r"[,\s]+", (m.group(1) if m else v).strip()) if t]
    except ValueError:
        return None
    return (nums * 3 if len(nums) == 1 else nums) or None


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
            if el is not None and el.get("value") and el.get("value", "").strip() not in MO_UNSET:
                meta[key] = el.get("value")
        for key, short in (("mean_values", "mean"), ("scale_values", "scale")):
            if key in meta:
                meta[short] = mo_values(meta[key])
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


# ------------------------------------------------------------------------------------------------------------ ncnn
NCNN_MAGIC = "7767517"
# ncnn's ModelBin (src/modelbin.cpp): a weight blob loaded with type 0 starts with a 4-byte tag saying how it is stored
NCNN_FP16_TAG, NCNN_INT8_TAG, NCNN_SCALED_TAG = 0x01306B47, 0x000D4B38, 0x0002C056
# layers that load nothing from the .bin (those a MobileNetV2 conversion writes, and their usual neighbours); Gemm and
# Padding load constants only when their params say so (``_ncnn_loads``)
NCNN_WEIGHTLESS = {"Input", "Pooling", "Split", "BinaryOp", "Eltwise", "ReLU", "Clip", "Flatten", "Reshape", "Softmax",
                   "Dropout", "Noop", "Padding", "Concat", "Permute", "Sigmoid", "HardSwish", "Swish", "Crop", "Slice",
                   "Interp", "Squeeze", "ExpandDims", "Gemm"}


def _ncnn_loads(kind: str, p: dict[int, Any]) -> bool:
    """Whether a layer the reader treats as weightless loads from the .bin after all: Gemm with a constant A, B or C
    (params 4, 5, 6), Padding with per-channel pad values (param 6)."""
    if kind == "Gemm":
        return any(int(p.get(k, 0)) for k in (4, 5, 6))
    return kind == "Padding" and bool(int(p.get(6, 0)))


def _ncnn_params(tokens: list[str]) -> dict[int, Any]:
    """``k=v`` pairs of a .param layer line: an int or float, or an array (key -23300 - k: ``n,v1,...``)."""
    out: dict[int, Any] = {}
    for t in tokens:
        k, _, v = t.partition("=")
        key = int(k)
        if key <= -23300:
            out[-key - 23300] = [float(x) for x in v.split(",")[1:]]
        else:
            out[key] = float(v) if any(ch in v for ch in ".eE") else int(v)
    return out


def _ncnn_weights(layers: list[tuple[str, str, dict[int, Any]]], binary: Path) -> dict[str, Any]:
    """How the .bin stores each weight blob (Convolution, ConvolutionDepthWise, InnerProduct: the tag before it, as
    ncnn's ModelBin reads it), walked in layer order with the sizes the .param gives (biases and int8 scales are raw
    fp32); the bytes walked against the file's size. A layer this reader does not know stops the walk."""
    data = binary.read_bytes()
    pos, kinds, read, int8_layers = 0, Counter[str](), 0, 0
    stopped = ""

    def take_weights(n: int) -> str:
        nonlocal pos
        tag = int.from_bytes(data[pos:pos + 4], "little") if pos + 4 <= len(data) else -1
        pos += 4
        if tag == NCNN_FP16_TAG:
            pos += (n * 2 + 3) // 4 * 4
            return "fp16"
        if tag == NCNN_INT8_TAG:
            pos += (n + 3) // 4 * 4
            return "int8"
        if tag in (NCNN_SCALED_TAG, 0):
            pos += n * 4
            return "fp32"
        pos += 256 * 4 + (n + 3) // 4 * 4       # any other non-zero tag: a 256-entry float table and 8-bit indices
        return "8-bit table"

    for kind, name, p in layers:
        if kind in ("Convolution", "ConvolutionDepthWise", "InnerProduct"):
            ip, dw = kind == "InnerProduct", kind == "ConvolutionDepthWise"
            if not ip and p.get(19):     # dynamic weight: the weights come in as a blob, not from the .bin
                continue
            outs = int(p.get(0, 0))
            kinds[take_weights(int(p.get(2 if ip else 6, 0)))] += 1
            pos += 4 * outs if p.get(1 if ip else 5) else 0
            term = int(p.get(8, 0))
            if term:        # int8 inference: weight scales (per output, per group or one) + the input's scale
                per = (int(p.get(7, 1)) if term in (1, 101) else 1) if dw else outs
                pos += 4 * (per + 1 + (1 if term > 100 and not ip else 0))
                int8_layers += 1
            read += 1
        elif kind not in NCNN_WEIGHTLESS or _ncnn_loads(kind, p):
            stopped = f"{kind} {name}"
            break
    return {"storage": dict(kinds), "int8_layers": int8_layers, "layers_read": read, "bytes_read": pos,
            "bytes": len(data), "stopped_at": stopped}


def _ncnn_layout(layers: list[tuple[str, str, dict[int, Any], list[str], list[str]]]) -> dict[str, Any]:
    """Stem and feature widths, conv count, stride-2 padding (pad_left 4, pad_right 15, pad_top 14, pad_bottom 16,
    each defaulting as ncnn's Convolution does; -233/-234: SAME computed at run time), ReLU6 (a fused activation 3 =
    clip, or a Clip layer, with max 6) vs ReLU, classes (the last InnerProduct's outputs), a Softmax."""
    convs = [ly for ly in layers if ly[0] in ("Convolution", "ConvolutionDepthWise")]
    fc = [ly for ly in layers if ly[0] == "InnerProduct"]
    paddings = []
    for ly in convs:
        prm = ly[2]
        if int(prm.get(3, 1)) == 2:
            left = int(prm.get(4, 0))
            right, top = int(prm.get(15, left)), int(prm.get(14, left))
            bottom = int(prm.get(16, top))
            paddings.append("same" if left in (-233, -234) or (left, top) != (right, bottom) else "symmetric")
    acts: Counter[str] = Counter()
    for kind, _, prm, _, _ in layers:
        fused = int(prm.get(9, 0)) if kind in ("Convolution", "ConvolutionDepthWise", "InnerProduct") else 0
        high = [*prm.get(10, []), 0.0, 0.0][1] if fused == 3 else float(prm.get(1, 0.0)) if kind == "Clip" else 0
        if (fused == 3 or kind == "Clip") and high == 6.0:
            acts["relu6"] += 1
        elif fused == 1 or kind == "ReLU":
            acts["relu"] += 1
    classes = int(fc[-1][2].get(0, 0)) if fc else (int(convs[-1][2].get(0, 0)) if convs else None)
    head = 1 if not fc and classes in (1000, 1001) else 0          # a 1x1 conv classifier is not a unit
    return {"structure": _structure(int(convs[0][2].get(0, 0)) if convs else None,
                                    int(convs[-1 - head][2].get(0, 0)) if len(convs) > head else None,
                                    len(convs) - head, paddings, +acts, classes,
                                    any(ly[0] == "Softmax" for ly in layers)), "classes": classes}


def ncnn_structure(p: Path) -> dict[str, Any]:
    """An ncnn model as its text .param declares it (the input blob, and its shape when the Input layer gives one:
    ``0=w 1=h 2=c``; the output blob: produced, never consumed) and how its .bin stores the weights."""
    try:
        lines = [ln.split() for ln in p.read_text().splitlines() if ln.strip()]
    except (UnicodeDecodeError, OSError) as e:
        raise ArtifactRefused(f"{p.name}: not a text ncnn .param ({e})", hint="give the text .param (not .param.bin)") from None
    if not lines or lines[0] != [NCNN_MAGIC] or len(lines) < 2:
        raise ArtifactRefused(f"{p.name}: not an ncnn .param (first line {' '.join(lines[0])[:20] if lines else 'none'!r}, "
                              f"want the magic {NCNN_MAGIC})",
                              hint=DAMAGED_HINT)
    at = 2
    try:
        n_layers = int(lines[1][0])
        layers, produced, consumed = [], [], set()
        for ln in lines[2:]:
            at += 1
            kind, name, nin, nout = ln[0], ln[1], int(ln[2]), int(ln[3])
            ins, outs = ln[4:4 + nin], ln[4 + nin:4 + nin + nout]
            layers.append((kind, name, _ncnn_params(ln[4 + nin + nout:]), ins, outs))
            consumed.update(ins)
            produced += outs
    except (ValueError, IndexError) as e:
        raise ArtifactRefused(f"{p.name}: truncated or damaged ncnn .param (line {at}: {e})", hint=DAMAGED_HINT) from None
    if len(layers) != n_layers:
        raise ArtifactRefused(f"{p.name}: truncated ncnn .param ({len(layers)} layers of {n_layers})", hint=DAMAGED_HINT)
    inputs = [(ly[4][0], ly[2]) for ly in layers if ly[0] == "Input" and ly[4]]
    outputs = [b for b in produced if b not in consumed]
    if not inputs or not outputs:
        raise ArtifactRefused(f"{p.name}: an ncnn model without an Input layer or an output blob", hint=DAMAGED_HINT)
    in_name, ip = inputs[0]
    w, h, c = (int(ip.get(k, 0)) for k in (0, 1, 2))
    declared = bool(w and h and c)
    binary = p.with_suffix(".bin")
    weights = _ncnn_weights([(ly[0], ly[1], ly[2]) for ly in layers], binary)
    if weights["bytes_read"] > weights["bytes"]:
        raise ArtifactRefused(f"{binary.name}: truncated ncnn weights, or not those of {p.name} ({weights['bytes']} "
                              f"bytes; the .param's layers take {weights['bytes_read']})", hint=DAMAGED_HINT)
    if not weights["stopped_at"] and weights["bytes_read"] != weights["bytes"]:
        raise ArtifactRefused(f"{binary.name}: not the weights of {p.name} ({weights['bytes']} bytes; its layers take "
                              f"{weights['bytes_read']})", hint="keep the .bin written with the .param beside it")
    storage = weights["storage"]
    precision = "int8" if storage.get("int8") or storage.get("8-bit table") or weights["int8_layers"] else \
        "fp16" if storage.get("fp16") else "fp32"
    notes = [] if declared else [f"input shape: the .param declares none (its Input layer {in_name} has no w/h/c): "
                                 "fed at the card's input size, one image per extractor (ncnn has no batch)"]
    if weights["stopped_at"]:
        notes.append(f"weight storage read up to {weights['stopped_at']} ({weights['layers_read']} layers)")
    lay = _ncnn_layout(layers)
    classes = lay["classes"]
    return {"io": {"input_name": in_name, "input_shape": [1, c, h, w] if declared else [None, 3, None, None],
                   "input_dtype": "float32", "output_name": outputs[-1],
                   **({"output_shape": [1, classes]} if classes else {})},
            "structure": lay["structure"], "precision": precision,
            "weights": {"storage": storage, "int8_layers": weights["int8_layers"],
                        "layers_read": weights["layers_read"], "bytes": weights["bytes"]},
            "ops": dict(Counter(ly[0] for ly in layers)), "notes": notes}


# ------------------------------------------------------------------------------------------------------------ MNN
class _Damaged(ValueError):
    pass


class _FbTable:
    """One table of a FlatBuffer, every offset checked against the buffer's end (a cut file raises ``_Damaged``)."""

    def __init__(self, buf: bytes, pos: int) -> None:
        self.buf, self.pos = buf, pos
        self.vt = pos - self._i32(pos)
        self.vt_len = self._u16(self.vt)

    def _need(self, at: int, n: int) -> None:
        if at < 0 or at + n > len(self.buf):
            raise _Damaged(f"offset {at} + {n} beyond the end ({len(self.buf)} bytes)")

    def _u16(self, at: int) -> int:
        self._need(at, 2)
        return int.from_bytes(self.buf[at:at + 2], "little")

    def _i32(self, at: int) -> int:
        self._need(at, 4)
        return int.from_bytes(self.buf[at:at + 4], "little", signed=True)

    def _field(self, i: int) -> int | None:
        o = 4 + 2 * i
        if o + 2 > self.vt_len:
            return None
        off = self._u16(self.vt + o)
        return self.pos + off if off else None

    def scalar(self, i: int, default: int = 0, size: int = 4) -> int:
        at = self._field(i)
        if at is None:
            return default
        self._need(at, size)
        return int.from_bytes(self.buf[at:at + size], "little", signed=True)

    def table(self, i: int) -> _FbTable | None:
        at = self._field(i)
        return None if at is None else _FbTable(self.buf, at + self._i32(at))

    def vector(self, i: int, item: int) -> tuple[int, int]:
        """(start, length) of a vector of ``item``-byte elements, its whole extent checked; (0, 0) when absent."""
        at = self._field(i)
        if at is None:
            return 0, 0
        v = at + self._i32(at)
        n = self._i32(v)
        self._need(v + 4, max(n, 0) * item)
        return v + 4, n

    def ints(self, i: int) -> list[int]:
        start, n = self.vector(i, 4)
        return [int.from_bytes(self.buf[start + 4 * k:start + 4 * k + 4], "little", signed=True) for k in range(n)]

    def tables(self, i: int) -> list[_FbTable]:
        start, n = self.vector(i, 4)
        return [_FbTable(self.buf, start + 4 * k + self._i32(start + 4 * k)) for k in range(n)]

    def strings(self, i: int) -> list[str]:
        start, n = self.vector(i, 4)
        out = []
        for k in range(n):
            v = start + 4 * k + self._i32(start + 4 * k)
            length = self._i32(v)
            self._need(v + 4, length + 1)
            out.append(self.buf[v + 4:v + 4 + length].decode("utf-8", "replace"))
        return out

    def string(self, i: int) -> str:
        start, n = self.vector(i, 1)
        self._need(start + n, 1)                            # its terminating zero
        return self.buf[start:start + n].decode("utf-8", "replace")


# MNN's schema (schema/default/MNN.fbs, CNN.fbs; checked against `mnnconvert -f MNN --JsonFile` of MNN 3.6.1's files):
# Net: 0 bizCode, 2 extraInfo (0 buffer, 1 name, 2 version), 3 oplists, 4 outputName, 7 tensorName, 11 mnn_uuid;
# Op: 0 inputIndexes, 1 main_type, 2 main, 3 name, 4 outputIndexes, 5 type;
# Input: 0 dims, 2 dformat; Convolution2D: 0 common, 1 weight, 2 bias, 3 quanParameter (IDSTQuan: 0 buffer, 2 type
# (3: fp16; 1, 2: quantized), 7 aMaxOrBits); Convolution2DCommon: 4 strideX, 8 padMode (2 = SAME), 9 group,
# 10 outputCount, 12 relu, 13 relu6, 14 pads
# OpType (checked against the names in those dumps: Convolution 12, Input 34, ReLU 69, Softmax 85, ...)
MNN_OP = {7: "BinaryOp", 10: "Concat", 11: "Const", 12: "Convolution", 13: "ConvolutionDepthwise", 28: "Flatten",
          33: "InnerProduct", 34: "Input", 45: "Padding", 47: "Pooling", 66: "Rank", 69: "ReLU", 70: "ReLU6",
          73: "Reshape", 80: "Shape", 84: "SliceTf", 85: "Softmax", 107: "Unsqueeze", 112: "Pooling3D",
          129: "ConvertTensor"}
MNN_INPUT, MNN_CONV = 34, (12, 13)
MNN_FORMATS = {0: "NCHW", 1: "NHWC", 2: "NC4HW4"}
MNN_WEIGHT_TYPES = {3: "fp16", 1: "8-bit quantized", 2: "8-bit quantized"}


def _mnn_conv(conv: _FbTable, st: dict[str, Any]) -> None:
    common = conv.table(0)
    if common is None:
        raise _Damaged("a convolution without its parameters")
    st["outs"].append(common.scalar(10))
    pads = common.ints(14)
    if common.scalar(4, 1) == 2:
        st["paddings"].append("same" if common.scalar(8) == 2 or (len(pads) == 4 and pads[:2] != pads[2:])
                              else "symmetric")
    st["acts"]["relu6" if common.scalar(13, size=1) else "relu" if common.scalar(12, size=1) else "none"] += 1
    conv.vector(2, 4)                                   # the bias: checked whole
    _, nw = conv.vector(1, 4)
    q = conv.table(3)
    if nw:
        st["storage"]["fp32"] += 1
    elif q is not None:
        q.vector(0, 1)
        kind = q.scalar(2)
        st["storage"][MNN_WEIGHT_TYPES.get(kind, f"quantized (type {kind})")] += 1
    else:
        st["storage"]["not in the file"] += 1


def mnn_structure(p: Path) -> dict[str, Any]:
    """An MNN model read as the FlatBuffer it is (framework-free): its ops, the Input op's dims and format, the output
    names, each convolution's width, stride-2 padding, fused ReLU6 and how its weights are stored (fp32 inline, fp16 or
    8-bit in ``quanParameter``). Every offset walked is checked against the file's end: a cut or foreign file is
    refused here."""
    buf = p.read_bytes()
    st: dict[str, Any] = {"outs": [], "paddings": [], "acts": Counter[str](), "storage": Counter[str]()}
    try:
        if len(buf) < 16:
            raise _Damaged(f"{len(buf)} bytes")
        net = _FbTable(buf, int.from_bytes(buf[:4], "little"))
        ops = net.tables(3)
        if not ops:
            raise _Damaged("no ops")
        kinds, inputs = Counter[str](), []
        for op in ops:
            t = op.scalar(5)
            kinds[MNN_OP.get(t, str(t))] += 1
            op.ints(0), op.ints(4), op.string(3)
            main = op.table(2)
            if t == MNN_INPUT and main is not None:
                inputs.append((op.string(3), main.ints(0), MNN_FORMATS.get(main.scalar(2, size=1), "?")))
            elif t in MNN_CONV and main is not None:
                _mnn_conv(main, st)
        outputs = net.strings(4)
        net.strings(7), net.string(0), net.string(11)           # tensor names, bizCode, uuid: checked whole
        extra = net.table(2)
        if extra is not None:
            extra.vector(0, 1), extra.string(1), extra.string(2)   # ExtraInfo: buffer, name, version
    except _Damaged as e:
        raise ArtifactRefused(f"{p.name}: not a readable MNN model ({e}; truncated or damaged)",
                              hint=DAMAGED_HINT) from None
    if not inputs or not st["outs"]:
        raise ArtifactRefused(f"{p.name}: an MNN model without an Input op or a convolution", hint=DAMAGED_HINT)
    name, dims, fmt = inputs[0]
    shape = [d if d > 0 else None for d in dims]           # in the file's order: (N, C, H, W) unless NHWC
    outs, storage = st["outs"], st["storage"]
    classes = outs[-1] if outs[-1] in (1000, 1001) else None
    head = 1 if classes else 0
    precision = "int8" if storage.get("8-bit quantized") else "fp16" if storage.get("fp16") else "fp32"
    st["acts"].pop("none", None)
    st["acts"]["relu6"] += kinds.get("ReLU6", 0)
    st["acts"]["relu"] += kinds.get("ReLU", 0)
    return {"io": {"input_name": name, "input_shape": shape,
                   "input_dtype": "float32", "output_name": outputs[0] if outputs else ""},
            "structure": _structure(outs[0], outs[-1 - head] if len(outs) > head else None, len(outs) - head,
                                    st["paddings"], +st["acts"], classes, bool(kinds.get("Softmax"))),
            "precision": precision, "weights": {"storage": dict(storage)}, "ops": dict(kinds),
            "input_format": fmt}
