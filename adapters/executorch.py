"""The ExecuTorch host (stack ``executorch``, tox env ``w-executorch``): executorch 1.5.1 and torchao 0.18 beside
torch 2.14.1 and the torch stack's card code, in a worker of their own so their pins never move ``w-torch``.

A card is built here by its own torch adapter (``adapters/<framework>.py``: the same ``create``, weights modes and
faults as in the torch worker). ``deploy_export`` lowers it: ``torch.export.export`` at batch 1 -> for int8,
``prepare_pt2e`` with ``XNNPACKQuantizer`` (``get_symmetric_quantization_config(is_per_channel=True)``), one call per
calibration image, ``convert_pt2e``, exported again -> ``to_edge_transform_and_lower`` with ``XnnpackPartitioner`` ->
``.pte``. ``deploy_run`` and ``pte_run`` load the file in the ExecuTorch runtime (``executorch.runtime``) and read back
from the file itself what it runs: its delegates (backend id, payload bytes, and for XNNPACK payloads the datatypes of
the tensors in the delegated graph, decoded with the XNNPACK schema by the flatc ExecuTorch ships) and the operators
its method runs outside any delegate.
"""
from __future__ import annotations

import functools
import importlib
import json
import os
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

from parity.frameworks import built_by
from parity.workers.protocol import EXECUTORCH_OPS

from .base import AdapterError, BaseAdapter, call_op, timed

HOST = "executorch"
INT8 = {"xnn_datatype_qint8", "xnn_datatype_quint8", "xnn_datatype_qcint8", "xnn_datatype_qdint8",
        "xnn_datatype_qcint4", "xnn_datatype_qbint4", "xnn_datatype_qpint8"}
FP16 = {"xnn_datatype_fp16", "xnn_datatype_bf16"}
CALIB_BATCH = 32       # calibration images per observer call


class Adapter(BaseAdapter):
    framework = HOST

    def __init__(self) -> None:
        super().__init__()
        self.inner: dict[str, BaseAdapter] = {}     # framework -> its adapter, building its cards here
        self.owner: dict[str, BaseAdapter] = {}     # model key -> the adapter that built it

    def handle(self, op: str, params: dict[str, Any]) -> Any:
        fn = getattr(self, f"op_{op}", None)
        if op not in EXECUTORCH_OPS or fn is None:
            raise AdapterError(f"unknown op {op!r} for the executorch host; it serves {sorted(EXECUTORCH_OPS)}")
        return call_op(fn, params)

    def op_contract(self) -> dict:
        implemented = [o for o in EXECUTORCH_OPS if hasattr(self, f"op_{o}")]
        return {"framework": self.framework, "implemented": implemented, "unsupported": {},
                "missing": [o for o in EXECUTORCH_OPS if o not in implemented]}

    def versions(self) -> dict[str, str]:
        import executorch.version
        import timm
        import torchao
        import torchvision
        return {"executorch": executorch.version.__version__, "torchao": torchao.__version__,
                "torch": torch.__version__, "torchvision": torchvision.__version__, "timm": timm.__version__,
                "numpy": np.__version__}

    # ------------------------------------------------------------------ the cards, built by their own adapters
    def _inner(self, framework: str) -> BaseAdapter:
        if framework not in built_by(HOST):
            raise AdapterError(f"the ExecuTorch host builds {', '.join(built_by(HOST))} cards, not {framework}",
                               hint="ExecuTorch lowers torch models (torch.export)")
        if framework not in self.inner:
            self.inner[framework] = importlib.import_module(f"adapters.{framework}").Adapter()
        return self.inner[framework]

    def _owner(self, key: str) -> BaseAdapter:
        try:
            return self.owner[key]
        except KeyError:
            raise AdapterError(f"model {key!r} is not built in this worker (build it first)") from None

    def op_build(self, card: dict, weights: dict) -> dict:
        inner = self._inner(card["framework"])
        r = inner.op_build(card, weights)
        self.owner[r["key"]] = inner
        return r

    def op_run(self, key: str, input: str) -> dict:
        return self._owner(key).op_run(key, input)

    def op_release(self, key: str) -> dict:
        r = self._owner(key).op_release(key)
        self.owner.pop(key, None)
        return r

    def _model(self, key: str) -> Any:
        return self._owner(key)._model(key)

    # ------------------------------------------------------------------ .pte: make, run, read back
    def deploy_export(self, model: Any, runtime: str, path: str, options: dict) -> dict:
        if runtime != HOST:
            raise AdapterError(f"{runtime!r} is not a runtime of the ExecuTorch host ({HOST})")
        hw = int(getattr(model, "_mbv2_input_size", 224))
        calib = np.load(options["calib"]) if options.get("quantize") else None
        if options.get("quantize") and (calib is None or not len(calib)):
            raise AdapterError("executorch int8: no calibration images")
        made = lower(model.eval(), hw, calib, path)
        if calib is not None:
            made["calib_fingerprint"] = options.get("calib_fingerprint")
        return {"path": path, "made_by": made}

    def deploy_run(self, runtime: str, path: str, x: np.ndarray, options: dict) -> tuple:
        if runtime != HOST:
            raise AdapterError(f"{runtime!r} is not a runtime of the ExecuTorch host ({HOST})")
        method = load_method(path, os.stat(path).st_mtime_ns, "forward")
        threads = set_threads(int(options.get("threads") or 0))
        y = run_batches(method, x)
        times = timed(lambda: run_batches(method, x), int(options.get("repeats") or 0))
        read = read_pte(path, "forward")
        detail = {"delegates": read["delegates"], "operators": read["operators"], "inputs": read["inputs"],
                  "threads": threads}
        return y, read["precision"] or "fp32", detail, times

    def op_pte_run(self, path: str, input: str = "", method: str = "forward") -> dict:
        if not Path(path).is_file():
            raise AdapterError(f"no such .pte file: {path}")
        with open(path, "rb") as f:
            ident = f.read(8)[4:8]
        if not ident.startswith(b"ET"):     # the program flatbuffer's file identifier (ET12 for executorch 1.x)
            raise AdapterError(f"{path} is not an ExecuTorch program (file identifier {ident!r}, not ET..)",
                               hint="a .pte written by executorch's to_executorch().buffer / save")
        read = read_pte(path, method)
        out = ""
        if input:
            m = load_method(path, os.stat(path).st_mtime_ns, method)
            x = np.load(input)
            outs = run_outputs(m, x, read["inputs"])
            out = f"{Path(input).with_suffix('')}.pte.out.npz"
            np.savez(out, *outs)
        return {**read, "output": out}

    def op_artifact(self, format: str, path: str, input: str, options: dict) -> dict:
        """`verify`'s .pte (``adapters/artifacts.py``: ``pte``)."""
        from .artifacts import run
        from .base import artifact_reply
        if format != HOST:
            raise AdapterError(f"format {format!r} is not run by the ExecuTorch host (it runs {HOST})")
        return artifact_reply(run(format, path, np.load(input) if input else None, options), input)


# ---------------------------------------------------------------------- lowering
def lower(model: torch.nn.Module, hw: int, calib: np.ndarray | None, path: str) -> dict:
    """torch.export -> (PT2E int8 on ``calib``) -> to_edge_transform_and_lower(XNNPACK) -> .pte at ``path``."""
    import executorch.version
    import torchao
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    example = (torch.zeros(1, 3, hw, hw),)
    made: dict[str, Any] = {"tool": "torch.export -> to_edge_transform_and_lower(XnnpackPartitioner) -> .pte",
                            "executorch": executorch.version.__version__, "torch": torch.__version__,
                            "input_shape": [1, 3, hw, hw]}
    t0 = time.perf_counter()
    steps: dict[str, float] = {}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ep = torch.export.export(model, example)
        steps["export"] = time.perf_counter() - t0
        if calib is not None:
            from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
                XNNPACKQuantizer,
                get_symmetric_quantization_config,
            )
            from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
            quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
            # calibrated in batches (its activation observers are HistogramObservers: ~1 s per call whatever the batch
            # size, measured 11 s per call of one image on the shared 2-core machine): exported with a dynamic batch
            batch = torch.export.Dim("batch", min=1, max=max(2, CALIB_BATCH))
            dyn = torch.export.export(model, (torch.zeros(2, 3, hw, hw),), dynamic_shapes=({0: batch},))
            prepared = prepare_pt2e(dyn.module(), quantizer)
            for i in range(0, len(calib), CALIB_BATCH):
                prepared(torch.from_numpy(np.ascontiguousarray(calib[i:i + CALIB_BATCH], np.float32)))
            ep = torch.export.export(convert_pt2e(prepared), example)      # the deployed program: batch 1
            steps["quantize"] = time.perf_counter() - t0 - sum(steps.values())
            made.update(quantizer="XNNPACKQuantizer get_symmetric_quantization_config(is_per_channel=True)",
                        quantize="torchao.quantization.pt2e prepare_pt2e / convert_pt2e", torchao=torchao.__version__,
                        calib_images=len(calib), calib_batch=CALIB_BATCH)
        edge = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()])
        steps["lower"] = time.perf_counter() - t0 - sum(steps.values())
        made["lowered"] = describe_lowered(edge.exported_program().graph_module)
        program = edge.to_executorch()
    Path(path).write_bytes(program.buffer)
    steps["serialize"] = time.perf_counter() - t0 - sum(steps.values())
    made["seconds"] = {k: round(v, 2) for k, v in steps.items()}
    return made


def describe_lowered(gm: torch.fx.GraphModule) -> dict:
    """The lowered program before serialization: each delegate's backend and the ops it took over, and the ops left
    in the top-level graph (run by ExecuTorch's own kernels)."""
    from executorch.exir.lowered_backend_module import LoweredBackendModule
    delegates = []
    for _, sub in gm.named_children():
        if isinstance(sub, LoweredBackendModule):
            ops = Counter(str(n.target) for n in sub.original_module.graph.nodes if n.op == "call_function")
            delegates.append({"backend": sub.backend_id, "bytes": len(sub.processed_bytes), "ops": dict(sorted(ops.items()))})
    outside = Counter(str(n.target) for n in gm.graph.nodes if n.op == "call_function"
                      and "executorch_call_delegate" not in str(n.target) and "getitem" not in str(n.target))
    return {"delegates": delegates, "outside": dict(sorted(outside.items()))}


# ---------------------------------------------------------------------- the runtime
@functools.lru_cache(maxsize=8)
def load_method(path: str, _mtime: int, name: str) -> Any:
    """One loaded method per (file, its mtime, method name) in this worker (eval calls it once per batch)."""
    from executorch.runtime import Runtime
    program = Runtime.get().load_program(Path(path))
    if name not in program.method_names:
        raise AdapterError(f"{Path(path).name} has no method {name!r}", hint=f"its methods: {sorted(program.method_names)}")
    method = program.load_method(name)
    method._mbv2_program = program      # the method needs its program alive
    return method


def set_threads(n: int) -> int:
    """XNNPACK's threadpool size for this worker (0: leave ExecuTorch's default); the size it reports back."""
    from executorch.extension.pybindings import portable_lib
    if n:
        portable_lib._unsafe_reset_threadpool(n)
    return int(portable_lib._threadpool_get_thread_count())


def run_batches(method: Any, x: np.ndarray) -> np.ndarray:
    """The method's first output for each image of ``x`` (exported at batch 1), concatenated."""
    return np.concatenate([method.execute([torch.from_numpy(np.ascontiguousarray(x[i:i + 1], np.float32))])[0].numpy()
                           for i in range(len(x))])


def run_outputs(method: Any, x: np.ndarray, inputs: list[dict]) -> list[np.ndarray]:
    """Every output of a one-input method on ``x``: in one call when ``x`` has the input's shape, else in chunks of
    the input's leading dimension when the other dimensions match."""
    if len(inputs) != 1:
        raise AdapterError(f"the method takes {len(inputs)} inputs; pte_run feeds one")
    want = tuple(inputs[0]["shape"])
    if tuple(x.shape) != want and (len(want) != x.ndim or x.shape[1:] != want[1:] or not want or len(x) % want[0]):
        raise AdapterError(f"input of shape {list(x.shape)} does not fit the method's input {list(want)}",
                           hint="give a batch of that shape, or a multiple of its first dimension")
    dtype = np.dtype(inputs[0]["dtype"]) if inputs[0]["dtype"] in np.sctypeDict else np.float32
    step = want[0] if want else len(x)
    outs = [method.execute([torch.from_numpy(np.ascontiguousarray(x[i:i + step], dtype))])
            for i in range(0, len(x), step)]
    return [np.concatenate([o[k].numpy() for o in outs]) for k in range(len(outs[0]))]


def read_pte(path: str, method: str) -> dict:
    """What a .pte file holds, read from the file: its methods, the method's tensor specs (ExecuTorch's MethodMeta),
    its delegates and the operators it runs outside them; the precision the delegated tensors are stored in."""
    from executorch.exir._serialize._program import deserialize_pte_binary
    from executorch.runtime import Runtime
    program = Runtime.get().load_program(Path(path))
    names = sorted(program.method_names)
    if method not in names:
        raise AdapterError(f"{Path(path).name} has no method {method!r}", hint=f"its methods: {names}")
    meta = program.metadata(method)
    inputs = [tensor_spec(meta.input_tensor_meta(i)) for i in range(meta.num_inputs())]
    outputs = [tensor_spec(meta.output_tensor_meta(i)) for i in range(meta.num_outputs())]
    prog = deserialize_pte_binary(Path(path).read_bytes()).program
    plan = next(p for p in prog.execution_plan if p.name == method)
    delegates = []
    for d in plan.delegates:
        data = bytes(prog.backend_delegate_data[d.processed.index].data)
        delegates.append({"backend": d.id, "bytes": len(data),
                          "datatypes": xnnpack_datatypes(data) if "xnnpack" in d.id.lower() else {}})
    operators = sorted({f"{o.name}.{o.overload}" if o.overload else o.name for o in plan.operators})
    return {"method": method, "methods": names, "inputs": inputs, "outputs": outputs, "delegates": delegates,
            "operators": operators, "precision": precision_of(delegates)}


# ExecuTorch's ScalarType codes (runtime/core/portable_type/scalar_type.h), as MethodMeta's TensorInfo.dtype() gives them
SCALAR_TYPES = {0: "uint8", 1: "int8", 2: "int16", 3: "int32", 4: "int64", 5: "float16", 6: "float32", 7: "float64",
                11: "bool", 12: "qint8", 13: "quint8", 14: "qint32", 15: "bfloat16"}


def tensor_spec(t: Any) -> dict:
    code = t.dtype()
    dtype = SCALAR_TYPES.get(int(code), f"scalar_type_{code}") if isinstance(code, int) else str(code)
    return {"dtype": dtype, "shape": [int(s) for s in t.sizes()], "nbytes": int(t.nbytes())}


def xnnpack_datatypes(payload: bytes) -> dict[str, int]:
    """{datatype: count} of the tensors of an XNNPACK delegate payload (XNNHeader + XNNGraph flatbuffer), decoded
    with the XNNPACK schema by the flatc that ExecuTorch ships."""
    from executorch.backends.xnnpack.serialization.xnnpack_graph_serialize import XNNHeader, _get_schema_bytes
    from executorch.exir._serialize._flatbuffer import _flatc_decompile
    head = XNNHeader.from_bytes(payload[:XNNHeader.EXPECTED_LENGTH])
    fb = payload[head.flatbuffer_offset:head.flatbuffer_offset + head.flatbuffer_size]
    with tempfile.TemporaryDirectory() as d:
        Path(d, "schema.fbs").write_bytes(_get_schema_bytes())
        Path(d, "graph.bin").write_bytes(fb)
        _flatc_decompile(d, str(Path(d, "schema.fbs")), str(Path(d, "graph.bin")), ["--raw-binary"])
        graph = json.loads(Path(d, "graph.json").read_text())
    out: Counter[str] = Counter()
    for v in graph.get("xvalues", []):
        val = v.get("xvalue_union", {})
        tensor = val.get("tensor_value", val)
        if "datatype" in tensor:
            out[str(tensor["datatype"])] += 1
    return dict(sorted(out.items()))


def precision_of(delegates: list[dict]) -> str:
    """int8 when any delegated tensor is stored quantized, else fp16 when any is half/bfloat, else fp32 when a
    delegate holds tensors, '' when nothing is delegated (then ExecuTorch's portable kernels run fp32)."""
    kinds = {k for d in delegates for k in d["datatypes"]}
    if kinds & INT8:
        return "int8"
    if kinds & FP16:
        return "fp16"
    return "fp32" if kinds else ""
