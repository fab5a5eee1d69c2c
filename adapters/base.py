"""Worker-side adapter base class: request dispatch, model cache and the op contract.

Every adapter module (``adapters/<framework>.py``) defines ``class Adapter(BaseAdapter)`` and implements:

- ``versions()``                         -> {package: version}
- ``derive_spec(card)``                  -> PreprocessSpec derived from the framework's own API
- ``op_meta(card)`` (optional)            -> {url, source, published: {metric: {field, value}}, card_fields: {"section.field": value}, meta}
- ``build(card, weights)``               -> native model in eval mode (weights: seeded | file)
- ``forward(model, x, fault)``           -> logits as numpy (fault: None or a name in ``FAULTS``)
- ``export_onnx(model, card, path, opset, exporter)``
- ``count_params(model)``                -> {convention: count}

Arrays come in and go out as .npy paths. This module imports no framework.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from parity.spec import PreprocessSpec

# Model faults the harness injects on the native side to prove a check can fail.
FAULTS = {
    "conv_channel_scale": "first conv: output channel 0 weights scaled by 1.01",
    "bn_eps": "every BatchNorm epsilon changed to 1e-3 (keras's default instead of 1e-5)",
    "softmax": "softmax appended to the native output",
    "crash": "the worker process kills itself with SIGSEGV (tests crash isolation)",
}


CHUNK = 32  # images per native forward call


class AdapterError(RuntimeError):
    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.hint = hint


@contextlib.contextmanager
def quiet_fds():
    """Capture what C/C++ code prints on fds 1 and 2 (converters' banners) into a buffer.

    Yields a list that receives the captured text on exit; on an exception, its tail is appended to the
    error message so nothing diagnostic is lost.
    """
    captured: list[str] = []
    with tempfile.TemporaryFile(mode="w+b") as buf:
        saved = [os.dup(1), os.dup(2)]
        try:
            os.dup2(buf.fileno(), 1)
            os.dup2(buf.fileno(), 2)
            try:
                yield captured
            except Exception as e:
                buf.seek(0)
                tail = buf.read().decode(errors="replace").strip().splitlines()[-5:]
                if tail:
                    e.args = (f"{e.args[0] if e.args else e} | converter output: {' / '.join(tail)}",) + e.args[1:]
                raise
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            buf.seek(0)
            captured.append(buf.read().decode(errors="replace"))


def check_state_dict_fits(name: str, framework: str, model: dict[str, tuple], file: dict[str, tuple]) -> None:
    """A weight file against the model it is loaded into: the first tensor whose shape differs (both shapes), then
    missing and unexpected names; one AdapterError naming the file and the framework."""
    for k, shape in model.items():
        if k in file and tuple(file[k]) != tuple(shape):
            raise AdapterError(f"{name}: tensor {k} has shape {list(file[k])} in the file but {list(shape)} in this "
                               f"{framework} model", hint="a weight file of another width/variant: pick the card "
                                                          "whose architecture it was saved from")
    missing = [k for k in model if k not in file and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in file if k not in model]
    if missing or unexpected:
        raise AdapterError(f"{name}: does not fit this {framework} model: {len(missing)} tensors missing "
                           f"(first: {missing[:3]}), {len(unexpected)} unexpected (first: {unexpected[:3]})",
                           hint=f"not a {framework} weight file of this architecture")


class BaseAdapter:
    framework = "base"

    def __init__(self) -> None:
        self.models: dict[str, Any] = {}

    # ------------------------------------------------------------------ dispatch
    def handle(self, op: str, params: dict[str, Any]) -> Any:
        fn = getattr(self, f"op_{op}", None)
        if fn is None:
            raise AdapterError(f"unknown op {op!r} for {self.framework} worker")
        t0 = time.perf_counter()
        result = fn(**params)
        if isinstance(result, dict):
            result.setdefault("seconds", time.perf_counter() - t0)
        return result

    def op_ping(self) -> dict:
        return {"pong": True}

    def op_derive_spec(self, card: dict) -> dict:
        return {"spec": self.derive_spec(card).to_dict()}

    @staticmethod
    def model_key(card: dict, weights: dict) -> str:
        mode = weights["mode"]
        if mode == "seeded":
            return f"{card['id']}|seeded:{weights.get('seed')}"
        return f"{card['id']}|{mode}:{weights.get('path')}"  # file: / canonical: a path

    def op_build(self, card: dict, weights: dict) -> dict:
        key = self.model_key(card, weights)
        if key not in self.models:
            if weights["mode"] in ("file", "canonical") and not Path(weights["path"]).is_file():
                raise AdapterError(f"weights file not found: {weights['path']}")
            self.models[key] = self.build(card, weights)
        return {"key": key, "params": self.count_params(self.models[key])}

    def _model(self, key: str) -> Any:
        try:
            return self.models[key]
        except KeyError:
            raise AdapterError(f"model {key!r} is not built in this worker (build it first)") from None

    def op_run(self, key: str, input: str, fault: str | None = None) -> dict:
        if fault is not None and fault not in FAULTS:
            raise AdapterError(f"unknown fault {fault!r}; known: {sorted(FAULTS)}")
        if fault == "crash":
            import os
            import signal
            os.kill(os.getpid(), signal.SIGSEGV)
        x = np.load(input)
        t0 = time.perf_counter()
        model = self._model(key)
        y = np.concatenate([np.asarray(self.forward(model, x[i:i + CHUNK], fault), dtype=np.float32)
                            for i in range(0, len(x), CHUNK)])  # constant memory for any batch size
        seconds = time.perf_counter() - t0
        out = str(Path(input).with_suffix("")) + f".{self.framework}.{fault or 'clean'}.out.npy"
        np.save(out, y)
        return {"output": out, "seconds": seconds}

    def op_export_onnx(self, key: str, path: str, opset: int, exporter: str = "default") -> dict:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        info = self.export_onnx(self._model(key), path, opset, exporter) or {}
        data = Path(path).read_bytes()
        info.update({"path": path, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)})
        return info

    def op_count_native(self, key: str) -> dict:
        """FLOPs from the framework's own counters, as published numbers were produced ({counter: count})."""
        return {"counts": self.count_native(self._model(key))}

    def count_native(self, model: Any) -> dict[str, int]:
        return {}

    def op_native_preprocess(self, card: dict, images: list[str], out: str) -> dict:
        """The framework's own evaluation pipeline (its loader + transforms) on image files -> model input batch."""
        t0 = time.perf_counter()
        x = np.ascontiguousarray(self.native_preprocess(card, images), dtype=np.float32)
        np.save(out, x)
        return {"output": out, "shape": list(x.shape), "seconds": time.perf_counter() - t0}

    def native_preprocess(self, card: dict, images: list[str]) -> np.ndarray:
        raise AdapterError(f"{self.framework}: native preprocessing not implemented")

    def apply_weights(self, model: Any, card: dict, weights: dict) -> Any:
        """The three weights modes, the same in every adapter: ``seeded`` (``seed_weights``), ``canonical``
        (``import_canonical``, with an optional ``build.fault``) and ``file`` (``load_file``)."""
        mode = weights["mode"]
        if mode == "canonical":
            from parity.canonical import load
            self.import_canonical(model, load(weights["path"]), card.get("build", {}).get("fault"))
        elif mode == "seeded":
            self.seed_weights(model, int(weights["seed"]), np.load(weights["calib"]))
        elif mode == "file":
            self.load_file(model, weights["path"])
        else:
            raise AdapterError(f"unknown weights mode {mode!r}")
        return model

    def seed_weights(self, model: Any, seed: int, calib: np.ndarray) -> None:
        raise AdapterError(f"{self.framework}: seeded weights not implemented")

    def import_canonical(self, model: Any, canon: Any, fault: str | None = None) -> Any:
        raise AdapterError(f"{self.framework}: canonical import not implemented")

    def load_file(self, model: Any, path: str) -> None:
        raise AdapterError(f"{self.framework}: loading a native weight file not implemented")

    def op_export_canonical(self, key: str, path: str, source: str = "") -> dict:
        from parity.canonical import Canonical, save
        d = self.export_canonical(self._model(key))
        save(Canonical(d["tensors"], d["bn_eps"], d["padding"], source or key), path)
        return {"path": path, "bn_eps": d["bn_eps"], "padding": d["padding"]}

    def op_activations(self, key: str, input: str) -> dict:
        """Per-unit BatchNorm outputs (pre-activation), NCHW, saved as an .npz (unit index order)."""
        x = np.load(input)
        acts = self.activations(self._model(key), x)
        out = str(Path(input).with_suffix("")) + f".{self.framework}.{abs(hash(key)) % 10**8}.acts.npz"
        np.savez(out, *acts)
        return {"output": out, "units": len(acts)}

    def op_save_native(self, key: str, path: str) -> dict:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return self.save_native(self._model(key), path)

    def export_canonical(self, model: Any) -> dict:
        raise AdapterError(f"{self.framework}: canonical export not implemented")

    def activations(self, model: Any, x: np.ndarray) -> list:
        raise AdapterError(f"{self.framework}: activations not implemented")

    def save_native(self, model: Any, path: str) -> dict:
        raise AdapterError(f"{self.framework}: native weight file export not implemented")

    def op_release(self, key: str) -> dict:
        self.models.pop(key, None)
        return {"released": key}

    # ------------------------------------------------------------------ to implement
    def versions(self) -> dict[str, str]:
        raise NotImplementedError

    def derive_spec(self, card: dict) -> PreprocessSpec:
        raise NotImplementedError

    def build(self, card: dict, weights: dict) -> Any:
        raise NotImplementedError

    def forward(self, model: Any, x: np.ndarray, fault: str | None) -> np.ndarray:
        raise NotImplementedError

    def export_onnx(self, model: Any, path: str, opset: int, exporter: str) -> dict | None:
        raise NotImplementedError

    def count_params(self, model: Any) -> dict[str, int]:
        raise NotImplementedError
