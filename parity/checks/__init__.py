"""Checks as plug-ins: one module per check kind, each registering its class here.

``run(kind, harness, card, **params)`` runs one check (guarded: any outcome is a ``CheckResult``); ``plan(card,
modes, opsets)`` is what ``mbv2-parity check`` runs for a card: every ``standard`` check, those that need weights
once per weights mode (and the ONNX parity check once per opset). A check from outside the package registers the
same way (``parity.plugins``). Adding a check = one module + its tests.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import UsageError
from .base import Check, CheckResult, Needs

if TYPE_CHECKING:
    from ..harness import Harness
    from ..registry import Card

C = TypeVar("C", bound=type[Check])
_REGISTRY: dict[str, Check] = {}


def register(cls: C) -> C:
    _REGISTRY[cls.kind] = cls()
    return cls


def get(kind: str) -> Check:
    _load_builtins()
    if kind not in _REGISTRY:
        raise UsageError(f"unknown check {kind!r}", hint=f"one of {', '.join(kinds())}")
    return _REGISTRY[kind]


def kinds() -> list[str]:
    """Built-in checks in plan order, then plug-ins in registration order (independent of import order)."""
    _load_builtins()
    builtin = [b.replace("_parity", "").replace("_", "-") for b in BUILTINS]
    return sorted(_REGISTRY, key=lambda k: builtin.index(k) if k in builtin else len(builtin))


def _ordered() -> list[tuple[str, Check]]:
    return [(k, _REGISTRY[k]) for k in kinds()]


def run(kind: str, h: Harness, card: Card, **params: Any) -> CheckResult:
    return get(kind).guarded(h, card, **params)


@dataclass(frozen=True)
class Planned:
    kind: str
    params: dict[str, Any] = field(default_factory=dict)

    def run(self, h: Harness, card: Card) -> CheckResult:
        return run(self.kind, h, card, **self.params)


def plan(card: Card, modes: tuple[str, ...] = ("seeded", "pretrained"), opsets: tuple[int, ...] = (17,)) -> list[Planned]:
    """The standard checks of one card: those that need no weights once; the counts once (seeded); the ONNX parity
    check per weights mode and opset; any other standard (plug-in) check once per weights mode."""
    out: list[Planned] = []
    for kind, check in _ordered():
        if not check.standard:
            continue
        if not check.needs.weights:
            out.append(Planned(kind))
        elif kind == "counts":
            out.append(Planned(kind, {"mode": "seeded"}))
    for mode in modes:
        out += [Planned("onnx", {"mode": mode, "opset": o}) for o in opsets]
        out += [Planned(k, {"mode": mode}) for k, c in _ordered()
                if c.standard and c.needs.weights and k not in ("counts", "onnx")]
    return out


def run_plan(h: Harness, card: Card, items: list[Planned], each: Callable[[CheckResult], None] | None = None) \
        -> list[CheckResult]:
    out = []
    for item in items:
        r = item.run(h, card)
        out.append(r)
        if each is not None:
            each(r)
    return out


BUILTINS = ("spec", "meta", "counts", "nontrivial", "onnx_parity", "preprocess", "end_to_end")  # plan order


def _load_builtins() -> None:
    import importlib
    for mod in BUILTINS:
        importlib.import_module(f"{__name__}.{mod}")
    from .. import plugins
    plugins.load()


__all__ = ["Check", "CheckResult", "Needs", "Planned", "get", "kinds", "plan", "register", "run", "run_plan"]
