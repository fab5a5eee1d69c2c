"""torchvision's own quantized MobileNetV2, a deployment runtime of the torch stack for torchvision models
(``torch-qnnpack`` / ``torch-fbgemm``): ``torchvision.models.quantization``'s eager-mode recipe, as its builder
``mobilenet_v2(quantize=True)`` runs it -- ``QuantizableMobileNetV2`` (QuantStub/DeQuantStub, ``FloatFunctional`` adds),
``_replace_relu`` (every ReLU6 becomes a ReLU), ``fuse_model()``, the backend's qconfig (``quantize_model``), prepare,
calibration, convert -- saved as TorchScript and loaded and run with ``torch.backends.quantized.engine`` set to the
backend (restored after). torch has no per-module read-back of the engine: what is read back is each quantized
weight's ``qscheme()`` and the module's ``quantized::`` ops.

Calibration is the suite's calibration set (the card's spec); with ``quantized_state`` the published quantized state
dict (``IMAGENET1K_QNNPACK_V1``, quantization-aware trained) is loaded instead, as the builder does with weights.

What the recipe changes besides quantizing is measured, not assumed: the unquantized quantizable model (ReLU in place
of ReLU6) against the float model on the first calibration images (``architecture_sqnr_db``)."""
from __future__ import annotations

import contextlib
import warnings
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from parity.kit import sqnr_db

from .base import AdapterError
from .torch_common import SamePad, load_checkpoint, tf_same_padding
from .torch_deploy import forward_chunked

ENGINES = ("qnnpack", "fbgemm")
SCHEMES = {"qnnpack": "per_tensor_affine", "fbgemm": "per_channel_affine"}   # the weights each recipe makes
ARCH_IMAGES = 32          # images the unquantized quantizable model is compared on


def qconfig(engine: str):
    """``torchvision.models.quantization.utils.quantize_model``'s qconfig for ``engine`` (the one its published
    weights were serialized with): 7-bit MinMax activations, per-tensor (qnnpack) or per-channel (fbgemm) weights."""
    q = torch.ao.quantization
    weight = q.default_weight_observer if engine == "qnnpack" else q.default_per_channel_weight_observer
    return q.QConfig(activation=q.default_observer, weight=weight)


def _quantizable(model: nn.Module, width_mult: float) -> tuple[nn.Module, int]:
    """torchvision's QuantizableMobileNetV2 holding ``model``'s weights, with the builder's ReLU6 -> ReLU."""
    from torchvision.models import MobileNetV2
    from torchvision.models.quantization.mobilenetv2 import QuantizableInvertedResidual, QuantizableMobileNetV2
    from torchvision.models.quantization.utils import _replace_relu
    if not isinstance(model, MobileNetV2):
        raise AdapterError(f"{type(model).__name__} is not torchvision's MobileNetV2: torchvision's quantization "
                           "recipe applies to torchvision models only")
    q = QuantizableMobileNetV2(block=QuantizableInvertedResidual, num_classes=model.classifier[-1].out_features,
                               width_mult=width_mult)
    relu6 = sum(type(m) is nn.ReLU6 for m in q.modules())
    _replace_relu(q)
    try:
        q.load_state_dict(model.state_dict(), strict=True)
    except RuntimeError as e:
        raise AdapterError(f"the built model does not fit torchvision's QuantizableMobileNetV2: "
                           f"{str(e).splitlines()[0][:160]}",
                           hint="a structural fault or a modified model cannot take torchvision's recipe") from None
    for a, b in zip((m for m in model.modules() if isinstance(m, nn.BatchNorm2d)),
                    (m for m in q.modules() if isinstance(m, nn.BatchNorm2d)), strict=True):
        b.eps = a.eps      # a model-stage fault (bn_eps) reaches the quantized model too
    if getattr(model, "_mbv2_padding", "symmetric") == "same":
        tf_same_padding(q)
    return q.eval(), relu6


def _hooks_to_pads(module: nn.Module) -> int:
    """After convert: every module carrying a ``same_hook`` (moved there by fusion and convert) loses it and gets a
    ``SamePad`` in front: ``torch.jit.trace`` compiles hooks, and fails on the quantized fused modules' ones."""
    n = 0
    for name, child in list(module.named_children()):
        hooks = child._forward_pre_hooks
        mine = {k: h for k, h in hooks.items() if hasattr(h, "same")}
        if len(mine) > 1:
            raise AdapterError(f"{name}: {len(mine)} SAME-padding hooks on one module")
        if mine:
            (k, h), = mine.items()
            del hooks[k]
            module._modules[name] = nn.Sequential(SamePad(*h.same), child)
            n += 1
        else:
            n += _hooks_to_pads(child)
    return n


@contextlib.contextmanager
def quantized_engine(engine: str):
    """``torch.backends.quantized.engine`` set to ``engine`` for the block (prepare, convert, trace, export, load and
    run: packed weights and ops such as ``quantized::add`` follow it), restored after."""
    if engine not in ENGINES or engine not in torch.backends.quantized.supported_engines:
        raise AdapterError(f"quantized engine {engine!r} is not available in torch {torch.__version__}",
                           hint=f"this torch has {', '.join(torch.backends.quantized.supported_engines)}")
    saved = torch.backends.quantized.engine
    torch.backends.quantized.engine = engine
    try:
        yield
    finally:
        torch.backends.quantized.engine = saved


def quantize(model: nn.Module, engine: str, width_mult: float, calib: np.ndarray | None,
             state: str | None, save_state: str | None = None) -> tuple[nn.Module, dict]:
    """torchvision's recipe on ``model``'s weights: calibrated on ``calib``, or loading the quantized ``state`` (then
    ``calib`` only measures the architecture). ``save_state``: where to write the quantized state dict, as
    torchvision publishes one."""
    if calib is None and state is None:
        raise AdapterError("torch quantization needs a calibration set or a quantized state dict")
    if torch.backends.quantized.engine != engine:
        raise AdapterError(f"quantize({engine!r}) called with the {torch.backends.quantized.engine} engine set: "
                           "a bug (use quantized_engine)")
    q, relu6 = _quantizable(model, width_mult)
    made: dict[str, Any] = {"recipe": "torchvision.models.quantization eager mode (quantize_model's qconfig)",
                            "relu6_replaced_by_relu": relu6}
    if calib is not None:
        sample = calib[:ARCH_IMAGES]
        ref, arch = forward_chunked(model, sample), forward_chunked(q, sample)   # q unquantized yet: ReLU for ReLU6 only
        made["architecture_sqnr_db"] = round(sqnr_db(ref, arch), 2)
        made["architecture_top1_agree"] = float(np.mean(ref.argmax(1) == arch.argmax(1)))
        made["architecture_images"] = len(sample)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # torch.ao.quantization's deprecation notices (the recipe is torchvision's)
        q.fuse_model(is_qat=False)
        q.qconfig = qconfig(engine)
        torch.ao.quantization.prepare(q, inplace=True)
        hw = int(getattr(model, "_mbv2_input_size", 224))
        forward_chunked(q, np.zeros((1, 3, hw, hw), np.float32) if calib is None or state is not None else calib)
        torch.ao.quantization.convert(q, inplace=True)
    if state is not None:
        try:
            q.load_state_dict(load_checkpoint(state), strict=True)
        except RuntimeError as e:
            raise AdapterError(f"{state}: not a quantized state dict of torchvision's {engine} MobileNetV2 "
                               f"({str(e).splitlines()[0][:160]})",
                               hint="the file must be a state dict of torchvision.models.quantization.mobilenet_v2"
                                    "(quantize=True) at the card's width") from None
        made["loaded_state"] = state
    if save_state:
        torch.save(q.state_dict(), save_state)
        made["state_dict"] = save_state
    made["same_pads"] = _hooks_to_pads(q)
    if calib is not None and state is None:   # the quantization alone: the int8 model against its own unquantized architecture
        made["quantization_sqnr_db"] = round(sqnr_db(arch, forward_chunked(q, sample)), 2)
    schemes: dict[str, int] = {}
    for m in q.modules():
        w = getattr(m, "weight", None)
        if callable(w):
            s = str(w().qscheme()).replace("torch.", "")
            schemes[s] = schemes.get(s, 0) + 1
    made.update({"engine_set": engine, "weight_qschemes": schemes, "recipe_scheme": SCHEMES[engine],
                 "activation_observer_configured": "MinMaxObserver quint8 0..127 (default_observer)",
                 "input_quantization": {"scale": float(q.quant.scale), "zero_point": int(q.quant.zero_point)}})
    return q, made
