"""Paddle Inference (seed 003): the ``paddle.inference`` predictor on the ``paddle.jit.save``d model (oneDNN), in the
Paddle worker; ``bf16`` where the CPU has it (read back: Paddle falls back to fp32 silently)."""
from __future__ import annotations

from typing import Any

from . import register
from .base import Target
from .hosted import HostedRuntime


class PaddleInferenceRuntime(HostedRuntime):
    family = "paddle-inference"
    runtime = "paddle-inference"
    suffix = ".json"

    def load(self, target: Target) -> None:
        super().load(target)
        if self.options["precision"] == "bf16" and self.ran["precision"] != "bf16":
            from ..harness import Skip
            raise Skip("this CPU has no bf16 (paddle.base.core.supports_bfloat16() is False: Paddle runs fp32)")

    def export_options(self, target: Target) -> dict[str, Any]:
        return {}


register("paddle-inference", PaddleInferenceRuntime, tags=("deploy",), precision="fp32",
         doc="Paddle Inference predictor (oneDNN), PaddleClas models")
register("paddle-inference-bf16", PaddleInferenceRuntime, tags=("deploy",), precision="bf16",
         doc="Paddle Inference with oneDNN bf16, where the CPU has it")
