"""RGB -> YUV 4:2:0 (NV12 / I420) -> RGB: what a model sees when the run time feeds an accelerator's colour
converter YUV instead of the RGB it was trained on (hb_mapper ``input_type_rt: nv12``, VastAI NV12 ops).
Framework-free, numpy only; tested against OpenCV's ``cvtColor`` (an independent implementation).

Coefficients: ITU-R BT.601 (Kr = 0.299, Kb = 0.114).

* ``bt601_video`` (studio swing, Y 16-235, U/V 16-240): Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255,
  U = 128 + (-37.797 R - 74.203 G + 112 B) / 255, V = 128 + (112 R - 93.786 G - 18.214 B) / 255
  (the matrix OpenCV's ``COLOR_RGB2YUV_I420``/``COLOR_YUV2RGB_NV12`` use);
* ``bt601_full`` (JPEG/JFIF swing, all 0-255): Y = 0.299 R + 0.587 G + 0.114 B, U = 128 + 0.564 (B - Y),
  V = 128 + 0.713 (R - Y) (OpenCV's ``COLOR_RGB2YCrCb``; Horizon's ``input_space_and_range: regular``).

4:2:0 chroma: one U and one V per 2x2 block, taken at the block's top-left pixel (the siting OpenCV's
``RGB2YUV_I420`` uses, measured: 0 levels from it), and replicated over the block on the way back (nearest,
as ``YUV2RGB_NV12`` does). Each plane is rounded to uint8, the RGB that comes back is rounded and clipped.
Layouts: NV12 = Y plane then interleaved UV rows; I420 = Y plane, U plane, V plane.
"""
from __future__ import annotations

import numpy as np

_KR, _KB = 0.299, 0.114
_KG = 1.0 - _KR - _KB


def _swing(yuv_range: str) -> tuple[float, float, float]:
    """(Y offset, Y span, chroma span) in levels."""
    if yuv_range == "bt601_video":
        return 16.0, 219.0, 224.0
    if yuv_range == "bt601_full":
        return 0.0, 255.0, 255.0
    raise ValueError(f"unknown yuv_range {yuv_range!r}")


def rgb_to_yuv444(rgb: np.ndarray, yuv_range: str = "bt601_video") -> np.ndarray:
    """HxWx3 uint8 RGB -> HxWx3 float64 (Y, U, V), unrounded."""
    off, ys, cs = _swing(yuv_range)
    r, g, b = (rgb[..., i].astype(np.float64) / 255.0 for i in range(3))
    e_y = _KR * r + _KG * g + _KB * b
    e_u = (b - e_y) / (2 * (1 - _KB))
    e_v = (r - e_y) / (2 * (1 - _KR))
    return np.stack([off + ys * e_y, 128.0 + cs * e_u, 128.0 + cs * e_v], axis=-1)


def yuv444_to_rgb(yuv: np.ndarray, yuv_range: str = "bt601_video") -> np.ndarray:
    """HxWx3 (Y, U, V) levels -> HxWx3 uint8 RGB (rounded, clipped)."""
    off, ys, cs = _swing(yuv_range)
    e_y = (yuv[..., 0].astype(np.float64) - off) / ys
    e_u = (yuv[..., 1].astype(np.float64) - 128.0) / cs
    e_v = (yuv[..., 2].astype(np.float64) - 128.0) / cs
    r = e_y + 2 * (1 - _KR) * e_v
    b = e_y + 2 * (1 - _KB) * e_u
    g = (e_y - _KR * r - _KB * b) / _KG
    return np.clip(np.rint(np.stack([r, g, b], axis=-1) * 255.0), 0, 255).astype(np.uint8)


def _u8(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    return out


def encode420(rgb: np.ndarray, layout: str = "nv12", yuv_range: str = "bt601_video") -> np.ndarray:
    """HxWx3 uint8 RGB (H, W even) -> the (3H/2)xW uint8 buffer a camera/decoder hands the accelerator."""
    h, w = rgb.shape[:2]
    if h % 2 or w % 2:
        raise ValueError(f"YUV 4:2:0 needs even sides, got {h}x{w}")
    yuv = rgb_to_yuv444(rgb, yuv_range)
    y = _u8(yuv[..., 0])
    u = _u8(yuv[::2, ::2, 1])
    v = _u8(yuv[::2, ::2, 2])
    if layout == "nv12":
        return np.concatenate([y, np.stack([u, v], axis=-1).reshape(h // 2, w)])
    if layout == "i420":
        return np.concatenate([y, u.reshape(h // 4, w), v.reshape(h // 4, w)])
    raise ValueError(f"unknown YUV 4:2:0 layout {layout!r}")


def decode420(buf: np.ndarray, layout: str = "nv12", yuv_range: str = "bt601_video") -> np.ndarray:
    """The (3H/2)xW buffer -> HxWx3 uint8 RGB: the accelerator's colour converter."""
    h, w = buf.shape[0] * 2 // 3, buf.shape[1]
    y = buf[:h].astype(np.float64)
    if layout == "nv12":
        uv = buf[h:].reshape(h // 2, w // 2, 2)
        u, v = uv[..., 0], uv[..., 1]
    elif layout == "i420":
        u = buf[h:h + h // 4].reshape(h // 2, w // 2)
        v = buf[h + h // 4:].reshape(h // 2, w // 2)
    else:
        raise ValueError(f"unknown YUV 4:2:0 layout {layout!r}")
    up = np.stack([y, np.repeat(np.repeat(u, 2, 0), 2, 1), np.repeat(np.repeat(v, 2, 0), 2, 1)], axis=-1)
    return yuv444_to_rgb(up, yuv_range)


def round_trip(rgb: np.ndarray, layout: str, yuv_range: str = "bt601_video") -> np.ndarray:
    """What the model receives when ``rgb`` travels as ``layout`` (``rgb``: unchanged; ``yuv444``: uint8 YUV at full
    resolution, so only the rounding of each plane)."""
    if layout == "rgb":
        return rgb
    if layout == "yuv444":
        return yuv444_to_rgb(_u8(rgb_to_yuv444(rgb, yuv_range)).astype(np.float64), yuv_range)
    return decode420(encode420(rgb, layout, yuv_range), layout, yuv_range)
