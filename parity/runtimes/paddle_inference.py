"""Paddle Inference (seed 003): the ``paddle.inference`` predictor on the ``paddle.jit.save``d model (oneDNN), in the
Paddle worker; ``bf16`` where Paddle reports ``supports_bfloat16()`` (read back: Paddle falls back to fp32 silently)."""
from __future__ import annotations

from typing import Any

from . import register
from .base import Target
from .hosted import HostedRuntime


def no_bf16(cpu: dict[str, Any] | None = None) -> str:
    """Why ``paddle-inference-bf16`` cannot run here, from what Paddle and /proc/cpuinfo reported."""
    from ..machine import describe, read_cpu
    return (f"Paddle reports supports_bfloat16() False on {describe(cpu or read_cpu())}: it runs fp32, bf16 cannot "
            "run here")


class PaddleInferenceRuntime(HostedRuntime):
    family = "paddle-inference"
    runtime = "paddle-inference"
    suffix = ".json"

    def load(self, target: Target) -> None:
        super().load(target)
        if self.options["precision"] == "bf16" and self.ran["precision"] != "bf16":
            from ..harness import Skip
            raise Skip(no_bf16())

    def export_options(self, target: Target) -> dict[str, Any]:
        return {}


register("paddle-inference", PaddleInferenceRuntime, tags=("deploy",), precision="fp32",
         doc="Paddle Inference predictor (oneDNN), PaddleClas models")
register("paddle-inference-bf16", PaddleInferenceRuntime, tags=("deploy",), precision="bf16",
         doc="Paddle Inference with oneDNN bf16, where Paddle reports bf16 support")
