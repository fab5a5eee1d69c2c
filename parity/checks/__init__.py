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

    def label(self) -> str:
        """The check's name and weights mode, as the results table shows them."""
        mode = self.params.get("mode")
        return get(self.kind).name(**self.params) + (f" ({mode})" if mode else "")


def plan(card: Card, modes: tuple[str, ...] = ("seeded", "pretrained"), opsets: tuple[int, ...] = (17,),
         deploy: tuple[str, ...] = (), deploy_options: dict[str, dict[str, Any]] | None = None) -> list[Planned]:
    """The standard checks of one card: those that need no weights once; the counts once (seeded); the ONNX parity
    check per weights mode and opset; any other standard (plug-in) check once per weights mode; then the deploy check
    per weights mode and each runtime of ``deploy`` (``("all",)``: every deploy runtime that fits the card and mode)."""
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
        out += [Planned("deploy", {"mode": mode, "runtime": rt, "options": (deploy_options or {}).get(rt, {})})
                for rt in deploy_runtimes(card, mode, deploy)]
    return out


def deploy_runtimes(card: Card, mode: str, asked: tuple[str, ...]) -> list[str]:
    """``all``: the deploy runtimes that fit (card, mode), int8 ones only with trained weights; named runtimes
    are kept even when they do not fit (the check then skips with the reason: asked for, never silently dropped)."""
    from .. import runtimes
    out: list[str] = []
    for name in asked:
        if name != "all":
            out.append(name)
            continue
        # int8 on seeded (untrained) weights is skipped by the check after quantizing: `all` leaves it out
        out += [n for n in runtimes.names("deploy") if not runtimes.fits(n, card, mode) and n not in out
                and not (mode == "seeded" and runtimes.precision_of(n) == "int8")]
    return out


def run_plan(h: Harness, card: Card, items: list[Planned], each: Callable[[CheckResult], None] | None = None,
             before: Callable[[Planned], None] | None = None) -> list[CheckResult]:
    out = []
    for item in items:
        if before is not None:
            before(item)
        seen = len(h.cache.events)
        r = item.run(h, card)
        # what this check's producing work reused or made (the comparison itself ran in any case); a variant of the
        # card (an injected fault) counts as the card
        r.reused = [f"{e.kind}: {e.outcome}" for e in h.cache.events[seen:]
                    if e.card.split("+")[0] == card.id and e.outcome != "off"]
        out.append(r)
        if each is not None:
            each(r)
    return out


BUILTINS = ("spec", "meta", "counts", "nontrivial", "onnx_parity", "preprocess", "end_to_end", "deploy")  # plan order


def _load_builtins() -> None:
    import importlib
    for mod in BUILTINS:
        importlib.import_module(f"{__name__}.{mod}")
    from .. import plugins
    plugins.load()


__all__ = ["Check", "CheckResult", "Needs", "Planned", "get", "kinds", "plan", "register", "run", "run_plan"]
