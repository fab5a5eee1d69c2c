"""Injected faults: one mechanism, one syntax (``name`` or ``name:arg``), one table. Framework-free; adapters import it.

A fault proves a check can fail. It is part of a card variant (``card.variant(faults=[...])``, carried in
``build.faults``) and is applied at the stage where it lives:

* ``construct``: while the adapter creates the architecture (a dropped block, another implementation);
* ``weights``: while canonical weights are imported (one depthwise kernel transposed);
* ``model``: on a copy of the built model (a weight scaled, every BatchNorm epsilon changed);
* ``output``: on the native output, framework-free (a softmax appended);
* ``process``: on the worker process itself (it kills itself, to test crash isolation);
* ``input``: on the input tensor a runtime receives, in the core (H and W swapped);
* ``artifact``: on a deployed artifact, in the core (a quantized layer's scale doubled).

Checks inject ``input`` faults into the runtime side and every other stage into the native (reference) side.
"""
from __future__ import annotations

from dataclasses import dataclass

STAGES = ("construct", "weights", "model", "output", "process", "input", "artifact")


@dataclass(frozen=True)
class FaultKind:
    name: str
    stage: str
    doc: str
    takes_arg: bool = False


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    arg: str = ""

    @property
    def name(self) -> str:
        return self.kind.name

    @property
    def stage(self) -> str:
        return self.kind.stage

    def __str__(self) -> str:
        return self.kind.name + (f":{self.arg}" if self.arg else "")


FAULTS: dict[str, FaultKind] = {k.name: k for k in (
    FaultKind("conv_channel_scale", "model", "first conv: output channel 0 weights scaled by 1.01"),
    FaultKind("bgr_input", "model", "first conv: its input channels reversed (a model that wants BGR, fed RGB)"),
    FaultKind("bn_eps", "model", "every BatchNorm epsilon set to the other ecosystem's default "
                                 "(1e-5 -> 1e-3; keras 1e-3 -> 1e-5)"),
    FaultKind("softmax", "output", "softmax appended to the native output"),
    FaultKind("crash", "process", "the worker kills itself with SIGSEGV when the model runs"),
    FaultKind("transposed_input", "input", "the runtime gets the input tensor with H and W swapped"),
    FaultKind("transpose_dw", "weights", "canonical import transposes (kh <-> kw) the depthwise kernel of unit ARG",
              takes_arg=True),
    FaultKind("drop_block", "construct", "residual block ARG removed from the architecture (torchvision)",
              takes_arg=True),
    FaultKind("double_scale", "artifact", "the int8 artifact's ARG-th weight dequantization scale doubled",
              takes_arg=True),
    FaultKind("impl", "construct", "another implementation ARG substituted for the ecosystem's own "
                                   "(ppcls: paddle.vision)", takes_arg=True),
)}


class FaultError(ValueError):
    pass


def parse(text: str) -> Fault:
    name, _, arg = str(text).partition(":")
    kind = FAULTS.get(name)
    if kind is None:
        raise FaultError(f"unknown fault {text!r}; known: {sorted(FAULTS)}")
    if kind.takes_arg and not arg:
        raise FaultError(f"fault {name!r} needs an argument ({name}:ARG): {kind.doc}")
    if arg and not kind.takes_arg:
        raise FaultError(f"fault {name!r} takes no argument")
    return Fault(kind, arg)


def parse_all(texts: list[str] | tuple[str, ...]) -> list[Fault]:
    return [parse(t) for t in texts]


def at(stage: str, texts: list[str] | tuple[str, ...]) -> list[Fault]:
    """The faults of ``texts`` that apply at ``stage``."""
    return [f for f in parse_all(texts) if f.stage == stage]


def arg_of(name: str, texts: list[str] | tuple[str, ...]) -> str | None:
    """The argument of fault ``name`` among ``texts`` (None when absent)."""
    return next((f.arg for f in parse_all(texts) if f.name == name), None)
