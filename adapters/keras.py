"""keras adapter: ``keras.applications.MobileNetV2(alpha=...)`` (Keras 3 on TensorFlow), converted with tf2onnx.

Inputs are NHWC (the spec's layout says so; the harness preprocesses into that layout), outputs are logits:
the model is built with ``classifier_activation=None`` so native and ONNX are compared before any softmax
(the ``softmax`` fault proves a softmax left on one side is caught).

Conversion: ``tf2onnx.convert.from_function`` on a ``tf.function`` of the model's inference call, with an
input signature of dynamic batch. ``tf2onnx.convert.from_keras`` is written against tf.keras 2 internals
(``model.inputs[0].dtype``/``_get_save_spec``/``output_names``) that Keras 3 models do not have, and a
SavedModel round trip adds a directory on disk and seconds per model for the same graph; ``from_function``
traces exactly the call the native side runs.
"""
from __future__ import annotations

import contextlib
import inspect
import io
import logging
import os
import time
import warnings
from pathlib import Path
from typing import ClassVar

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import tensorflow as tf
from keras.src.applications import mobilenet_v2 as kmv2  # the implementation module (BASE_WEIGHT_PATH lives here)

from parity.kit import SeededRecipe
from parity.spec import PreprocessSpec

from .base import AdapterError, BaseAdapter, check_state_dict_fits, intercept_download, quiet_fds
from .tf_common import TfCanonical, keras3_layout, keras_file_shapes
from .tf_common import bn_layers as _bn_layers
from .tf_deploy import TfLiteDeploy


def _would_download(alpha: float, rows: int) -> dict:
    """What ``keras.applications.MobileNetV2(alpha, (rows, rows, 3), weights='imagenet')`` asks ``get_file`` for
    (keras's own argument checks run first: a combination keras refuses raises AdapterError with keras's reason)."""
    with intercept_download(kmv2.file_utils, "get_file") as asked:
        try:
            kmv2.MobileNetV2(input_shape=(rows, rows, 3), alpha=alpha, weights="imagenet")
        except ValueError as e:
            raise AdapterError(f"keras refuses ImageNet weights for alpha={alpha} rows={rows}: "
                               f"{' '.join(str(e).split())}") from None
    if not asked:
        raise AdapterError(f"keras built MobileNetV2(alpha={alpha}, rows={rows}, weights='imagenet') without asking "
                           "get_file for a weight file: its loading code changed")
    return {k: asked.get(k) for k in ("fname", "origin", "file_hash", "cache_subdir")}


class Adapter(TfLiteDeploy, TfCanonical, BaseAdapter):
    framework = "keras"
    NATIVE_PADDING = "same"
    UNSUPPORTED: ClassVar[dict[str, str]] = {
        "count_native": "keras ships no FLOPs counter for Keras 3 models (tf.profiler needs a TF1 graph)"}

    def versions(self) -> dict[str, str]:
        import onnx
        import tf2onnx
        return {"tensorflow": tf.__version__, "keras": keras.__version__, "tf2onnx": tf2onnx.__version__,
                "onnx": onnx.__version__, "numpy": np.__version__}

    # ------------------------------------------------------------------ model
    @staticmethod
    def _alpha_rows(card: dict) -> tuple[float, int]:
        b = card.get("build", {})
        return float(b.get("alpha", 1.0)), int(b.get("input_size", 224))

    def create(self, card: dict):
        alpha, rows = self._alpha_rows(card)
        try:
            return kmv2.MobileNetV2(input_shape=(rows, rows, 3), alpha=alpha, weights=None, include_top=True,
                                    classes=int(card.get("build", {}).get("classes", 1000)),
                                    classifier_activation=card.get("build", {}).get("classifier_activation"))
        except ValueError as e:
            raise AdapterError(f"keras MobileNetV2 refuses alpha={alpha} rows={rows}: {e}") from None

    def set_padding(self, model, padding: str):
        if padding != "same":
            raise AdapterError(f"keras builds MobileNetV2 with TF 'SAME' padding only (padding={padding!r} requested)",
                               hint="symmetric padding would mean rewriting keras's functional graph; not offered")
        return model

    def load_file(self, model, path: str) -> None:
        """``model.load_weights``; when it fails, the file's tensors are compared with the model's to name the first
        one that differs (keras's own message is one generic line per failed layer)."""
        try:
            model.load_weights(path)
        except Exception as e:  # noqa: BLE001 - keras raises many types for one verdict: the file does not load
            try:
                file = self.file_shapes(model, path)
            except Exception:  # noqa: BLE001 - not even an HDF5 file of keras's layout
                file = None
            if file is not None:
                check_state_dict_fits(Path(path).name, "keras", self.state_shapes(model), file)
                name = Path(path).name
                if keras3_layout(path) and not name.endswith(".weights.h5"):
                    stem = name[:-len(Path(path).suffix)] if Path(path).suffix else name
                    raise AdapterError(f"{name}: a keras 3 weights file (the .weights.h5 layout: layers/<name>/vars) "
                                       f"named {Path(path).suffix or 'without a suffix'}: keras 3 reads that layout "
                                       "only from a file whose name ends in .weights.h5",
                                       hint=f"rename it to {stem}.weights.h5") from None
            raise AdapterError(f"{Path(path).name}: keras cannot load it ({type(e).__name__}: "
                               f"{' '.join(str(e).split())[:300]})", hint="a corrupt file, or not a keras weight file "
                                                                          "of MobileNetV2") from None

    def state_shapes(self, model):
        return {f"{layer.name}/{i}": tuple(w.shape) for layer in model.layers for i, w in enumerate(layer.weights)}

    def file_shapes(self, model, path):
        return keras_file_shapes(model, path)

    def seed_weights(self, model, seed: int, calib: np.ndarray) -> None:
        """``parity.kit.SeededRecipe`` in keras terms (BN moving statistics = the calibration batch's, from one
        training-mode pass with momentum 0)."""
        recipe = SeededRecipe(seed)
        for layer in model.layers:
            if isinstance(layer, keras.layers.DepthwiseConv2D):
                k = layer.kernel  # (kh, kw, in, multiplier)
                k.assign(recipe.conv(tuple(k.shape), k.shape[0] * k.shape[1]))
            elif isinstance(layer, keras.layers.Conv2D):
                k = layer.kernel
                k.assign(recipe.conv(tuple(k.shape), k.shape[0] * k.shape[1] * k.shape[2]))
            elif isinstance(layer, keras.layers.BatchNormalization):
                g, b = recipe.bn_affine(layer.gamma.shape[0])
                layer.gamma.assign(g)
                layer.beta.assign(b)
        bns = _bn_layers(model)
        saved = [bn.momentum for bn in bns]
        for bn in bns:
            bn.momentum = 0.0
        model(tf.constant(calib, tf.float32), training=True)
        for bn, mom in zip(bns, saved):
            bn.momentum = mom
        head = model.get_layer("predictions")
        feats = keras.Model(model.inputs, head.input)(tf.constant(calib, tf.float32), training=False).numpy()
        w, b = recipe.head(feats, head.kernel.shape[1])
        head.kernel.assign(w.T)
        head.bias.assign(b)

    def copy_model(self, model):
        m = keras.models.clone_model(model)
        m.set_weights(model.get_weights())
        return m

    def fault_model(self, model, fault):
        if fault.name == "conv_channel_scale":
            conv = next(l for l in model.layers if type(l) is keras.layers.Conv2D)
            k = conv.kernel.numpy()
            k[..., 0] *= 1.01
            conv.kernel.assign(k)
        elif fault.name == "bn_eps":
            for bn in _bn_layers(model):
                bn.epsilon = 1e-5  # torch/paddle's default instead of keras's 1e-3
        else:
            raise AdapterError(f"fault {fault} is not supported by the keras adapter")
        return model

    def forward(self, model, x: np.ndarray) -> np.ndarray:
        if x.ndim != 4 or x.shape[-1] != 3:
            raise AdapterError(f"keras MobileNetV2 takes NHWC input, got shape {tuple(x.shape)}",
                               hint="the card's preprocess.layout must be NHWC")
        return np.asarray(model(tf.constant(x, tf.float32), training=False))

    # ------------------------------------------------------------------ ONNX
    def export_onnx(self, model, path: str, opset: int, exporter: str) -> dict:
        import tf2onnx
        if exporter not in ("default", "tf2onnx", "keep-bn"):  # keep-bn: the counting graph (same export)
            raise AdapterError(f"unknown keras exporter {exporter!r}; known: ('tf2onnx',)")
        rows = int(model.inputs[0].shape[1])
        spec = (tf.TensorSpec((None, rows, rows, 3), tf.float32, name="input"),)
        fn = tf.function(lambda x: {"logits": model(x, training=False)}, input_signature=spec)
        logging.getLogger("tf2onnx").setLevel(logging.ERROR)
        steps: dict[str, float] = {}
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), quiet_fds():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            fn.get_concrete_function(*spec)  # tracing; from_function reuses this cached concrete function
            steps["trace"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            tf2onnx.convert.from_function(fn, input_signature=spec, opset=opset, output_path=path)
            steps["tf2onnx_convert"] = time.perf_counter() - t0
        return {"exporter": "tf2onnx.from_function", "opset": opset, "tf2onnx": tf2onnx.__version__,
                "step_seconds": steps}

    # ------------------------------------------------------------------ counts
    def count_params(self, model) -> dict[str, int]:
        trainable = int(sum(np.prod(v.shape) for v in model.trainable_weights))
        total = int(model.count_params())  # keras counts BN moving mean/variance too
        bn_affine = int(sum(np.prod(v.shape) for bn in _bn_layers(model) for v in (bn.gamma, bn.beta)))
        return {"trainable": trainable, "with_bn_stats": total, "keras_count_params": total,
                "without_bn": trainable - bn_affine}

    # ------------------------------------------------------------------ spec and meta
    def derive_spec(self, card: dict) -> PreprocessSpec:
        """Normalization measured from ``keras.applications.mobilenet_v2.preprocess_input`` itself (an affine
        map: probed at 0 and 255 per channel), resizing from keras's documented loading path
        ``keras.utils.load_img(path, target_size=(224, 224))`` (PIL, squash to the target size, its default
        interpolation)."""
        _, rows = self._alpha_rows(card)
        probe = np.zeros((4, 1, 1, 3), np.float32)
        probe[1, 0, 0, 0] = 255.0  # red only
        probe[2, 0, 0, 1] = 255.0  # green only
        probe[3] = 255.0
        out = np.asarray(kmv2.preprocess_input(probe.copy()), np.float64)
        b = out[0, 0, 0]                                  # value of pixel 0 per output channel
        a = (out[3, 0, 0] - b) / 255.0                    # slope per output channel
        # channel order: does input channel 0 drive output channel 0?
        order = "RGB" if abs(out[1, 0, 0, 0] - b[0]) > 0 else "BGR"
        if not np.allclose(a, a[0]):
            raise AdapterError(f"keras preprocess_input has per-channel slopes {a}: not expressible as scale/std")
        scale = float(a[0])
        mean = tuple(float(-v) for v in b)  # out = pixel*scale + b = pixel*scale - mean (std 1)
        sig = inspect.signature(keras.utils.load_img).parameters
        interp = sig["interpolation"].default
        if sig["keep_aspect_ratio"].default:
            raise AdapterError("keras.utils.load_img now keeps the aspect ratio by default: update the keras spec")
        return PreprocessSpec(
            resize_mode="squash", resize_size=None, crop_size=rows, interpolation=interp, antialias=False,
            backend="pil", channel_order=order, scale=scale, mean=mean, std=(1.0, 1.0, 1.0), layout="NHWC",
            dtype="float32",
            source=f"keras {keras.__version__} applications.mobilenet_v2.preprocess_input (probed) + "
                   f"keras.utils.load_img(target_size=({rows}, {rows}), interpolation={interp!r})")

    def native_preprocess(self, card: dict, images: list[str]):
        """keras's documented path: ``keras.utils.load_img(path, target_size=(224, 224))``, ``img_to_array``,
        ``keras.applications.mobilenet_v2.preprocess_input``."""
        _, rows = self._alpha_rows(card)
        arrs = [keras.utils.img_to_array(keras.utils.load_img(p, target_size=(rows, rows))) for p in images]
        return np.asarray(kmv2.preprocess_input(np.stack(arrs)))

    def meta(self, card: dict) -> dict:
        """The weight file keras itself would fetch: ``MobileNetV2(alpha, input_shape, weights='imagenet')`` is called
        with keras's ``get_file`` intercepted, so the URL, file name and hash argument are the ones keras's own code
        passes (nothing is downloaded). keras pins no file hash for these weights."""
        alpha, rows = self._alpha_rows(card)
        asked = _would_download(alpha, rows)
        if asked.get("file_hash"):
            raise AdapterError("keras now pins a file_hash for MobileNetV2 weights: record it in the registry")
        return {"url": asked["origin"], "meta": {"BASE_WEIGHT_PATH": kmv2.BASE_WEIGHT_PATH, **asked}}
