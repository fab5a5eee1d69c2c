"""Helpers shared by the torch-based adapters (torchvision, timm, mmcls). Imported only in a torch worker."""
from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from parity.kit import SeededRecipe, shift_variance

from .base import AdapterError, DepthMismatch, WidthMismatch, check_state_dict_fits, transpose_dw_unit  # noqa: F401
from .torch_deploy import TorchScriptDeploy

torch.set_num_threads(max(1, torch.get_num_threads()))


def versions() -> dict[str, str]:
    import onnx
    out = {"torch": torch.__version__, "onnx": onnx.__version__, "numpy": np.__version__}
    return out


def load_checkpoint(path: str) -> dict[str, torch.Tensor]:
    """``torch.load(weights_only=True)``: a pickle that needs more than tensors is refused, never executed."""
    import pickle
    name = Path(path).name
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:  # torch's own text suggests weights_only=False: never pass that on
        what = next((ln.strip() for ln in str(e).splitlines() if "GLOBAL" in ln or "Unsupported" in ln), "")
        raise AdapterError(f"{name}: refused: the pickle needs more than tensors to load ({what[:160]})",
                           hint="only plain state dicts are loaded; re-save the weights with "
                                "torch.save(model.state_dict(), path)") from None
    except Exception as e:  # noqa: BLE001 - torch.load raises many types for one verdict: not a checkpoint
        raise AdapterError(f"{name}: cannot load as a torch checkpoint ({type(e).__name__}: "
                           f"{str(e).splitlines()[0][:160] if str(e) else ''})",
                           hint="the file is corrupt or not a torch weight file; re-download it") from None
    for k in ("state_dict", "model", "state_dict_ema"):
        if isinstance(sd, dict) and k in sd and isinstance(sd[k], dict):
            sd = sd[k]
            break
    return sd


def load_state(model: nn.Module, sd: dict[str, torch.Tensor], name: str = "weights", framework: str = "torch") -> None:
    """Every tensor matched by name and shape first (the first mismatch named with both shapes), then loaded."""
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise AdapterError(f"{name}: not a state dict of tensors", hint="re-save with torch.save(model.state_dict())")
    check_state_dict_fits(name, framework, {k: tuple(v.shape) for k, v in model.state_dict().items()},
                          {k: tuple(v.shape) for k, v in sd.items()})
    model.load_state_dict(sd, strict=False)


def seed_weights(model: nn.Module, seed: int, calib: np.ndarray) -> None:
    """``parity.kit.SeededRecipe`` in torch terms: He-normal convs, random BN affine, BN running statistics as the
    calibration batch's (one training-mode pass, cumulative average), a classifier scaled to logit std 4."""
    recipe = SeededRecipe(seed)
    bns: list[nn.modules.batchnorm._BatchNorm] = []
    linears: list[nn.Linear] = []
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.copy_(torch.from_numpy(recipe.conv(tuple(m.weight.shape), m.weight[0].numel())))
                if m.bias is not None:
                    m.bias.copy_(torch.from_numpy(recipe.conv_bias(m.bias.numel())))
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                g, b = recipe.bn_affine(m.weight.numel())
                m.weight.copy_(torch.from_numpy(g))
                m.bias.copy_(torch.from_numpy(b))
                bns.append(m)
            elif isinstance(m, nn.Linear):
                linears.append(m)
        if not linears:
            raise AdapterError("seeded weights: no nn.Linear classifier found")
        head = linears[-1]
        saved = [(bn, bn.momentum) for bn in bns]
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None
        x = torch.from_numpy(np.ascontiguousarray(calib, dtype=np.float32))
        model.train()
        model(x)  # BN statistics only: anything random in train mode (dropout) must not reach the head below
        model.eval()
        for bn, mom in saved:
            bn.momentum = mom
        feats: list[torch.Tensor] = []
        hook = head.register_forward_hook(lambda mod, inp, out: feats.append(inp[0].detach()))
        model(x)  # eval mode: deterministic head features (torchvision's classifier has Dropout(0.2))
        hook.remove()
        w, b = recipe.head(feats[-1].reshape(len(x), -1).numpy(), head.weight.shape[0])
        head.weight.copy_(torch.from_numpy(w))
        head.bias.copy_(torch.from_numpy(b))
    model.eval()


def fault_model(model: nn.Module, fault) -> nn.Module:
    """A model-stage fault (``parity.faults``) applied to ``model`` (already a copy)."""
    with torch.no_grad():
        if fault.name == "conv_channel_scale":
            conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
            conv.weight[0].mul_(1.01)
        elif fault.name == "bgr_input":
            conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
            conv.weight.copy_(conv.weight.flip(1))
        elif fault.name == "bn_eps":
            for m in model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eps = 1e-3
        else:
            raise AdapterError(f"fault {fault} is not supported by the torch adapters")
    return model


def forward(model: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()


EXPORTERS = ("torchscript", "dynamo", "keep-bn")


def export_onnx(model: nn.Module, path: str, opset: int, exporter: str, input_hw: int = 224) -> dict:
    """``torch.onnx.export``; default exporter: TorchScript-based (``dynamo=False``), dynamic batch."""
    if exporter == "default":
        exporter = "torchscript"
    if exporter not in EXPORTERS:
        raise AdapterError(f"unknown torch exporter {exporter!r}; known: {EXPORTERS}")
    x = torch.zeros(1, 3, input_hw, input_hw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "torchscript":
            torch.onnx.export(model, (x,), path, opset_version=opset, dynamo=False,
                              input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
        elif exporter == "keep-bn":  # the counting graph: no conv+BN fusion, no constant folding
            torch.onnx.export(model, (x,), path, opset_version=opset, dynamo=False,
                              training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False,
                              input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
        else:
            torch.onnx.export(model, (x,), path, opset_version=opset, dynamo=True, verbose=False,
                              input_names=["input"], output_names=["logits"],
                              dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=1024)},))
    return {"exporter": exporter, "opset": opset, "torch": torch.__version__}


def count_params(model: nn.Module) -> dict[str, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    bn_stats = sum(b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var")))
    nbt = sum(b.numel() for n, b in model.named_buffers() if n.endswith("num_batches_tracked"))
    bn_affine = sum(p.numel() for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
                    for p in m.parameters(recurse=False))
    return {"trainable": trainable, "with_bn_stats": trainable + bn_stats,
            "with_num_batches_tracked": trainable + bn_stats + nbt, "without_bn": trainable - bn_affine}


def interp_name(mode: Any) -> str:
    """torchvision InterpolationMode / string -> spec interpolation name."""
    return str(getattr(mode, "value", mode)).lower()


class TorchAdapter(TorchScriptDeploy):
    """Mixin for torch adapters: subclasses provide ``create(card) -> nn.Module`` (and derive_spec/versions/meta)."""

    framework: str

    def set_padding(self, model: nn.Module, padding: str) -> nn.Module:
        if padding == "same" and getattr(model, "_mbv2_padding", "symmetric") != "same":
            tf_same_padding(model)
        elif padding not in ("same", "symmetric"):
            raise AdapterError(f"unknown padding {padding!r}; use 'symmetric' or 'same'")
        model._mbv2_padding = padding
        return model.eval()

    def seed_weights(self, model, seed, calib):
        seed_weights(model, seed, calib)

    def import_canonical(self, model, canon, transpose_dw=None):
        return import_canonical(model, canon, transpose_dw)

    def load_file(self, model, path):
        load_state(self.weights_target(model), load_checkpoint(path), Path(path).name, self.framework)

    def weights_target(self, model: nn.Module) -> nn.Module:
        """The module a native checkpoint's state_dict belongs to."""
        return model

    def state_shapes(self, model):
        return {k: tuple(v.shape) for k, v in self.weights_target(model).state_dict().items()
                if not k.endswith("num_batches_tracked")}

    def file_shapes(self, model, path):
        return {k: tuple(v.shape) for k, v in load_checkpoint(path).items() if not k.endswith("num_batches_tracked")}

    def export_canonical(self, model) -> dict:
        return export_canonical(model, getattr(model, "_mbv2_padding", "symmetric"))

    def activations(self, model, x):
        return activations(model, x)

    def save_native(self, model, path):
        return save_native(self.weights_target(model), path)

    def forward(self, model, x):
        return forward(model, x)

    def copy_model(self, model):
        return copy.deepcopy(model)

    def fault_model(self, model, fault):
        return fault_model(model, fault)

    def export_onnx(self, model, path, opset, exporter):
        with torch.no_grad():
            return export_onnx(model, path, opset, exporter, input_hw(model))

    def count_params(self, model):
        return count_params(model)

    def count_native(self, model):
        return count_native(model, input_hw(model))


def input_hw(model: nn.Module) -> int:
    """The input size the card builds the model for (224 unless ``build.input_size`` says otherwise)."""
    return int(getattr(model, "_mbv2_input_size", 224))


def count_native(model: nn.Module, input_hw: int = 224) -> dict[str, int]:
    """thop and ptflops, run on the native module (they count by nn.Module type, see parity/flops.py)."""
    import contextlib
    import io
    out: dict[str, int] = {}
    x = torch.zeros(1, 3, input_hw, input_hw)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        import thop
        m = copy.deepcopy(model).eval()
        out["thop"] = int(thop.profile(m, inputs=(x,), verbose=False)[0])
        import ptflops
        macs, _ = ptflops.get_model_complexity_info(copy.deepcopy(model).eval(), (3, input_hw, input_hw),
                                                    as_strings=False, print_per_layer_stat=False, backend="pytorch")
        out["ptflops"] = int(macs)
    return out


# ---------------------------------------------------------------------------------------------- canonical weights
# The 52 conv units of MobileNetV2 in forward (= registration) order, each with the BatchNorm that follows it,
# and the classifier. Same code for torchvision, timm and mmpretrain: their modules register in forward order.

def conv_bn_units(model: nn.Module) -> tuple[list[tuple[nn.Conv2d, nn.modules.batchnorm._BatchNorm]], nn.Linear]:
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if len(convs) != len(bns) or not linears:
        raise AdapterError(f"model has {len(convs)} convs and {len(bns)} BatchNorms: not a conv+BN MobileNetV2")
    return list(zip(convs, bns)), linears[-1]


def same_pad(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int]) -> torch.Tensor:
    """TF 'SAME' padding of ``x`` for a conv of ``kernel``/``stride`` (pad from the input size: 0 top/left, 1
    bottom/right at even sizes); works on quantized tensors too (the pad is a real 0)."""
    import torch.nn.functional as F
    # Python ints, also when traced for ONNX: the pads become constants of the export's input size (a card's size is
    # fixed; the batch stays dynamic) instead of Shape->Gather->Div arithmetic, which onnxconverter-common's fp16
    # conversion breaks (ORT then refuses the fp16 file: issue 24, timm 100 with the real TF-SAME weights)
    h, w = int(x.shape[-2]), int(x.shape[-1])
    (kh, kw), (sh, sw) = kernel, stride
    ph = max((-(-h // sh) - 1) * sh + kh - h, 0)
    pw = max((-(-w // sw) - 1) * sw + kw - w, 0)
    return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))


class SamePad(nn.Module):
    """``same_pad`` as a module, for where a pre-hook cannot go (a traced quantized model)."""

    def __init__(self, kernel: tuple[int, int], stride: tuple[int, int]) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return same_pad(x, self.kernel, self.stride)


def same_hook(kernel: tuple[int, int], stride: tuple[int, int]):
    """A forward pre-hook applying ``same_pad``; kernel and stride are bound here (``hook.same``), not read from the
    module: eager quantization's fusion moves the hook onto a ``ConvReLU2d``, which has neither."""
    def pre(mod, args):
        return (same_pad(args[0], kernel, stride),)
    pre.same = (kernel, stride)  # type: ignore[attr-defined]
    return pre


def tf_same_padding(model: nn.Module) -> nn.Module:
    """Rebuild every stride-2 conv with TF 'SAME' padding instead of torch's symmetric padding 1: how TF/keras-trained
    weights expect it."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and tuple(m.stride) == (2, 2):
            m.padding = (0, 0)
            m.register_forward_pre_hook(same_hook(tuple(m.kernel_size), tuple(m.stride)))
    model._mbv2_padding = "same"
    return model


def export_canonical(model: nn.Module, padding: str) -> dict:
    units, fc = conv_bn_units(model)
    eps = {float(bn.eps) for _, bn in units}
    if len(eps) != 1:
        raise AdapterError(f"BatchNorm epsilons differ inside the model: {sorted(eps)}")
    from parity.weights.canonical import BN_FIELDS, CLASSIFIER, UNITS
    if len(units) != len(UNITS):
        raise DepthMismatch(f"{len(units)} conv units, canonical MobileNetV2 has {len(UNITS)}")
    t: dict[str, np.ndarray] = {}
    for u, (conv, bn) in zip(UNITS, units):
        t[f"{u.conv}.weight"] = conv.weight.detach().numpy().astype(np.float32)
        for f in BN_FIELDS:
            t[f"{u.bn}.{f}"] = getattr(bn, f).detach().numpy().astype(np.float32)
    t[f"{CLASSIFIER}.weight"] = fc.weight.detach().numpy().astype(np.float32)
    t[f"{CLASSIFIER}.bias"] = fc.bias.detach().numpy().astype(np.float32)
    return {"tensors": t, "bn_eps": eps.pop(), "padding": padding}


def import_canonical(model: nn.Module, canon, bad_unit: int | None = None) -> nn.Module:
    """Copy canonical tensors bit for bit; every BN epsilon becomes the canonical one (so the statistics mean what
    they meant where they came from). ``bad_unit`` (the ``transpose_dw`` fault) transposes that unit's depthwise
    kernel (kh<->kw)."""
    from parity.weights.canonical import UNITS
    units, fc = conv_bn_units(model)
    if len(units) != len(UNITS):
        raise DepthMismatch(f"{len(units)} conv units, canonical MobileNetV2 has {len(UNITS)}")
    with torch.no_grad():
        for u, (conv, bn) in zip(UNITS, units):
            w = canon.conv(u)
            if tuple(conv.weight.shape) != w.shape:
                raise WidthMismatch(f"width mismatch at {u.label}: model conv {tuple(conv.weight.shape)} vs canonical "
                                   f"{w.shape}", hint="build the variant whose width matches the weights")
            if u.index == bad_unit:
                w = np.ascontiguousarray(w.transpose(0, 1, 3, 2))
            conv.weight.copy_(torch.from_numpy(w))
            for f, v in canon.bn(u).items():
                getattr(bn, f).copy_(torch.from_numpy(v))
            bn.eps = float(canon.bn_eps)
        fw, fb = canon.fc
        if tuple(fc.weight.shape) != fw.shape:
            raise AdapterError(f"classifier {tuple(fc.weight.shape)} vs canonical {fw.shape}")
        fc.weight.copy_(torch.from_numpy(fw))
        fc.bias.copy_(torch.from_numpy(fb))
    return model.eval()


def activations(model: nn.Module, x: np.ndarray) -> list[np.ndarray]:
    """Each unit's BatchNorm output (before its activation), NCHW, in unit order."""
    units, _ = conv_bn_units(model)
    outs: list[np.ndarray] = []
    hooks = []
    for _, bn in units:
        target = getattr(bn, "drop", None) if hasattr(bn, "act") else bn  # timm BatchNormAct2d: bn -> drop -> act
        target = target if target is not None else bn
        hooks.append(target.register_forward_hook(lambda m, i, o: outs.append(o.detach().clone().numpy())))
    try:
        with torch.no_grad():
            model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
    finally:
        for h in hooks:
            h.remove()
    return outs


def save_native(model: nn.Module, path: str, stock_eps: float = 1e-5) -> dict:
    """state_dict for a stock model (BN eps ``stock_eps``): running_var shifted so var + eps is unchanged."""
    units, _ = conv_bn_units(model)
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    names = {id(bn): n for n, bn in model.named_modules()}
    shift = 0.0
    for _, bn in units:
        new, moved = shift_variance(bn.running_var.numpy(), float(bn.eps), stock_eps)
        shift = max(shift, moved)
        sd[f"{names[id(bn)]}.running_var"] = torch.from_numpy(new)
    torch.save(sd, path)
    return {"path": path, "bn_eps_written_for": stock_eps, "max_var_shift": shift}
