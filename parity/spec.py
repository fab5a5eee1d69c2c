"""The normalized preprocessing spec: one frozen dataclass that every framework's pipeline maps onto.

A spec describes image file -> input tensor:

1. decode to RGB uint8 with the framework's decoder (``decoder``: PIL or OpenCV; ``parity.preprocess``
   documents the policy of each),
2. resize (``resize_mode``):
   - ``shorter_side``: shorter side to ``resize_size`` keeping aspect ratio; the long side is
     ``int(resize_size * long / short)`` (``resize_rounding='floor'``: torchvision, timm, mmpretrain) or
     ``int(round(long * resize_size / short))`` (``'round'``: PaddleClas's ResizeImage)
     (timm's ``crop_pct`` is normalized into this: ``resize_size = floor(crop_size / crop_pct)``
     and ``crop_pct`` is kept for provenance),
   - ``squash``: both sides to ``crop_size`` (aspect ratio not kept),
   - ``none``: no resize (image must already be at least ``crop_size``),
3. center crop to ``crop_size`` x ``crop_size``; offset ``int(round((side - crop) / 2))``
   (``crop_rounding='round'``: torchvision, timm, mmcv) or ``(side - crop) // 2`` (``'floor'``: PaddleClas),
4. ``x = (pixel * scale - mean) / std`` per channel, channels in ``channel_order``,
5. layout ``NCHW`` or ``NHWC``, ``dtype``.

``backend`` names the library that really resizes in the framework's own pipeline (PIL, cv2 or tf):
resize kernels differ between them by rounding even for the same named interpolation.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

RESIZE_MODES = ("shorter_side", "squash", "none")
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "area", "lanczos")
BACKENDS = ("pil", "cv2", "tf")
CHANNEL_ORDERS = ("RGB", "BGR")
LAYOUTS = ("NCHW", "NHWC")
ROUNDINGS = ("floor", "round")
DECODERS = ("pil", "cv2")


class SpecError(ValueError):
    """A spec field is missing or out of range."""


@dataclass(frozen=True)
class PreprocessSpec:
    resize_mode: str
    resize_size: int | None
    crop_size: int
    interpolation: str
    antialias: bool
    backend: str
    channel_order: str
    scale: float
    mean: tuple[float, ...]
    std: tuple[float, ...]
    layout: str
    dtype: str = "float32"
    crop_pct: float | None = None
    resize_rounding: str = "floor"
    crop_rounding: str = "round"
    decoder: str = "pil"  # pil: Image.open + convert('RGB'), EXIF ignored | cv2: cv2.imdecode(IMREAD_COLOR), EXIF applied
    source: str = field(default="", compare=False)  # where the adapter read it from (provenance only)

    def __post_init__(self) -> None:
        def check(name: str, value: Any, allowed: tuple[Any, ...]) -> None:
            if value not in allowed:
                raise SpecError(f"spec field {name}={value!r} not one of {allowed}")

        check("resize_mode", self.resize_mode, RESIZE_MODES)
        check("interpolation", self.interpolation, INTERPOLATIONS)
        check("backend", self.backend, BACKENDS)
        check("channel_order", self.channel_order, CHANNEL_ORDERS)
        check("layout", self.layout, LAYOUTS)
        check("resize_rounding", self.resize_rounding, ROUNDINGS)
        check("crop_rounding", self.crop_rounding, ROUNDINGS)
        check("decoder", self.decoder, DECODERS)
        if self.resize_mode == "shorter_side" and not self.resize_size:
            raise SpecError("resize_mode 'shorter_side' needs resize_size")
        if len(self.mean) != 3 or len(self.std) != 3 or any(s <= 0 for s in self.std):
            raise SpecError("mean and std need three values, std > 0")
        if self.crop_size <= 0 or self.scale <= 0:
            raise SpecError("crop_size and scale must be positive")
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PreprocessSpec:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise SpecError(f"unknown spec fields {sorted(unknown)}; known: {sorted(names)}")
        d = {"resize_size": None, **d}  # TOML has no null: a squash/none spec simply omits resize_size
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})  # type: ignore[arg-type]

    @staticmethod
    def resize_from_crop_pct(crop_size: int, crop_pct: float) -> int:
        """timm's rule (``transforms_factory``): ``scale_size = floor(img_size / crop_pct)``."""
        return math.floor(crop_size / crop_pct)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        return d

    def replace(self, **changes: Any) -> PreprocessSpec:
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ comparison
    def affine(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel (a, b) with ``x = a * pixel + b`` in RGB order: the normalization as arithmetic.

        Two specs that write mean/std on different scales (0-1 vs 0-255) but compute the same numbers
        have equal ``affine()``.
        """
        a = tuple(self.scale / s for s in self.std)
        b = tuple(-m / s for m, s in zip(self.mean, self.std))
        if self.channel_order == "BGR":  # mean/std are given in the model's channel order
            a, b = a[::-1], b[::-1]
        return a, b

    def differences(self, other: PreprocessSpec, rel_tol: float = 1e-6) -> list[str]:
        """Human-readable field differences (floats compared with ``rel_tol``); [] when equivalent."""
        out = []
        for f in dataclasses.fields(self):
            if not f.compare:
                continue
            a, b = getattr(self, f.name), getattr(other, f.name)
            if isinstance(a, (tuple, float)) or isinstance(b, float):
                av = a if isinstance(a, tuple) else (a,)
                bv = b if isinstance(b, tuple) else (b,)
                if None in av or None in bv:
                    same = av == bv
                else:
                    same = len(av) == len(bv) and all(
                        math.isclose(x, y, rel_tol=rel_tol, abs_tol=1e-12) for x, y in zip(av, bv))
            else:
                same = a == b
            if not same:
                out.append(f"{f.name}: {a!r} != {b!r}")
        return out
