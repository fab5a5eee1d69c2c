"""PaddleClas adapter: PaddleClas's own MobileNetV2 backbones (``paddleclas.ppcls.arch.backbone.model_zoo.
mobilenet_v2``), converted with paddle2onnx.

Only the backbone module is imported: the ``paddleclas`` package's ``__init__`` pulls in the whole
application (faiss, scikit-learn, every backbone), and its wheel pins numpy 1.24. The parent packages are
registered as bare namespace modules so that the backbone file and the two helpers it imports
(``ppcls.utils.save_load``/``download``) load from the installed wheel unchanged.

Conversion: ``paddle.jit.save`` (dygraph -> static program) then ``paddle2onnx.export`` on the saved program:
the two steps of ``paddle.onnx.export``/``paddle2onnx.dygraph2onnx``, called separately because
``dygraph2onnx`` logs and swallows conversion errors (no file, no exception) and to time each step.
Polygraphy's constant folding inside paddle2onnx would ``pip install`` onnx_graphsurgeon from NVIDIA's index
at run time (paddle2onnx sets POLYGRAPHY_AUTOINSTALL_DEPS=1): onnx_graphsurgeon is a dependency of the
worker env, polygraphy's flag is forced off after import, and pip is told ``PIP_NO_INDEX=1`` in this
process, so no conversion can reach the network.
"""
from __future__ import annotations

import contextlib
import importlib.util
import inspect
import io
import logging
import os
import sys
import tempfile
import time
import types
import warnings
from pathlib import Path

os.environ["PIP_NO_INDEX"] = "1"                 # any pip a converter spawns stays offline
os.environ["POLYGRAPHY_AUTOINSTALL_DEPS"] = "0"
os.environ.setdefault("GLOG_minloglevel", "2")
warnings.filterwarnings("ignore", message="No ccache found")

import numpy as np
import paddle

from parity.spec import PreprocessSpec

from .base import AdapterError, BaseAdapter, check_state_dict_fits, quiet_fds

LOGIT_STD_TARGET = 4.0
paddle.set_device("cpu")


def _load_ppcls_backbone():
    spec = importlib.util.find_spec("paddleclas")
    if spec is None or not spec.submodule_search_locations:
        raise AdapterError("paddleclas is not installed", hint="pip install --no-deps paddleclas (tox env w-paddle)")
    root = spec.submodule_search_locations[0]
    for name in ("paddleclas", "paddleclas.ppcls", "paddleclas.ppcls.arch", "paddleclas.ppcls.arch.backbone",
                 "paddleclas.ppcls.arch.backbone.model_zoo", "paddleclas.ppcls.utils", "paddleclas.deploy",
                 "paddleclas.deploy.python"):
        if name not in sys.modules:
            mod = types.ModuleType(name)
            mod.__path__ = [os.path.join(root, *name.split(".")[1:])]
            sys.modules[name] = mod
    from paddleclas.ppcls.arch.backbone.model_zoo import mobilenet_v2
    from paddleclas.ppcls.utils import save_load
    return root, mobilenet_v2, save_load


PPCLS_ROOT, PPCLS_MBV2, PPCLS_SAVE_LOAD = _load_ppcls_backbone()
_CV2_INTERP = {0: "nearest", 1: "bilinear", 2: "bicubic", 3: "area", 4: "lanczos"}


def _bns(model):
    return [m for m in model.sublayers() if isinstance(m, (paddle.nn.BatchNorm, paddle.nn.BatchNorm2D))]


class Adapter(BaseAdapter):
    framework = "ppcls"

    def versions(self) -> dict[str, str]:
        import onnx
        import paddle2onnx
        from importlib.metadata import version
        return {"paddlepaddle": paddle.__version__, "paddle2onnx": paddle2onnx.__version__,
                "paddleclas": version("paddleclas"), "onnx": onnx.__version__, "numpy": np.__version__}

    # ------------------------------------------------------------------ model
    @staticmethod
    def _fn(card: dict):
        name = card.get("build", {}).get("fn", card["arch"])
        fn = getattr(PPCLS_MBV2, name, None)
        if fn is None or name not in PPCLS_MBV2.MODEL_URLS:
            raise AdapterError(f"PaddleClas has no MobileNetV2 variant {name!r}; known: {sorted(PPCLS_MBV2.MODEL_URLS)}")
        return name, fn

    def create(self, card: dict):
        _, fn = self._fn(card)
        b = card.get("build", {})
        if b.get("impl") == "paddle.vision":
            # a build fault for the count check: paddle.vision's MobileNetV2 (make_divisible widths, no 1x1 expand
            # conv in the t=1 block) substituted for PaddleClas's own definition
            from paddle.vision.models import MobileNetV2 as PVMobileNetV2
            with paddle.utils.unique_name.guard():
                return PVMobileNetV2(scale=float(b.get("scale", 1.0)), num_classes=int(b.get("class_num", 1000)))
        # ppcls names its parameters explicitly ("conv1_1_weights"); paddle refuses a second layer with the same
        # names in one process unless each model is created under its own unique-name scope.
        with paddle.utils.unique_name.guard():
            return fn(pretrained=False, class_num=int(b.get("class_num", 1000)))

    def build(self, card: dict, weights: dict):
        model = self.create(card)
        padding = card.get("build", {}).get("padding", "symmetric")
        if padding == "same":
            self.tf_same_padding(model)
        elif padding != "symmetric":
            raise AdapterError(f"unknown padding {padding!r}; use 'symmetric' or 'same'")
        model._mbv2_padding = padding
        self.apply_weights(model, card, weights)
        model.eval()
        return model

    def load_file(self, model, path: str) -> None:
        """A .pdparams through the restricted unpickler (``paddle.load`` would unpickle anything, so a crafted
        file could run code): only names -> arrays come out; then every tensor is matched by name and shape."""
        from parity.safe_pickle import load_state_dict
        sd = load_state_dict(path)
        mine = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        check_state_dict_fits(Path(path).name, "ppcls", mine, {k: tuple(v.shape) for k, v in sd.items()})
        model.set_state_dict({k: v for k, v in sd.items() if k in mine})

    def seed_weights(self, model, seed: int, calib: np.ndarray) -> None:
        """The torch adapters' recipe in paddle terms (He-normal convs, random BN affine, BN statistics from a
        calibration batch, classifier scaled to logit std 4)."""
        rng = np.random.default_rng(seed)
        with paddle.no_grad():
            for m in model.sublayers():
                if isinstance(m, paddle.nn.Conv2D):
                    w = m.weight
                    fan_in = int(np.prod(w.shape[1:]))
                    w.set_value((rng.standard_normal(w.shape) * np.sqrt(2.0 / fan_in)).astype("float32"))
                    if m.bias is not None:
                        m.bias.set_value((rng.standard_normal(m.bias.shape) * 0.1).astype("float32"))
            for bn in _bns(model):
                bn.weight.set_value((0.5 + rng.random(bn.weight.shape)).astype("float32"))
                bn.bias.set_value((rng.standard_normal(bn.bias.shape) * 0.25).astype("float32"))
            saved = [(bn, bn._momentum) for bn in _bns(model)]
            for bn, _ in saved:
                bn._momentum = 0.0           # moving = batch statistics after one training-mode pass
            model.train()
            x = paddle.to_tensor(np.ascontiguousarray(calib, dtype=np.float32))
            model(x)
            model.eval()
            for bn, mom in saved:
                bn._momentum = mom
            head = model.out if hasattr(model, "out") else model.classifier[-1]
            feats: list = []
            h = head.register_forward_pre_hook(lambda layer, inp: feats.append(inp[0].numpy()))
            model(x)
            h.remove()
            f = feats[-1].reshape(len(calib), -1)
            w = rng.standard_normal((head.weight.shape[1], head.weight.shape[0])).astype("float32")  # (out, in)
            mu = f.mean(0)
            scale = LOGIT_STD_TARGET / max(float(((f - mu) @ w.T).std()), 1e-12)
            head.weight.set_value(np.ascontiguousarray((w * scale).T, dtype=np.float32))
            head.bias.set_value((-(w * scale) @ mu + rng.standard_normal(head.bias.shape) * 0.5).astype("float32"))

    def forward(self, model, x: np.ndarray, fault: str | None) -> np.ndarray:
        if fault in ("conv_channel_scale", "bn_eps"):
            model = self._copy(model)
            with paddle.no_grad():
                if fault == "conv_channel_scale":
                    conv = next(m for m in model.sublayers() if isinstance(m, paddle.nn.Conv2D))
                    w = conv.weight.numpy()
                    w[0] *= 1.01
                    conv.weight.set_value(w)
                else:
                    for bn in _bns(model):
                        bn._epsilon = 1e-3  # keras's default instead of paddle's 1e-5
        elif fault not in (None, "softmax"):
            raise AdapterError(f"fault {fault!r} is not supported by the ppcls adapter")
        with paddle.no_grad():
            y = model(paddle.to_tensor(np.ascontiguousarray(x, dtype=np.float32)))
            if fault == "softmax":
                y = paddle.nn.functional.softmax(y, axis=-1)
        return y.numpy()

    def _copy(self, model):
        import copy
        return copy.deepcopy(model)

    # ------------------------------------------------------------------ canonical weights
    @staticmethod
    def tf_same_padding(model) -> None:
        """Stride-2 convs with paddle's own TF-'SAME' padding algorithm (the conv op attribute, so it survives
        ``paddle.jit.save`` and paddle2onnx; a Python pre-hook would not)."""
        for m in model.sublayers():
            if isinstance(m, paddle.nn.Conv2D) and list(m._stride) == [2, 2]:
                m._padding = "SAME"
                m._updated_padding = [0, 0]
                m._padding_algorithm = "SAME"

    @staticmethod
    def units(model):
        layers = [m for m in model.sublayers() if hasattr(m, "_conv") and hasattr(m, "_batch_norm")]
        if not layers or not hasattr(model, "out"):
            raise AdapterError("not a PaddleClas MobileNetV2 (paddle.vision's model has no canonical mapping here)")
        return layers, model.out

    EXTRA = 1  # ppcls unit 1: the 1x1 expand conv PaddleClas keeps in the t=1 block (torchvision has none)

    def import_canonical(self, model, canon, fault: str | None = None):
        """Canonical -> PaddleClas: the extra t=1 expand conv becomes an exact identity (its input is the stem's
        ReLU6 output, already in [0, 6], so ReLU6(identity(x)) == x)."""
        from parity.canonical import UNITS
        layers, fc = self.units(model)
        if len(layers) != len(UNITS) + 1:
            raise AdapterError(f"{len(layers)} conv units, PaddleClas MobileNetV2 has {len(UNITS) + 1}")
        mapped = layers[:self.EXTRA] + layers[self.EXTRA + 1:]
        bad_unit = int(fault.split(":")[1]) if fault and fault.startswith("transpose_dw:") else None
        eps = np.float32(canon.bn_eps)
        for u, layer in zip(UNITS, mapped):
            w = canon.conv(u)
            if list(layer._conv.weight.shape) != list(w.shape):
                raise AdapterError(
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
        for bn in _bns(model):
            bn._epsilon = float(canon.bn_eps)
        fw, fb = canon.fc
        if list(fc.weight.shape) != [fw.shape[1], fw.shape[0]]:
            raise AdapterError(f"classifier {list(fc.weight.shape)} vs canonical {list(fw.T.shape)}")
        fc.weight.set_value(np.ascontiguousarray(fw.T))
        fc.bias.set_value(fb)
        return model

    def export_canonical(self, model) -> dict:
        from parity.canonical import CLASSIFIER, UNITS
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
        eps = {float(b._epsilon) for b in _bns(model)}
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
        for b in _bns(model):
            key = f"{names[id(b)]}._variance"
            v = b._variance.numpy().astype(np.float64)
            new = (v + float(b._epsilon) - 1e-5).astype(np.float32)
            shift = max(shift, float(np.abs(new - v).max()))
            sd[key] = new
        paddle.save({k: paddle.to_tensor(v) for k, v in sd.items()}, path)
        return {"path": path, "bn_eps_written_for": 1e-5, "max_var_shift": shift}

    # ------------------------------------------------------------------ ONNX
    def export_onnx(self, model, path: str, opset: int, exporter: str) -> dict:
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

    # ------------------------------------------------------------------ counts
    def count_params(self, model) -> dict[str, int]:
        allp = sum(int(np.prod(p.shape)) for p in model.parameters())  # paddle counts BN _mean/_variance
        stats = sum(int(np.prod(p.shape)) for bn in _bns(model) for p in (bn._mean, bn._variance))
        affine = sum(int(np.prod(p.shape)) for bn in _bns(model) for p in (bn.weight, bn.bias))
        trainable = allp - stats
        return {"trainable": trainable, "with_bn_stats": allp, "paddle_parameters": allp,
                "without_bn": trainable - affine}

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

    # ------------------------------------------------------------------ spec and meta
    @staticmethod
    def inference_ops() -> list:
        """The operators PaddleClas's own ``create_operators`` builds from deploy/configs/inference_cls.yaml."""
        import yaml
        from paddleclas.deploy.python import preprocess as ppre
        with open(os.path.join(PPCLS_ROOT, "deploy", "configs", "inference_cls.yaml")) as f:
            return ppre.create_operators(yaml.safe_load(f)["PreProcess"]["transform_ops"])

    def derive_spec(self, card: dict) -> PreprocessSpec:
        """Walk the operators PaddleClas builds from its own inference config (deploy/configs/inference_cls.yaml)
        with its own ``create_operators``; the decode step is ``predict_cls.py``'s ``cv2.imread`` + BGR->RGB."""
        ops = self.inference_ops()
        found: dict = {"layout": "NHWC"}
        for op in ops:
            name = type(op).__name__
            if name == "ResizeImage":
                if not op.resize_short:
                    raise AdapterError("PaddleClas inference config resizes to a fixed size, not the short side")
                rf = op._resize_func.resize_func
                backend = {"_cv2_resize": "cv2", "_pil_resize": "pil"}[rf.func.__name__]
                interp = rf.keywords["resample"]
                found.update(resize_size=int(op.resize_short), backend=backend, antialias=backend == "pil",
                             interpolation=_CV2_INTERP[int(interp)] if backend == "cv2" else str(interp),
                             resize_rounding="round")  # int(round(side * percent))
            elif name == "CropImage":
                found.update(crop_size=int(op.size[0]), crop_rounding="floor")  # (img - size) // 2
            elif name == "NormalizeImage":
                found.update(scale=float(op.scale), mean=tuple(float(v) for v in op.mean.flatten()),
                             std=tuple(float(v) for v in op.std.flatten()))
            elif name == "ToCHWImage":
                found["layout"] = "NCHW"
            else:
                raise AdapterError(f"unexpected operator {name} in PaddleClas inference config")
        with open(os.path.join(PPCLS_ROOT, "deploy", "python", "predict_cls.py")) as f:
            src = f.read()  # read, not imported: it pulls in Paddle Inference and the whole deploy app
        if "cv2.imread(img_path)" not in src:
            raise AdapterError("PaddleClas predict_cls.py no longer decodes with cv2.imread: re-derive the ppcls spec")
        order = "RGB" if "img = img[:, :, ::-1]" in src else "BGR"
        return PreprocessSpec(resize_mode="shorter_side", channel_order=order, dtype="float32", decoder="cv2",
                              source=f"paddleclas deploy/configs/inference_cls.yaml via deploy.python.preprocess."
                                     f"create_operators; decode: predict_cls.py cv2.imread + [:, :, ::-1]",
                              **found)

    def native_preprocess(self, card: dict, images: list[str]):
        """``predict_cls.py``'s decode (``cv2.imread`` + ``[:, :, ::-1]``) and the operators PaddleClas builds
        from its inference config."""
        import cv2
        ops = self.inference_ops()
        out = []
        for p in images:
            img = cv2.imread(p)
            if img is None:
                raise AdapterError(f"cv2.imread cannot read {p}")
            img = img[:, :, ::-1]
            for op in ops:
                img = op(img)
            out.append(img)
        return np.stack(out)

    def op_meta(self, card: dict) -> dict:
        name, _ = self._fn(card)
        use_ssld = bool(card.get("build", {}).get("use_ssld", False))
        url = PPCLS_SAVE_LOAD._set_ssld_pretrained(PPCLS_MBV2.MODEL_URLS[name], use_ssld=use_ssld)
        return {"url": url, "meta": {"MODEL_URLS": PPCLS_MBV2.MODEL_URLS[name], "use_ssld": use_ssld}}
