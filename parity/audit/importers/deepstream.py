"""NVIDIA DeepStream ``nvinfer`` configuration file (the ``[property]`` group of ``config_infer_*.txt``).

Source (format learned from, re-stated): NVIDIA DeepStream SDK developer guide, "Gst-nvinfer" (configuration
file properties: ``net-scale-factor``, ``offsets``, ``model-color-format`` 0 = RGB, 1 = BGR, 2 = GRAY,
``maintain-aspect-ratio``, ``symmetric-padding``, ``infer-dims``, ``network-input-order`` 0 = NCHW, 1 = NHWC,
``scaling-filter`` (``NvBufSurfTransform_Inter``: 0 nearest, 1 bilinear, 2 algo1 = GPU cubic, ...)), and the
sample configs of the DeepStream SDK (``config_infer_primary*.txt``, ``config_infer_secondary_*.txt``).

Semantics: ``y = net-scale-factor * (x - offsets[c])`` on 0-255 pixels: **one** scale for the three channels,
so a model trained with three stds (ImageNet's 0.229/0.224/0.225) cannot be fed exactly: the audit reports the
error it implies, and ``fix`` writes the single factor that about halves the worst channel's error (the harmonic mean
of 1/std), a limit of the format. The frame is scaled to the network size directly (``maintain-aspect-ratio=0``:
squash) or fitted keeping the aspect ratio and padded with black (``=1``; centered with
``symmetric-padding=1``, else at the right/bottom: stated). The scaler is NVIDIA's (VIC/CUDA), not PIL/OpenCV:
its kernels are not reproduced (upstream's library assumed, stated).
"""
from __future__ import annotations

import configparser
import re
from pathlib import Path

from ...spec import PreprocessSpec
from . import ConfigError, Declared, Importer, as_float, as_int, bad, numbers, register, upstream_model_norm

FILTERS = {0: "nearest", 1: "bilinear", 2: "bicubic", 4: "lanczos"}
PREPROCESS = ("net-scale-factor", "offsets", "model-color-format", "maintain-aspect-ratio", "symmetric-padding",
              "infer-dims", "network-input-order", "scaling-filter", "input-dims", "uff-input-dims")
# nvinfer properties that do not touch the preprocessing (Gst-nvinfer property table)
OTHER = ("gpu-id", "onnx-file", "model-file", "proto-file", "model-engine-file", "int8-calib-file", "labelfile-path",
         "batch-size", "network-mode", "num-detected-classes", "interval", "gie-unique-id", "process-mode",
         "network-type", "output-blob-names", "classifier-threshold", "cluster-mode", "operate-on-gie-id",
         "operate-on-class-ids", "input-object-min-width", "input-object-min-height", "is-classifier",
         "classifier-async-mode", "scaling-compute-hw", "tlt-encoded-model", "tlt-model-key", "custom-lib-path",
         "parse-bbox-func-name", "parse-classifier-func-name", "output-tensor-meta", "workspace-size",
         "uff-input-blob-name", "force-implicit-batch-dim", "secondary-reinfer-interval", "filter-out-class-ids")


def _read(text: str, path: Path) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(inline_comment_prefixes=("#",), strict=False)
    try:
        cp.read_string(text)
    except configparser.Error as e:
        raise ConfigError(f"{path.name} is not a valid nvinfer config: {str(e).splitlines()[0]}") from None
    if not cp.has_section("property"):
        raise ConfigError(f"{path.name}: no [property] group (Gst-nvinfer config layout)")
    return cp


class Nvinfer(Importer):
    name = "deepstream-nvinfer"
    doc = "NVIDIA DeepStream nvinfer config: net-scale-factor, offsets, model-color-format, maintain-aspect-ratio"
    limits = ("normalization",)

    def sniff(self, path: Path, text: str) -> bool:
        return "[property]" in text and ("net-scale-factor" in text or "model-color-format" in text)

    def load(self, path: Path, text: str) -> Declared:
        p = _read(text, path)["property"]
        d = Declared(self.name, str(path), {})
        f = d.fields
        d.unknown += [k for k in p if k not in PREPROCESS + OTHER]
        nsf = as_float(p.get("net-scale-factor", "1"), "net-scale-factor")
        if nsf <= 0:
            raise bad("net-scale-factor", p["net-scale-factor"], "a positive number (e.g. 0.0078431373 for 1/127.5)")
        offs = numbers(p.get("offsets", "0;0;0").replace(";", " "), "offsets")
        f.update(scale=1.0, mean=offs, std=(1.0 / nsf,) * 3)
        if "net-scale-factor" not in p:
            d.notes.append("no net-scale-factor: nvinfer's default 1")
        colour = as_int(p.get("model-color-format", "0"), "model-color-format")
        if colour not in (0, 1):
            d.unknown.append(f"model-color-format: {colour}")
        f["channel_order"] = "BGR" if colour == 1 else "RGB"
        if as_int(p.get("maintain-aspect-ratio", "0"), "maintain-aspect-ratio"):
            f.update(resize_mode="letterbox", pad_value=0.0)
            if not as_int(p.get("symmetric-padding", "0"), "symmetric-padding"):
                d.unknown.append("symmetric-padding: 0 (padding at the right/bottom: the reference centers it)")
        else:
            f["resize_mode"] = "squash"
        if "scaling-filter" in p:
            f["interpolation"] = FILTERS.get(as_int(p["scaling-filter"], "scaling-filter"), "bilinear")
        else:
            d.notes.append("no scaling-filter: nvinfer's default 0 (nearest)")
            f["interpolation"] = "nearest"
        dims = [int(x) for x in re.findall(r"\d+", p.get("infer-dims", p.get("input-dims", "")))]
        order = as_int(p.get("network-input-order", "0"), "network-input-order")
        f["layout"] = "NHWC" if order == 1 else "NCHW"
        if len(dims) >= 3:
            f["crop_size"] = dims[1] if order == 0 else dims[0]
        d.notes.append("scaled by NVIDIA's VIC/CUDA scaler: its kernel is not reproduced (upstream's library "
                       "assumed)")
        return d

    def fix(self, path: Path, text: str, target: PreprocessSpec) -> str:
        mean, std = upstream_model_norm(target)
        a = [1.0 / s for s in std]
        nsf = 2 * min(a) * max(a) / (min(a) + max(a))      # equal worst relative error on the extreme channels
        values = {"net-scale-factor": f"{nsf:.9g}", "offsets": ";".join(f"{m:.6g}" for m in mean),
                  "model-color-format": "1" if target.channel_order == "BGR" else "0",
                  "network-input-order": "1" if target.layout == "NHWC" else "0"}
        if target.resize_mode == "squash":
            values["maintain-aspect-ratio"] = "0"
        elif target.resize_mode == "letterbox":
            values.update({"maintain-aspect-ratio": "1", "symmetric-padding": "1"})
        else:
            raise ConfigError(f"nvinfer scales the whole frame: resize_mode {target.resize_mode!r} (resize + crop) "
                              "cannot be expressed", hint="crop upstream of nvinfer (nvdspreprocess) instead")
        lines, seen, in_prop = [], set(), False
        for line in text.splitlines():
            s = line.strip()
            if s.startswith("["):
                if in_prop:
                    lines += [f"{k}={v}" for k, v in values.items() if k not in seen]
                in_prop = s == "[property]"
            key = s.split("=", 1)[0].strip() if "=" in s and not s.startswith("#") else None
            if in_prop and key in values:
                lines.append(f"{key}={values[key]}")
                seen.add(key)
                continue
            lines.append(line)
        if in_prop:
            lines += [f"{k}={v}" for k, v in values.items() if k not in seen]
        return "\n".join(lines) + "\n"


register(Nvinfer())
