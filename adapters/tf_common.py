"""TensorFlow-side helpers of the keras adapter: canonical weights in and out, per-unit activations, the native
weight file, and the TFLite interpreter. Imported only in a TensorFlow worker."""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from parity.kit import shift_variance

from .base import AdapterError, DepthMismatch, WidthMismatch


def bn_layers(model):
    return [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]


def keras3_layout(path: str) -> bool:
    """Whether an HDF5 file has keras 3's ``.weights.h5`` layout (``layers/<name>/vars/<i>``) rather than the
    legacy keras 2 ``.h5`` one (``layer_names`` attribute, one group per layer)."""
    import h5py
    try:
        with h5py.File(path, "r") as f:
            return "layers" in f and "layer_names" not in f.attrs and "model_weights" not in f
    except OSError:
        return False


def keras_file_shapes(model, path: str) -> dict[str, tuple]:
    """The tensors of a keras weight file keyed as ``<layer name of model>/<index>``: keras 3 ``.weights.h5`` files
    name layers by class and creation order (``layers/conv2d_3/vars/0``), so the i-th group of a class maps to the
    model's i-th layer of that class; legacy keras 2 ``.h5`` files (the upstream downloads) name them by layer name."""
    import re

    import h5py
    from keras.src.utils.naming import to_snake_case
    out: dict[str, tuple] = {}
    with h5py.File(path, "r") as f:
        if "layers" in f:
            by_class: dict[str, list] = {}
            for layer in model.layers:
                if layer.weights:
                    by_class.setdefault(to_snake_case(type(layer).__name__), []).append(layer)
            for group in f["layers"]:
                m = re.fullmatch(r"(.+?)(?:_(\d+))?", group)
                if m is None:
                    continue
                cls, n = m.group(1), int(m.group(2) or 0)
                v = f["layers"][group].get("vars")
                if v is None or not len(v):
                    continue  # layers without variables (input, activations, padding)
                if cls in by_class and n < len(by_class[cls]):
                    for i in sorted(v, key=int):
                        out[f"{by_class[cls][n].name}/{i}"] = tuple(v[i].shape)
                else:
                    out[f"layers/{group}"] = ()
        else:
            root = f.get("model_weights", f)
            for layer in model.layers:
                if layer.name in root:
                    g = root[layer.name]
                    names = [n.decode() if isinstance(n, bytes) else n for n in g.attrs.get("weight_names", [])]
                    for i, wname in enumerate(names):  # the layer's own order (kernel, bias; gamma, beta, mean, var)
                        out[f"{layer.name}/{i}"] = tuple(g[wname].shape)
    return out


class TfCanonical:
    @staticmethod
    def units(model):
        convs = [l for l in model.layers if isinstance(l, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D))]
        bns = bn_layers(model)
        if len(convs) != len(bns):
            raise AdapterError(f"{len(convs)} convs and {len(bns)} BatchNorms: not a conv+BN MobileNetV2")
        return list(zip(convs, bns)), model.get_layer("predictions")

    def export_canonical(self, model) -> dict:
        from parity.weights.canonical import CLASSIFIER, UNITS
        units, fc = self.units(model)
        eps = {float(bn.epsilon) for _, bn in units}
        if len(eps) != 1:
            raise AdapterError(f"BatchNorm epsilons differ inside the model: {sorted(eps)}")
        t = {}
        for u, (conv, bn) in zip(UNITS, units):
            k = conv.kernel.numpy()
            t[f"{u.conv}.weight"] = np.ascontiguousarray(
                k.transpose(2, 3, 0, 1) if isinstance(conv, keras.layers.DepthwiseConv2D) else k.transpose(3, 2, 0, 1))
            for f, v in (("weight", bn.gamma), ("bias", bn.beta), ("running_mean", bn.moving_mean),
                         ("running_var", bn.moving_variance)):
                t[f"{u.bn}.{f}"] = v.numpy().astype(np.float32)
        t[f"{CLASSIFIER}.weight"] = np.ascontiguousarray(fc.kernel.numpy().T)
        t[f"{CLASSIFIER}.bias"] = fc.bias.numpy()
        return {"tensors": t, "bn_eps": eps.pop(), "padding": "same"}

    def import_canonical(self, model, canon, bad_unit: int | None = None):
        from parity.weights.canonical import UNITS
        units, fc = self.units(model)
        if len(units) != len(UNITS):
            raise DepthMismatch(f"{len(units)} conv units, canonical MobileNetV2 has {len(UNITS)}")
        for u, (conv, bn) in zip(UNITS, units):
            w = canon.conv(u)
            if u.index == bad_unit:
                w = w.transpose(0, 1, 3, 2)
            k = w.transpose(2, 3, 0, 1) if isinstance(conv, keras.layers.DepthwiseConv2D) else w.transpose(2, 3, 1, 0)
            if tuple(conv.kernel.shape) != k.shape:
                raise WidthMismatch(f"width mismatch at {u.label}: keras kernel {tuple(conv.kernel.shape)} vs canonical "
                                   f"{w.shape}", hint="build the alpha whose width matches the weights")
            conv.kernel.assign(np.ascontiguousarray(k))
            b = canon.bn(u)
            bn.gamma.assign(b["weight"])
            bn.beta.assign(b["bias"])
            bn.moving_mean.assign(b["running_mean"])
            bn.moving_variance.assign(b["running_var"])
            bn.epsilon = float(canon.bn_eps)
        fw, fb = canon.fc
        if tuple(fc.kernel.shape) != fw.T.shape:
            raise AdapterError(f"classifier {tuple(fc.kernel.shape)} vs canonical {fw.T.shape}")
        fc.kernel.assign(np.ascontiguousarray(fw.T))
        fc.bias.assign(fb)
        return model

    def activations(self, model, x):
        units, _ = self.units(model)
        sub = keras.Model(model.inputs, [bn.output for _, bn in units])
        outs = sub(tf.constant(x, tf.float32), training=False)
        return [np.ascontiguousarray(np.asarray(o).transpose(0, 3, 1, 2)) for o in outs]

    def save_native(self, model, path: str) -> dict:
        """A ``.weights.h5`` for a stock keras MobileNetV2 (BN epsilon 1e-3): moving_variance shifted so that
        variance + epsilon is unchanged."""
        units, _ = self.units(model)
        m = keras.models.clone_model(model)
        m.set_weights(model.get_weights())
        shift = 0.0
        for (_, bn_src), (_, bn) in zip(units, self.units(m)[0]):
            new, moved = shift_variance(bn_src.moving_variance.numpy(), float(bn_src.epsilon), 1e-3)
            shift = max(shift, moved)
            bn.moving_variance.assign(new)
            bn.epsilon = 1e-3
        if not path.endswith(".weights.h5"):
            raise AdapterError("keras weight files must end in .weights.h5")
        m.save_weights(path)
        return {"path": path, "bn_eps_written_for": 1e-3, "max_var_shift": shift}

    def tflite_run(self, path: str, input: str) -> dict:
        """The TFLite interpreter on a uint8 NHWC batch: dequantized scores, background class dropped."""
        x = np.load(input)
        itp = tf.lite.Interpreter(model_path=path, num_threads=2)
        inp, out = itp.get_input_details()[0], itp.get_output_details()[0]
        itp.resize_tensor_input(inp["index"], [1, *x.shape[1:]])
        itp.allocate_tensors()
        scale, zp = out["quantization"]
        ys = []
        for img in x:
            itp.set_tensor(inp["index"], img[None].astype(inp["dtype"]))
            itp.invoke()
            q = itp.get_tensor(out["index"]).astype(np.float32)
            ys.append((q - zp) * scale if scale else q)
        y = np.concatenate(ys)[:, 1:]
        dst = str(Path(input).with_suffix("")) + ".tflite.out.npy"
        np.save(dst, y)
        return {"output": dst, "input_quantization": [float(v) for v in inp["quantization"]]}

