"""Worker-side adapter base class: dispatch by the op contract (``parity/workers/protocol.py``), the model cache,
the weights modes and the fault stages every adapter shares. Imports no framework.

An adapter module ``adapters/<framework>.py`` defines ``class Adapter(BaseAdapter)`` and overrides the hooks the
contract names (``protocol.OPS[op].hooks``); an optional op it cannot offer goes in ``UNSUPPORTED`` with the
reason. The hooks:

- ``versions()`` -> {package: version}
- ``derive_spec(card)`` -> PreprocessSpec derived from the framework's own API
- ``meta(card)`` -> {url, source, published: {metric: {field, value}}, card_fields: {"section.field": value}, meta}
- ``create(card)`` -> the architecture (construct-stage faults applied), random weights
- ``seed_weights(model, seed, calib)`` / ``import_canonical(model, canon, transpose_dw)`` / ``load_file(model, path)``
- ``set_padding(model, padding)`` -> the model built with that padding (``same`` or ``symmetric``)
- ``forward(model, x)`` -> logits (numpy) of a batch in the card's layout
- ``copy_model(model)`` and ``fault_model(model, fault)`` -> model-stage faults on a copy
- ``export_onnx(model, path, opset, exporter)`` -> {exporter, opset, ...}
- ``count_params(model)`` -> {convention: count}; ``count_native(model)`` -> {counter: FLOPs}
- ``native_preprocess(card, images)`` -> the framework's own input batch
- ``export_canonical(model)`` -> {tensors, bn_eps, padding}; ``activations(model, x)`` -> per-unit BN outputs
- ``save_native(model, path)`` -> {path, bn_eps_written_for, max_var_shift}
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from parity import faults as F
from parity.kit import build_digest, softmax
from parity.spec import PreprocessSpec
from parity.workers.protocol import OPS, unknown_op

CHUNK = 32  # images per native forward call


class AdapterError(RuntimeError):
    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.hint = hint


class WidthMismatch(AdapterError):
    """Canonical weights whose channel widths are not the model's (its class name is the worker error's kind)."""


class DepthMismatch(AdapterError):
    """Canonical weights with another number of conv units than the model: a deeper or shallower card."""


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
                    e.args = (f"{e.args[0] if e.args else e} | converter output: {' / '.join(tail)}", *e.args[1:])
                raise
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            buf.seek(0)
            captured.append(buf.read().decode(errors="replace"))


class DownloadIntercepted(Exception):
    """Raised by ``intercept_download``'s stand-in: the framework is stopped right where it would download."""


@contextlib.contextmanager
def intercept_download(owner: Any, attr: str):
    """Replace the framework's download function ``owner.attr`` by a recorder that stops the caller before any
    transfer; yields the arguments it was called with, by name (empty when it was never called). The real function
    is restored on the way out, whatever happened."""
    import inspect
    real = getattr(owner, attr)
    asked: dict[str, Any] = {}

    def stand_in(*args: Any, **kwargs: Any) -> None:
        asked.update(inspect.signature(real).bind_partial(*args, **kwargs).arguments)
        raise DownloadIntercepted

    setattr(owner, attr, stand_in)
    try:
        yield asked
    except DownloadIntercepted:
        pass
    finally:
        setattr(owner, attr, real)


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


def transpose_dw_unit(card: dict) -> int | None:
    """The unit whose depthwise kernel a ``transpose_dw:<unit>`` fault transposes at canonical import."""
    arg = F.arg_of("transpose_dw", card.get("build", {}).get("faults", []))
    return int(arg) if arg is not None else None


def call_op(fn: Any, params: dict[str, Any]) -> Any:
    """Run one op's handler; a dict answer says how long it took (``seconds``): every host's dispatch ends here."""
    t0 = time.perf_counter()
    result = fn(**params)
    if isinstance(result, dict):
        result.setdefault("seconds", time.perf_counter() - t0)
    return result


def timed(call: Any, repeats: int) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``call()`` (the caller has already warmed it up): how every deployment
    runtime times itself inside its worker."""
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        out.append(time.perf_counter() - t0)
    return out


def artifact_reply(r: dict, input: str) -> dict:
    """The ``artifact`` op's answer: outputs as an .npy beside the input."""
    y = r.pop("y", None)
    r.setdefault("precision", "fp32")
    r.setdefault("detail", {})
    r["output"] = ""
    if y is not None:
        r["output"] = f"{Path(input).with_suffix('')}.artifact.out.npy"
        np.save(r["output"], np.asarray(y))
    return r


class Hooks:
    """What each framework's adapter implements (see the module docstring); ``BaseAdapter`` turns them into ops."""

    framework = "base"
    NATIVE_PADDING = "symmetric"

    def versions(self) -> dict[str, str]:
        raise NotImplementedError

    def derive_spec(self, card: dict) -> PreprocessSpec:
        raise NotImplementedError

    def meta(self, card: dict) -> dict:
        raise NotImplementedError

    def create(self, card: dict) -> Any:
        raise NotImplementedError

    def set_padding(self, model: Any, padding: str) -> Any:
        if padding != self.NATIVE_PADDING:
            raise AdapterError(f"{self.framework} cannot be built with {padding!r} padding")
        return model

    def seed_weights(self, model: Any, seed: int, calib: np.ndarray) -> None:
        raise NotImplementedError

    def import_canonical(self, model: Any, canon: Any, transpose_dw: int | None = None) -> Any:
        raise NotImplementedError

    def load_file(self, model: Any, path: str) -> None:
        raise NotImplementedError

    def forward(self, model: Any, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def copy_model(self, model: Any) -> Any:
        raise NotImplementedError

    def fault_model(self, model: Any, fault: F.Fault) -> Any:
        raise AdapterError(f"fault {fault} is not supported by the {self.framework} adapter")

    def export_onnx(self, model: Any, path: str, opset: int, exporter: str) -> dict | None:
        raise NotImplementedError

    def count_params(self, model: Any) -> dict[str, int]:
        raise NotImplementedError

    def count_native(self, model: Any) -> dict[str, int]:
        raise NotImplementedError

    def native_preprocess(self, card: dict, images: list[str]) -> np.ndarray:
        raise NotImplementedError

    def export_canonical(self, model: Any) -> dict:
        raise NotImplementedError

    def activations(self, model: Any, x: np.ndarray) -> list:
        raise NotImplementedError

    def save_native(self, model: Any, path: str) -> dict:
        raise NotImplementedError

    def tflite_run(self, path: str, input: str) -> dict:
        raise NotImplementedError

    def state_shapes(self, model: Any) -> dict[str, tuple]:
        raise NotImplementedError

    def deploy_export(self, model: Any, runtime: str, path: str, options: dict) -> dict:
        raise NotImplementedError

    def deploy_run(self, runtime: str, path: str, x: np.ndarray, options: dict) -> tuple:
        """(logits, precision it ran, detail, seconds per call when options['repeats'] > 0)."""
        raise NotImplementedError

    def file_shapes(self, model: Any, path: str) -> dict[str, tuple]:
        raise NotImplementedError

    def artifact(self, fmt: str, path: str, x: np.ndarray | None, options: dict) -> dict:
        """`verify`: a deployed file read and run by this stack's runtime (``adapters/artifacts.py``)."""
        raise NotImplementedError


class BaseAdapter(Hooks):
    framework = "base"
    UNSUPPORTED: ClassVar[dict[str, str]] = {}     # optional op -> why this adapter cannot offer it

    def __init__(self) -> None:
        self.models: dict[str, Any] = {}
        self.run_faults: dict[str, list[F.Fault]] = {}   # output- and process-stage faults per model key

    # ------------------------------------------------------------------ dispatch
    def handle(self, op: str, params: dict[str, Any]) -> Any:
        fn = getattr(self, f"op_{op}", None)
        if op not in OPS or fn is None:
            raise AdapterError(unknown_op(op, self.framework))
        if op in self.UNSUPPORTED:
            raise AdapterError(f"{self.framework} does not support {op!r}: {self.UNSUPPORTED[op]}")
        return call_op(fn, params)

    def op_ping(self) -> dict:
        return {"pong": True}

    def op_contract(self) -> dict:
        implemented, missing = [], []
        for op in OPS.values():
            if all(getattr(type(self), h) is not getattr(BaseAdapter, h) for h in op.hooks) \
                    and op.name not in self.UNSUPPORTED:
                implemented.append(op.name)
            elif op.name not in self.UNSUPPORTED:
                missing.append(op.name)
        return {"framework": self.framework, "implemented": implemented, "unsupported": dict(self.UNSUPPORTED),
                "missing": missing}

    def op_derive_spec(self, card: dict) -> dict:
        return {"spec": self.derive_spec(card).to_dict()}

    def op_meta(self, card: dict) -> dict:
        return self.meta(card)

    @staticmethod
    def model_key(card: dict, weights: dict) -> str:
        ident = f"{card['id']}#{card.get('build_digest') or build_digest(card.get('build', {}))}"
        if weights["mode"] == "seeded":
            return f"{ident}|seeded:{weights.get('seed')}"
        return f"{ident}|{weights['mode']}:{weights.get('path')}"  # file: / canonical: a path

    def op_build(self, card: dict, weights: dict) -> dict:
        key = self.model_key(card, weights)
        if key not in self.models:
            fl = F.parse_all(card.get("build", {}).get("faults", []))
            at_model = [f for f in fl if f.stage == "model"]
            if at_model:  # the clean model (built once), copied, then each fault applied to the copy
                rest = [str(f) for f in fl if f.stage != "model"]
                build = {k: v for k, v in card["build"].items() if k != "faults"} | ({"faults": rest} if rest else {})
                clean = {**card, "id": card.get("base_id") or card["id"], "build": build,
                         "build_digest": build_digest(build)}
                model = self.copy_model(self.models[self.op_build(clean, weights)["key"]])
                for f in at_model:
                    model = self.fault_model(model, f)
            else:
                if weights["mode"] in ("file", "canonical") and not Path(weights["path"]).is_file():
                    raise AdapterError(f"weights file not found: {weights['path']}")
                model = self.apply_weights(self.set_padding(self.create(card), self.padding_of(card)), card, weights)
            self.models[key] = model
            self.run_faults[key] = [f for f in fl if f.stage in ("output", "process")]
        return {"key": key, "params": self.count_params(self.models[key])}

    def padding_of(self, card: dict) -> str:
        return card.get("build", {}).get("padding") or self.NATIVE_PADDING

    def _model(self, key: str) -> Any:
        try:
            return self.models[key]
        except KeyError:
            raise AdapterError(f"model {key!r} is not built in this worker (build it first)") from None

    def op_run(self, key: str, input: str) -> dict:
        model = self._model(key)
        faults = self.run_faults.get(key, [])
        if any(f.name == "crash" for f in faults):
            os.kill(os.getpid(), signal.SIGSEGV)
        x = np.load(input)
        t0 = time.perf_counter()
        y = np.concatenate([np.asarray(self.forward(model, x[i:i + CHUNK]), dtype=np.float32)
                            for i in range(0, len(x), CHUNK)])  # constant memory for any batch size
        seconds = time.perf_counter() - t0
        if any(f.name == "softmax" for f in faults):
            y = softmax(y)
        out = f"{Path(input).with_suffix('')}.{self.framework}.{hashlib.sha1(key.encode()).hexdigest()[:8]}.out.npy"
        np.save(out, y)
        return {"output": out, "seconds": seconds}

    def op_release(self, key: str) -> dict:
        self.models.pop(key, None)
        return {"released": key}

    def op_export_onnx(self, key: str, path: str, opset: int, exporter: str = "default") -> dict:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        info = self.export_onnx(self._model(key), path, opset, exporter) or {}
        data = Path(path).read_bytes()
        info.update({"path": path, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)})
        return info

    def op_count_native(self, key: str) -> dict:
        return {"counts": self.count_native(self._model(key))}

    def op_native_preprocess(self, card: dict, images: list[str], out: str) -> dict:
        t0 = time.perf_counter()
        x = np.ascontiguousarray(self.native_preprocess(card, images), dtype=np.float32)
        np.save(out, x)
        return {"output": out, "shape": list(x.shape), "seconds": time.perf_counter() - t0}

    def op_export_canonical(self, key: str, path: str, source: str = "") -> dict:
        from parity.weights.canonical import Canonical, save
        d = self.export_canonical(self._model(key))
        save(Canonical(d["tensors"], d["bn_eps"], d["padding"], source or key), path)
        return {"path": path, "bn_eps": d["bn_eps"], "padding": d["padding"]}

    def op_activations(self, key: str, input: str) -> dict:
        acts = self.activations(self._model(key), np.load(input))
        out = str(Path(input).with_suffix("")) + f".{self.framework}.{hashlib.sha1(key.encode()).hexdigest()[:8]}.acts.npz"
        np.savez(out, *acts)
        return {"output": out, "units": len(acts)}

    def op_save_native(self, key: str, path: str) -> dict:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return self.save_native(self._model(key), path)

    def op_weight_shapes(self, card: dict) -> dict:
        return {"shapes": {k: list(v) for k, v in self.state_shapes(self.create(card)).items()}}

    def op_file_shapes(self, card: dict, path: str) -> dict:
        return {"shapes": {k: list(v) for k, v in self.file_shapes(self.create(card), path).items()}}

    def op_deploy_export(self, key: str, runtime: str, path: str, options: dict) -> dict:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return self.deploy_export(self._model(key), runtime, path, options)

    def op_deploy_run(self, runtime: str, path: str, input: str, options: dict) -> dict:
        x = np.load(input)
        y, precision, detail, times = self.deploy_run(runtime, path, x, options)
        out = f"{Path(input).with_suffix('')}.{runtime}.out.npy"
        np.save(out, np.asarray(y, np.float32))
        return {"output": out, "precision": precision, "detail": detail, "times": times}

    def op_tflite_run(self, path: str, input: str) -> dict:
        return self.tflite_run(path, input)

    def op_artifact(self, format: str, path: str, input: str, options: dict) -> dict:
        return artifact_reply(self.artifact(format, path, np.load(input) if input else None, options), input)

    # ------------------------------------------------------------------ weights modes, the same in every adapter
    def apply_weights(self, model: Any, card: dict, weights: dict) -> Any:
        mode = weights["mode"]
        if mode == "canonical":
            from parity.weights.canonical import load
            self.import_canonical(model, load(weights["path"]), transpose_dw_unit(card))
        elif mode == "seeded":
            self.seed_weights(model, int(weights["seed"]), np.load(weights["calib"]))
        elif mode == "file":
            self.load_file(model, weights["path"])
        else:
            raise AdapterError(f"unknown weights mode {mode!r}")
        return model
