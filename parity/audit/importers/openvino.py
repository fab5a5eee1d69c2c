"""OpenVINO: Open Model Zoo ``model.yml`` (Model Optimizer arguments) and accuracy_checker ``accuracy-check.yml``.

Sources (formats learned from, re-stated here, no file copied):

* ``model.yml``: openvinotoolkit/open_model_zoo ``models/public/<model>/model.yml`` (``model_optimizer_args``
  list, ``input_info`` with ``name``/``shape``/``layout``), e.g. ``mobilenet-v2-pytorch``:
  ``--mean_values=data[123.675,116.28,103.53] --scale_values=data[58.624,57.12,57.375]
  --reverse_input_channels`` (the conversion command is also printed by openvino_notebooks
  ``notebooks/model-tools``). Model Optimizer semantics (OpenVINO docs "Embedding Preprocessing Computation"):
  ``x = (input - mean_values) / scale_values`` per channel, ``--scale`` one divisor for all channels,
  ``--reverse_input_channels`` is applied first, so mean/scale are in the model's channel order.
* ``accuracy-check.yml``: open_model_zoo ``tools/accuracy_checker`` (readers ``opencv_imread`` (BGR, the default)
  and ``pillow_imread`` (RGB); preprocessors ``resize`` (``size`` or ``dst_width``/``dst_height``,
  ``aspect_ratio_scale: greater`` = the shorter side to ``size``, ``interpolation`` default ``LINEAR``,
  ``use_pillow`` default false = OpenCV), ``crop`` (``size``), ``bgr_to_rgb``/``rgb_to_bgr``,
  ``normalization`` (``mean``/``std``)).

Assumption stated on every audit: the application feeds the IR **BGR** (OpenCV's order, the Open Model Zoo
demos' convention), so ``--reverse_input_channels`` means the model sees RGB. When ``model.yml`` sits beside an
``accuracy-check.yml`` (the Open Model Zoo layout) the two are read together.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ...spec import PreprocessSpec
from . import (
    ConfigError,
    Declared,
    Importer,
    as_int,
    as_list,
    as_map,
    dump_yaml,
    fmt_list,
    load_yaml,
    named,
    numbers,
    register,
    upstream_model_norm,
)

MO_NORM = ("mean_values", "scale_values", "scale", "reverse_input_channels")
MO_SHAPE = ("input_shape", "layout", "source_layout")
# Model Optimizer arguments that do not touch the preprocessing (OpenVINO docs, "Model Optimizer parameters")
MO_OTHER = ("input_model", "input", "output", "input_proto", "input_symbol", "model_name", "data_type",
            "compress_to_fp16", "output_dir", "framework", "transformations_config", "log_level", "batch",
            "disable_nhwc_to_nchw", "tensorflow_object_detection_api_pipeline_config", "static_shape")
MODEL_YML_KEYS = ("description", "task_type", "files", "postprocessing", "conversion_to_onnx_args",
                  "model_optimizer_args", "framework", "license", "input_info", "quantization_output_precisions",
                  "accuracy_config", "model_info", "quantizable")
INTERP = {"LINEAR": "bilinear", "BILINEAR": "bilinear", "NEAREST": "nearest", "CUBIC": "bicubic",
          "BICUBIC": "bicubic", "AREA": "area", "LANCZOS": "lanczos", "LANCZOS4": "lanczos"}
_ARG = re.compile(r"^--([A-Za-z_]+)(?:=(.*))?$")


def _mo_args(doc: dict[str, Any]) -> list[tuple[str, str | None]]:
    out = []
    for a in as_list(doc.get("model_optimizer_args") or [], "model_optimizer_args"):
        m = _ARG.match(str(a).strip())
        out.append((m.group(1), m.group(2)) if m else (str(a), None))
    return out


def _read_model_yml(doc: dict[str, Any], d: Declared) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    args = dict(_mo_args(doc))
    d.unknown += [f"{k}" for k in doc if k not in MODEL_YML_KEYS]
    d.unknown += [f"model_optimizer_args: --{k}" for k in args if k not in MO_NORM + MO_SHAPE + MO_OTHER]
    mean = numbers(args["mean_values"], "--mean_values") if args.get("mean_values") else (0.0, 0.0, 0.0)
    if args.get("scale_values"):
        std = numbers(args["scale_values"], "--scale_values")
    elif args.get("scale"):
        std = numbers(args["scale"], "--scale")
    else:
        std = (1.0, 1.0, 1.0)
    reverse = "reverse_input_channels" in args
    fields.update(scale=1.0, mean=mean, std=std, channel_order="RGB" if reverse else "BGR")
    d.notes.append("assumed the application feeds BGR (OpenCV, Open Model Zoo demos): --reverse_input_channels "
                   f"{'present: the model sees RGB' if reverse else 'absent: the model sees BGR'}")
    if not args.get("mean_values"):
        d.notes.append("no --mean_values: mean 0")
    if not (args.get("scale_values") or args.get("scale")):
        d.notes.append("no --scale_values/--scale: divisor 1")
    for info in as_list(doc.get("input_info") or [], "input_info"):
        info = as_map(info, "input_info[]")
        shape, layout = as_list(info.get("shape") or [], "input_info.shape"), str(info.get("layout", ""))
        if layout in ("NCHW", "NHWC"):
            fields["layout"] = layout
        if len(shape) == 4:
            fields["crop_size"] = as_int(shape[2] if layout != "NHWC" else shape[1], "input_info.shape")
    if args.get("layout") and "layout" not in fields:
        m = re.search(r"(NCHW|NHWC)", args["layout"] or "")
        if m:
            fields["layout"] = m.group(1)
    return fields


class ModelYml(Importer):
    name = "openvino-model-yml"
    doc = "Open Model Zoo model.yml: Model Optimizer --mean_values/--scale_values/--reverse_input_channels"

    def sniff(self, path: Path, text: str) -> bool:
        return "model_optimizer_args" in text

    def load(self, path: Path, text: str) -> Declared:
        doc = load_yaml(text, path)
        if not isinstance(doc, dict):
            raise ConfigError(f"{path.name}: expected a model.yml mapping")
        d = Declared(self.name, str(path), {})
        d.fields = _read_model_yml(doc, d)
        d.notes.append("the resize, crop and interpolation happen in the application, not in model.yml: "
                       "taken from upstream (audit accuracy-check.yml for them)")
        return d

    def fix(self, path: Path, text: str, target: PreprocessSpec) -> str:
        doc = load_yaml(text, path)
        mean, std = upstream_model_norm(target)
        name = _input_name(doc)
        keep = [a for a in doc.get("model_optimizer_args") or [] if _arg_name(a) not in MO_NORM]
        keep += [f"--mean_values={name}[{fmt_list(mean)}]", f"--scale_values={name}[{fmt_list(std)}]"]
        if target.channel_order == "RGB":
            keep.append("--reverse_input_channels")
        doc["model_optimizer_args"] = keep
        for info in doc.get("input_info") or []:
            if info.get("layout") in ("NCHW", "NHWC"):
                info["layout"] = target.layout
        return dump_yaml(doc)


def _arg_name(arg: Any) -> str:
    m = _ARG.match(str(arg).strip())
    return m.group(1) if m else str(arg)


def _input_name(doc: dict[str, Any]) -> str:
    for k, v in _mo_args(doc):
        if k in ("mean_values", "scale_values") and v and "[" in v:
            return v.split("[", 1)[0]
    info = doc.get("input_info") or [{}]
    return str(info[0].get("name", "data"))


class AccuracyCheck(Importer):
    name = "openvino-accuracy-check"
    doc = "accuracy_checker accuracy-check.yml: reader + preprocessing list (+ model.yml beside it)"

    def sniff(self, path: Path, text: str) -> bool:
        return "preprocessing:" in text and ("launchers:" in text or "datasets:" in text) \
            and "model_optimizer_args" not in text

    def load(self, path: Path, text: str) -> Declared:
        doc = load_yaml(text, path)
        ds = _dataset(doc, path)
        d = Declared(self.name, str(path), {})
        reader = str(ds.get("reader", "opencv_imread"))
        if "reader" not in ds:
            d.notes.append("no reader: accuracy_checker's default opencv_imread (BGR)")
        if reader not in ("opencv_imread", "pillow_imread"):
            d.unknown.append(f"reader: {reader}")
        f = d.fields
        f["decoder"] = "pil" if reader == "pillow_imread" else "cv2"
        order = "RGB" if reader == "pillow_imread" else "BGR"
        for step in as_list(ds.get("preprocessing") or [], "preprocessing"):
            order = self._step(dict(as_map(step, "preprocessing[]")), f, d, order)
        model_yml = path.parent / "model.yml"
        if model_yml.is_file():
            mdoc = load_yaml(model_yml.read_text(), model_yml)
            sub = Declared("", "", {})
            if not isinstance(mdoc, dict):
                raise ConfigError(f"{model_yml.name} beside it: expected a model.yml mapping")
            mf = named(model_yml, lambda: _read_model_yml(mdoc, sub))
            reverse = mf.pop("channel_order") == "RGB"
            model_order = ("BGR" if order == "RGB" else "RGB") if reverse else order
            f.update({k: v for k, v in mf.items() if k != "crop_size"}, channel_order=model_order)
            d.notes.append(f"normalization and channel reversal read from {model_yml.name} beside it (fix them "
                           "there: `audit model.yml --fix`)")
            d.companion = ("scale", "mean", "std")
            d.unknown += [f"model.yml: {u}" for u in sub.unknown]
        else:
            f["channel_order"] = order
            if "mean" not in f:
                d.notes.append("no model.yml beside it and no normalization step: the IR's normalization is "
                               "not declared here (taken from upstream)")
        return d

    @staticmethod
    def _step(step: dict[str, Any], f: dict[str, Any], d: Declared, order: str) -> str:
        t = str(step.pop("type", ""))
        if t == "resize":
            size = step.pop("size", None)
            w, h = step.pop("dst_width", size), step.pop("dst_height", size)
            ars = step.pop("aspect_ratio_scale", None)
            if ars == "greater" and size:
                f.update(resize_mode="shorter_side", resize_size=as_int(size, "resize.size"))
            elif ars is None and w == h and w:
                f.update(resize_mode="stretch", resize_size=as_int(w, "resize.size"))
            else:
                d.unknown.append(f"resize: aspect_ratio_scale={ars} {w}x{h}")
            interp = str(step.pop("interpolation", "LINEAR")).upper()
            f["interpolation"] = INTERP.get(interp, "bilinear")
            pil = bool(step.pop("use_pillow", False))
            f.update(backend="pil" if pil else "cv2", antialias=pil)
        elif t == "crop":
            size = step.pop("size", None) or step.pop("dst_width", None)
            step.pop("dst_height", None)
            step.pop("use_pillow", None)
            if size:
                f["crop_size"] = as_int(size, "crop.size")
        elif t in ("bgr_to_rgb", "rgb_to_bgr"):
            order = "BGR" if order == "RGB" else "RGB"
        elif t == "normalization":
            mean = numbers(step.pop("mean", 0), "normalization mean")
            std = numbers(step.pop("std", 1), "normalization std")
            f.update(scale=1.0, mean=mean, std=std)
        else:
            d.unknown.append(f"preprocessing step {t!r}")
            return order
        d.unknown += [f"{t}: {k}" for k in step]
        return order

    def fix(self, path: Path, text: str, target: PreprocessSpec) -> str:
        doc = load_yaml(text, path)
        ds = _dataset(doc, path)
        ds["reader"] = "pillow_imread" if target.decoder == "pil" else "opencv_imread"
        reader_order = "RGB" if target.decoder == "pil" else "BGR"
        steps: list[dict[str, Any]] = []
        interp = {v: k for k, v in INTERP.items() if k in ("LINEAR", "NEAREST", "CUBIC", "AREA", "LANCZOS4")}
        resize: dict[str, Any] = {"type": "resize", "interpolation": interp[target.interpolation],
                                  "use_pillow": target.backend == "pil"}
        if target.resize_mode == "shorter_side":
            resize.update(size=target.resize_size, aspect_ratio_scale="greater")
        elif target.resize_mode in ("squash", "stretch"):
            resize["size"] = target.resize_size if target.resize_mode == "stretch" else target.crop_size
        else:
            raise ConfigError(f"accuracy-check.yml cannot express resize_mode {target.resize_mode!r}")
        steps += [resize, {"type": "crop", "size": target.crop_size, "use_pillow": target.backend == "pil"}]
        model_yml = path.parent / "model.yml"
        reverse = model_yml.is_file() and "reverse_input_channels" in model_yml.read_text()
        fed = ("BGR" if target.channel_order == "RGB" else "RGB") if reverse else target.channel_order
        if fed != reader_order:
            steps.append({"type": "bgr_to_rgb"})
        if not model_yml.is_file():
            mean, std = upstream_model_norm(target)
            steps.append({"type": "normalization", "mean": list(mean), "std": list(std)})
        ds["preprocessing"] = steps
        return dump_yaml(doc)


def _dataset(doc: Any, path: Path) -> dict[str, Any]:
    try:
        ds = doc["models"][0]["datasets"][0]
    except (KeyError, IndexError, TypeError):
        raise ConfigError(f"{path.name}: expected models[0].datasets[0] (accuracy_checker layout)") from None
    if not isinstance(ds, dict):
        raise ConfigError(f"{path.name}: models[0].datasets[0] is not a mapping")
    return ds


register(ModelYml())
register(AccuracyCheck())
