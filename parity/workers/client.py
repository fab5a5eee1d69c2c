"""Typed client of one framework's worker: one method per op of ``parity.workers.protocol``, typed parameters and
typed results, over the pool's JSON lines. The only way the core talks to an adapter. Framework-free."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..registry import Card
from ..spec import PreprocessSpec
from .process import WorkerPool
from .protocol import OPS


@dataclass(frozen=True)
class Built:
    key: str
    params: dict[str, int]
    seconds: float
    generation: int = 0


@dataclass(frozen=True)
class Exported:
    path: str
    sha256: str
    bytes: int
    exporter: str
    opset: int
    check: dict[str, Any] = field(default_factory=dict)     # onnx.checker summary (filled by the harness)
    spec_json: str = ""                                       # the preprocessing sidecar (filled by the harness)
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)     # converter details (versions, step timings, ...)


@dataclass(frozen=True)
class Meta:
    url: str | None
    source: str | None
    published: dict[str, dict[str, Any]]
    card_fields: dict[str, Any]
    meta: dict[str, Any]


@dataclass(frozen=True)
class Contract:
    framework: str
    implemented: list[str]
    unsupported: dict[str, str]
    missing: list[str]


class AdapterClient:
    def __init__(self, pool: WorkerPool, framework: str) -> None:
        self.pool = pool
        self.framework = framework
        self._contract: Contract | None = None

    def _call(self, op: str, **params: Any) -> dict[str, Any]:
        assert op in OPS, op
        result = self.pool.call(self.framework, op, **params)
        assert isinstance(result, dict), (op, result)
        return result

    def contract(self) -> Contract:
        if self._contract is None:
            r = self._call("contract")
            self._contract = Contract(r["framework"], r["implemented"], r["unsupported"], r["missing"])
        return self._contract

    def supports(self, op: str) -> bool:
        return op in self.contract().implemented

    def derive_spec(self, card: Card) -> PreprocessSpec:
        return PreprocessSpec.from_dict(self._call("derive_spec", card=card.to_request())["spec"])

    def meta(self, card: Card) -> Meta:
        r = self._call("meta", card=card.to_request())
        return Meta(r.get("url"), r.get("source"), r.get("published", {}), r.get("card_fields", {}), r.get("meta", {}))

    def build(self, card: Card, weights: dict[str, Any]) -> Built:
        r = self._call("build", card=card.to_request(), weights=weights)
        return Built(r["key"], r["params"], float(r["seconds"]), self.pool.generation.get(self.framework, 0))

    def run(self, key: str, input: str) -> tuple[str, float]:
        r = self._call("run", key=key, input=input)
        return str(r["output"]), float(r["seconds"])

    def release(self, key: str) -> None:
        self._call("release", key=key)

    def export_onnx(self, key: str, path: Path, opset: int, exporter: str = "default") -> Exported:
        r = self._call("export_onnx", key=key, path=str(path), opset=opset, exporter=exporter)
        known = {"path", "sha256", "bytes", "exporter", "opset", "seconds"}
        return Exported(r["path"], r["sha256"], int(r["bytes"]), str(r.get("exporter", exporter)), int(r["opset"]),
                        seconds=float(r.get("seconds", 0.0)), extra={k: v for k, v in r.items() if k not in known})

    def count_native(self, key: str) -> dict[str, int]:
        if not self.supports("count_native"):
            return {}
        return {k: int(v) for k, v in self._call("count_native", key=key)["counts"].items()}

    def native_preprocess(self, card: Card, images: list[str], out: str) -> tuple[str, float]:
        r = self._call("native_preprocess", card=card.to_request(), images=images, out=out)
        return str(r["output"]), float(r["seconds"])

    def export_canonical(self, key: str, path: Path, source: str = "") -> dict[str, Any]:
        return self._call("export_canonical", key=key, path=str(path), source=source)

    def activations(self, key: str, input: str) -> str:
        return str(self._call("activations", key=key, input=input)["output"])

    def save_native(self, key: str, path: Path) -> dict[str, Any]:
        return self._call("save_native", key=key, path=str(path))

    def weight_shapes(self, card: Card) -> dict[str, tuple[int, ...]]:
        return {k: tuple(v) for k, v in self._call("weight_shapes", card=card.to_request())["shapes"].items()}

    def file_shapes(self, card: Card, path: Path) -> dict[str, tuple[int, ...]]:
        return {k: tuple(v) for k, v in self._call("file_shapes", card=card.to_request(), path=str(path))["shapes"].items()}

    def deploy_export(self, key: str, runtime: str, path: Path, options: dict[str, Any]) -> dict[str, Any]:
        return dict(self._call("deploy_export", key=key, runtime=runtime, path=str(path), options=options))

    def deploy_run(self, runtime: str, path: str, input: str, options: dict[str, Any]) -> dict[str, Any]:
        return self._call("deploy_run", runtime=runtime, path=path, input=input, options=options)

    def artifact(self, fmt: str, path: str, input: str, options: dict[str, Any]) -> dict[str, Any]:
        return dict(self._call("artifact", format=fmt, path=path, input=input, options=options))

    def tflite_run(self, path: Path, input: str) -> str:
        return str(self._call("tflite_run", path=str(path), input=input)["output"])


def host_call(pool: WorkerPool, name: str, ops: Any, op: str, params: dict[str, Any]) -> dict[str, Any]:
    """One op of a toolchain host (deploy, executorch): only the ops its protocol names, a dict answer."""
    assert op in ops, op
    result = pool.call(name, op, **params)
    assert isinstance(result, dict), (op, result)
    return result


def host_versions(pool: WorkerPool, name: str) -> dict[str, str]:
    return dict(pool.info(name).get("versions", {}))


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of an ExecuTorch method, as its MethodMeta gives it."""
    dtype: str
    shape: tuple[int, ...]
    nbytes: int


@dataclass(frozen=True)
class Delegate:
    """One delegate (lowered subgraph) of a .pte method: the backend it was lowered for, its payload's size, and for
    XNNPACK payloads the datatypes of the tensors it holds (``{datatype: count}``, e.g. ``qcint8`` weights)."""
    backend: str
    bytes: int
    datatypes: dict[str, int]


@dataclass(frozen=True)
class PteRun:
    """What a .pte file holds and, when it was given an input, what its method computed (``output``: an .npz of
    the method's outputs in order, '' without input)."""
    path: str
    method: str
    methods: list[str]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    delegates: list[Delegate]
    operators: list[str]             # operators the method runs outside any delegate (ExecuTorch's kernels)
    precision: str                   # fp32 | int8 | fp16 from the delegates' datatypes ('' when nothing is delegated)
    output: str
    seconds: float


class ExecuTorchClient(AdapterClient):
    """Typed client of the ExecuTorch host (``adapters/executorch.py``): the model ops of ``AdapterClient``
    (build, run, deploy_export, deploy_run) for the cards it builds, and ``pte_run`` for any .pte file."""

    name = "executorch"

    def __init__(self, pool: WorkerPool) -> None:
        super().__init__(pool, self.name)

    def _call(self, op: str, **params: Any) -> dict[str, Any]:
        from .protocol import EXECUTORCH_OPS
        return host_call(self.pool, self.name, EXECUTORCH_OPS, op, params)

    def versions(self) -> dict[str, str]:
        return host_versions(self.pool, self.name)

    def pte_run(self, path: Path | str, input: str = "", method: str = "forward") -> PteRun:
        r = self._call("pte_run", path=str(path), input=input, method=method)

        def specs(rows: list[dict[str, Any]]) -> list[TensorSpec]:
            return [TensorSpec(str(t["dtype"]), tuple(int(d) for d in t["shape"]), int(t["nbytes"])) for t in rows]
        return PteRun(str(path), str(r["method"]), [str(m) for m in r["methods"]], specs(r["inputs"]),
                      specs(r["outputs"]),
                      [Delegate(str(d["backend"]), int(d["bytes"]), {str(k): int(v) for k, v in d["datatypes"].items()})
                       for d in r["delegates"]],
                      [str(o) for o in r["operators"]], str(r["precision"]), str(r["output"] or ""),
                      float(r.get("seconds", 0.0)))


@dataclass(frozen=True)
class Loaded:
    """An OpenVINO compiled model in the deploy host, with what the plugin reports it will run."""
    handle: str
    hint: str                        # INFERENCE_PRECISION_HINT read back from the compiled model
    precision: str                   # what most compute layers run (runtimePrecision), normalized: fp32/bf16/int8
    compute_layers: dict[str, int]   # runtimePrecision -> number of Convolution/FullyConnected/MatMul layers
    capabilities: list[str]          # the CPU plugin's OPTIMIZATION_CAPABILITIES on this machine
    version: str
    config: dict[str, Any]


class DeployClient:
    """Typed client of the deployment-toolchain host (``adapters/deploy.py``)."""

    name = "deploy"

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool

    def _call(self, op: str, **params: Any) -> dict[str, Any]:
        from .protocol import DEPLOY_OPS
        return host_call(self.pool, self.name, DEPLOY_OPS, op, params)

    def versions(self) -> dict[str, str]:
        return host_versions(self.pool, self.name)

    def fp16(self, src: Path, dst: Path) -> dict[str, Any]:
        return dict(self._call("fp16", src=str(src), dst=str(dst))["made_by"])

    def quantize(self, src: Path, dst: Path, calib: str, tool: str, method: str, granularity: str) -> dict[str, Any]:
        return dict(self._call("quantize", src=str(src), dst=str(dst), calib=calib, tool=tool, method=method,
                               granularity=granularity)["made_by"])

    def ov_load(self, path: Path, config: dict[str, Any], threads: int = 0) -> Loaded:
        r = self._call("ov_load", path=str(path), config=config, threads=threads)
        return Loaded(r["handle"], r["hint"], r["precision"], r["compute_layers"], r["capabilities"], r["version"],
                      r["config"])

    def ov_infer(self, handle: str, input: str) -> str:
        return str(self._call("ov_infer", handle=handle, input=input)["output"])

    def ov_bench(self, handle: str, input: str, repeats: int) -> list[float]:
        return [float(t) for t in self._call("ov_bench", handle=handle, input=input, repeats=repeats)["times"]]

    def ov_release(self, handle: str) -> None:
        self._call("ov_release", handle=handle)

    def ov_convert(self, src: Path, dst: Path) -> dict[str, Any]:
        return dict(self._call("ov_convert", src=str(src), dst=str(dst)))

    def convert(self, src: Path, dst: Path, tool: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
        return dict(self._call("convert", src=str(src), dst=str(dst), tool=tool, options=options or {}))

    def ov_double_scale(self, src: Path, dst: Path, index: int) -> dict[str, Any]:
        return self._call("ov_double_scale", src=str(src), dst=str(dst), index=index)

    def artifact(self, fmt: str, path: str, input: str, options: dict[str, Any]) -> dict[str, Any]:
        return dict(self._call("artifact", format=fmt, path=path, input=input, options=options))

    def layer_errors(self, float_path: Path, quant_path: Path, calib: str, images: int = 8) -> dict[str, Any]:
        return self._call("layer_errors", float_path=str(float_path), quant_path=str(quant_path), calib=calib,
                          images=images)
