"""What an artifact's own metadata declares about its preprocessing: TFLite NormalizationOptions, the ONNX
``mbv2_parity.spec`` property, an OpenVINO IR's baked Model Optimizer mean_values / scale_values. Read by
identification (a candidate fed as the file says) and by the verdict (which preprocessing it is fed, and whether the
metadata agrees with the file's behaviour). Framework-free."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING

from ..spec import PreprocessSpec

if TYPE_CHECKING:
    from .artifact import Artifact


def metadata_spec(art: Artifact, up: PreprocessSpec) -> tuple[PreprocessSpec | None, str]:
    """The preprocessing the artifact's own metadata declares (None when it declares none), and where it was read."""
    meta = art.file.get("metadata") or {}
    if art.fmt.name == "tflite" and meta.get("normalization"):
        f = meta["normalization"]
        return up.replace(**{k: tuple(v) if isinstance(v, list) else v for k, v in f.items()
                             if k in ("scale", "mean", "std", "channel_order")}), "TFLite NormalizationOptions"
    spec_json = meta.get("mbv2_parity.spec")
    if art.fmt.name == "onnx" and spec_json:
        return PreprocessSpec.from_dict(json.loads(spec_json)), "ONNX metadata_props mbv2_parity.spec"
    if art.fmt.name == "openvino" and (meta.get("mean") or meta.get("scale")):
        # Model Optimizer baked (x - mean_values) / scale_values into the IR: it takes 0-255 pixels
        return raw_pixels(up), \
            f"OpenVINO IR mean_values={meta.get('mean_values')} scale_values={meta.get('scale_values')} (baked in)"
    return None, ""


def raw_pixels(up: PreprocessSpec) -> PreprocessSpec:
    """``up`` fed as raw 0-255 pixels (no scale, mean or std): what a model with its normalization baked in takes."""
    return up.replace(scale=1.0, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
