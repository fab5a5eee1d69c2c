"""The exported ONNX file: structural checks and the preprocessing it ships with. Framework-free."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import onnx

from .errors import EXIT_FAILED, ParityError
from .registry import Card


class OnnxCheckError(ParityError):
    """The exported file fails ``onnx.checker`` or strict shape inference."""

    exit_code = EXIT_FAILED


def check_model(path: str | Path) -> dict[str, Any]:
    """``onnx.checker`` (full check) + strict shape inference; returns a summary of the graph."""
    path = str(path)
    try:
        model = onnx.load(path)
        onnx.checker.check_model(model, full_check=True)
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    except Exception as e:  # noqa: BLE001 - onnx raises several unrelated types for one verdict: the file is not valid
        raise OnnxCheckError(f"{Path(path).name}: {type(e).__name__}: {str(e).splitlines()[0][:300]}") from None
    opsets = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    out = inferred.graph.output[0]
    dims = [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim]
    ops: dict[str, int] = {}
    for n in model.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    return {"opset": opsets.get("ai.onnx"), "ir_version": model.ir_version,
            "producer": f"{model.producer_name} {model.producer_version}", "nodes": len(model.graph.node), "ops": ops,
            "input": model.graph.input[0].name, "output": out.name, "output_shape": dims}


def attach_spec(path: Path | str, card: Card, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Ship the exact preprocessing with the model: the card's spec as ONNX ``metadata_props`` (key
    ``mbv2_parity.preprocess``, JSON) and as ``<model>.preprocess.json`` beside the file. ``extra`` adds keys (a
    quantized artifact records how it was made: ``mbv2_parity.quantization``)."""
    path = Path(path)
    doc = {"card": card.id, "upstream_id": card.upstream_id, "preprocess": card.preprocess.to_dict(),
           "input": {"layout": card.preprocess.layout, "dtype": card.preprocess.dtype,
                     "size": card.preprocess.crop_size,
                     "formula": "x = (pixel * scale - mean) / std, channels in channel_order"}}
    text = json.dumps(doc, indent=1, sort_keys=True)
    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props}
    props.update({"mbv2_parity.preprocess": text, "mbv2_parity.card": card.id})
    props.update({f"mbv2_parity.{k}": json.dumps(v, sort_keys=True) for k, v in (extra or {}).items()})
    del model.metadata_props[:]
    for k, v in sorted(props.items()):
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(path))
    side = path.with_suffix(".preprocess.json")
    side.write_text(text)
    data = path.read_bytes()
    return {"spec_json": str(side), "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def metadata(path: str | Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
