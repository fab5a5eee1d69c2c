"""Fold the shape arithmetic of an ONNX graph whose spatial size is fixed (only the batch is dynamic) into constants.

timm's TF-SAME layers (``Conv2dSame``/``pad_same``) compute each pad at run time from the input's size: Shape ->
Gather -> Cast to float -> Div -> Ceil -> ... -> Pad. onnxconverter-common's fp16 conversion turns that float arithmetic
into fp16 and leaves a Cast typed float, a graph ONNX Runtime refuses ("Type (tensor(float16)) of output arg
(/conv_stem/Cast_3_output_0) ... does not match expected type (tensor(float))"). A card's input size is fixed, so every
value that depends only on the static dims is a constant: folded here (ONNX's own reference evaluator, one node at a
time), the converter then sees constant pads. Runs in the deploy host (onnx only)."""
from __future__ import annotations

from typing import Any

import numpy as np


def fold_static_shapes(model: Any, rounds: int = 64) -> tuple[Any, int]:
    """(model with every node whose inputs are all known folded to an initializer, number of nodes folded). A
    ``Shape`` is known where the dims it reads are static; a ``Gather`` of a partly static shape where it reads static
    dims only. The batch dim stays dynamic: nothing that depends on it is folded. Repeated until nothing more folds:
    each layer's pads, once constant, let shape inference size the next layer's input."""
    if not any(n.op_type == "Shape" for n in model.graph.node):
        return model, 0       # no shape arithmetic: the file is left exactly as exported
    total = 0
    for _ in range(rounds):
        model, n = _fold_once(model)
        total += n
        if not n:
            break
    return model, total


def _fold_once(model: Any) -> tuple[Any, int]:
    import onnx
    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator

    inferred = onnx.shape_inference.infer_shapes(model)
    dims: dict[str, list[int | None]] = {}
    for vi in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        t = vi.type.tensor_type
        if t.HasField("shape"):
            dims[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
    known: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    partial: dict[str, list[int | None]] = {}   # Shape outputs with some dims unknown
    folded, keep = 0, []
    opsets = list(model.opset_import)
    for node in model.graph.node:
        value = _fold(node, known, partial, dims, ReferenceEvaluator, onnx, opsets)
        if value is None:
            keep.append(node)
            continue
        known[node.output[0]] = value
        folded += 1
    if not folded:
        return model, 0
    outputs = {o.name for o in model.graph.output}
    live: list[Any] = []
    needed = set(outputs)
    for n in reversed(keep):             # dead nodes out (a Shape whose Gathers were all folded)
        if any(o in needed for o in n.output):
            live.append(n)
            needed.update(i for i in n.input if i)
    live.reverse()
    inits = [numpy_helper.from_array(np.asarray(known[n]), n) for n in sorted(needed) if n in known]
    del model.graph.node[:]
    model.graph.node.extend(live)
    del model.graph.initializer[:]
    model.graph.initializer.extend(inits)
    onnx.checker.check_model(model)
    return model, folded


def _fold(node: Any, known: dict[str, np.ndarray], partial: dict[str, list[int | None]],
          dims: dict[str, list[int | None]], evaluator: Any, onnx: Any, opsets: list[Any]) -> np.ndarray | None:
    """The node's single output as a constant, or None when it depends on something not known."""
    if len(node.output) != 1:
        return None
    if node.op_type == "Shape" and node.input[0] in dims and not node.attribute:
        shape = dims[node.input[0]]
        if all(d is not None and d > 0 for d in shape):
            return np.asarray(shape, np.int64)
        partial[node.output[0]] = shape
        return None
    if node.op_type == "Gather" and node.input[0] in partial and node.input[1] in known:
        shape = partial[node.input[0]]
        idx = np.asarray(known[node.input[1]])
        picked = [shape[int(i)] for i in idx.reshape(-1)]
        if all(p is not None and p > 0 for p in picked):
            return np.asarray(picked, np.int64).reshape(idx.shape)
        return None
    inputs = [i for i in node.input if i]
    if node.op_type in ("RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial"):
        return None
    if node.op_type != "Constant" and (not inputs or not all(i in known for i in inputs)):
        return None
    graph = onnx.helper.make_graph(
        [node], "fold", [onnx.helper.make_tensor_value_info(i, onnx.helper.np_dtype_to_tensor_dtype(known[i].dtype),
                                                            known[i].shape) for i in inputs],
        [onnx.helper.make_tensor_value_info(node.output[0], onnx.TensorProto.UNDEFINED, None)])
    m = onnx.helper.make_model(graph, opset_imports=opsets)
    try:
        (out,) = evaluator(m).run(None, {i: known[i] for i in inputs})
    except (NotImplementedError, RuntimeError, TypeError, ValueError, KeyError, IndexError):
        # an op the reference evaluator cannot run: left in the graph, not folded
        return None
    return np.asarray(out)
