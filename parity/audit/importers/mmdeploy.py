"""MMDeploy SDK ``pipeline.json`` (written by ``tools/deploy.py --dump-info`` beside ``deploy.json`` and
``detail.json``): the ``Preprocess`` task's ``transforms`` list, run by the SDK's C++ transforms.

Sources (format learned from, re-stated): open-mmlab/mmdeploy ``docs/en/get_started.md`` (SDK model =
``deploy.json`` + ``pipeline.json`` + ``detail.json``), ``mmdeploy/utils/export_info.py`` (how the test pipeline
of the model config is written into ``pipeline.json``: ``{"pipeline": {"tasks": [{"module": "Transform",
"transforms": [...]}, ...]}}``) and ``csrc/mmdeploy/preprocess/transform/`` (``LoadImageFromFile``,
``Resize {size, keep_ratio, interpolation}``, ``ResizeEdge`` / mmcls's ``Resize {size: [256, -1]}`` = the shorter
side, ``CenterCrop {crop_size}``, ``Normalize {mean, std, to_rgb}``, ``ImageToTensor``, ``Collect``).

Semantics: the SDK's transforms run on OpenCV ``cv::Mat`` (BGR from the application; ``to_rgb`` swaps to
RGB), resize with OpenCV (no antialias) whatever the model config's ``backend``: a PIL-resized upstream
(mmpretrain's ``backend='pillow'``) differs there, reported as a warning.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ...spec import PreprocessSpec
from . import ConfigError, Declared, Importer, as_list, as_map, load_json, numbers, register, upstream_model_norm

IGNORED = ("LoadImageFromFile", "ImageToTensor", "Collect", "PackClsInputs", "PackInputs", "DefaultFormatBundle")


def _transforms(doc: Any, path: Path) -> list[dict[str, Any]]:
    try:
        tasks = doc["pipeline"]["tasks"]
    except (KeyError, TypeError):
        tasks = None
    for t in as_list(tasks, "pipeline.tasks") if tasks is not None else []:
        if isinstance(t, dict) and t.get("module") == "Transform":
            return [as_map(x, "transforms[]") for x in as_list(t.get("transforms"), "Transform.transforms")]
    raise ConfigError(f"{path.name}: no pipeline.tasks[module=Transform].transforms (MMDeploy SDK pipeline.json)")


class Pipeline(Importer):
    name = "mmdeploy-pipeline"
    doc = "MMDeploy SDK pipeline.json: the Preprocess task's transforms"
    limits = ("backend",)       # the SDK resizes with OpenCV: a PIL upstream cannot be written here

    def sniff(self, path: Path, text: str) -> bool:
        return path.suffix == ".json" and '"pipeline"' in text and '"transforms"' in text

    def load(self, path: Path, text: str) -> Declared:
        doc = load_json(text, path)
        d = Declared(self.name, str(path), {})
        f = d.fields
        f.update(decoder="cv2", backend="cv2", antialias=False, channel_order="BGR", layout="NCHW")
        d.notes.append("the SDK decodes and resizes with OpenCV (BGR cv::Mat from the application)")
        for t in _transforms(doc, path):
            self._op(dict(t), f, d)
        return d

    @staticmethod
    def _op(t: dict[str, Any], f: dict[str, Any], d: Declared) -> None:
        kind = str(t.pop("type", ""))
        if kind in ("Resize", "ResizeEdge"):
            size = t.pop("size", t.pop("scale", None))
            vals = numbers(size, f"{kind}.size", n=None)
            edge = t.pop("edge", "short")
            if kind == "ResizeEdge" or (len(vals) == 2 and vals[1] == -1) or len(vals) == 1:
                if edge != "short":
                    d.unknown.append(f"{kind}.edge: {edge}")
                f.update(resize_mode="shorter_side", resize_size=int(vals[0]))
            else:
                f.update(resize_mode="stretch", resize_size=int(vals[0]))
            t.pop("keep_ratio", None)
            t.pop("backend", None)
            f["interpolation"] = str(t.pop("interpolation", "bilinear"))
        elif kind == "CenterCrop":
            f["crop_size"] = int(numbers(t.pop("crop_size"), "CenterCrop.crop_size", n=None)[0])
        elif kind == "Normalize":
            f.update(scale=1.0, mean=numbers(t.pop("mean"), "Normalize.mean"), std=numbers(t.pop("std"), "Normalize.std"))
            if t.pop("to_rgb", False):
                f["channel_order"] = "RGB"
        elif kind in IGNORED:
            t.clear()
        else:
            d.unknown.append(f"transform {kind!r}")
            return
        d.unknown += [f"{kind}.{k}" for k in t if k not in ("keys", "meta_keys", "to_float32")]

    def fix(self, path: Path, text: str, target: PreprocessSpec) -> str:
        doc = load_json(text, path)
        mean, std = upstream_model_norm(target)
        if target.resize_mode not in ("shorter_side", "stretch"):
            raise ConfigError(f"the SDK's Resize cannot express resize_mode {target.resize_mode!r}")
        size = [target.resize_size, -1] if target.resize_mode == "shorter_side" else [target.resize_size] * 2
        new = [{"type": "LoadImageFromFile"},
               {"type": "Resize", "size": size, "interpolation": target.interpolation},
               {"type": "CenterCrop", "crop_size": target.crop_size},
               {"type": "Normalize", "mean": list(mean), "std": list(std), "to_rgb": target.channel_order == "RGB"},
               {"type": "ImageToTensor", "keys": ["img"]},
               {"type": "Collect", "keys": ["img"]}]
        for t in doc["pipeline"]["tasks"]:
            if isinstance(t, dict) and t.get("module") == "Transform":
                t["transforms"] = new
        return json.dumps(doc, indent=4) + "\n"


register(Pipeline())
