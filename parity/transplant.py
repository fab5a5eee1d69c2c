"""Moving weights between the five ecosystems and proving the move exact. Framework-free (workers do the rest).

* ``to_canonical``: a TFLite file, a canonical file or a framework's native weight file -> canonical file.
* ``transplant``: canonical -> the target framework's model (``canonical:PATH`` weights mode) -> its native file.
* ``cross_matrix``: the same canonical weights in every framework (each with symmetric and TF-'SAME' padding where
  it can be built so), plus the TFLite interpreter when the weights came from TFLite, on one preprocessed batch:
  pairwise max |logit difference| and top-1 agreement.
* ``bisect``: the first conv unit whose output diverges between two models (two frameworks, or native vs ONNX),
  with its error and its neighbours.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import canonical, onnxrt
from .canonical import UNITS, CanonicalError
from .errors import ParityError
from .registry import Card, Registry
from .spec import PreprocessSpec

# one width-1.0 card per framework: the architectures the canonical weights move between
CROSS_CARDS = ("torchvision/mobilenet_v2.IMAGENET1K_V1", "timm/mobilenetv2_100.ra_in1k",
               "mmcls/mobilenet-v2_8xb32_in1k.20200708-3b2dc3af", "ppcls/MobileNetV2.pretrained",
               "keras/mobilenet_v2.alpha_1.0_224")
NATIVE_PADDING = {"torchvision": "symmetric", "timm": "symmetric", "mmcls": "symmetric", "ppcls": "symmetric",
                  "keras": "same"}
PADDINGS_BUILDABLE = {"torchvision": ("symmetric", "same"), "timm": ("symmetric", "same"),
                      "mmcls": ("symmetric", "same"), "ppcls": ("symmetric", "same"), "keras": ("same",)}
NATIVE_SUFFIX = {"torchvision": ".pth", "timm": ".pth", "mmcls": ".pth", "ppcls": ".pdparams", "keras": ".weights.h5"}
EXACT_MAX_ABS = 1e-3      # same weights, same padding, different framework kernels: measured <= 1.1e-4 here


class TransplantError(ParityError):
    """Weights that cannot move (unknown source, unbuildable padding, non-finite values)."""


def variant(card: Card, padding: str | None = None, fault: str | None = None) -> Card:
    """The card built with another padding (and/or a transplant fault), under its own id."""
    build = dict(card.build)
    suffix = []
    if padding and padding != NATIVE_PADDING[card.framework]:
        build["padding"] = padding
        suffix.append(padding)
    if fault:
        build["fault"] = fault
        suffix.append(fault.replace(":", ""))
    if not suffix:
        return card
    return dataclasses.replace(card, id=card.id + "+" + "+".join(suffix), build=build)


def tflite_spec(scale: float, zero_point: int, size: int = 224) -> PreprocessSpec:
    """What the Coral tests feed a TFLite MobileNetV2: the whole image squashed to 224, then the interpreter's own
    input quantization ``(p - zero_point) * scale`` for the float models (so float and uint8 inputs correspond)."""
    return PreprocessSpec(resize_mode="squash", resize_size=None, crop_size=size, interpolation="bilinear",
                          antialias=True, backend="pil", channel_order="RGB", scale=scale,
                          mean=(zero_point * scale,) * 3, std=(1.0, 1.0, 1.0), layout="NCHW",
                          source=f"TFLite input quantization scale={scale} zero_point={zero_point}")


def to_canonical(harness, src: str | Path, framework: str | None = None, out: Path | None = None) -> Path:
    src = Path(src)
    if not src.is_file():
        raise TransplantError(f"source weights not found: {src}")
    out = Path(out or harness.workdir / "canonical" / (src.name + ".safetensors"))
    if src.suffix == ".tflite":
        from .tflite_import import read
        canon, _ = read(src)
        return canonical.save(canon, out)
    if src.suffix == ".safetensors":
        canonical.load(src)
        return src
    if framework is None:
        framework = {".h5": "keras", ".pdparams": "ppcls"}.get(src.suffix)
        if framework is None:
            raise TransplantError(f"{src.name}: say which framework wrote it (--from torchvision|timm|mmcls)")
    card = harness.registry.get(next(c for c in CROSS_CARDS if c.startswith(framework + "/")))
    built = harness.build(card, f"file:{src}")
    harness.pool.call(card.framework, "export_canonical", key=built["key"], path=str(out), source=f"{framework}:{src.name}")
    return out


def transplant(harness, src: str | Path, to: str, out: str | Path | None = None, padding: str | None = None,
               source_framework: str | None = None) -> dict:
    canon_path = to_canonical(harness, src, source_framework)
    canon = canonical.load(canon_path)
    if to not in NATIVE_SUFFIX:
        raise TransplantError(f"unknown target framework {to!r}; one of {sorted(NATIVE_SUFFIX)}")
    pad = padding or (canon.padding if canon.padding in PADDINGS_BUILDABLE[to] else NATIVE_PADDING[to])
    if pad not in PADDINGS_BUILDABLE[to]:
        raise TransplantError(f"{to} cannot be built with {pad!r} padding (the weights were trained with {canon.padding})")
    card = variant(harness.registry.get(next(c for c in CROSS_CARDS if c.startswith(to + "/"))), pad)
    built = harness.build(card, f"canonical:{canon_path}")
    out = Path(out or Path(src).with_suffix("").name + f".{to}{NATIVE_SUFFIX[to]}").resolve()
    res = harness.pool.call(card.framework, "save_native", key=built["key"], path=str(out))
    res.update({"canonical": str(canon_path), "card": card.id, "padding": pad, "weights_padding": canon.padding})
    return res


@dataclass
class MatrixResult:
    names: list[str]
    max_abs: np.ndarray
    top1_agree: np.ndarray
    logits: dict[str, np.ndarray] = field(repr=False)
    padding: dict[str, str]

    def pairs(self) -> list[tuple[str, str, float, float]]:
        out = []
        for i, a in enumerate(self.names):
            for j, b in enumerate(self.names):
                if i < j:
                    out.append((a, b, float(self.max_abs[i, j]), float(self.top1_agree[i, j])))
        return out

    def to_dict(self) -> dict:
        return {"names": self.names, "padding": self.padding, "max_abs": self.max_abs.tolist(),
                "top1_agree": self.top1_agree.tolist()}


def _batch_in_layout(harness, x_nchw: np.ndarray, layout: str) -> str:
    x = x_nchw if layout == "NCHW" else np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1))
    return harness.pool.put_array(x, f"cross-{layout}")


def cross_matrix(harness, canon_path: str | Path, x_nchw: np.ndarray, tflite: tuple[str, np.ndarray] | None = None,
                 frameworks: tuple[str, ...] | None = None) -> MatrixResult:
    """Every framework x buildable padding on the same tensor (and the TFLite interpreter on the same pixels)."""
    reg: Registry = harness.registry
    paths = {lay: _batch_in_layout(harness, x_nchw, lay) for lay in ("NCHW", "NHWC")}
    logits: dict[str, np.ndarray] = {}
    padding: dict[str, str] = {}
    for cid in CROSS_CARDS:
        base = reg.get(cid)
        if frameworks and base.framework not in frameworks:
            continue
        for pad in PADDINGS_BUILDABLE[base.framework]:
            card = variant(base, pad)
            name = f"{base.framework}[{pad}]"
            logits[name] = harness.native(card, f"canonical:{canon_path}", paths[card.preprocess.layout])
            padding[name] = pad
    if tflite is not None:
        res = harness.pool.call("keras", "tflite_run", path=str(tflite[0]),
                                input=harness.pool.put_array(tflite[1], "tflite-u8"))
        logits["tflite-interpreter"] = np.load(res["output"])
        padding["tflite-interpreter"] = "same"
    names = list(logits)
    n = len(names)
    mx, agree = np.zeros((n, n)), np.ones((n, n))
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            if a == "tflite-interpreter" or b == "tflite-interpreter":  # probabilities, not logits
                pa = _softmax(logits[a]) if a != "tflite-interpreter" else logits[a]
                pb = _softmax(logits[b]) if b != "tflite-interpreter" else logits[b]
                mx[i, j] = float(np.abs(pa - pb).max())
            else:
                mx[i, j] = float(np.abs(logits[a] - logits[b]).max())
            agree[i, j] = float((logits[a].argmax(1) == logits[b].argmax(1)).mean())
    return MatrixResult(names, mx, agree, logits, padding)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


@dataclass
class Bisection:
    first: int | None                  # unit index of the first divergence, None if none
    errors: list[float]                # per-unit max |a - b| / max |a|
    tol: float
    a: str
    b: str

    def message(self) -> str:
        if self.first is None:
            return f"{self.a} vs {self.b}: all {len(self.errors)} units agree (max rel error {max(self.errors):.1e})"
        i = self.first
        near = []
        for k in (i - 1, i + 1):
            if 0 <= k < len(self.errors):
                near.append(f"{UNITS[k].label}: rel {self.errors[k]:.1e}")
        return (f"{self.a} vs {self.b}: first diverging layer {UNITS[i].label}, rel error {self.errors[i]:.1e} "
                f"(tolerance {self.tol:.0e}); neighbours: " + "; ".join(near))


def _rel_errors(acts_a: list[np.ndarray], acts_b: list[np.ndarray]) -> list[float]:
    if len(acts_a) != len(acts_b):
        raise TransplantError(f"unit counts differ: {len(acts_a)} vs {len(acts_b)}")
    out = []
    for i, (x, y) in enumerate(zip(acts_a, acts_b)):
        for side, arr in (("first", x), ("second", y)):
            if not np.all(np.isfinite(arr)):
                raise TransplantError(f"non-finite activations (NaN/inf) at {UNITS[i].label if i < len(UNITS) else i} "
                                      f"of the {side} model: the comparison would be meaningless")
        if x.shape != y.shape:
            out.append(float("inf"))
            continue
        out.append(float(np.abs(x - y).max() / max(np.abs(x).max(), 1e-12)))
    return out


def bisect(harness, card_a: Card, card_b: Card, mode: str, x_nchw: np.ndarray, tol: float = 1e-4) -> Bisection:
    """First conv unit (BN output, before the activation) where two models' activations diverge."""
    acts = []
    for card in (card_a, card_b):
        built = harness.build(card, mode)
        path = _batch_in_layout(harness, x_nchw, card.preprocess.layout)
        res = harness.pool.call(card.framework, "activations", key=built["key"], input=path)
        with np.load(res["output"]) as z:
            acts.append([z[f"arr_{i}"] for i in range(len(z.files))])
    errs = _rel_errors(*acts)
    first = next((i for i, e in enumerate(errs) if e > tol), None)
    return Bisection(first, errs, tol, card_a.id, card_b.id)


def onnx_unit_outputs(path: str | Path, x: np.ndarray, drop: tuple[int, ...] = ()) -> list[np.ndarray]:
    """Every BatchNormalization output of an ONNX graph (in node order) made a graph output and run in ONNX
    Runtime: the ONNX side of a native-vs-ONNX bisection. Needs an unfused graph (torch ``keep-bn`` export,
    paddle2onnx); tf2onnx folds BN into the convs, so keras graphs are refused with that reason."""
    import onnx
    import onnxruntime as ort
    model = onnx.load(str(path))
    bn_out = [n.output[0] for n in model.graph.node if n.op_type == "BatchNormalization"]
    if not bn_out:
        raise TransplantError(f"{Path(path).name}: no BatchNormalization nodes (the exporter folded them): a layer-wise "
                              "bisection needs an unfused export")
    known = {o.name for o in model.graph.output}
    for name in bn_out:
        if name not in known:
            model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    outs = sess.run(bn_out, {sess.get_inputs()[0].name: np.ascontiguousarray(x, np.float32)})
    return [o for i, o in enumerate(outs) if i not in drop]


def bisect_onnx(harness, card: Card, mode: str, x_nchw: np.ndarray, onnx_path: str | Path | None = None,
                tol: float = 1e-4) -> Bisection:
    """Native (hooks on each BatchNorm) vs ONNX Runtime (each BatchNormalization output marked as a graph output)
    on the same tensor: the first conv unit whose output diverges."""
    path = onnx_path or harness.export(card, mode, exporter="keep-bn" if card.framework != "ppcls" else "default")["path"]
    xin = x_nchw if card.preprocess.layout == "NCHW" else np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1))
    built = harness.build(card, mode)
    res = harness.pool.call(card.framework, "activations", key=built["key"], input=harness.pool.put_array(xin, "bis"))
    with np.load(res["output"]) as z:
        native = [z[f"arr_{i}"] for i in range(len(z.files))]
    onnx_acts = onnx_unit_outputs(path, xin, drop=(1,) if card.framework == "ppcls" else ())
    errs = _rel_errors(native, onnx_acts)
    first = next((i for i, e in enumerate(errs) if e > tol), None)
    return Bisection(first, errs, tol, f"{card.id} native", f"{Path(path).name} (ONNX Runtime)")
