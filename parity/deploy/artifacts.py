"""Deployed artifacts made from a card's fp32 ONNX export by the deploy host: fp16 ONNX, int8 QDQ ONNX (ONNX Runtime
quantization) and int8 OpenVINO IR (NNCF). Each records how it was made -- tool, version, settings, the calibration
set's fingerprint and the spec its images were preprocessed with -- in its ONNX ``metadata_props`` (key
``mbv2_parity.made_by``) or, for an IR, in ``<file>.made_by.json``, as the fp32 export records its preprocessing."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnx
from onnx import numpy_helper

from .. import faults as F
from ..errors import UsageError
from ..onnxfile import attach_spec
from ..registry import Card
from .calibration import CalibSet

if TYPE_CHECKING:
    from ..harness import Harness


@dataclass(frozen=True)
class Artifact:
    path: str
    precision: str                       # what it was made for: fp16 | int8
    made_by: dict[str, Any] = field(default_factory=dict)
    calib: dict[str, Any] | None = None  # CalibSet.to_dict() of an int8 artifact

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "precision": self.precision, "made_by": self.made_by, "calib": self.calib}


def _dir(h: Harness) -> Path:
    d = h.workdir / "deploy"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _stem(card: Card, mode: str, opset: int) -> str:
    tag = hashlib.sha1(f"{card.id}#{card.build_digest}|{mode}|{opset}".encode()).hexdigest()[:10]
    return f"{card.id.replace('/', '__')}.{tag}"


def _from(rec: dict[str, Any]) -> Artifact:
    return Artifact(str(rec["path"]), str(rec["precision"]), dict(rec["made_by"]), rec.get("calib"))


def fp16_onnx(h: Harness, card: Card, mode: str, opset: int) -> Artifact:
    def make() -> Artifact:
        src = h.export(card, mode, opset)
        dst = _dir(h) / f"{_stem(card, mode, opset)}.fp16.onnx"

        def convert() -> dict[str, Any]:
            made = h.deploy().fp16(Path(src.path), dst)
            attach_spec(dst, card, {"made_by": made})
            return Artifact(str(dst), "fp16", made).to_dict()
        # the key holds the fp32 file it is converted from (by content) and the deploy host's package versions
        return _from(h.stored("fp16", card, {"source_onnx": src.sha256}, _onnx_files(dst), convert, stack="deploy"))
    return h.artifact(("fp16", card.id, card.build_digest, mode, opset), make)


def _onnx_files(dst: Path) -> dict[str, Path]:
    return {"model.onnx": dst, "preprocess.json": dst.with_suffix(".preprocess.json")}


def int8(h: Harness, card: Card, mode: str, opset: int, calib: CalibSet, tool: str = "ort", method: str = "minmax",
         granularity: str = "per-channel", fault: str | None = None) -> Artifact:
    """An int8 artifact (``tool`` ``ort``: QDQ ONNX; ``nncf-openvino``: OpenVINO IR). ``fault`` (stage
    ``artifact``) damages the made file, to prove the deployment check catches it."""
    def make() -> Artifact:
        src = h.export(card, mode, opset)
        suffix = "int8.onnx" if tool == "ort" else "int8.xml"
        name = f"{_stem(card, mode, opset)}.{tool}.{method}.{granularity}.{calib.fingerprint.replace(':', '-')}"
        dst = _dir(h) / f"{name}.{suffix}"

        def quantize() -> dict[str, Any]:
            made = h.deploy().quantize(Path(src.path), dst, calib.path, tool, method, granularity)
            made["calibration"] = calib.to_dict()
            if tool == "ort":
                attach_spec(dst, card, {"made_by": made})
            else:
                dst.with_suffix(".made_by.json").write_text(json.dumps(made, indent=1, sort_keys=True))
            return Artifact(str(dst), "int8", made, calib.to_dict()).to_dict()
        files = _onnx_files(dst) if tool == "ort" else {
            "model.xml": dst, "model.bin": dst.with_suffix(".bin"), "made_by.json": dst.with_suffix(".made_by.json")}
        ingredients = {"source_onnx": src.sha256, "tool": tool, "method": method, "granularity": granularity,
                       "calibration": {"tensor": h.cache.sha256(calib.path), "n": calib.n, "spec": calib.spec_digest}}
        return _from(h.stored("int8", card, ingredients, files, quantize, stack="deploy"))
    art = h.artifact(("int8", card.id, card.build_digest, mode, opset, tool, method, granularity, calib.fingerprint),
                     make)
    return damaged(h, art, fault) if fault else art


def damaged(h: Harness, art: Artifact, fault: str) -> Artifact:
    """``double_scale:N``: the N-th weight's dequantization scale doubled in a copy of the artifact (a QDQ file's
    N-th weight DequantizeLinear, an IR's N-th weight decompression Multiply)."""
    f = F.parse(fault)
    if f.name != "double_scale" or not art.path.endswith((".onnx", ".xml")):
        raise ValueError(f"fault {fault} does not apply to {Path(art.path).name}")
    if art.path.endswith(".xml"):
        out = Path(art.path).with_suffix(f".{f.name}{f.arg}.xml")
        r = h.deploy().ov_double_scale(Path(art.path), out, int(f.arg))
        if not r["path"]:
            raise UsageError(f"fault {fault}: the artifact has {r['weights']} weight scales (0..{r['weights'] - 1})")
        made = {**art.made_by, "fault": fault, "damaged_node": r["node"]}
        out.with_suffix(".made_by.json").write_text(json.dumps(made, indent=1, sort_keys=True))
        return Artifact(str(out), art.precision, made, art.calib)
    m = onnx.load(art.path)
    inits = {i.name: i for i in m.graph.initializer}
    weight_dq = [n for n in m.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits
                 and len(inits[n.input[0]].dims) == 4]
    if not 0 <= int(f.arg) < len(weight_dq):
        raise UsageError(f"fault {fault}: the artifact has {len(weight_dq)} weight scales (0..{len(weight_dq) - 1})")
    node = weight_dq[int(f.arg)]
    scale = inits[node.input[1]]
    scale.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(scale) * 2, scale.name))
    out = Path(art.path).with_suffix(f".{f.name}{f.arg}.onnx")
    onnx.save(m, out)
    return Artifact(str(out), art.precision, {**art.made_by, "fault": fault, "damaged_node": node.name}, art.calib)


def made_by(path: str) -> dict[str, Any]:
    """What an artifact records about how it was made."""
    p = Path(path)
    if p.suffix == ".onnx":
        props = {x.key: x.value for x in onnx.load(str(p), load_external_data=False).metadata_props}
        return dict(json.loads(props.get("mbv2_parity.made_by", "{}")))
    side = p.with_suffix(".made_by.json")
    return dict(json.loads(side.read_text())) if side.is_file() else {}
