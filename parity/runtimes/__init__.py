"""Runtimes as plug-ins: one module per runtime, each registering itself here under a name.

``create(name)`` makes a fresh instance; ``names(tag)`` lists the runtimes carrying a tag (``onnx-fp32``: the
fp32 ONNX runtimes the ONNX parity check compares against native). Runtimes from outside the package register the
same way, from a module named in ``MBV2_PARITY_PLUGINS`` or an ``mbv2_parity.plugins`` entry point
(``parity.plugins``). Adding a runtime = one module + its tests.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError
from .base import Runtime, RuntimeInfo, Target


@dataclass(frozen=True)
class Entry:
    name: str
    factory: Callable[..., Runtime]
    options: dict[str, Any]
    tags: tuple[str, ...]
    doc: str


_REGISTRY: dict[str, Entry] = {}


def register(name: str, factory: Callable[..., Runtime], *, tags: tuple[str, ...] = (), doc: str = "",
             **options: Any) -> None:
    _REGISTRY[name] = Entry(name, factory, options, tags, doc)


def create(name: str, **overrides: Any) -> Runtime:
    _load_builtins()
    entry = _REGISTRY.get(name)
    if entry is None:
        raise UsageError(f"unknown runtime {name!r}", hint=f"one of {', '.join(names())}")
    unknown = sorted(set(overrides) - set(accepts(name)))
    if unknown:
        raise UsageError(f"runtime {name} takes no option {', '.join(unknown)}",
                         hint=f"it takes {', '.join(accepts(name)) or 'no options'}")
    return entry.factory(name, **{**entry.options, **overrides})


def accepts(name: str) -> list[str]:
    """The options runtime ``name`` takes (its constructor's keyword parameters): anything else is refused, never
    silently ignored."""
    import inspect
    _load_builtins()
    params = inspect.signature(_REGISTRY[name].factory).parameters
    return [p for p, v in params.items() if p != "name" and v.kind in (v.KEYWORD_ONLY, v.POSITIONAL_OR_KEYWORD)]


def names(tag: str | None = None) -> list[str]:
    _load_builtins()
    return [n for n, e in _REGISTRY.items() if tag is None or tag in e.tags]


def entries() -> list[Entry]:
    _load_builtins()
    return list(_REGISTRY.values())


def fits(name: str, card: Any, mode: str) -> str:
    """Why runtime ``name`` cannot run ``card`` with weights ``mode`` ("" when it can)."""
    _load_builtins()
    return str(_REGISTRY[name].factory.fits(card, mode))  # type: ignore[attr-defined]


# `--runtime FAMILY [--precision P]` -> the registered runtime (None: the family's own default configuration)
FAMILIES = {("ort", None): "ort-opt-on", ("ort", "fp32"): "ort-opt-on", ("ort", "fp16"): "ort-fp16",
            ("ort", "int8"): "ort-int8", ("openvino", None): "openvino-default", ("openvino", "fp32"): "openvino-f32",
            ("openvino", "bf16"): "openvino-bf16", ("openvino", "int8"): "openvino-int8", ("tflite", None): "tflite",
            ("tflite", "fp32"): "tflite", ("tflite", "int8"): "tflite-int8",
            ("paddle-inference", None): "paddle-inference", ("paddle-inference", "fp32"): "paddle-inference",
            ("paddle-inference", "bf16"): "paddle-inference-bf16", ("torchscript", None): "torchscript",
            ("torchscript", "fp32"): "torchscript", ("torch-quantized", None): "torch-qnnpack",
            ("torch-quantized", "int8"): "torch-qnnpack", ("executorch", None): "executorch-fp32",
            ("executorch", "fp32"): "executorch-fp32", ("executorch", "int8"): "executorch-int8"}


def resolve(name: str, precision: str | None = None) -> str:
    """``FAMILY [PRECISION]`` or a registered runtime name -> the registered name."""
    if (name, precision) in FAMILIES:
        return FAMILIES[(name, precision)]
    families = sorted({f for f, _ in FAMILIES})
    if name in families:
        ok = sorted(p for f, p in FAMILIES if f == name and p)
        raise UsageError(f"--runtime {name} --precision {precision}: not offered", hint=f"{name} offers {', '.join(ok)}")
    if name in names():
        if precision:
            raise UsageError(f"--runtime {name} names a precision already; drop --precision or use the family name")
        return name
    raise UsageError(f"unknown runtime {name!r}", hint=f"a family ({', '.join(families)}) or one of {', '.join(names())}")


def precision_of(name: str) -> str:
    """The precision runtime ``name`` is registered for ("" for runtimes of the card's own precision)."""
    _load_builtins()
    return str(_REGISTRY[name].options.get("precision", ""))


def quantizes(name: str) -> tuple[str, ...]:
    """The calibration/quantization options runtime ``name`` honors (() unless it quantizes)."""
    entry = _REGISTRY[name]
    return tuple(getattr(entry.factory, "honors", ())) if entry.options.get("precision") == "int8" else ()


CALIBRATION = ("calib_dir", "calib_images", "granularity", "method")   # the options of runtimes that calibrate


def quant_options(selected: list[str], given: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Per selected runtime, the given calibration/quantization options it honors, and notes on those it does not.
    An option given explicitly (not None) that no selected runtime honors is refused."""
    _load_builtins()
    explicit = {k: v for k, v in given.items() if v is not None}
    per = {n: {k: v for k, v in explicit.items() if k in quantizes(n)} for n in selected}
    flags = {"calib_dir": "--calib", "calib_images": "--calib-images", "granularity": "--quant",
             "method": "--calib-method", "path": "--tflite"}
    notes = []
    for k in explicit:
        takers = [n for n in selected if k in quantizes(n)]
        if not takers:
            offered = [n for n in names("deploy") if k in quantizes(n)]
            what = f"none of the selected runtimes ({', '.join(selected)}) takes it" if selected else \
                "no deployment runtime selected"
            raise UsageError(f"{flags.get(k, k)}: {what}", hint=f"it applies to {', '.join(offered)}")
        calibrates = [n for n in selected if set(quantizes(n)) & set(CALIBRATION)]
        others = [n for n in calibrates if k in CALIBRATION and k not in quantizes(n)]
        if others:
            notes.append(f"{flags.get(k, k)} applies to {', '.join(takers)}; {', '.join(others)} quantize their own "
                         "way (recorded in each artifact's made_by)")
    return per, notes


def _load_builtins() -> None:
    from .. import plugins
    from . import (  # noqa: F401  (each registers)
        executorch,
        native,
        onnxruntime,
        openvino,
        paddle_inference,
        tflite,
        torch_quantized,
        torchscript,
    )
    plugins.load()


__all__ = ["FAMILIES", "Entry", "Runtime", "RuntimeInfo", "Target", "accepts", "create", "entries", "fits", "names",
           "precision_of", "quant_options", "quantizes", "register", "resolve"]
