"""PaddleClas deployment: ``deploy/configs/inference_cls.yaml`` (Paddle Inference, Python ``predict_cls.py``) and
Paddle Lite's ``deploy/lite/config.txt`` (the ARM C++ demo). Seed 003 of this project is PaddleClas's
MobileNetV2 guide.

Sources (formats learned from, re-stated): PaddlePaddle/PaddleClas ``deploy/configs/inference_cls.yaml``
(``PreProcess.transform_ops``: ``ResizeImage {resize_short | size, interpolation, backend}``,
``CropImage {size}``, ``NormalizeImage {scale, mean, std, order}``, ``ToCHWImage``), ``ppcls/data/preprocess/
ops/operators.py`` (their semantics: OpenCV ``INTER_LINEAR`` by default, ``round`` of the resized side, crop
offset ``(side - size) // 2``, ``scale`` may be a string such as ``1.0/255.0``), ``deploy/python/
predict_cls.py`` (``cv2.imread`` then ``[:, :, ::-1]``: RGB); ``deploy/lite/config.txt`` (``key value``
lines: ``resize_short_size``, ``crop_size``, ...) whose normalization is compiled into the demo
(``deploy/lite/image_classfication.cpp``: ImageNet mean/std): stated, not declared by the file.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ...spec import PreprocessSpec
from . import ConfigError, Declared, Importer, as_float, as_int, as_map, bad, dump_yaml, load_yaml, numbers, register

INTERP = {0: "nearest", 1: "bilinear", 2: "bicubic", 3: "area", 4: "lanczos"}
SECTIONS = ("Global", "PreProcess", "PostProcess")


def _scale(v: Any) -> float:
    m = re.fullmatch(r"\s*([\d.]+)\s*/\s*([\d.]+)\s*", v) if isinstance(v, str) else None
    try:
        value = float(m.group(1)) / float(m.group(2)) if m else as_float(v, "NormalizeImage.scale")
    except (ValueError, ZeroDivisionError):
        value = 0.0
    if not 0 < value < float("inf"):
        raise bad("NormalizeImage.scale", v, "a positive number or a fraction such as 1.0/255.0")
    return value


class InferenceCls(Importer):
    name = "paddleclas-inference"
    doc = "PaddleClas deploy/configs/inference_cls.yaml: PreProcess.transform_ops"

    def sniff(self, path: Path, text: str) -> bool:
        return "PreProcess" in text and "transform_ops" in text

    def load(self, path: Path, text: str) -> Declared:
        doc = load_yaml(text, path)
        pre = doc.get("PreProcess") if isinstance(doc, dict) else None
        ops = pre.get("transform_ops") if isinstance(pre, dict) else None
        if not isinstance(ops, list):
            raise ConfigError(f"{path.name}: expected PreProcess.transform_ops as a list")
        d = Declared(self.name, str(path), {})
        d.unknown += [k for k in doc if k not in SECTIONS]
        f = d.fields
        f.update(decoder="cv2", channel_order="RGB", layout="NHWC", resize_rounding="round", crop_rounding="floor")
        d.notes.append("decoded by predict_cls.py: cv2.imread then BGR -> RGB")
        for op in ops:
            if isinstance(op, str):
                name, args = op, None
            elif isinstance(op, dict) and len(op) == 1:
                (name, args), = op.items()
            else:
                raise bad("PreProcess.transform_ops[]", op, "an op: {Name: {arguments}}")
            self._op(str(name), dict(as_map(args or {}, f"{name}")), f, d)
        return d

    @staticmethod
    def _op(name: str, a: dict[str, Any], f: dict[str, Any], d: Declared) -> None:
        if name == "ResizeImage":
            if "resize_short" in a:
                f.update(resize_mode="shorter_side", resize_size=as_int(a.pop("resize_short"), "ResizeImage.resize_short"))
            elif "size" in a:
                w, h = numbers(a.pop("size"), "ResizeImage.size", n=2)
                f.update(resize_mode="stretch", resize_size=int(h))
                if w != h:
                    d.unknown.append(f"ResizeImage.size {w}x{h} (not square)")
            backend = str(a.pop("backend", "cv2")).lower()
            f.update(backend="pil" if backend == "pil" else "cv2", antialias=backend == "pil")
            interp = a.pop("interpolation", None)
            if interp is None:
                f["interpolation"] = "bilinear"
            elif isinstance(interp, int) and not isinstance(interp, bool):
                f["interpolation"] = INTERP.get(interp, str(interp))
            elif isinstance(interp, str):
                f["interpolation"] = interp.lower()
            else:
                raise bad("ResizeImage.interpolation", interp, "a cv2 code (0-4) or a name")
        elif name == "CropImage":
            if "size" not in a:
                raise ConfigError("CropImage without size")
            f["crop_size"] = int(numbers(a.pop("size"), "CropImage.size", n=None)[0])
        elif name == "NormalizeImage":
            for k in ("mean", "std"):
                if k not in a:
                    raise ConfigError(f"NormalizeImage without {k}")
            f.update(scale=_scale(a.pop("scale", 1 / 255)), mean=numbers(a.pop("mean"), "NormalizeImage.mean"),
                     std=numbers(a.pop("std"), "NormalizeImage.std"))
            a.pop("order", None)
            a.pop("channel_num", None)
        elif name == "ToCHWImage":
            f["layout"] = "NCHW"
        else:
            d.unknown.append(f"transform op {name!r}")
            return
        d.unknown += [f"{name}.{k}" for k in a]

    def fix(self, path: Path, text: str, target: PreprocessSpec) -> str:
        doc = load_yaml(text, path)
        if target.resize_mode not in ("shorter_side", "stretch"):
            raise ConfigError(f"ResizeImage cannot express resize_mode {target.resize_mode!r}")
        resize: dict[str, Any] = {"resize_short": target.resize_size} if target.resize_mode == "shorter_side" \
            else {"size": [target.resize_size, target.resize_size]}
        resize["interpolation"] = {v: k for k, v in INTERP.items()}[target.interpolation]
        resize["backend"] = "pil" if target.backend == "pil" else "cv2"
        ops: list[Any] = [{"ResizeImage": resize}, {"CropImage": {"size": target.crop_size}},
                          {"NormalizeImage": {"scale": target.scale, "mean": list(target.mean),
                                              "std": list(target.std), "order": ""}}]
        if target.layout == "NCHW":
            ops.append({"ToCHWImage": None})
        doc["PreProcess"]["transform_ops"] = ops
        return dump_yaml(doc)


class LiteConfig(Importer):
    name = "paddle-lite"
    doc = "Paddle Lite demo config.txt (PaddleClas deploy/lite): resize_short_size, crop_size"
    KNOWN = ("clas_model_file", "label_path", "resize_short_size", "crop_size", "visualize", "num_threads",
             "batch_size", "precision", "runtime_device", "enable_benchmark", "tensor_height", "tensor_width")

    def sniff(self, path: Path, text: str) -> bool:
        return "resize_short_size" in text and "clas_model_file" in text

    def _pairs(self, text: str) -> list[tuple[str, str]]:
        return [tuple(s.split(None, 1)) if len(s.split(None, 1)) == 2 else (s, "")  # type: ignore[misc]
                for s in (ln.strip() for ln in text.splitlines()) if s and not s.startswith("#")]

    def load(self, path: Path, text: str) -> Declared:
        kv = dict(self._pairs(text))
        d = Declared(self.name, str(path), {})
        d.unknown += [k for k in kv if k not in self.KNOWN]
        if "resize_short_size" in kv:
            d.fields.update(resize_mode="shorter_side",
                            resize_size=as_int(kv["resize_short_size"], "resize_short_size"))
        if "crop_size" in kv:
            d.fields["crop_size"] = as_int(kv["crop_size"], "crop_size")
        d.notes.append("mean/std are compiled into the demo (image_classfication.cpp: ImageNet), not in "
                       "config.txt: taken from upstream")
        return d

    def fix(self, path: Path, text: str, target: PreprocessSpec) -> str:
        if target.resize_mode != "shorter_side":
            raise ConfigError(f"config.txt resizes the shorter side: {target.resize_mode!r} cannot be expressed")
        values = {"resize_short_size": str(target.resize_size), "crop_size": str(target.crop_size)}
        out = []
        for line in text.splitlines():
            key = line.split(None, 1)[0] if line.strip() else ""
            out.append(f"{key} {values.pop(key)}" if key in values else line)
        out += [f"{k} {v}" for k, v in values.items()]
        return "\n".join(out) + "\n"


register(InferenceCls())
register(LiteConfig())
