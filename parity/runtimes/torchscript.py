"""TorchScript (seed 004): the torch models traced (``torch.jit.trace``), saved, loaded and run in the torch worker;
the artifact records the model's root operator list (``torch.jit.export_opnames``)."""
from __future__ import annotations

from . import register
from .hosted import HostedRuntime


class TorchScriptRuntime(HostedRuntime):
    family = "torchscript"
    runtime = "torchscript"
    suffix = ".pt"


register("torchscript", TorchScriptRuntime, tags=("deploy",), doc="TorchScript: torch.jit.trace + save + load, torch models")
