"""Paddle-side helpers of the PaddleClas adapter: TF-'SAME' padding, canonical weights in and out (with the t=1
block's extra expand conv), per-unit activations, the native weight file and paddle.flops's own counter rules.
Imported only in a Paddle worker."""
from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import time
import warnings

import numpy as np
import paddle

from parity.kit import shift_variance

from .base import AdapterError, WidthMismatch, quiet_fds


def bns(model):
    return [m for m in model.sublayers() if isinstance(m, (paddle.nn.BatchNorm, paddle.nn.BatchNorm2D))]


def tf_same_padding(model) -> None:
    """Stride-2 convs with paddle's own TF-'SAME' padding algorithm (the conv op attribute, so it survives
    ``paddle.jit.save`` and paddle2onnx; a Python pre-hook would not)."""
    for m in model.sublayers():
        if isinstance(m, paddle.nn.Conv2D) and list(m._stride) == [2, 2]:
            m._padding = "SAME"
            m._updated_padding = [0, 0]
            m._padding_algorithm = "SAME"


def export_onnx(model, path: str, opset: int, exporter: str) -> dict:
    """``paddle.jit.save`` then ``paddle2onnx.export`` (the two steps of ``paddle.onnx.export``, separately: see the adapter)."""
    if exporter not in ("default", "paddle2onnx", "keep-bn"):  # keep-bn: the counting graph (same export)
        raise AdapterError(f"unknown ppcls exporter {exporter!r}; known: ('paddle2onnx',)")
    import paddle2onnx
    import polygraphy.config
    from polygraphy.logger import G_LOGGER
    polygraphy.config.AUTOINSTALL_DEPS = False
    G_LOGGER.module_severity = G_LOGGER.ERROR
    from paddle.static import InputSpec

    timings: dict[str, float] = {}
    spec = [InputSpec([None, 3, 224, 224], "float32", "input")]
    logging.getLogger("paddle2onnx").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="ppcls-static-") as tmp, warnings.catch_warnings(), \
            contextlib.redirect_stdout(io.StringIO()), quiet_fds():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        paddle.jit.save(model, os.path.join(tmp, "model"), input_spec=spec)
        timings["jit_save"] = time.perf_counter() - t0
        model_file = next((os.path.join(tmp, f) for f in ("model.json", "model.pdmodel")
                           if os.path.isfile(os.path.join(tmp, f))), None)
        if model_file is None:
            raise AdapterError("paddle.jit.save wrote no static program")
        t0 = time.perf_counter()
        paddle2onnx.export(model_file, os.path.join(tmp, "model.pdiparams"), path, opset_version=opset,
                           auto_upgrade_opset=False, enable_onnx_checker=True, verbose=False)
        timings["paddle2onnx_export"] = time.perf_counter() - t0
    model.eval()  # jit.save may leave the layer in a traced state; keep eval mode for later forwards
    if not os.path.isfile(path):
        raise AdapterError(f"paddle2onnx wrote no ONNX file at {path}")
    if polygraphy.config.AUTOINSTALL_DEPS:
        raise AdapterError("polygraphy auto-install was switched back on during export")
    return {"exporter": "paddle.jit.save+paddle2onnx.export", "opset": opset,
            "paddle2onnx": paddle2onnx.__version__, "step_seconds": timings,
            "polygraphy_autoinstall": bool(polygraphy.config.AUTOINSTALL_DEPS)}


class PaddleCanonical:
    @staticmethod
    def units(model):
        layers = [m for m in model.sublayers() if hasattr(m, "_conv") and hasattr(m, "_batch_norm")]
        if not layers or not hasattr(model, "out"):
            raise AdapterError("not a PaddleClas MobileNetV2 (paddle.vision's model has no canonical mapping here)")
        return layers, model.out

    EXTRA = 1  # ppcls unit 1: the 1x1 expand conv PaddleClas keeps in the t=1 block (torchvision has none)

    def import_canonical(self, model, canon, bad_unit: int | None = None):
        """Canonical -> PaddleClas: the extra t=1 expand conv becomes an exact identity (its input is the stem's
        ReLU6 output, already in [0, 6], so ReLU6(identity(x)) == x)."""
        from parity.weights.canonical import UNITS
        layers, fc = self.units(model)
        if len(layers) != len(UNITS) + 1:
            raise AdapterError(f"{len(layers)} conv units, PaddleClas MobileNetV2 has {len(UNITS) + 1}")
        mapped = layers[:self.EXTRA] + layers[self.EXTRA + 1:]
        eps = np.float32(canon.bn_eps)
        for u, layer in zip(UNITS, mapped):
            w = canon.conv(u)
            if list(layer._conv.weight.shape) != list(w.shape):
                raise WidthMismatch(
                    f"width mismatch at {u.label}: PaddleClas conv {list(layer._conv.weight.shape)} vs canonical "
                    f"{list(w.shape)} (PaddleClas rounds widths with int(), torchvision/keras with make_divisible: "
                    f"these channel counts cannot match)", hint="transplant between width 1.0 models")
            if u.index == bad_unit:
                w = w.transpose(0, 1, 3, 2)
            layer._conv.weight.set_value(np.ascontiguousarray(w, dtype=np.float32))
            b = canon.bn(u)
            bn = layer._batch_norm
            bn.weight.set_value(b["weight"])
            bn.bias.set_value(b["bias"])
            bn._mean.set_value(b["running_mean"])
            bn._variance.set_value(b["running_var"])
        c = int(layers[self.EXTRA]._conv.weight.shape[0])
        if list(layers[self.EXTRA]._conv.weight.shape) != [c, c, 1, 1]:
            raise AdapterError("PaddleClas t=1 expand conv is not square 1x1: cannot be an identity")
        var = np.float32(1.0) - eps                 # var + eps == 1 exactly in float32, so BN is the identity
        while np.float32(var + eps) != np.float32(1.0):
            var = np.nextafter(var, np.float32(2.0) if var + eps < 1 else np.float32(0.0))
        ident = layers[self.EXTRA]
        ident._conv.weight.set_value(np.eye(c, dtype=np.float32).reshape(c, c, 1, 1))
        ident._batch_norm.weight.set_value(np.ones(c, np.float32))
        ident._batch_norm.bias.set_value(np.zeros(c, np.float32))
        ident._batch_norm._mean.set_value(np.zeros(c, np.float32))
        ident._batch_norm._variance.set_value(np.full(c, var, np.float32))
        for bn in bns(model):
            bn._epsilon = float(canon.bn_eps)
        fw, fb = canon.fc
        if list(fc.weight.shape) != [fw.shape[1], fw.shape[0]]:
            raise AdapterError(f"classifier {list(fc.weight.shape)} vs canonical {list(fw.T.shape)}")
        fc.weight.set_value(np.ascontiguousarray(fw.T))
        fc.bias.set_value(fb)
        return model

    def export_canonical(self, model) -> dict:
        from parity.weights.canonical import CLASSIFIER, UNITS
        layers, fc = self.units(model)
        ident = layers[self.EXTRA]
        c = int(ident._conv.weight.shape[0])
        bn = ident._batch_norm
        scale = bn.weight.numpy() / np.sqrt(bn._variance.numpy() + bn._epsilon)
        shift = bn.bias.numpy() - bn._mean.numpy() * scale
        if not (np.array_equal(ident._conv.weight.numpy().reshape(c, c), np.eye(c, dtype=np.float32))
                and np.allclose(scale, 1, atol=1e-6) and np.allclose(shift, 0, atol=1e-6)):
            raise AdapterError("this PaddleClas model has a trained 1x1 expand conv in its t=1 block: the canonical "
                               "(torchvision) scheme has no place for it, so it cannot leave PaddleClas exactly",
                               hint="only weights that came into PaddleClas through a transplant can go back out")
        eps = {float(b._epsilon) for b in bns(model)}
        if len(eps) != 1:
            raise AdapterError(f"BatchNorm epsilons differ inside the model: {sorted(eps)}")
        t = {}
        for u, layer in zip(UNITS, layers[:self.EXTRA] + layers[self.EXTRA + 1:]):
            t[f"{u.conv}.weight"] = layer._conv.weight.numpy()
            b = layer._batch_norm
            for f, v in (("weight", b.weight), ("bias", b.bias), ("running_mean", b._mean), ("running_var", b._variance)):
                t[f"{u.bn}.{f}"] = v.numpy()
        t[f"{CLASSIFIER}.weight"] = np.ascontiguousarray(fc.weight.numpy().T)
        t[f"{CLASSIFIER}.bias"] = fc.bias.numpy()
        return {"tensors": t, "bn_eps": eps.pop(), "padding": getattr(model, "_mbv2_padding", "symmetric")}

    def activations(self, model, x):
        layers, _ = self.units(model)
        outs: list = []
        hooks = [l._batch_norm.register_forward_post_hook(lambda m, i, o: outs.append(o.numpy().copy()))
                 for l in layers]
        try:
            with paddle.no_grad():
                model(paddle.to_tensor(np.ascontiguousarray(x, dtype=np.float32)))
        finally:
            for h in hooks:
                h.remove()
        return outs[:self.EXTRA] + outs[self.EXTRA + 1:]

    def save_native(self, model, path: str) -> dict:
        """A .pdparams for a stock PaddleClas model (BN epsilon 1e-5): _variance shifted so var + eps is unchanged."""
        sd = {k: v.numpy() for k, v in model.state_dict().items()}
        names = {id(b): n for n, b in model.named_sublayers()}
        shift = 0.0
        for b in bns(model):
            new, moved = shift_variance(b._variance.numpy(), float(b._epsilon), 1e-5)
            shift = max(shift, moved)
            sd[f"{names[id(b)]}._variance"] = new
        paddle.save({k: paddle.to_tensor(v) for k, v in sd.items()}, path)
        return {"path": path, "bn_eps_written_for": 1e-5, "max_var_shift": shift}

    def count_native(self, model) -> dict[str, int]:
        """``paddle.flops``'s own per-layer rules (``paddle.hapi.dynamic_flops.register_hooks``). paddle 3.3.1's
        ``paddle.flops`` itself cannot finish with numpy >= 2 (it calls ``int()`` on a 1-element array when
        summing), so the hooks run here and the 1-element totals are summed with ``.item()``."""
        from paddle.hapi import dynamic_flops as df
        handles, leaves = [], []
        for m in model.sublayers():
            if list(m.children()):
                continue
            fn = df.register_hooks.get(type(m))
            m.register_buffer("total_ops", paddle.zeros([1], dtype="int64"))
            leaves.append(m)
            if fn is not None:
                handles.append(m.register_forward_post_hook(fn))
        try:
            with paddle.no_grad():
                model(paddle.zeros([1, 3, 224, 224], dtype="float32"))
            total = sum(int(m.total_ops.numpy().reshape(-1)[0]) for m in leaves)
        finally:
            for h in handles:
                h.remove()
            for m in leaves:
                m._buffers.pop("total_ops", None)
        return {"paddle.flops": total}

