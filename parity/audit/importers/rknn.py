"""Rockchip RKNN conversion config: the yaml of ``rknn_convert`` (``models: ... configs: ...``), toolkit 2
(``mean_values``/``std_values``, ``quant_img_RGB2BGR``) and toolkit 1 (``channel_mean_value``, ``reorder_channel``).

Sources (format learned from, re-stated): rockchip-linux/rknn-toolkit2 ``doc`` (RKNN Toolkit2 user guide,
``rknn.config(mean_values=[[...]], std_values=[[...]], quant_img_RGB2BGR=...)`` and the ``rknn_convert`` yaml
``models: {name, platform, model_file_path, quantize, dataset, configs: {...}}``), rockchip-linux/rknn-toolkit
(toolkit 1) user guide (``channel_mean_value='M0 M1 M2 S'``: three means and **one** scale,
``reorder_channel='0 1 2'`` or ``'2 1 0'``).

Semantics: ``x = (pixel - mean[c]) / std[c]`` on 0-255 pixels, in the order of the channels the application
feeds (assumed RGB, stated: the RKNN demos convert OpenCV's BGR to RGB before ``inference``); toolkit 1's
``reorder_channel '2 1 0'`` swaps them before the model (the model sees BGR); toolkit 2's ``quant_img_RGB2BGR``
only swaps the **calibration** images (the quantization data), so a true value is a calibration vs run-time
difference. Not declared: the resize (the application's; taken from upstream).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ...spec import PreprocessSpec
from . import ConfigError, Declared, Importer, dump_yaml, load_yaml, numbers, register, upstream_model_norm

CONFIG_KEYS = ("mean_values", "std_values", "channel_mean_value", "reorder_channel", "quant_img_RGB2BGR",
               "quantized_dtype", "quantized_algorithm", "quantized_method", "target_platform", "optimization_level",
               "batch_size", "epochs", "float_dtype", "custom_string")
MODEL_KEYS = ("name", "platform", "model_file_path", "quantize", "dataset", "configs", "subgraphs",
              "prototxt_file_path", "caffemodel_file_path", "outputs", "inputs", "input_size_list")


def _models(doc: Any, path: Path) -> dict[str, Any]:
    m = doc.get("models") if isinstance(doc, dict) else None
    if isinstance(m, list) and m:
        m = m[0]
    if not isinstance(m, dict) or not isinstance(m.get("configs"), dict):
        raise ConfigError(f"{path.name}: expected models.configs (rknn_convert yaml)")
    return m


class RknnYaml(Importer):
    name = "rknn-convert"
    doc = "Rockchip rknn_convert yaml: mean_values/std_values (toolkit2), channel_mean_value/reorder_channel (1)"

    def sniff(self, path: Path, text: str) -> bool:
        return "configs" in text and ("mean_values" in text or "channel_mean_value" in text) and "models" in text

    def load(self, path: Path, text: str) -> Declared:
        m = _models(load_yaml(text, path), path)
        c: dict[str, Any] = m["configs"]
        d = Declared(self.name, str(path), {})
        d.unknown += [k for k in m if k not in MODEL_KEYS] + [f"configs.{k}" for k in c if k not in CONFIG_KEYS]
        f = d.fields
        if "channel_mean_value" in c:
            v = numbers(c["channel_mean_value"], "channel_mean_value", n=None)
            if len(v) != 4:
                raise ConfigError(f"channel_mean_value: expected 'M0 M1 M2 S', got {c['channel_mean_value']!r}")
            f.update(scale=1.0, mean=v[:3], std=(v[3],) * 3)
            d.notes.append("toolkit 1 channel_mean_value: three means and one scale for the three channels")
        else:
            mean = numbers(_flat(c.get("mean_values", 0)), "mean_values")
            std = numbers(_flat(c.get("std_values", 1)), "std_values")
            f.update(scale=1.0, mean=mean, std=std)
        reorder = str(c.get("reorder_channel", "0 1 2")).split()
        if reorder not in (["0", "1", "2"], ["2", "1", "0"]):
            d.unknown.append(f"configs.reorder_channel: {c['reorder_channel']}")
        f["channel_order"] = "BGR" if reorder == ["2", "1", "0"] else "RGB"
        d.notes.append("assumed the application feeds RGB (the RKNN demos convert OpenCV's BGR to RGB)")
        if c.get("quant_img_RGB2BGR"):
            d.calibration = {**f, "channel_order": "BGR" if f["channel_order"] == "RGB" else "RGB"}
            d.notes.append("quant_img_RGB2BGR: the calibration images are swapped to BGR, the run-time input is not")
        d.notes.append("the resize is the application's, not declared: taken from upstream")
        return d

    def fix(self, path: Path, text: str, target: PreprocessSpec) -> str:
        doc = load_yaml(text, path)
        c = _models(doc, path)["configs"]
        mean, std = upstream_model_norm(target)
        for k in ("channel_mean_value", "quant_img_RGB2BGR"):
            c.pop(k, None)
        c["mean_values"] = [list(mean)]
        c["std_values"] = [list(std)]
        if "reorder_channel" in c or target.channel_order == "BGR":
            c["reorder_channel"] = "2 1 0" if target.channel_order == "BGR" else "0 1 2"
        return dump_yaml(doc)


def _flat(v: Any) -> Any:
    """``[[a, b, c]]`` (one list per input) -> ``[a, b, c]``."""
    if isinstance(v, list) and len(v) == 1 and isinstance(v[0], list):
        return v[0]
    return v


register(RknnYaml())
