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
    return entry.factory(name, **{**entry.options, **overrides})


def names(tag: str | None = None) -> list[str]:
    _load_builtins()
    return [n for n, e in _REGISTRY.items() if tag is None or tag in e.tags]


def entries() -> list[Entry]:
    _load_builtins()
    return list(_REGISTRY.values())


def _load_builtins() -> None:
    from .. import plugins
    from . import native, onnxruntime  # noqa: F401  (each registers its runtimes)
    plugins.load()


__all__ = ["Entry", "Runtime", "RuntimeInfo", "Target", "create", "entries", "names", "register"]
