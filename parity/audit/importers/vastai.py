"""VastAI (Vastaitech) toolchain: the ``vamc build`` yaml and the run-time ``vdsp_params`` json.

Sources (formats learned from, re-stated, no file copied): Vastai/VastModelZOO ``cv/classification/mobilenet_v2``
README (seed 000 of this project: ``vamc build ./vacc_code/build/timm_mobilenetv2.yaml``,
``vacc_code/vdsp_params/sdk1.0/*-vdsp_params.json``, run with ``vamp ... --vdsp_params``) and the zoo's build
yamls and vdsp_params files of the same tree.

* build yaml: ``dataset`` holds the **calibration** preprocessing as a list of ops, ``process_ops`` (newer) or
  ``transform_ops`` (older): ``DecodeImage``, ``Resize`` (``size``: an int = the shorter side, torchvision's
  rule; ``[h, w]`` = both sides), ``CenterCrop`` (``crop_size``: int or ``[h, w]``), ``Normalize``
  (``mean``, ``std``, ``div255``: divide by 255 before ``(x - mean) / std``), ``ToTensor`` (HWC -> CHW);
  ``model.inputs`` gives the input shape;
* vdsp_params json (sdk1.0, the run time): named properties ``meanr``/``meang``/``meanb``/``stdr``/``stdg``/
  ``stdb`` holding the **IEEE half bit patterns** of 0-255 values (``meanr: 22459`` = 123.6875 = 123.675 in
  fp16), ``short_edge_threshold`` (shorter side), ``crop_size``, and numeric op codes (``vdsp_op_type``,
  ``iimage_format``, ``resize_type``, ``color_cvt_code``, ``color_space``, ``norma_type``).

Assumptions (stated on every audit): a ``Resize`` without ``interpolation`` is bilinear; the decoder and resize
library are not declared (upstream's assumed); ``Normalize`` without ``div255`` works on 0-255 pixels. The
vdsp_params op codes are numbers whose meaning VastAI does not publish with the file: the ones that public file
pairs pin down are read (``vastai_opconfig.NUMERIC``, sources there), the others (``norma_type``) are reported as
not understood (never dropped) and the means/stds are taken to be 0-255 values in R, G, B order as named. The newer
``OpConfig`` layout is read by ``vastai_opconfig`` (sources and assumptions in its docstring).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ...spec import PreprocessSpec, fp16_bits, fp16_from_bits
from . import (
    ConfigError,
    Declared,
    Importer,
    as_int,
    as_map,
    bad,
    dump_yaml,
    load_json,
    load_yaml,
    numbers,
    register,
    upstream_model_norm,
    vastai_opconfig,
)

INTERP = {"bilinear": "bilinear", "linear": "bilinear", "nearest": "nearest", "bicubic": "bicubic",
          "cubic": "bicubic", "area": "area", "lanczos": "lanczos"}
YAML_SECTIONS = ("model", "engine", "dataset", "workspace", "quantize", "calibration")
VDSP_NORM = ("meanr", "meang", "meanb", "stdr", "stdg", "stdb")
VDSP_GEOM = ("short_edge_threshold", "crop_size")
VDSP_SIZE = ("iimage_width", "iimage_height", "iimage_width_pitch", "iimage_height_pitch")


def _size(v: Any, what: str) -> tuple[int, int]:
    vals = numbers(v, what, n=None)
    if len(vals) == 1:
        return int(vals[0]), int(vals[0])
    if len(vals) == 2:
        return int(vals[0]), int(vals[1])
    raise ConfigError(f"{what}: expected a size or [h, w], got {v!r}")


def _half(v: Any, what: str) -> float:
    """An IEEE half bit pattern (0-65535) -> its value."""
    bits = as_int(v, what)
    if not 0 <= bits <= 0xFFFF:
        raise bad(what, v, "a 16-bit pattern (0-65535) of an IEEE half")
    return fp16_from_bits(bits)


class VamcYaml(Importer):
    name = "vastai-vamc"
    doc = "VastAI vamc build yaml: dataset.process_ops / transform_ops (the calibration preprocessing)"

    def sniff(self, path: Path, text: str) -> bool:
        return ("process_ops" in text or "transform_ops" in text) and "dataset" in text

    def load(self, path: Path, text: str) -> Declared:
        doc = load_yaml(text, path)
        ds = doc.get("dataset") if isinstance(doc, dict) else None
        key = "process_ops" if isinstance(ds, dict) and "process_ops" in ds else "transform_ops"
        if not isinstance(ds, dict) or not isinstance(ds.get(key), list):
            raise ConfigError(f"{path.name}: expected dataset.process_ops (or transform_ops) as a list of ops")
        d = Declared(self.name, str(path), {})
        d.unknown += [k for k in doc if k not in YAML_SECTIONS]
        f = d.fields
        f.update(channel_order="RGB", layout="NHWC")
        for op in ds[key]:
            self._op(dict(as_map(op, f"dataset.{key}[]")), f, d)
        shape = (as_map(doc.get("model") or {}, "model").get("inputs") or {})
        for v in shape.values() if isinstance(shape, dict) else []:
            if isinstance(v, list) and len(v) == 4 and "crop_size" not in f:
                f["crop_size"] = as_int(v[2], "model.inputs")
        d.notes.append("decoder and resize library not declared: upstream's assumed; channel order RGB assumed "
                       "(no colour op in the list)")
        d.calibration = dict(f)
        d.notes.append(f"dataset.{key} is the calibration preprocessing: audit the run-time vdsp_params with "
                       "--runtime to compare the two")
        return d

    @staticmethod
    def _op(op: dict[str, Any], f: dict[str, Any], d: Declared) -> None:
        t = str(op.pop("type", ""))
        if t == "DecodeImage":
            op.pop("to_rgb", None)
        elif t == "Resize":
            raw = op.pop("size", None)
            if raw is None:
                raise ConfigError("a Resize op without size")
            h, w = _size(raw, "Resize.size")
            interp = op.pop("interpolation", None)
            if interp is None:
                d.notes.append("Resize without interpolation: assumed bilinear")
            f["interpolation"] = INTERP.get(str(interp or "bilinear").lower(), "bilinear")
            f.update(resize_mode="stretch" if isinstance(raw, list) else "shorter_side",
                     resize_size=h)
            if h != w:
                d.unknown.append(f"Resize.size {h}x{w} (not square)")
        elif t == "CenterCrop":
            h, _ = _size(op.pop("crop_size", op.pop("size", None)), "CenterCrop.crop_size")
            f["crop_size"] = h
        elif t == "Normalize":
            if "div255" not in op:
                d.notes.append("Normalize without div255: mean/std applied to 0-255 pixels")
            div = bool(op.pop("div255", False))
            f.update(scale=1 / 255 if div else 1.0, mean=numbers(op.pop("mean"), "Normalize.mean"),
                     std=numbers(op.pop("std"), "Normalize.std"))
        elif t == "ToTensor":
            f["layout"] = "NCHW"
        else:
            d.unknown.append(f"op {t!r}")
            return
        d.unknown += [f"{t}.{k}" for k in op]

    def fix(self, path: Path, text: str, target: PreprocessSpec) -> str:
        doc = load_yaml(text, path)
        ds = doc["dataset"]
        key = "process_ops" if "process_ops" in ds else "transform_ops"
        if target.resize_mode not in ("shorter_side", "stretch", "squash"):
            raise ConfigError(f"a vamc Resize op cannot express resize_mode {target.resize_mode!r}")
        size: Any = target.resize_size if target.resize_mode == "shorter_side" else \
            [target.resize_size or target.crop_size] * 2
        mean, std = upstream_model_norm(target)
        ops: list[dict[str, Any]] = [{"type": "DecodeImage"},
                                     {"type": "Resize", "size": size, "interpolation": target.interpolation},
                                     {"type": "CenterCrop", "crop_size": [target.crop_size] * 2},
                                     {"type": "Normalize", "div255": False, "mean": list(mean), "std": list(std)}]
        if target.layout == "NCHW":
            ops.append({"type": "ToTensor"})
        ds[key] = ops
        return dump_yaml(doc)


class VdspParams(Importer):
    name = "vastai-vdsp"
    doc = ("VastAI vdsp_params json: sdk1.0 fp16 bit-pattern meanr/stdr..., short_edge_threshold, crop_size, numeric "
           "op codes; or the OpConfig layout")
    # only bilinear resize kernels are known in either layout (resize_type 1, ResizeType BILINEAR_*)
    limits = ("interpolation", "backend", "antialias")

    def sniff(self, path: Path, text: str) -> bool:
        return path.suffix == ".json" and ("meanr" in text or "OpConfig" in text or "vdsp_op_type" in text)

    def load(self, path: Path, text: str) -> Declared:
        doc = load_json(text, path)
        d = Declared(self.name, str(path), {})
        if isinstance(doc, dict) and "OpConfig" in doc:
            vastai_opconfig.load(doc, d)
            return d
        if not isinstance(doc, dict) or not all(k in doc for k in VDSP_NORM):
            raise ConfigError(f"{path.name}: neither the OpConfig layout nor the sdk1.0 flat vdsp_params layout "
                              "(meanr/meang/meanb/stdr/stdg/stdb)", hint="audit the vamc build yaml, or name "
                              "another format with --format")
        f = d.fields
        mean = tuple(_half(doc[k], k) for k in ("meanr", "meang", "meanb"))
        std = tuple(_half(doc[k], k) for k in ("stdr", "stdg", "stdb"))
        f.update(scale=1.0, mean=mean, std=std)
        d.colour_named = True
        d.notes.append(f"meanr/g/b, stdr/g/b read as IEEE half bit patterns of 0-255 values: mean {mean}, std {std}")
        if "short_edge_threshold" in doc:
            f.update(resize_mode="shorter_side", resize_size=as_int(doc["short_edge_threshold"], "short_edge_threshold"))
            d.notes.append("short_edge_threshold read as the shorter side of the resize")
        if "crop_size" in doc:
            f["crop_size"] = as_int(doc["crop_size"], "crop_size")
        vastai_opconfig.numeric_codes(doc, d)
        d.unknown += [f"{k}: {doc[k]}" for k in doc
                      if k not in VDSP_NORM + VDSP_GEOM + VDSP_SIZE + tuple(vastai_opconfig.NUMERIC)]
        return d

    def fix(self, path: Path, text: str, target: PreprocessSpec) -> str:
        doc = load_json(text, path)
        if "OpConfig" in doc:
            return json.dumps(vastai_opconfig.fix(doc, target), indent=4) + "\n"
        mean, std = upstream_model_norm(target)
        if target.channel_order == "BGR":
            if doc.get("color_cvt_code") in vastai_opconfig.NUMERIC["color_cvt_code"]:
                raise ConfigError("vdsp_params color_cvt_code: the numeric code of RGB2BGR is not known",
                                  hint="use the OpConfig layout (ColorCvtCode RGB2BGR)")
            mean, std = mean[::-1], std[::-1]
        for k, v in zip(VDSP_NORM, mean + std):
            doc[k] = fp16_bits(v)
        if target.resize_mode != "shorter_side":
            raise ConfigError(f"vdsp_params short_edge_threshold cannot express resize_mode {target.resize_mode!r}")
        doc["short_edge_threshold"] = target.resize_size
        doc["crop_size"] = target.crop_size
        return json.dumps(doc, indent=4) + "\n"


register(VamcYaml())
register(VdspParams())
