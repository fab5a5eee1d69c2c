"""VastAI ``vdsp_params``: the newer ``OpConfig`` layout, and the meaning of the older layout's numeric op codes
(used by ``vastai.VdspParams``, format ``vastai-vdsp``).

Sources (layouts learned from, re-stated, no file copied; the test files are written for the tests):

* ``OpConfig`` layout, ``{"OpType": "FUSION_OP_RGB_RESIZE_CVTCOLOR_CROP_NORM_TENSOR", "OpConfig": {...}}``:
  Vastai/VastModelZOO ``cv/classification/resnet/build_in/vdsp_params/keras-resnet50-vdsp_params.json`` (commit
  074891f9bdaa2d9c32b831900dcc28129a21a53d: ``IimageFormat`` RGB_PLANAR, ``ResizeWidth``/``ResizeHeight``,
  ``CropX``/``CropY``, ``OimageWidth``/``OimageHeight``, ``Mean``/``Std`` as plain numbers, ``NormaType``
  MINUSMEAN_DIVSTD, ``ColorCvtCode`` RGB2BGR with Mean [103.9375, 116.75, 123.6875] = Caffe's BGR means in B, G, R
  order: the means are in the order of the channels *after* the colour conversion, the model's order), and
  Vastai/VastStreamX-Samples ``data/configs/resnet_rgbplanar.json``, ``resnet_bgr888.json`` (commit
  30b9d38c8953b168e68775401b547dae304e6211: ``ResizeType`` BILINEAR_PILLOW / BILINEAR, ``NormaType``
  DIV255_MINUSMEAN_DIVSTD with 0-1 means; ``IimageFormat`` BGR888 with ``ColorCvtCode`` BGR2RGB and ImageNet's
  R, G, B means, again the model's order; no ``OimageWidth``: crop offset 16 on 256, i.e. a centered 224) and
  ``yolov11_cls_rgbplanar.json`` (commit 7710ec3deae0bd3b6dd9df463e76d3adfd9c4f43: 288 with offset 16 -> 256).
  ``vsx.ImageResizeType.BILINEAR_PILLOW``/``BILINEAR_CV`` appear in VastStreamX-Samples' Python samples.
* ``NormaType`` names and arithmetic: VastStreamX-Samples' normalize op header (``normal_type_t``:
  MINUSMEAN_DIVSTD ``(x - mean) / std``; DIV255_MINUSMEAN_DIVSTD ``(x / 255 - mean) / std``; DIV127_5_MINUSONE
  ``x / 127.5 - 1``; DIV255 ``x / 255``) and the vace Python enum ``NORM_TYPE`` (names MINUSMEAN_DIVSTD,
  DIV255_MINUSMEAN_DIVSTD, DIV1275_MINUSONE, DIV255, MINUSMEAN, EQUAL).
* Numeric op codes of the older sdk1.0 layout: VastAI publishes no table. Two pairs of files in VastModelZOO
  declare the same model in both the numeric layout and the named ``config`` list layout (``classification/cspnet/
  vacc_code/vdsp_params/sdk1.0/mmcls_vdsp_params_cspnet_rgb.json`` vs ``vamp/mmcls-cspresnet50-vdsp_params.json``,
  commit bfcb43d83be8cfb4a070b45f812ad6c523f199fd; seed 000's timm file vs ``classification/mobilenet_v2/vacc_code/
  vdsp_params/mmcls-mobilenet_v2-vdsp_params.json``, commit 92838c2d98ec62ca8092357b14aaf2f40c6bb35f, same six
  values). Read from those pairs only (``NUMERIC``): ``vdsp_op_type`` 300 = RGB_RESIZE_CVTCOLOR_CROP_NORMALIZATION_
  TENSORIZATION_U8, ``iimage_format`` 5000 = RGB_PLANAR, ``resize_type`` 1 = BILINEAR_CV, ``color_cvt_code`` 2 =
  COLOR_NO_CHANGE, ``color_space`` 0 = COLOR_SPACE_BT709 (no effect on RGB input). **Assumed**: each code means the
  same in every file. ``norma_type`` is *not* read: the pairs give both 3 and 4 for MINUSMEAN_DIVSTD with the same
  0-255 values (contradictory), so it stays "not understood" and the values are read as 0-255 ``(x - mean) / std``.

Semantics (assumptions, stated on every audit): the fused op stretches the input to ResizeWidth x ResizeHeight
(both sides), then crops OimageWidth x OimageHeight at (CropX, CropY) (without Oimage*, the centered crop
ResizeWidth - 2 CropX); a crop equal to the resize at (0, 0) is a squash; the application feeds the image in
``IimageFormat``'s order (RGB_PLANAR: RGB, BGR888: BGR); what the application does before the op is not
declared; the output tensor's layout is the compiled model's (not declared). Only the bilinear ResizeType names
appear in the public files, so ``--fix`` writes the bilinear of upstream's library and another kernel stays a
finding, named as the format's limit.
"""
from __future__ import annotations

import math
from typing import Any

from ...spec import PreprocessSpec, fp16_round
from . import ConfigError, Declared, numbers, upstream_model_norm

RESIZE_CROP = "FUSION_OP_RGB_RESIZE_CVTCOLOR_CROP_NORM_TENSOR"
RESIZE = {"BILINEAR_CV": ("bilinear", "cv2"), "BILINEAR_PILLOW": ("bilinear", "pil"), "BILINEAR": ("bilinear", None)}
FORMATS = {"RGB_PLANAR": "RGB", "BGR888": "BGR"}
CVT = {"NO_CHANGE": False, "COLOR_NO_CHANGE": False, "RGB2BGR": True, "BGR2RGB": True}
SCALED = {"MINUSMEAN_DIVSTD": 1.0, "DIV255_MINUSMEAN_DIVSTD": 1 / 255}       # mean/std read from the file
FIXED = {"DIV1275_MINUSONE": (1.0, 127.5, 127.5), "DIV255": (1 / 255, 0.0, 1.0)}  # (scale, mean, std), file's ignored
BUFFER = ("IimageWidth", "IimageHeight", "IimageWidthPitch", "IimageHeightPitch")
# numeric codes of the sdk1.0 layout, read from the public file pairs named above: key -> {code: meaning}
NUMERIC: dict[str, dict[int, str]] = {"vdsp_op_type": {300: "RGB_RESIZE_CVTCOLOR_CROP_NORMALIZATION_TENSORIZATION_U8"},
                                      "iimage_format": {5000: "RGB_PLANAR"}, "resize_type": {1: "BILINEAR_CV"},
                                      "color_cvt_code": {2: "COLOR_NO_CHANGE"}, "color_space": {0: "COLOR_SPACE_BT709"}}


def numeric_codes(doc: dict[str, Any], d: Declared) -> None:
    """The sdk1.0 layout's op codes that the public file pairs pin down; any other code is left "not understood"."""
    f, known = d.fields, {k: NUMERIC[k].get(doc[k]) if isinstance(doc[k], int) else None for k in NUMERIC if k in doc}
    for k, name in known.items():
        if name is None:
            d.unknown.append(f"{k}: {doc[k]}")
    if known.get("resize_type"):
        f.update(interpolation="bilinear", backend="cv2")
    if known.get("iimage_format") and known.get("color_cvt_code"):
        f["channel_order"] = "RGB"
        d.colour_named = False
    if any(known.values()):
        d.notes.append("numeric op codes read from VastModelZOO's file pairs (not a published table): "
                       + ", ".join(f"{k} {doc[k]} = {v}" for k, v in known.items() if v))
    if "norma_type" in doc:
        d.notes.append("norma_type is contradictory in the public files (3 and 4 both MINUSMEAN_DIVSTD): "
                       "means/stds read as 0-255 (x - mean) / std")


def load(doc: dict[str, Any], d: Declared) -> None:
    cfg = doc.get("OpConfig")
    if not isinstance(cfg, dict):
        raise ConfigError(f"{d.source}: OpConfig must be an object of named properties, got {type(cfg).__name__}")
    rest, f = dict(cfg), d.fields
    d.unknown += [f"{k}: {doc[k]}" for k in doc if k not in ("OpType", "OpConfig")]
    _norm(rest, d)
    fmt, cvt = _name(rest.pop("IimageFormat", None), "IimageFormat"), _name(rest.pop("ColorCvtCode", None), "ColorCvtCode")
    if fmt in FORMATS and cvt in CVT:
        order = FORMATS[str(fmt)]
        f["channel_order"] = ({"RGB": "BGR", "BGR": "RGB"}[order] if CVT[str(cvt)] else order)
        d.notes.append(f"the application feeds {order} ({fmt}); Mean/Std in the order after ColorCvtCode {cvt}")
    else:
        d.unknown += [f"{k}: {v}" for k, v in (("IimageFormat", fmt), ("ColorCvtCode", cvt))
                      if v is not None and v not in (FORMATS if k == "IimageFormat" else CVT)]
        d.notes.append("channel order not understood: upstream's assumed")
    rt = _name(rest.pop("ResizeType", None), "ResizeType")
    if rt in RESIZE:
        interp, backend = RESIZE[str(rt)]
        f["interpolation"] = interp
        if backend:
            f["backend"] = backend
    elif rt is not None:
        d.unknown.append(f"ResizeType: {rt}")
    for k in BUFFER:
        rest.pop(k, None)
    if doc.get("OpType") == RESIZE_CROP:
        _geometry(rest, d)
    else:
        d.unknown.append(f"OpType: {doc.get('OpType')}")
        d.notes.append("OpType not understood: resize and crop are upstream's assumed")
    d.unknown += [f"OpConfig.{k}: {v}" for k, v in rest.items()]
    d.notes.append("the output layout is the compiled model's (not declared by OpConfig)")


def _norm(rest: dict[str, Any], d: Declared) -> None:
    norm, mean, std = _name(rest.pop("NormaType", None), "NormaType"), rest.pop("Mean", None), rest.pop("Std", None)
    if norm in SCALED:
        d.fields.update(scale=SCALED[str(norm)], mean=numbers(mean, "OpConfig.Mean"), std=numbers(std, "OpConfig.Std"))
    elif norm in FIXED:
        scale, m, s = FIXED[str(norm)]
        d.fields.update(scale=scale, mean=(m,) * 3, std=(s,) * 3)
        d.notes.append(f"NormaType {norm}: Mean/Std of the file not used")
    else:
        d.unknown.append(f"NormaType: {norm}")
        d.notes.append("normalization not understood: upstream's assumed")


def _name(v: Any, key: str) -> Any:
    """An enum property: a name (or absent); a number is kept to be listed as not understood."""
    if v is None or (isinstance(v, (str, int)) and not isinstance(v, bool)):
        return v
    raise ConfigError(f"OpConfig.{key} = {v!r}: expected a name such as those of the public files")


def _int(rest: dict[str, Any], key: str, default: int | None = None) -> int:
    v = rest.pop(key, default)
    if v is None:
        raise ConfigError(f"OpConfig of {RESIZE_CROP} without {key}")
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or int(v) != v:
        raise ConfigError(f"OpConfig.{key}: expected a whole number of pixels, got {v!r}")
    return int(v)


def _geometry(rest: dict[str, Any], d: Declared) -> None:
    rw, rh = _int(rest, "ResizeWidth"), _int(rest, "ResizeHeight")
    cx, cy = _int(rest, "CropX", 0), _int(rest, "CropY", 0)
    if "OimageWidth" in rest or "OimageHeight" in rest:
        ow, oh = _int(rest, "OimageWidth"), _int(rest, "OimageHeight")
    else:
        ow, oh = rw - 2 * cx, rh - 2 * cy
        d.notes.append(f"no OimageWidth/OimageHeight: the crop taken as centered, {ow}x{oh}")
    if rw != rh or ow != oh:
        d.unknown.append(f"resize {rw}x{rh} / crop {ow}x{oh} (not square)")
        return
    if (cx, cy) != (round((rw - ow) / 2),) * 2:
        d.unknown.append(f"CropX/CropY {cx},{cy}: not the centered crop of {ow} in {rw}")
        return
    if rw == ow:
        d.fields.update(resize_mode="squash", crop_size=ow)
    else:
        d.fields.update(resize_mode="stretch", resize_size=rw, crop_size=ow)
    d.notes.append("the fused op resizes both sides (aspect ratio not kept), then crops")


def fix(doc: dict[str, Any], target: PreprocessSpec) -> dict[str, Any]:
    """``doc`` with OpConfig set to ``target`` (the input format, buffer sizes and other properties kept)."""
    cfg = doc.get("OpConfig")
    if doc.get("OpType") != RESIZE_CROP or not isinstance(cfg, dict):
        raise ConfigError(f"only OpType {RESIZE_CROP} can be rewritten, not {doc.get('OpType')!r}")
    if target.resize_mode == "squash":
        size = crop = target.crop_size
    elif target.resize_mode == "stretch" and target.resize_size:
        size, crop = target.resize_size, target.crop_size
    else:
        raise ConfigError(f"OpConfig ({RESIZE_CROP}) cannot express resize_mode {target.resize_mode!r}",
                          hint="the fused op resizes both sides: resize before it, or keep the finding")
    # only bilinear ResizeType names are known: another kernel stays a finding (the importer's ``limits``)
    off = round((size - crop) / 2)
    cfg.update(ResizeWidth=size, ResizeHeight=size, CropX=off, CropY=off, OimageWidth=crop, OimageHeight=crop,
               ResizeType={"pil": "BILINEAR_PILLOW", "cv2": "BILINEAR_CV"}.get(target.backend, "BILINEAR"))
    mean, std = upstream_model_norm(target)
    div = cfg.get("NormaType") == "DIV255_MINUSMEAN_DIVSTD"
    k = 255.0 if div else 1.0
    cfg.update(NormaType="DIV255_MINUSMEAN_DIVSTD" if div else "MINUSMEAN_DIVSTD",
               Mean=[fp16_round(m / k) for m in mean], Std=[fp16_round(s / k) for s in std])
    order = FORMATS.get(str(cfg.get("IimageFormat")))
    if order is None:
        raise ConfigError(f"OpConfig IimageFormat {cfg.get('IimageFormat')!r} not understood: cannot set ColorCvtCode")
    cfg["ColorCvtCode"] = "NO_CHANGE" if order == target.channel_order else f"{order}2{target.channel_order}"
    return doc
