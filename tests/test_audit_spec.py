"""What the spec learned for deployment configs (NV12/I420 run-time input, stretch and letterbox resizes, fp16
means/stds, per-channel 1/(255*std) scales), each against an independent implementation (OpenCV, Pillow,
``struct``'s half-precision codec). Synthetic images only: < 1 s."""
from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from parity.preprocess import yuv
from parity.preprocess.reference import geometric, preprocess, resized_hw
from parity.spec import PreprocessSpec, SpecError, fp16_bits, fp16_from_bits, fp16_round

TV = PreprocessSpec(resize_mode="shorter_side", resize_size=256, crop_size=224, interpolation="bilinear",
                    antialias=True, backend="pil", channel_order="RGB", scale=1 / 255,
                    mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), layout="NCHW")


def _smooth(h: int = 224, w: int = 224, seed: int = 0) -> np.ndarray:
    """A natural-looking image: random colours at low resolution, upscaled (chroma varies slowly)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, h // 32), max(2, w // 32), 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _planes_cv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    h, w = rgb.shape[:2]
    b = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)
    return b[:h], b[h:h + h // 4].reshape(h // 2, w // 2), b[h + h // 4:].reshape(h // 2, w // 2)


def _planes_ours(buf: np.ndarray, layout: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    h, w = buf.shape[0] * 2 // 3, buf.shape[1]
    if layout == "nv12":
        uv = buf[h:].reshape(h // 2, w // 2, 2)
        return buf[:h], uv[..., 0], uv[..., 1]
    return buf[:h], buf[h:h + h // 4].reshape(h // 2, w // 2), buf[h + h // 4:].reshape(h // 2, w // 2)


def _worst(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


@pytest.mark.parametrize("layout", ["nv12", "i420"])
def test_yuv420_video_range_matches_opencv(layout: str) -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (64, 48, 3), dtype=np.uint8)
    buf = yuv.encode420(rgb, layout, "bt601_video")
    for ours, theirs in zip(_planes_ours(buf, layout), _planes_cv(rgb)):
        assert _worst(ours, theirs) <= 1           # OpenCV computes in fixed point: off by one level at most
        assert (ours != theirs).mean() < 0.1
    code = cv2.COLOR_YUV2RGB_NV12 if layout == "nv12" else cv2.COLOR_YUV2RGB_I420
    back = yuv.decode420(buf, layout, "bt601_video")
    assert _worst(back, cv2.cvtColor(buf, code)) <= 1
    assert (back != cv2.cvtColor(buf, code)).mean() < 0.1


def test_yuv_faults_are_caught_by_the_opencv_comparison() -> None:
    """The comparison above is not vacuous: swapped U/V, averaged chroma, a full-range matrix and an NV12 buffer
    read as I420 each differ from OpenCV by far more than one level."""
    rgb = np.random.default_rng(2).integers(0, 256, (64, 48, 3), dtype=np.uint8)
    y, u, _ = _planes_cv(rgb)
    good = yuv.encode420(rgb, "i420")
    ov = _planes_ours(good, "i420")[2]
    assert _worst(ov, u) > 20                       # U and V swapped
    yuv444 = yuv.rgb_to_yuv444(rgb)
    averaged = np.rint(yuv444[..., 1].reshape(32, 2, 24, 2).mean((1, 3)))
    assert _worst(averaged, u) > 20                 # another chroma siting
    full = yuv.encode420(rgb, "i420", "bt601_full")
    assert _worst(_planes_ours(full, "i420")[0], y) > 10   # another range
    nv12 = yuv.encode420(rgb, "nv12")
    assert _worst(yuv.decode420(nv12, "i420"), cv2.cvtColor(nv12, cv2.COLOR_YUV2RGB_NV12)) > 20


def test_yuv_full_range_matches_opencv_ycrcb() -> None:
    rgb = np.random.default_rng(3).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    ycc = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)          # JPEG full range, 4:4:4, order Y Cr Cb
    ours = np.rint(yuv.rgb_to_yuv444(rgb, "bt601_full"))
    assert _worst(ours[..., 0], ycc[..., 0]) <= 1 and _worst(ours[..., 1], ycc[..., 2]) <= 1
    assert _worst(ours[..., 2], ycc[..., 1]) <= 1
    back = yuv.yuv444_to_rgb(ycc[..., [0, 2, 1]].astype(float), "bt601_full")
    assert _worst(back, cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB)) <= 1


def test_yuv444_round_trip_matches_opencv_ycrcb() -> None:
    """YUV 4:4:4 at run time (hb_mapper ``input_type_rt: yuv444``): only the rounding of each plane."""
    rgb = np.random.default_rng(7).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    ours = yuv.round_trip(rgb, "yuv444", "bt601_full")
    theirs = cv2.cvtColor(cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb), cv2.COLOR_YCrCb2RGB)
    assert _worst(ours, theirs) <= 2 and 0 < _worst(ours, rgb) <= 3
    spec = TV.replace(resize_mode="squash", resize_size=None, input_color="yuv444", yuv_range="bt601_full")
    assert np.array_equal(geometric(rgb, spec.replace(crop_size=32)), ours)
    assert TV.replace(crop_size=223, input_color="yuv444").crop_size == 223     # no 4:2:0 constraint


def test_nv12_round_trip_in_the_spec_changes_only_chroma_detail() -> None:
    rgb = _smooth()
    nv = TV.replace(resize_mode="squash", resize_size=None, input_color="nv12")
    out = geometric(rgb, nv)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    d = np.abs(out.astype(int) - rgb.astype(int))
    assert 0 < d.mean() < 4                          # a real, small loss on a smooth image
    # luma survives to within rounding: compare BT.601 Y of both
    assert _worst(np.rint(yuv.rgb_to_yuv444(out)[..., 0]), np.rint(yuv.rgb_to_yuv444(rgb)[..., 0])) <= 3
    assert np.array_equal(geometric(rgb, nv.replace(input_color="rgb")), rgb)
    with pytest.raises(SpecError, match="even crop_size"):
        TV.replace(crop_size=223, input_color="nv12")


def test_letterbox_matches_pillow_imageops_pad() -> None:
    # 210x294 (w x h) fits as 160x224: padding 32 | 32 (with an odd padding Pillow puts the extra column on the
    # left, round(37.5) = 38; the reference, like ultralytics' letterbox, on the right)
    rgb = _smooth(294, 210, seed=4)
    spec = TV.replace(resize_mode="letterbox", resize_size=None, pad_value=114)
    ours = geometric(rgb, spec)
    theirs = np.asarray(ImageOps.pad(Image.fromarray(rgb), (224, 224), method=Image.Resampling.BILINEAR,
                                     color=(114, 114, 114)))
    assert ours.shape == (224, 224, 3)
    assert np.array_equal(ours, theirs)
    assert (ours[:, :32] == 114).all() and (ours[:, -32:] == 114).all() and not (ours[:, 32] == 114).all()
    wrong_pad = geometric(rgb, spec.replace(pad_value=0))
    assert not np.array_equal(wrong_pad, theirs)     # the fill value is part of the comparison


def test_stretch_resizes_both_sides_then_crops() -> None:
    spec = TV.replace(resize_mode="stretch", resize_size=256)
    assert resized_hw(300, 500, spec) == (256, 256)
    assert resized_hw(300, 500, TV) == (256, 426)
    rgb = _smooth(300, 500, seed=5)
    theirs = np.asarray(Image.fromarray(rgb).resize((256, 256), Image.Resampling.BILINEAR))[16:240, 16:240]
    assert np.array_equal(geometric(rgb, spec), theirs)
    with pytest.raises(SpecError, match="needs resize_size"):
        TV.replace(resize_mode="stretch", resize_size=None)


def test_fp16_against_struct_half_codec() -> None:
    for v in (123.675, 116.28, 103.53, 58.395, 57.12, 57.375, 0.229, 1 / 255):
        bits = fp16_bits(v)
        assert bits == struct.unpack("<H", struct.pack("<e", v))[0]
        assert fp16_from_bits(bits) == struct.unpack("<e", struct.pack("<H", bits))[0] == fp16_round(v)
    assert fp16_bits(123.675) == 22459 and fp16_from_bits(22459) == 123.6875   # VastAI's meanr (seed 000)
    with pytest.raises(SpecError):
        fp16_from_bits(70000)
    half = TV.replace(scale=1.0, mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375)).fp16()
    assert half.mean == (123.6875, 116.25, 103.5) and half.std[0] == 58.40625


def test_per_channel_scale_is_one_over_255_std() -> None:
    """hb_mapper/RKNN write ``(p - mean) * s`` on 0-255 with s = 1 / (255 std): same arithmetic as torchvision."""
    s = [1 / (255 * v) for v in TV.std]
    spec = TV.replace(scale=1.0, mean=tuple(255 * m for m in TV.mean), std=PreprocessSpec.std_from_scale(s))
    a0, b0 = TV.affine()
    a1, b1 = spec.affine()
    assert np.allclose(a0, a1, rtol=1e-9) and np.allclose(b0, b1, rtol=1e-9)
    rgb = _smooth(seed=6)
    assert np.abs(preprocess(rgb, spec) - preprocess(rgb, TV)).max() < 1e-5
    typo = spec.replace(std=PreprocessSpec.std_from_scale([s[0], 1 / (255 * 0.244), s[2]]))
    assert np.abs(preprocess(rgb, typo) - preprocess(rgb, TV)).max() > 0.1


def test_new_fields_keep_old_specs_serialized_the_same() -> None:
    d = TV.to_dict()
    assert not {"pad_value", "input_color", "yuv_range"} & set(d)
    assert PreprocessSpec.from_dict(d) == TV
    nv = TV.replace(input_color="nv12", yuv_range="bt601_full")
    assert PreprocessSpec.from_dict(nv.to_dict()) == nv and nv.to_dict()["input_color"] == "nv12"
    assert any("input_color" in x for x in TV.differences(nv))


def test_tensor_cache_keys_old_specs_as_before_and_tells_colour_paths_apart(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The decoded-image cache is keyed on the geometric fields: the new ones join the key only when set, so the
    caches of every existing card stay valid, and an NV12 spec never reads an RGB spec's cached pixels."""
    import hashlib
    import json

    from parity.evaluation.dataset import Dataset
    from parity.evaluation.evaluate import TensorCache
    ds = Dataset(tmp_path, "list", (), np.array([], dtype=np.int64))
    old = ("resize_mode", "resize_size", "crop_size", "interpolation", "antialias", "backend", "resize_rounding",
           "crop_rounding", "decoder")
    geo = {k: v for k, v in TV.to_dict().items() if k in old}
    key = hashlib.sha256(json.dumps(geo, sort_keys=True).encode() + ds.content_fingerprint().encode()
                         + b"8").hexdigest()[:16]
    assert TensorCache(tmp_path, TV, ds, 8).dir.name == key
    keys = {TensorCache(tmp_path, s, ds, 8).dir.name for s in (TV, TV.replace(input_color="nv12"),
                                                                TV.replace(input_color="nv12", yuv_range="bt601_full"),
                                                                TV.replace(resize_mode="letterbox", pad_value=114))}
    assert len(keys) == 4
