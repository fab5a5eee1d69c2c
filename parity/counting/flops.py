"""FLOPs/params counting on an ONNX graph, with named conventions. Framework-free.

``op_counts(path)`` walks the graph (shapes inferred with batch 1) and returns, per *category*, the numbers a
convention may combine:

=================  ==================================================================================
category           what is counted
=================  ==================================================================================
conv_macs          Conv: output elements x (C_in / groups) x kh x kw   (one multiply-add = 1)
conv_bias          Conv with a bias input: one add per output element
fc_macs            Gemm/MatMul: M x K x N
fc_bias            Gemm bias / MatMul followed by Add: one add per output element
bn_elems           BatchNormalization (inference): elements of its input (a convention scales it)
act_elems          Relu / Clip (ReLU6) / Sigmoid / HardSwish ...: elements of the output
add_elems          elementwise Add of two activations (residual adds): output elements
pool_in_elems      GlobalAveragePool / ReduceMean over H, W: input elements (the adds)
pool_out_elems     ... and output elements (the divisions)
affine_elems       elementwise Mul/Add with a constant (a BN folded to scale+shift by the exporter)
=================  ==================================================================================

A **convention** is a rule: a weighted sum of categories, applied the same way to every variant. The
conventions here are the ones the published numbers were produced with (see ``CONVENTIONS``); the registry
names which one reproduces each published cell.

Which categories a graph has depends on the exporter: ``torch.onnx`` in eval mode folds BN into the conv
(export with ``training=PRESERVE`` keeps it), tf2onnx folds it partly, paddle2onnx keeps it. A convention that
needs ``bn_elems`` must be counted on a graph that kept BN: ``counting graph`` exports (``keep_bn``) do.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import shape_inference

if TYPE_CHECKING:
    from ..registry import Published

CATEGORIES = ("conv_macs", "conv_bias", "fc_macs", "fc_bias", "bn_elems", "act_elems", "add_elems",
              "pool_in_elems", "pool_out_elems", "affine_elems",
              # the grouped (depthwise) part of conv_macs, and that part divided by the group count again
              # (what paddle's old static-graph counter computed, see CONVENTIONS['fluid.model_stat'])
              "dw_conv_macs", "dw_conv_macs_over_groups",
              # parameter-side categories
              "conv_weights", "dw_conv_weights", "dw_conv_weights_over_groups", "conv_bias_params", "bn_channels",
              "fc_weights", "fc_bias_params")
ACTIVATIONS = {"Relu", "Clip", "Sigmoid", "HardSwish", "HardSigmoid", "LeakyRelu", "Tanh"}


class CountError(ValueError):
    pass


def _fixed_batch(model: onnx.ModelProto, batch: int = 1) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    inits = {i.name for i in m.graph.initializer}
    for inp in m.graph.input:
        if inp.name in inits:
            continue
        dims = inp.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].ClearField("dim_param")
            dims[0].dim_value = batch
    return shape_inference.infer_shapes(m, strict_mode=False, data_prop=True)


def _shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    out = {}
    for vi in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        dims = vi.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            out[vi.name] = tuple(d.dim_value for d in dims)
    for init in model.graph.initializer:
        out[init.name] = tuple(init.dims)
    return out


def _constants(model: onnx.ModelProto) -> set[str]:
    names = {i.name for i in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant" or (n.op_type == "Identity" and n.input and n.input[0] in names):
            names.update(n.output)
    return names


def op_counts(path: str | Path, batch: int = 1) -> dict[str, float]:
    """Per-category counts of one forward pass at ``batch`` (see the module docstring)."""
    model = _fixed_batch(onnx.load(str(path)), batch)
    shapes = _shapes(model)
    consts = _constants(model)
    c: dict[str, float] = dict.fromkeys(CATEGORIES, 0)
    n_bn = 0

    def shape(name: str) -> tuple[int, ...]:
        if name not in shapes:
            raise CountError(f"no static shape for tensor {name!r} (shape inference failed on this graph)")
        return shapes[name]

    producers = {o: n for n in model.graph.node for o in n.output}
    for node in model.graph.node:
        op = node.op_type
        if op == "Conv":
            w = shape(node.input[1])
            y = shape(node.output[0])
            groups = next((a.i for a in node.attribute if a.name == "group"), 1)
            macs = int(np.prod(y)) * w[1] * int(np.prod(w[2:]))  # w[1] is already C_in / groups
            c["conv_macs"] += macs
            c["conv_weights"] += int(np.prod(w))
            if groups > 1:
                c["dw_conv_macs"] += macs
                c["dw_conv_macs_over_groups"] += macs / groups
                c["dw_conv_weights"] += int(np.prod(w))
                c["dw_conv_weights_over_groups"] += int(np.prod(w)) / groups
            if len(node.input) > 2 and node.input[2]:
                c["conv_bias"] += int(np.prod(y))
                c["conv_bias_params"] += w[0]
        elif op in ("Gemm", "MatMul"):
            a, y = shape(node.input[0]), shape(node.output[0])
            k = a[-1] if not (op == "Gemm" and any(x.name == "transA" and x.i for x in node.attribute)) else a[0]
            c["fc_macs"] += int(np.prod(y)) * k
            c["fc_weights"] += int(np.prod(shape(node.input[1])))
            if op == "Gemm" and len(node.input) > 2 and node.input[2]:
                c["fc_bias"] += int(np.prod(y))
                c["fc_bias_params"] += int(np.prod(shape(node.input[2])))
        elif op == "BatchNormalization":
            c["bn_elems"] += int(np.prod(shape(node.input[0])))
            c["bn_channels"] += shape(node.input[1])[0]
            n_bn += 1
        elif op in ACTIVATIONS:
            c["act_elems"] += int(np.prod(shape(node.output[0])))
        elif op in ("Add", "Mul", "Sub", "Div"):
            n_out = int(np.prod(shape(node.output[0])))
            const_in = [i for i in node.input if i in consts]
            if op == "Add" and not const_in:
                c["add_elems"] += n_out
            elif op == "Add" and const_in and producers.get(next(i for i in node.input if i not in consts)) is not None \
                    and producers[next(i for i in node.input if i not in consts)].op_type in ("MatMul",):
                c["fc_bias"] += n_out
                c["fc_bias_params"] += int(np.prod(shape(const_in[0])))
            else:
                c["affine_elems"] += n_out
        elif op in ("GlobalAveragePool", "ReduceMean"):
            c["pool_in_elems"] += int(np.prod(shape(node.input[0])))
            c["pool_out_elems"] += int(np.prod(shape(node.output[0])))
    c["bn_layers"] = n_bn
    return c


@dataclass(frozen=True)
class Convention:
    name: str
    weights: dict[str, float]
    doc: str
    needs_bn: bool = False

    def apply(self, counts: dict[str, float]) -> float:
        if self.needs_bn and counts.get("bn_layers", 0) == 0:
            raise CountError(f"convention {self.name!r} counts BatchNorm, but this graph has none "
                             "(the exporter folded it): count on a keep_bn export")
        return float(sum(w * counts.get(k, 0) for k, w in self.weights.items()))


CONVENTIONS: dict[str, Convention] = {c.name: c for c in (
    Convention("macs", {"conv_macs": 1, "fc_macs": 1},
               "multiply-adds of conv and fully-connected layers only (torchvision's meta '_ops' GFLOPS, fvcore)"),
    Convention("2xmacs", {"conv_macs": 2, "fc_macs": 2},
               "two FLOPs (a multiply and an add) per multiply-add of conv and FC layers"),
    Convention("thop", {"conv_macs": 1, "fc_macs": 1, "bn_elems": 4, "pool_in_elems": 1, "pool_out_elems": 1},
               "thop 0.1.1 rules: conv MACs (no bias), Linear MACs (no bias), affine BatchNorm 2 x 2 x input "
               "elements, adaptive avg-pool (kernel + 1) x output elements, activations 0. thop counts nn.Module "
               "types, so where a framework pools functionally (torchvision) thop itself misses the pool term",
               needs_bn=True),
    Convention("paddle.flops", {"conv_macs": 1, "conv_bias": 1, "fc_macs": 1, "bn_elems": 2,
                                "pool_in_elems": 1, "pool_out_elems": 1},
               "paddle.flops (paddle.hapi.dynamic_flops, a thop port) rules: conv MACs + conv bias, BatchNorm 2 x "
               "input elements, Linear MACs without bias, adaptive avg-pool (kernel + 1) x output elements; "
               "activations and functional residual adds count 0", needs_bn=True),
    Convention("mmengine", {"conv_macs": 1, "fc_macs": 1, "bn_elems": 2, "pool_in_elems": 1},
               "mmengine 0.10 get_model_complexity_info (fvcore-derived): conv and Linear MACs without bias, "
               "BatchNorm 2 x elements, adaptive avg-pool input elements", needs_bn=True),
    Convention("ptflops", {"conv_macs": 1, "conv_bias": 1, "fc_macs": 1, "fc_bias": 1, "bn_elems": 2,
                           "act_elems": 1, "pool_in_elems": 1},
               "ptflops 0.7 (and mmcv 1.x's flops counter, its port) rules: conv MACs + bias, Linear MACs + bias, "
               "affine BatchNorm 2 x elements, ReLU/ReLU6 1 x elements, avg-pool input elements", needs_bn=True),
    Convention("fluid.model_stat", {"conv_macs": 2, "dw_conv_macs": -2, "dw_conv_macs_over_groups": 2,
                                    "fc_macs": 2, "pool_in_elems": 1, "act_elems": 1, "bn_elems": 1},
               "paddle.fluid.contrib.model_stat (the static-graph counter behind PaddleClas's docs tables): 2 x conv "
               "MACs, but a grouped conv's C_in is taken from its (already per-group) filter and divided by "
               "groups again, so depthwise convs count 1/groups of their MACs; 2 x FC MACs; pool, ReLU6 and "
               "BatchNorm 1 x elements", needs_bn=True),
)}

# Parameter conventions computed from the graph (the others come from the framework: see checks/counts.py)
GRAPH_PARAM_CONVENTIONS: dict[str, dict[str, float]] = {
    "fluid.model_stat": {"conv_weights": 1, "dw_conv_weights": -1, "dw_conv_weights_over_groups": 1,
                         "conv_bias_params": 1, "bn_channels": 2, "fc_weights": 1},
}

UNITS = {"FLOPs": 1.0, "MFLOPs": 1e6, "GFLOPs": 1e9, "GFLOPS": 1e9, "count": 1.0, "M": 1e6}


def convention_table(counts: dict[str, float]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name, conv in CONVENTIONS.items():
        try:
            out[name] = conv.apply(counts)
        except CountError:
            out[name] = None
    return out


def graph_params(counts: dict[str, float]) -> dict[str, float | None]:
    """Graph-derived params conventions; None where the rule needs BatchNorm and the exporter folded it."""
    if counts.get("bn_layers", 0) == 0:
        return dict.fromkeys(GRAPH_PARAM_CONVENTIONS)
    return {name: float(sum(w * counts.get(k, 0) for k, w in rule.items()))
            for name, rule in GRAPH_PARAM_CONVENTIONS.items()}


@dataclass(frozen=True)
class CellCheck:
    metric: str
    source: str
    published: str
    unit: str
    convention: str
    computed: float | None      # in the published unit
    status: str                 # exact | within-tolerance | mismatch | no-convention | not-computable
    residual_rel: float | None
    detail: str = ""


def check_cell(pub: Published, values: dict[str, float | None]) -> CellCheck:
    """Reproduce one published FLOPs/params cell with its named convention.

    ``values``: convention name -> count in base units (FLOPs or parameters). Exact when the count, in the
    published unit and rounded the way the source rounds (``pub.decimals``), equals the published number;
    otherwise within tolerance only where the registry documents one (``pub.tolerance_rel`` with a note).
    """
    if not pub.convention:
        return CellCheck(pub.metric, pub.source, pub.digits, pub.unit, "", None, "no-convention", None,
                         "the registry names no convention for this cell")
    if pub.unit not in UNITS:
        return CellCheck(pub.metric, pub.source, pub.digits, pub.unit, pub.convention, None, "not-computable", None,
                         f"unknown unit {pub.unit!r}")
    raw = values.get(pub.convention)
    if raw is None:
        return CellCheck(pub.metric, pub.source, pub.digits, pub.unit, pub.convention, None, "not-computable", None,
                         f"convention {pub.convention!r} not computable for this model")
    x = raw / UNITS[pub.unit]
    d = pub.decimals
    residual = x / pub.value - 1.0 if pub.value else None
    shown = math.floor(x * 10 ** d + 1e-9) / 10 ** d if pub.rounding == "down" else round(x, d)
    if abs(shown - round(pub.value, d)) < 0.5 * 10.0 ** (-d) * 1e-6:
        status = "exact"
    elif pub.tolerance_rel and residual is not None and abs(residual) <= pub.tolerance_rel:
        status = "within-tolerance"
    else:
        status = "mismatch"
    label = pub.convention + (" (truncated)" if pub.rounding == "down" else "")
    return CellCheck(pub.metric, pub.source, pub.digits, pub.unit, label, x, status, residual,
                     f"{x:.{max(d, 0) + 2}f} {pub.unit} by {pub.convention} "
                     f"({'truncated' if pub.rounding == 'down' else 'rounded'} to {d} decimals: {shown:.{max(d, 0)}f})")
