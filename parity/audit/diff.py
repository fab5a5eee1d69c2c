"""Field-by-field difference between a config's pipeline and the card's upstream spec, each with a severity and
a one-line explanation.

Severities: ``error`` (contradicts the spec in a field that changes what the model sees: channel order,
normalization beyond 1 % of the input range, resize rule or size, crop, layout), ``warning`` (changes pixels by
resampling or colour detail: interpolation, resize library, antialias, roundings, decoder, NV12 run-time input,
a normalization within 1 %), ``info`` (the limit of the format, e.g. means/stds rounded to fp16: not a
difference to fix). The normalization is compared as arithmetic per model channel (``a * pixel + b``), so
mean/std written on 0-1 or on 0-255, or as ``1/(255 std)`` scales, compare equal when they compute the same.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from ..spec import PreprocessSpec

GEOMETRY_ERRORS = ("resize_mode", "resize_size", "crop_size", "layout")
GEOMETRY_WARNINGS = ("interpolation", "backend", "antialias", "resize_rounding", "crop_rounding", "decoder")
SAME_REL = 1e-5     # normalization agreeing to this fraction of the input range: the same
FP16_REL = 1e-3     # half of it: within half-precision rounding of the values (11 significant bits: 4.9e-4)
WARN_REL = 1e-2     # beyond 1 % of the input range: an error

WHY = {
    "resize_mode": "another resize rule: the model sees another field of view or aspect ratio",
    "resize_size": "another resize size: objects at another scale, another field of view after the crop",
    "crop_size": "another input size than the model was trained and exported with",
    "layout": "another tensor layout: the model reads pixels as channels",
    "interpolation": "another resampling kernel: pixel-level differences",
    "backend": "another resize library: kernels differ by rounding and antialiasing",
    "antialias": "downscaling with/without antialiasing: aliasing on fine texture",
    "resize_rounding": "the resized side rounded differently: a one-pixel shift",
    "crop_rounding": "the crop offset rounded differently: a one-pixel shift",
    "decoder": "another JPEG decoder: EXIF rotation and CMYK handled differently",
    "pad_value": "another letterbox fill value",
}


@dataclass(frozen=True)
class Finding:
    field: str
    upstream: str
    config: str
    severity: str          # error | warning | info
    why: str
    scope: str = "run time"    # run time | calibration | calibration vs run time

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _model_norm(s: PreprocessSpec) -> tuple[list[float], list[float]]:
    """Per model channel (a, b) with ``x = a * pixel + b`` (pixel on 0-255)."""
    return [s.scale / v for v in s.std], [-m / v for m, v in zip(s.mean, s.std)]


def normalization_error(up: PreprocessSpec, cfg: PreprocessSpec) -> tuple[float, int]:
    """Largest |difference| over pixels 0..255 and channels, as a fraction of upstream's input range, and the
    channel (model order) where it occurs."""
    a0, b0 = _model_norm(up)
    a1, b1 = _model_norm(cfg)
    worst, where = 0.0, 0
    for c in range(3):
        rng = abs(a0[c]) * 255.0
        d = max(abs(b1[c] - b0[c]), abs((a1[c] - a0[c]) * 255.0 + b1[c] - b0[c])) / rng
        if d > worst:
            worst, where = d, c
    return worst, where


def _fmt(v: Any) -> str:
    if isinstance(v, tuple):
        return "(" + ", ".join(f"{x:.6g}" for x in v) + ")"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _normalization(up: PreprocessSpec, cfg: PreprocessSpec, scope: str) -> list[Finding]:
    rel, ch = normalization_error(up, cfg)
    if rel <= SAME_REL:
        return []
    order = up.channel_order
    up_txt = f"mean {_fmt(tuple(m / up.scale for m in up.mean))} std {_fmt(tuple(s / up.scale for s in up.std))}"
    cfg_txt = f"mean {_fmt(tuple(m / cfg.scale for m in cfg.mean))} std {_fmt(tuple(s / cfg.scale for s in cfg.std))}"
    fp16_rel, _ = normalization_error(up.replace(scale=1.0, mean=tuple(m / up.scale for m in up.mean),
                                                 std=tuple(s / up.scale for s in up.std)).fp16(), cfg)
    if fp16_rel <= SAME_REL or rel <= FP16_REL / 2:
        sev, why = "info", (f"values rounded to half precision: {100 * rel:.3f} % of the input range at most "
                            "(the format's limit, not a difference)")
    else:
        sev = "warning" if rel <= WARN_REL else "error"
        why = (f"normalization differs by up to {100 * rel:.2f} % of the input range (channel {order[ch]}); "
               "as 0-255 mean/std in the model's channel order")
    return [Finding("normalization", up_txt + f" ({order})", cfg_txt + f" ({cfg.channel_order})", sev, why, scope)]


def differences(up: PreprocessSpec, cfg: PreprocessSpec, scope: str = "run time") -> list[Finding]:
    """Every field where ``cfg`` differs from ``up`` (both full specs; undeclared fields equal upstream)."""
    out: list[Finding] = []
    if up.channel_order != cfg.channel_order:
        out.append(Finding("channel_order", up.channel_order, cfg.channel_order, "error",
                           "channels reversed: the model gets blue where it was trained on red", scope))
    out += _normalization(up, cfg, scope)
    for name in GEOMETRY_ERRORS + GEOMETRY_WARNINGS:
        a, b = getattr(up, name), getattr(cfg, name)
        if name == "resize_size" and (up.resize_mode != cfg.resize_mode or up.resize_mode in ("squash", "letterbox")):
            continue   # reported with resize_mode
        if a != b:
            sev = "error" if name in GEOMETRY_ERRORS else "warning"
            if name == "antialias" and up.backend != cfg.backend:
                continue   # follows from the library
            out.append(Finding(name, _fmt(a), _fmt(b), sev, WHY[name], scope))
    if (up.resize_mode == "letterbox" or cfg.resize_mode == "letterbox") and not math.isclose(up.pad_value,
                                                                                          cfg.pad_value):
        out.append(Finding("pad_value", _fmt(up.pad_value), _fmt(cfg.pad_value), "warning", WHY["pad_value"], scope))
    if up.input_color != cfg.input_color:
        why = ("YUV 4:2:0 at run time: chroma at half resolution and rounded through the accelerator's colour "
               "converter") if cfg.input_color in ("nv12", "i420") else "YUV at run time: each plane rounded through " \
            "the accelerator's colour converter"
        out.append(Finding("input_color", up.input_color, f"{cfg.input_color} ({cfg.yuv_range})", "warning", why,
                           scope))
    elif up.input_color != "rgb" and up.yuv_range != cfg.yuv_range:
        out.append(Finding("yuv_range", up.yuv_range, cfg.yuv_range, "error",
                           "YUV range mismatch: contrast and colours shifted", scope))
    return out


def calibration_vs_runtime(calib: PreprocessSpec, runtime: PreprocessSpec) -> list[Finding]:
    """The quantization ranges were measured on ``calib``'s pixels; the model runs on ``runtime``'s."""
    out = []
    for f in differences(calib, runtime, "calibration vs run time"):
        sev = f.severity    # the same weight as against upstream: fp16 rounding stays info
        out.append(Finding(f.field, f.upstream, f.config, sev,
                           "calibrated on other pixels than it runs on: " + f.why, f.scope))
    return out
