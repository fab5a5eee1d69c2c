"""Horizon / D-Robotics ``hb_mapper makertbin`` yaml (RDK X3/X5 OpenExplorer PTQ toolchain).

Source (format learned from, re-stated, no file copied): D-Robotics RDK documentation, "PTQ conversion: the yaml
configuration file" (developer.d-robotics.cc/rdk_doc/Advanced_development/toolchain_development/intermediate/
ptq_process) and its yaml templates; RDK model zoo configs (e.g. ``input_type_rt: 'nv12'``,
``input_type_train: 'rgb'``, ``input_layout_train: 'NCHW'``, ``norm_type: 'data_mean_and_scale'``,
``mean_value: 123.675 116.28 103.53``, ``scale_value: 0.01712475 0.017507 0.01742919``). Seed 002's
``mobilenetv2_224x224_nv12.bin`` is such a model (NV12 input at run time).

Semantics (``input_parameters``):

* the BPU computes ``x = (pixel - mean_value) * scale_value`` on 0-255 pixels, per channel in the order of
  ``input_type_train`` (``norm_type``: ``no_preprocess`` | ``data_mean`` | ``data_scale`` |
  ``data_mean_and_scale``); values are one number or space-separated per channel;
* ``input_type_rt``: what the run time feeds (``nv12``: YUV 4:2:0, ``yuv444``: full-resolution YUV, converted on
  the BPU to ``input_type_train``;
  ``rgb``/``bgr``: converted by channel swap, no loss); ``input_space_and_range``: ``regular`` (full range
  0-255, the default) or ``bt601_video`` (16-235);
* ``input_layout_train``: the model's layout; ``input_shape`` (``1x3x224x224``) gives the input size.

Not in the yaml (stated as assumptions): the resize and crop (the application does them, before the NV12
conversion); the calibration data is prepared by a script in ``input_type_train`` format (RGB, never NV12), so
a config with ``input_type_rt: nv12`` is calibrated on different pixels than it runs on.

``fix`` writes ``data_mean_and_scale`` with upstream's 0-255 means and ``1/std`` scales, the training colour and
layout, and (upstream being RGB) ``input_type_rt`` = the training colour: NV12 is a deployment choice the audit
prices, not one it can keep while reporting no difference.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ...spec import PreprocessSpec
from . import ConfigError, Declared, Importer, dump_yaml, fmt_list, load_yaml, numbers, register, upstream_model_norm

KNOWN_INPUT = ("input_name", "input_shape", "input_type_rt", "input_layout_rt", "input_type_train",
               "input_layout_train", "input_batch", "norm_type", "mean_value", "scale_value",
               "input_space_and_range", "std_value")
SECTIONS = ("model_parameters", "input_parameters", "calibration_parameters", "compiler_parameters",
            "custom_op")
NORM_TYPES = ("no_preprocess", "data_mean", "data_scale", "data_mean_and_scale")


class HbMapper(Importer):
    name = "horizon-hb-mapper"
    doc = "Horizon/D-Robotics hb_mapper yaml: norm_type, mean_value, scale_value, input_type_rt (nv12), ..."

    def sniff(self, path: Path, text: str) -> bool:
        return "input_parameters" in text and ("input_type_rt" in text or "norm_type" in text)

    def load(self, path: Path, text: str) -> Declared:
        doc = load_yaml(text, path)
        if not isinstance(doc, dict) or not isinstance(doc.get("input_parameters"), dict):
            raise ConfigError(f"{path.name}: expected an hb_mapper yaml with an input_parameters mapping")
        ip: dict[str, Any] = doc["input_parameters"]
        d = Declared(self.name, str(path), {})
        d.unknown += [k for k in doc if k not in SECTIONS]
        d.unknown += [f"input_parameters.{k}" for k in ip if k not in KNOWN_INPUT]
        f = d.fields
        train = str(ip.get("input_type_train", "")).lower()
        if train not in ("rgb", "bgr"):
            raise ConfigError(f"{path.name}: input_type_train {train or '(missing)'!r} is not rgb/bgr: a "
                              "MobileNetV2 card is trained on RGB", hint="set input_type_train: 'rgb'")
        f["channel_order"] = train.upper()
        norm = str(ip.get("norm_type", "no_preprocess"))
        if norm not in NORM_TYPES:
            d.unknown.append(f"input_parameters.norm_type: {norm}")
        mean = numbers(ip["mean_value"], "mean_value") if "mean" in norm and ip.get("mean_value") is not None \
            else (0.0, 0.0, 0.0)
        scale = numbers(ip["scale_value"], "scale_value") if "scale" in norm and ip.get("scale_value") is not None \
            else (1.0, 1.0, 1.0)
        if ("mean" in norm and ip.get("mean_value") is None) or ("scale" in norm and ip.get("scale_value") is None):
            d.notes.append(f"norm_type {norm} without its values: the missing one taken as identity")
        f.update(scale=1.0, mean=mean, std=PreprocessSpec.std_from_scale(scale))
        if len(set(mean)) == 1 and "mean" in norm:
            d.notes.append("one mean_value for all channels")
        layout = str(ip.get("input_layout_train", "")).upper()
        if layout in ("NCHW", "NHWC"):
            f["layout"] = layout
        shape = str(ip.get("input_shape", "") or "")
        dims = [int(x) for x in shape.lower().split("x") if x.strip().isdigit()]
        if len(dims) == 4:
            shape_layout = "NCHW" if dims[1] in (1, 3) else "NHWC"
            f["crop_size"] = dims[2] if shape_layout == "NCHW" else dims[1]
            if layout and layout != shape_layout:
                d.notes.append(f"input_shape {shape} is {shape_layout} but input_layout_train says {layout}")
        rt = str(ip.get("input_type_rt", train)).lower()
        if rt in ("nv12", "yuv420sp", "yuv444"):
            rng = str(ip.get("input_space_and_range", "regular"))
            f.update(input_color="yuv444" if rt == "yuv444" else "nv12",
                     yuv_range="bt601_video" if rng == "bt601_video" else "bt601_full")
            if "input_space_and_range" not in ip:
                d.notes.append("no input_space_and_range: hb_mapper's default 'regular' (full-range BT.601)")
            d.notes.append(f"assumed the {rt} frames are produced in the range the config declares")
            d.calibration = {k: v for k, v in f.items() if k not in ("input_color", "yuv_range")}
            d.notes.append(f"calibration data is prepared in input_type_train ({train}), not {rt} (hb_mapper docs)")
        elif rt not in ("rgb", "bgr", "rgbp", "bgrp"):
            d.unknown.append(f"input_parameters.input_type_rt: {rt}")
        d.notes.append("resize and crop are done by the application, not declared in the yaml: taken from "
                       "upstream")
        return d

    def fix(self, path: Path, text: str, target: PreprocessSpec) -> str:
        doc = load_yaml(text, path)
        ip = doc["input_parameters"]
        mean, std = upstream_model_norm(target)
        ip["input_type_train"] = target.channel_order.lower()
        ip["input_layout_train"] = target.layout
        ip["norm_type"] = "data_mean_and_scale"
        ip["mean_value"] = fmt_list(mean, " ")
        ip["scale_value"] = fmt_list((1.0 / s for s in std), " ")
        ip.pop("std_value", None)
        if target.input_color == "rgb":
            ip["input_type_rt"] = target.channel_order.lower()
            ip.pop("input_space_and_range", None)
        return dump_yaml(doc)


register(HbMapper())
