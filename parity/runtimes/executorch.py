"""ExecuTorch (``executorch-fp32``, ``executorch-int8``): the torch stack's cards built in the ExecuTorch host worker
(stack ``executorch``, tox env ``w-executorch``) from the same card and weights with the torch adapters' own code,
``torch.export``-ed, (int8: PT2E with the XNNPACK quantizer, symmetric per-channel, calibrated on the suite's
calibration set) lowered with ``to_edge_transform_and_lower`` and the XNNPACK partitioner, saved as a ``.pte`` in the
work dir and run by the ExecuTorch runtime. What ran is read back from the ``.pte`` file itself: its delegates (backend,
payload size, the XNNPACK graph's tensor datatypes) and the operators left outside them; the precision follows from
the delegated tensors' datatypes (``qint8``/``qcint8`` -> int8), never from the runtime's name.

When the ExecuTorch interpreter is missing, the runtimes do not fit (``check --deploy all`` leaves them out; named,
they skip with which variable and tox env provide it)."""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from .. import frameworks
from . import register
from .base import Target
from .hosted import HostedRuntime

if TYPE_CHECKING:
    from ..registry import Card

HOST = "executorch"


@functools.lru_cache(maxsize=1)
def interpreter_missing() -> str:
    """Why the ExecuTorch host cannot start here ("" when its interpreter has executorch): asked once per process."""
    from ..workers.interpreters import probe, resolve
    stack = frameworks.stack_of(HOST)
    interp = probe(resolve(stack), stack.modules[:1])
    if not interp.missing:
        return ""
    where = {"env": f"{stack.env_var}={interp.python}", "discovered": interp.python,
             "fallback": f"{stack.env_var} is unset and {interp.python}"}[interp.source]
    what = "does not exist" if not interp.exists else f"cannot import {interp.missing[0]}"
    return f"no ExecuTorch interpreter: {where} {what} (`tox -e {stack.tox_env}` builds it)"


class ExecuTorchRuntime(HostedRuntime):
    family = "executorch"
    honors = ("calib_dir", "calib_images")     # int8 only (runtimes.quantizes)
    runtime = "executorch"
    suffix = ".pte"
    host = HOST

    @classmethod
    def fits(cls, card: Card, mode: str) -> str:
        builds = frameworks.built_by(HOST)
        if card.framework not in builds:
            return f"executorch runs {', '.join(builds)} models (torch.export); {card.id} is a {card.framework} model"
        return interpreter_missing()

    def export_options(self, target: Target) -> dict[str, Any]:
        if self.options["precision"] != "int8":
            return {"quantize": False}
        from ..deploy.calibration import calibration
        calib = calibration(target.harness, target.card.preprocess, self.options["calib_dir"],
                            self.options["calib_images"])
        self.calib = calib.to_dict()
        return {"quantize": True, "calib": calib.path, "calib_fingerprint": calib.fingerprint}


register("executorch-fp32", ExecuTorchRuntime, tags=("deploy",), precision="fp32",
         doc="ExecuTorch: torch.export -> to_edge -> XNNPACK .pte, run by the ExecuTorch runtime (torch models)")
# 200 calibration images by default, not the suite's 1000: PT2E's observers run the exported graph eagerly (measured
# under load: 40 images 115 s of quantizing), and 1000 would pass the worker's 900 s timeout; --calib-images overrides
register("executorch-int8", ExecuTorchRuntime, tags=("deploy",), precision="int8", calib_images=200,
         doc="ExecuTorch: PT2E int8 (XNNPACKQuantizer, symmetric per-channel, 200 calibration images unless "
             "--calib-images) lowered to XNNPACK (torch models)")
