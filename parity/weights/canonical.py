"""Canonical MobileNetV2 weights: one framework-neutral file every adapter exports and imports. Framework-free.

Format: a safetensors file.

* Keys follow torchvision's ``MobileNetV2`` state_dict: 52 conv units (``features.0.0`` stem, block 1's depthwise
  and project, blocks 2-17's expand/depthwise/project, ``features.18.0`` the 1x1 to 1280) each followed by a
  BatchNorm (``.weight .bias .running_mean .running_var``), and ``classifier.1.weight/bias`` (1000 classes).
* Layouts: conv OIHW (depthwise ``[C, 1, kh, kw]``), FC ``[out, in]``, float32.
* Metadata (strings): ``format=mbv2-canonical``, ``version=1``, ``bn_eps`` (the epsilon the BatchNorm statistics
  go with: an importer sets its model's BN epsilon to it, so the statistics are used exactly as written and
  round trips are bit-exact), ``padding`` (``symmetric`` or ``same``: the padding the weights were trained with,
  part of the model's identity), ``width`` and ``source``.

A BatchNorm folded into its conv (TFLite) is represented exactly as ``weight=1, bias=b, running_mean=0,
running_var=1`` with ``bn_eps=0``: ``(x - 0) / sqrt(1 + 0) * 1 + b`` is ``x + b`` in IEEE arithmetic.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ParityError

FORMAT = "mbv2-canonical"
VERSION = "1"
BN_FIELDS = ("weight", "bias", "running_mean", "running_var")
PADDINGS = ("symmetric", "same")


class CanonicalError(ParityError):
    """Not a canonical MobileNetV2 (missing/misshaped/non-finite tensors, wrong metadata)."""


@dataclass(frozen=True)
class Unit:
    """One conv + BatchNorm unit of MobileNetV2, named after torchvision's modules."""
    index: int
    conv: str          # torchvision conv module name
    bn: str            # torchvision BatchNorm module name
    kind: str          # stem | expand | depthwise | project | head
    block: int         # 0 stem, 1..17 inverted-residual blocks, 18 head conv
    stride: int

    @property
    def label(self) -> str:
        return f"unit {self.index} {self.conv} ({self.kind}, block {self.block}, stride {self.stride})"


def units() -> list[Unit]:
    """The 52 conv units in execution order (strides of torchvision's inverted-residual setting)."""
    # (t, c, n, s) of MobileNetV2
    setting = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
    out = [Unit(0, "features.0.0", "features.0.1", "stem", 0, 2)]
    block = 1
    for t, _, n, s in setting:
        for i in range(n):
            stride = s if i == 0 else 1
            p = f"features.{block}.conv"
            if t == 1:
                out += [Unit(len(out), f"{p}.0.0", f"{p}.0.1", "depthwise", block, stride),
                        Unit(len(out) + 1, f"{p}.1", f"{p}.2", "project", block, 1)]
            else:
                out += [Unit(len(out), f"{p}.0.0", f"{p}.0.1", "expand", block, 1),
                        Unit(len(out) + 1, f"{p}.1.0", f"{p}.1.1", "depthwise", block, stride),
                        Unit(len(out) + 2, f"{p}.2", f"{p}.3", "project", block, 1)]
            block += 1
    out.append(Unit(len(out), "features.18.0", "features.18.1", "head", 18, 1))
    return out


UNITS = units()
CLASSIFIER = "classifier.1"


@dataclass
class Canonical:
    tensors: dict[str, np.ndarray]
    bn_eps: float
    padding: str
    source: str = ""
    width: str = ""

    def conv(self, u: Unit) -> np.ndarray:
        return self.tensors[f"{u.conv}.weight"]

    def bn(self, u: Unit) -> dict[str, np.ndarray]:
        return {f: self.tensors[f"{u.bn}.{f}"] for f in BN_FIELDS}

    @property
    def fc(self) -> tuple[np.ndarray, np.ndarray]:
        return self.tensors[f"{CLASSIFIER}.weight"], self.tensors[f"{CLASSIFIER}.bias"]

    def channel_plan(self) -> list[int]:
        return [int(self.conv(u).shape[0]) for u in UNITS]

    def validate(self) -> Canonical:
        expected = {f"{u.conv}.weight" for u in UNITS} | {f"{u.bn}.{f}" for u in UNITS for f in BN_FIELDS} | \
                   {f"{CLASSIFIER}.weight", f"{CLASSIFIER}.bias"}
        missing, extra = expected - set(self.tensors), set(self.tensors) - expected
        if missing or extra:
            raise CanonicalError(f"not a canonical MobileNetV2: missing {sorted(missing)[:4]}, unexpected {sorted(extra)[:4]}")
        if self.padding not in PADDINGS:
            raise CanonicalError(f"padding {self.padding!r} not one of {PADDINGS}")
        prev = 3
        for u in UNITS:
            w = self.conv(u)
            if w.ndim != 4:
                raise CanonicalError(f"{u.label}: conv weight must be OIHW, got shape {w.shape}")
            cin = w.shape[1] * (w.shape[0] if u.kind == "depthwise" else 1)
            if u.kind == "depthwise" and w.shape[1] != 1:
                raise CanonicalError(f"{u.label}: depthwise weight must be [C, 1, kh, kw], got {w.shape}")
            if cin != prev:
                raise CanonicalError(f"{u.label}: takes {cin} channels but the previous unit gives {prev}")
            for f in BN_FIELDS:
                if self.tensors[f"{u.bn}.{f}"].shape != (w.shape[0],):
                    raise CanonicalError(f"{u.label}: BN {f} shape {self.tensors[f'{u.bn}.{f}'].shape} != ({w.shape[0]},)")
            prev = w.shape[0]
        fw, fb = self.fc
        if fw.shape[1] != prev or fb.shape != (fw.shape[0],):
            raise CanonicalError(f"classifier {fw.shape}/{fb.shape} does not fit {prev} features")
        for k, v in self.tensors.items():
            if v.dtype != np.float32:
                raise CanonicalError(f"{k}: dtype {v.dtype}, canonical tensors are float32")
            bad = int(np.size(v) - np.count_nonzero(np.isfinite(v)))
            if bad:
                raise CanonicalError(f"{k}: {bad} non-finite values (NaN/inf) of {v.size}: weights must be finite",
                                     hint="the source weights are corrupt or were saved from a diverged model")
        if not np.isfinite(self.bn_eps):
            raise CanonicalError(f"bn_eps {self.bn_eps} is not finite")
        return self

    def replace(self, **kw: Any) -> Canonical:
        return dataclasses.replace(self, **kw)


def save(c: Canonical, path: str | Path) -> Path:
    from safetensors.numpy import save_file
    c.validate()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in c.tensors.items()}, str(path),
              metadata={"format": FORMAT, "version": VERSION, "bn_eps": repr(float(c.bn_eps)), "padding": c.padding,
                        "source": c.source, "width": c.width})
    return path


def digest(path: str | Path) -> str:
    """The weights' content as a sha256: the metadata (sorted) and every tensor by name, dtype, shape and bytes. The
    file's own bytes are no key: safetensors writes the metadata in an order that changes from one save to the next
    (the same TFLite file converted twice gives two files with different sha256s and identical content)."""
    import hashlib
    import json

    from safetensors import safe_open
    h = hashlib.sha256()
    with safe_open(str(path), framework="numpy") as f:
        h.update(json.dumps(f.metadata() or {}, sort_keys=True).encode())
        for name in sorted(f.keys()):
            t = np.ascontiguousarray(f.get_tensor(name))
            h.update(f"\0{name}\0{t.dtype.str}\0{t.shape}\0".encode())
            h.update(t.tobytes())
    return h.hexdigest()


def load(path: str | Path) -> Canonical:
    from safetensors import safe_open
    path = Path(path)
    if not path.is_file():
        raise CanonicalError(f"canonical weights file not found: {path}")
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open is not iterable
    except Exception as e:  # noqa: BLE001 - safetensors raises several types for one verdict
        raise CanonicalError(f"{path.name}: not a safetensors file ({type(e).__name__}: {str(e)[:120]})") from None
    if meta.get("format") != FORMAT:
        raise CanonicalError(f"{path.name}: metadata format {meta.get('format')!r}, expected {FORMAT!r}")
    return Canonical(tensors, float(meta["bn_eps"]), meta.get("padding", "symmetric"), meta.get("source", ""),
                     meta.get("width", "")).validate()


def identical(a: Canonical, b: Canonical) -> list[str]:
    """Bit-level differences between two canonical weight sets ([] when identical)."""
    out = []
    if a.bn_eps != b.bn_eps:
        out.append(f"bn_eps {a.bn_eps} != {b.bn_eps}")
    if a.padding != b.padding:
        out.append(f"padding {a.padding} != {b.padding}")
    for k in sorted(set(a.tensors) | set(b.tensors)):
        x, y = a.tensors.get(k), b.tensors.get(k)
        if x is None or y is None or x.shape != y.shape or not np.array_equal(x.view(np.uint32), y.view(np.uint32)):
            out.append(k)
    return out
