"""The native framework in its worker process: the reference every other runtime is compared with."""
from __future__ import annotations

from . import register
from .base import Array, Runtime, RuntimeInfo, Target


class NativeRuntime(Runtime):
    family = "native"

    def load(self, target: Target) -> None:
        self.target = target
        target.harness.build(target.card, target.mode)

    def infer(self, x: Array) -> Array:
        assert self.target is not None
        return self.target.harness.native(self.target.card, self.target.mode, x)

    def info(self) -> RuntimeInfo:
        assert self.target is not None
        h, card = self.target.harness, self.target.card
        versions = h.pool.info(card.framework).get("versions", {})
        return RuntimeInfo(self.name, self.family, " ".join(f"{k} {v}" for k, v in sorted(versions.items())), "fp32",
                           {"framework": card.framework}, f"{card.id} [{self.target.mode}]")


register("native", NativeRuntime, tags=("eval",), doc="the framework's own model in its worker (fp32)")
