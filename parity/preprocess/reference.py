"""Reference implementation of a ``PreprocessSpec``: image -> model input tensor, framework-free.

Decoding policy: the one the framework's own loader has (``spec.decoder``), because they differ.

* ``pil`` (torchvision/timm ``ImageFolder``'s ``pil_loader``, keras ``load_img``): the file is sniffed by
  content (a PNG named .JPEG decodes as PNG), ``PIL.Image.convert('RGB')`` (CMYK and grayscale become RGB,
  palette and alpha are dropped), EXIF orientation is **not** applied.
* ``cv2`` (mmpretrain's ``LoadImageFromFile`` -> ``mmcv.imfrombytes(flag='color')``, PaddleClas's
  ``cv2.imread``): ``cv2.imdecode(IMREAD_COLOR)`` then BGR -> RGB: content-sniffed too, grayscale and CMYK
  become 3 channels, and EXIF orientation **is** applied by OpenCV. On a rotated-EXIF JPEG the two families
  see different pixels; the suite reproduces each, it does not pick one.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..spec import PreprocessSpec

_PIL_FILTERS = {
    "nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC, "area": Image.Resampling.BOX, "lanczos": Image.Resampling.LANCZOS,
}


class ImageDecodeError(ValueError):
    pass


def decode(image: str | Path | np.ndarray | Image.Image, decoder: str = "pil") -> np.ndarray:
    """File path, PIL image or HWC/HW uint8 array -> HWC uint8 RGB array (``decoder`` applies to files)."""
    if isinstance(image, np.ndarray):
        arr = image
        if arr.ndim == 2:
            arr = np.repeat(arr[:, :, None], 3, axis=2)
        if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.dtype != np.uint8:
            raise ImageDecodeError(f"expected HxWx3 uint8 array, got {arr.shape} {arr.dtype}")
        return np.ascontiguousarray(arr[:, :, :3])
    if decoder == "cv2" and not isinstance(image, Image.Image):
        import cv2
        try:
            data = np.fromfile(str(image), dtype=np.uint8)
        except OSError as e:
            raise ImageDecodeError(f"cannot read image {image}: {e}") from None
        img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if img is None:
            raise ImageDecodeError(f"cannot decode image {image}: OpenCV could not decode it")
        return np.ascontiguousarray(img[:, :, ::-1])
    try:
        pil = image if isinstance(image, Image.Image) else Image.open(image)
        pil.load()
        return np.asarray(pil.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageDecodeError(f"cannot decode image {image}: {e}") from None


def resized_hw(h: int, w: int, spec: PreprocessSpec) -> tuple[int, int]:
    if spec.resize_mode == "none":
        return h, w
    if spec.resize_mode == "squash":
        return spec.crop_size, spec.crop_size
    if spec.resize_mode == "stretch":
        assert spec.resize_size is not None
        return spec.resize_size, spec.resize_size
    if spec.resize_mode == "letterbox":
        # the longer side to crop_size, the other int(round(side * crop / long)) (at least 1)
        c, long = spec.crop_size, max(h, w)
        return max(1, round(h * c / long)), max(1, round(w * c / long))
    s = spec.resize_size
    assert s is not None
    if spec.resize_rounding == "round":
        # PaddleClas ResizeImage: percent = s / min(w, h); side = int(round(side * percent))
        percent = float(s) / min(w, h)
        return round(h * percent), round(w * percent)
    # torchvision's rule (_compute_resized_output_size): short side -> s, long side -> int(s * long / short)
    if h <= w:
        return s, int(s * w / h)
    return int(s * h / w), s


def resize(arr: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    h, w = arr.shape[:2]
    nh, nw = resized_hw(h, w, spec)
    if (nh, nw) == (h, w):
        return arr
    if spec.backend == "pil":
        if not spec.antialias and spec.interpolation != "nearest":
            raise NotImplementedError("PIL always antialiases when downscaling; antialias=False needs backend cv2")
        return np.asarray(Image.fromarray(arr).resize((nw, nh), resample=_PIL_FILTERS[spec.interpolation]))
    if spec.backend == "cv2":
        import cv2  # OpenCV is an image library, not a deep-learning framework: fine in the parent
        flags = {"nearest": cv2.INTER_NEAREST, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC,
                 "area": cv2.INTER_AREA, "lanczos": cv2.INTER_LANCZOS4}
        return cv2.resize(arr, (nw, nh), interpolation=flags[spec.interpolation])
    raise NotImplementedError(f"resize backend {spec.backend!r} is not available in the framework-free core")


def center_crop(arr: np.ndarray, size: int, rounding: str = "round") -> np.ndarray:
    """torchvision's center_crop: zero-pad if smaller, then top = round((h - size) / 2) (``rounding='round'``)
    or (h - size) // 2 (``'floor'``, PaddleClas's CropImage)."""
    h, w = arr.shape[:2]
    if h < size or w < size:
        ph, pw = max(0, size - h), max(0, size - w)
        arr = np.pad(arr, ((ph // 2, (ph + 1) // 2), (pw // 2, (pw + 1) // 2), (0, 0)))
        h, w = arr.shape[:2]
    if rounding == "floor":
        top, left = (h - size) // 2, (w - size) // 2
    else:
        top = round((h - size) / 2.0)
        left = round((w - size) / 2.0)
    return arr[top:top + size, left:left + size]


def normalize(arr: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    x: np.ndarray = arr.astype(np.float32)
    if spec.channel_order == "BGR":
        x = x[:, :, ::-1]
    x = x * np.float32(spec.scale)
    x = (x - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    if spec.layout == "NCHW":
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x, dtype=np.dtype(spec.dtype))


def letterbox_pad(arr: np.ndarray, size: int, value: float) -> np.ndarray:
    """Center ``arr`` (already fitted inside ``size``) on a ``size`` square of ``value``; top/left get the floor
    half of the padding."""
    h, w = arr.shape[:2]
    out = np.full((size, size, arr.shape[2]), np.uint8(np.clip(round(value), 0, 255)), np.uint8)
    top, left = (size - h) // 2, (size - w) // 2
    out[top:top + h, left:left + w] = arr
    return out


def geometric(image: str | Path | np.ndarray | Image.Image, spec: PreprocessSpec) -> np.ndarray:
    """Decode, resize, crop (or letterbox), and the run time's colour path (``input_color``): the uint8 HWC RGB
    image the normalization then applies to."""
    arr = decode(image, spec.decoder)
    arr = resize(arr, spec)
    if spec.resize_mode == "letterbox":
        arr = letterbox_pad(arr, spec.crop_size, spec.pad_value)
    arr = center_crop(arr, spec.crop_size, spec.crop_rounding)
    if spec.input_color != "rgb":
        from .yuv import round_trip
        arr = round_trip(np.ascontiguousarray(arr), spec.input_color, spec.yuv_range)
    return arr


def preprocess(image: str | Path | np.ndarray | Image.Image, spec: PreprocessSpec) -> np.ndarray:
    """One image -> CHW (or HWC) tensor, no batch axis."""
    return normalize(geometric(image, spec), spec)


def normalize_batch(u8: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """``normalize`` over an NHWC uint8 batch: the same float32 operations elementwise, so bit-identical."""
    x: np.ndarray = u8.astype(np.float32)
    if spec.channel_order == "BGR":
        x = x[..., ::-1]
    x = x * np.float32(spec.scale)
    x = (x - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    if spec.layout == "NCHW":
        x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x, dtype=np.dtype(spec.dtype))


def preprocess_batch(images: Iterable[Any], spec: PreprocessSpec) -> np.ndarray:
    return np.stack([preprocess(im, spec) for im in images])
