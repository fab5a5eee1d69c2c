"""Helpers shared by the torch-based adapters (torchvision, timm, mmcls). Imported only in a torch worker."""
from __future__ import annotations

import copy
from pathlib import Path
import warnings
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn

from .base import AdapterError, check_state_dict_fits

torch.set_num_threads(max(1, torch.get_num_threads()))
LOGIT_STD_TARGET = 4.0  # seeded heads are scaled so logits over the calibration batch have this std


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
    except Exception as e:
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
    """Deterministic weights with realistic statistics.

    Default init gives |logits| ~ 1e-9 in eval mode (zero BN running mean, unit var, tiny classifier),
    which makes any parity check vacuous. Here: He-normal convs, random BN affine, BN running statistics
    calibrated on a seeded image batch (so every layer sees realistic, non-degenerate activations), and
    a classifier whose logits over that batch are centred and have std ``LOGIT_STD_TARGET``.
    """
    g = torch.Generator().manual_seed(seed)
    bns: list[nn.modules.batchnorm._BatchNorm] = []
    linears: list[nn.Linear] = []
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.25)
                bns.append(m)
            elif isinstance(m, nn.Linear):
                linears.append(m)
        if not linears:
            raise AdapterError("seeded weights: no nn.Linear classifier found")
        head = linears[-1]
        # BN running statistics from a real forward pass (cumulative average over the batch)
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
        f = feats[-1].reshape(len(x), -1)
        w = torch.randn(head.weight.shape, generator=g)
        mu = f.mean(0)
        logits = (f - mu) @ w.T
        scale = LOGIT_STD_TARGET / float(logits.std().clamp_min(1e-12))
        head.weight.copy_(w * scale)
        head.bias.copy_(-(w * scale) @ mu + torch.randn(head.bias.shape, generator=g) * 0.5)
    model.eval()


def inject_fault(model: nn.Module, fault: str | None) -> tuple[nn.Module, Callable[[torch.Tensor], torch.Tensor]]:
    """Return (model copy with the fault, output post-processing)."""
    post: Callable[[torch.Tensor], torch.Tensor] = lambda y: y
    if fault is None:
        return model, post
    model = copy.deepcopy(model)
    with torch.no_grad():
        if fault == "conv_channel_scale":
            conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
            conv.weight[0].mul_(1.01)
        elif fault == "bn_eps":
            for m in model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eps = 1e-3
        elif fault == "softmax":
            post = lambda y: torch.softmax(y, dim=-1)
        else:
            raise AdapterError(f"fault {fault!r} is not supported by the torch adapters")
    return model, post


def forward(model: nn.Module, x: np.ndarray, fault: str | None) -> np.ndarray:
    m, post = inject_fault(model, fault)
    with torch.no_grad():
        y = post(m(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))))
    return y.numpy()


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


class TorchAdapter:
    """Mixin for torch adapters: subclasses provide ``create(card) -> nn.Module`` (and derive_spec/versions)."""

    def create(self, card: dict) -> nn.Module:
        raise NotImplementedError

    def build(self, card: dict, weights: dict) -> nn.Module:
        model = self.create(card)
        padding = card.get("build", {}).get("padding", "symmetric")
        if padding == "same" and getattr(model, "_mbv2_padding", "symmetric") != "same":
            tf_same_padding(model)
        elif padding not in ("same", "symmetric"):
            raise AdapterError(f"unknown padding {padding!r}; use 'symmetric' or 'same'")
        model._mbv2_padding = padding
        return self.apply_weights(model, card, weights).eval()

    def seed_weights(self, model, seed, calib):
        seed_weights(model, seed, calib)

    def import_canonical(self, model, canon, fault=None):
        return import_canonical(model, canon, fault)

    def load_file(self, model, path):
        load_state(self.weights_target(model), load_checkpoint(path), Path(path).name, self.framework)

    def weights_target(self, model: nn.Module) -> nn.Module:
        """The module a native checkpoint's state_dict belongs to."""
        return model

    def export_canonical(self, model) -> dict:
        return export_canonical(model, getattr(model, "_mbv2_padding", "symmetric"))

    def activations(self, model, x):
        return activations(model, x)

    def save_native(self, model, path):
        target = self.weights_target(model)
        target._mbv2_padding = getattr(model, "_mbv2_padding", "symmetric")
        return save_native(target, path)

    def forward(self, model, x, fault):
        return forward(model, x, fault)

    def export_onnx(self, model, path, opset, exporter):
        with torch.no_grad():
            return export_onnx(model, path, opset, exporter)

    def count_params(self, model):
        return count_params(model)

    def count_native(self, model):
        return count_native(model)


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


def tf_same_padding(model: nn.Module) -> nn.Module:
    """Rebuild every stride-2 conv with TF 'SAME' padding (pad computed from the input size: 0 top/left, 1
    bottom/right at even sizes) instead of torch's symmetric padding 1: how TF/keras-trained weights expect it."""
    import torch.nn.functional as F

    def pre(mod, args):
        x = args[0]
        h, w = x.shape[-2:]
        kh, kw = mod.kernel_size
        sh, sw = mod.stride
        ph = max((-(-h // sh) - 1) * sh + kh - h, 0)
        pw = max((-(-w // sw) - 1) * sw + kw - w, 0)
        return (F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)),)

    for m in model.modules():
        if isinstance(m, nn.Conv2d) and tuple(m.stride) == (2, 2):
            m.padding = (0, 0)
            m.register_forward_pre_hook(pre)
    model._mbv2_padding = "same"
    return model


def export_canonical(model: nn.Module, padding: str) -> dict:
    units, fc = conv_bn_units(model)
    eps = {float(bn.eps) for _, bn in units}
    if len(eps) != 1:
        raise AdapterError(f"BatchNorm epsilons differ inside the model: {sorted(eps)}")
    from parity.canonical import BN_FIELDS, CLASSIFIER, UNITS
    if len(units) != len(UNITS):
        raise AdapterError(f"{len(units)} conv units, canonical MobileNetV2 has {len(UNITS)}")
    t: dict[str, np.ndarray] = {}
    for u, (conv, bn) in zip(UNITS, units):
        t[f"{u.conv}.weight"] = conv.weight.detach().numpy().astype(np.float32)
        for f in BN_FIELDS:
            t[f"{u.bn}.{f}"] = getattr(bn, f).detach().numpy().astype(np.float32)
    t[f"{CLASSIFIER}.weight"] = fc.weight.detach().numpy().astype(np.float32)
    t[f"{CLASSIFIER}.bias"] = fc.bias.detach().numpy().astype(np.float32)
    return {"tensors": t, "bn_eps": eps.pop(), "padding": padding}


def import_canonical(model: nn.Module, canon, fault: str | None = None) -> nn.Module:
    """Copy canonical tensors bit for bit; every BN epsilon becomes the canonical one (so the statistics mean what
    they meant where they came from). ``fault='transpose_dw:<unit>'`` transposes one depthwise kernel (kh<->kw)."""
    from parity.canonical import BN_FIELDS, UNITS
    units, fc = conv_bn_units(model)
    if len(units) != len(UNITS):
        raise AdapterError(f"{len(units)} conv units, canonical MobileNetV2 has {len(UNITS)}")
    bad_unit = int(fault.split(":")[1]) if fault and fault.startswith("transpose_dw:") else None
    with torch.no_grad():
        for u, (conv, bn) in zip(UNITS, units):
            w = canon.conv(u)
            if tuple(conv.weight.shape) != w.shape:
                raise AdapterError(f"width mismatch at {u.label}: model conv {tuple(conv.weight.shape)} vs canonical "
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
        key = f"{names[id(bn)]}.running_var"
        new = (bn.running_var.double() + float(bn.eps) - stock_eps).float()
        shift = max(shift, float((new - bn.running_var).abs().max()))
        sd[key] = new
    torch.save(sd, path)
    return {"path": path, "bn_eps_written_for": stock_eps, "max_var_shift": shift}
