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
   - ``stretch``: both sides to ``resize_size`` (aspect ratio not kept), then the center crop: the square
     ``Resize([256, 256])`` deployment configs write where upstream resizes the shorter side,
   - ``letterbox``: the longer side to ``crop_size`` keeping the aspect ratio (other side
     ``int(round(side * crop / long))``), centered on a ``crop_size`` square filled with ``pad_value`` (0-255),
   - ``none``: no resize (image must already be at least ``crop_size``),
3. center crop to ``crop_size`` x ``crop_size``; offset ``int(round((side - crop) / 2))``
   (``crop_rounding='round'``: torchvision, timm, mmcv) or ``(side - crop) // 2`` (``'floor'``: PaddleClas),
3b. ``input_color``: ``rgb`` (the crop goes to the model as is) or ``nv12``/``i420``: the run time feeds the
   accelerator YUV 4:2:0 (BT.601, ``yuv_range`` ``bt601_video`` 16-235 or ``bt601_full`` 0-255) and its colour
   converter gives RGB back to the model (``parity.preprocess.yuv``): chroma at half resolution, rounding
   (``yuv444``: full-resolution chroma, the rounding only),
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

RESIZE_MODES = ("shorter_side", "squash", "stretch", "letterbox", "none")
INPUT_COLORS = ("rgb", "nv12", "i420", "yuv444")
YUV_RANGES = ("bt601_video", "bt601_full")
# fields added for deployment configs: written by to_dict() only when they differ from these defaults, so every
# spec written before them (ONNX metadata, tensor-cache keys) keeps its exact form
DEPLOY_DEFAULTS = {"pad_value": 0.0, "input_color": "rgb", "yuv_range": "bt601_video"}
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
    pad_value: float = 0.0        # letterbox fill, 0-255 levels
    input_color: str = "rgb"      # rgb | nv12 | i420 | yuv444: what the run time feeds the accelerator's converter
    yuv_range: str = "bt601_video"  # BT.601 range of that YUV: bt601_video (16-235) | bt601_full (0-255)
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
        check("input_color", self.input_color, INPUT_COLORS)
        check("yuv_range", self.yuv_range, YUV_RANGES)
        if self.resize_mode in ("shorter_side", "stretch") and not self.resize_size:
            raise SpecError(f"resize_mode {self.resize_mode!r} needs resize_size")
        if self.input_color in ("nv12", "i420") and self.crop_size % 2:
            raise SpecError(f"input_color {self.input_color!r} (YUV 4:2:0) needs an even crop_size, got {self.crop_size}")
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
        for k, v in DEPLOY_DEFAULTS.items():
            if d[k] == v:
                del d[k]
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        return d

    def replace(self, **changes: Any) -> PreprocessSpec:
        return dataclasses.replace(self, **changes)

    def digest(self) -> str:
        """Identity of the spec (16 hex digits of the sha256 of its sorted JSON): what calibration files and eval
        shards record to prove which preprocessing produced them."""
        import hashlib
        import json
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    # ------------------------------------------------------------------ deployment arithmetic
    @staticmethod
    def std_from_scale(scale_values: tuple[float, ...] | list[float]) -> tuple[float, ...]:
        """Toolchains that write ``x = (pixel - mean) * s`` (hb_mapper ``scale_value``, RKNN after ``/std``):
        ``s = 1 / std`` on the same pixel scale, e.g. 1 / (255 * 0.229) = 0.017125 for torchvision's R."""
        return tuple(1.0 / float(v) for v in scale_values)

    def fp16(self) -> PreprocessSpec:
        """Mean and std as a toolchain stores them in IEEE half precision (VastAI ``vdsp_params``)."""
        return self.replace(mean=tuple(fp16_round(v) for v in self.mean), std=tuple(fp16_round(v) for v in self.std))

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


def fp16_round(value: float) -> float:
    """``value`` rounded to the nearest IEEE 754 half (round half to even), as a float."""
    import numpy as np
    return float(np.float16(value))


def fp16_from_bits(bits: int) -> float:
    """A half-precision bit pattern (e.g. VastAI ``meanr: 22459``) -> its value (123.6875)."""
    import numpy as np
    if not 0 <= int(bits) <= 0xFFFF:
        raise SpecError(f"{bits} is not a 16-bit pattern")
    return float(np.array([int(bits)], np.uint16).view(np.float16)[0])


def fp16_bits(value: float) -> int:
    """The half-precision bit pattern of ``value`` (rounded to nearest): ``fp16_bits(123.675) == 22459``."""
    import numpy as np
    return int(np.array([value], np.float16).view(np.uint16)[0])
