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

import importlib.util
import os
import sys
import types
import warnings
from pathlib import Path
from typing import ClassVar

os.environ["PIP_NO_INDEX"] = "1"                 # any pip a converter spawns stays offline
os.environ["POLYGRAPHY_AUTOINSTALL_DEPS"] = "0"
os.environ.setdefault("GLOG_minloglevel", "2")
warnings.filterwarnings("ignore", message="No ccache found")

import numpy as np
import paddle

from parity import faults as F
from parity.kit import SeededRecipe
from parity.spec import PreprocessSpec

from .base import AdapterError, BaseAdapter, check_state_dict_fits
from .paddle_common import PaddleCanonical, bns, export_onnx, tf_same_padding
from .paddle_deploy import PaddleInferenceDeploy

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


class Adapter(PaddleInferenceDeploy, PaddleCanonical, BaseAdapter):
    framework = "ppcls"
    UNSUPPORTED: ClassVar[dict[str, str]] = {"tflite_run": "the TFLite interpreter runs in the TensorFlow stack"}

    def versions(self) -> dict[str, str]:
        from importlib.metadata import version

        import onnx
        import paddle2onnx
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
        if F.arg_of("impl", b.get("faults", [])) == "paddle.vision":
            # a build fault for the count check: paddle.vision's MobileNetV2 (make_divisible widths, no 1x1 expand
            # conv in the t=1 block) substituted for PaddleClas's own definition
            from paddle.vision.models import MobileNetV2 as PVMobileNetV2
            with paddle.utils.unique_name.guard():
                return PVMobileNetV2(scale=float(b.get("scale", 1.0)), num_classes=int(b.get("class_num", 1000)))
        # ppcls names its parameters explicitly ("conv1_1_weights"); paddle refuses a second layer with the same
        # names in one process unless each model is created under its own unique-name scope.
        with paddle.utils.unique_name.guard():
            return fn(pretrained=False, class_num=int(b.get("class_num", 1000)))

    def set_padding(self, model, padding: str):
        if padding == "same":
            tf_same_padding(model)
        elif padding != "symmetric":
            raise AdapterError(f"unknown padding {padding!r}; use 'symmetric' or 'same'")
        model._mbv2_padding = padding
        model.eval()
        return model

    def load_file(self, model, path: str) -> None:
        """A .pdparams through the restricted unpickler (``paddle.load`` would unpickle anything, so a crafted
        file could run code): only names -> arrays come out; then every tensor is matched by name and shape."""
        from parity.weights.safe_pickle import load_state_dict
        sd = load_state_dict(path)
        mine = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        check_state_dict_fits(Path(path).name, "ppcls", mine, {k: tuple(v.shape) for k, v in sd.items()})
        model.set_state_dict({k: v for k, v in sd.items() if k in mine})

    def state_shapes(self, model):
        return {k: tuple(v.shape) for k, v in model.state_dict().items()}

    def file_shapes(self, model, path):
        from parity.weights.safe_pickle import load_state_dict
        return {k: tuple(v.shape) for k, v in load_state_dict(path).items()}

    def seed_weights(self, model, seed: int, calib: np.ndarray) -> None:
        """``parity.kit.SeededRecipe`` in paddle terms (BN statistics = the calibration batch's, one training-mode
        pass with momentum 0)."""
        recipe = SeededRecipe(seed)
        with paddle.no_grad():
            for m in model.sublayers():
                if isinstance(m, paddle.nn.Conv2D):
                    m.weight.set_value(recipe.conv(tuple(m.weight.shape), int(np.prod(m.weight.shape[1:]))))
                    if m.bias is not None:
                        m.bias.set_value(recipe.conv_bias(int(m.bias.shape[0])))
                elif isinstance(m, (paddle.nn.BatchNorm, paddle.nn.BatchNorm2D)):
                    g, b = recipe.bn_affine(int(m.weight.shape[0]))
                    m.weight.set_value(g)
                    m.bias.set_value(b)
            saved = [(bn, bn._momentum) for bn in bns(model)]
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
            w, b = recipe.head(feats[-1].reshape(len(calib), -1), int(head.weight.shape[1]))
            head.weight.set_value(np.ascontiguousarray(w.T))
            head.bias.set_value(b)

    def copy_model(self, model):
        import copy
        return copy.deepcopy(model)

    def fault_model(self, model, fault):
        with paddle.no_grad():
            if fault.name == "conv_channel_scale":
                conv = next(m for m in model.sublayers() if isinstance(m, paddle.nn.Conv2D))
                w = conv.weight.numpy()
                w[0] *= 1.01
                conv.weight.set_value(w)
            elif fault.name == "bn_eps":
                for bn in bns(model):
                    bn._epsilon = 1e-3  # keras's default instead of paddle's 1e-5
            else:
                raise AdapterError(f"fault {fault} is not supported by the ppcls adapter")
        return model

    def forward(self, model, x: np.ndarray) -> np.ndarray:
        with paddle.no_grad():
            return model(paddle.to_tensor(np.ascontiguousarray(x, dtype=np.float32))).numpy()

    # ------------------------------------------------------------------ ONNX
    def export_onnx(self, model, path: str, opset: int, exporter: str) -> dict:
        return export_onnx(model, path, opset, exporter)

    # ------------------------------------------------------------------ counts
    def count_params(self, model) -> dict[str, int]:
        allp = sum(int(np.prod(p.shape)) for p in model.parameters())  # paddle counts BN _mean/_variance
        stats = sum(int(np.prod(p.shape)) for bn in bns(model) for p in (bn._mean, bn._variance))
        affine = sum(int(np.prod(p.shape)) for bn in bns(model) for p in (bn.weight, bn.bias))
        trainable = allp - stats
        return {"trainable": trainable, "with_bn_stats": allp, "paddle_parameters": allp,
                "without_bn": trainable - affine}

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
                              source="paddleclas deploy/configs/inference_cls.yaml via deploy.python.preprocess."
                                     "create_operators; decode: predict_cls.py cv2.imread + [:, :, ::-1]",
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

    def meta(self, card: dict) -> dict:
        name, _ = self._fn(card)
        use_ssld = bool(card.get("build", {}).get("use_ssld", False))
        url = PPCLS_SAVE_LOAD._set_ssld_pretrained(PPCLS_MBV2.MODEL_URLS[name], use_ssld=use_ssld)
        return {"url": url, "meta": {"MODEL_URLS": PPCLS_MBV2.MODEL_URLS[name], "use_ssld": use_ssld}}
