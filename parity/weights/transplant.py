"""Moving weights between the five ecosystems and proving the move exact. Framework-free (workers do the rest).

* ``to_canonical``: a TFLite file, a canonical file or a framework's native weight file -> canonical file.
* ``transplant``: canonical -> the target framework's model (``canonical:PATH`` weights mode) -> its native file.
* ``cross_matrix``: the same canonical weights in every framework (each with every padding it can be built with),
  plus the TFLite interpreter when the weights came from TFLite, on one preprocessed batch: pairwise max |logit
  difference| and top-1 agreement.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .. import frameworks
from ..errors import ParityError
from ..kit import softmax
from ..spec import PreprocessSpec
from . import canonical

if TYPE_CHECKING:
    from ..harness import Harness

Array = npt.NDArray[Any]
EXACT_MAX_ABS = 1e-3      # same weights, same padding, different framework kernels: measured <= 1.1e-4 here
INTERPRETER = "tflite-interpreter"


class TransplantError(ParityError):
    """Weights that cannot move (unknown source, unbuildable padding, non-finite values)."""


def tflite_spec(scale: float, zero_point: int, size: int = 224) -> PreprocessSpec:
    """What the Coral tests feed a TFLite MobileNetV2: the whole image squashed to 224, then the interpreter's own
    input quantization ``(p - zero_point) * scale`` for the float models (so float and uint8 inputs correspond)."""
    return PreprocessSpec(resize_mode="squash", resize_size=None, crop_size=size, interpolation="bilinear",
                          antialias=True, backend="pil", channel_order="RGB", scale=scale,
                          mean=(zero_point * scale,) * 3, std=(1.0, 1.0, 1.0), layout="NCHW",
                          source=f"TFLite input quantization scale={scale} zero_point={zero_point}")


def source_framework(src: Path, framework: str | None) -> str:
    """Which framework wrote a native weight file: ``framework`` when given (checked), else its suffix when only one
    framework writes such files."""
    if framework is not None:
        return frameworks.get(framework).name
    owners = frameworks.by_suffix(src.name)
    if len(owners) == 1:
        return owners[0].name
    if not owners:
        raise TransplantError(f"{src.name}: not a weight file this suite reads (TFLite, canonical .safetensors, or "
                              + ", ".join(f"{f.name} {'/'.join(f.weight_suffixes)}" for f in frameworks.FRAMEWORKS.values())
                              + ")")
    raise TransplantError(f"{src.name}: say which framework wrote it",
                          hint=f"--from {'|'.join(f.name for f in owners)}")


def to_canonical(h: Harness, src: str | Path, framework: str | None = None, out: Path | None = None) -> Path:
    src = Path(src)
    if not src.is_file():
        raise TransplantError(f"source weights not found: {src}")
    out = Path(out or h.workdir / "canonical" / (src.name + ".safetensors"))
    if src.suffix == ".tflite":
        from .tflite_import import read
        canon, _ = read(src)
        return canonical.save(canon, out)
    if src.suffix == ".safetensors":
        canonical.load(src)
        return src
    fw = source_framework(src, framework)
    card = h.registry.reference(fw)
    built = h.build(card, f"file:{src}")
    h.client(fw).export_canonical(built.key, out, source=f"{fw}:{src.name}")
    return out


def transplant(h: Harness, src: str | Path, to: str, out: str | Path | None = None, padding: str | None = None,
               source_framework: str | None = None) -> dict[str, Any]:
    target = frameworks.get(to)
    canon_path = to_canonical(h, src, source_framework)
    canon = canonical.load(canon_path)
    pad = padding or (canon.padding if canon.padding in target.paddings else target.native_padding)
    if pad not in target.paddings:
        raise TransplantError(f"{to} cannot be built with {pad!r} padding (the weights were trained with "
                              f"{canon.padding})", hint=f"{to} builds {', '.join(target.paddings)}")
    card = h.registry.reference(to).variant(padding=pad)
    built = h.build(card, f"canonical:{canon_path}")
    dest = Path(out or Path(src).with_suffix("").name + f".{to}{target.weight_suffixes[0]}").resolve()
    res = h.client(to).save_native(built.key, dest)
    res.update({"canonical": str(canon_path), "card": card.id, "padding": pad, "weights_padding": canon.padding,
                "stock_padding": target.native_padding})
    return res


@dataclass
class MatrixResult:
    names: list[str]
    max_abs: Array
    top1_agree: Array
    logits: dict[str, Array] = field(repr=False)
    padding: dict[str, str]

    def pairs(self) -> list[tuple[str, str, float, float]]:
        return [(a, b, float(self.max_abs[i, j]), float(self.top1_agree[i, j]))
                for i, a in enumerate(self.names) for j, b in enumerate(self.names) if i < j]

    def to_dict(self) -> dict[str, Any]:
        return {"names": self.names, "padding": self.padding, "max_abs": self.max_abs.tolist(),
                "top1_agree": self.top1_agree.tolist()}


def in_layout(x_nchw: Array, layout: str) -> Array:
    return x_nchw if layout == "NCHW" else np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1))


def cross_matrix(h: Harness, canon_path: str | Path, x_nchw: Array, tflite: tuple[str, Array] | None = None,
                 only: tuple[str, ...] | None = None) -> MatrixResult:
    """Every framework x buildable padding on the same tensor (and the TFLite interpreter on the same pixels)."""
    logits: dict[str, Array] = {}
    padding: dict[str, str] = {}
    for fw in frameworks.FRAMEWORKS.values():
        if only and fw.name not in only:
            continue
        for pad in fw.paddings:
            card = h.registry.reference(fw.name).variant(padding=pad)
            name = f"{fw.name}[{pad}]"
            logits[name] = h.native(card, f"canonical:{canon_path}", in_layout(x_nchw, card.preprocess.layout))
            padding[name] = pad
    if tflite is not None:
        host = frameworks.tflite_host().name
        out = h.client(host).tflite_run(Path(tflite[0]), h.pool.put_array(tflite[1], "tflite-u8"))
        logits[INTERPRETER] = np.load(out)
        padding[INTERPRETER] = "same"
    names = list(logits)
    n = len(names)
    mx, agree = np.zeros((n, n)), np.ones((n, n))
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            if INTERPRETER in (a, b):  # the interpreter gives probabilities, not logits
                pa = logits[a] if a == INTERPRETER else softmax(logits[a])
                pb = logits[b] if b == INTERPRETER else softmax(logits[b])
                mx[i, j] = float(np.abs(pa - pb).max())
            else:
                mx[i, j] = float(np.abs(logits[a] - logits[b]).max())
            agree[i, j] = float((logits[a].argmax(1) == logits[b].argmax(1)).mean())
    return MatrixResult(names, mx, agree, logits, padding)
