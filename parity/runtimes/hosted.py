"""The deployment runtimes hosted by a framework's own worker (its stack's runtime: TFLite, TorchScript, Paddle
Inference): the artifact is made from the card's built model by the worker (``deploy_export``), run there
(``deploy_run``), and the worker reports the precision it ran. Shared by ``tflite.py``, ``torchscript.py``,
``torch_quantized.py`` and ``paddle_inference.py``."""
from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import frameworks
from ..harness import Skip
from .base import Array, Runtime, RuntimeInfo, Target

if TYPE_CHECKING:
    from ..registry import Card


class HostedRuntime(Runtime):
    """``runtime``: the name the worker knows it by; ``suffix``: the artifact's file suffix; ``host``: a worker that
    builds the card itself (``frameworks.CARD_HOSTS``) instead of the card's framework worker."""

    runtime = ""
    suffix = ""
    host = ""

    def __init__(self, name: str, precision: str = "fp32", threads: int = 0, calib_dir: str | None = None,
                 calib_images: int = 1000) -> None:
        super().__init__(name, precision=precision, threads=threads, calib_dir=calib_dir, calib_images=calib_images)
        self.path = ""
        self.made_by: dict[str, Any] = {}
        self.ran: dict[str, Any] = {}
        self.calib: dict[str, Any] | None = None

    @classmethod
    def fits(cls, card: Card, mode: str) -> str:
        if cls.runtime in frameworks.get(card.framework).deploy_runtimes:
            return ""
        hosts = [f.name for f in frameworks.FRAMEWORKS.values() if cls.runtime in f.deploy_runtimes]
        return f"{cls.runtime} runs {', '.join(hosts)} models; {card.id} is a {card.framework} model"

    @property
    def promise(self) -> str:
        """The precision it is registered for: a hosted runtime that runs another one fails the deploy check."""
        return str(self.options["precision"])

    def applies(self, target: Target) -> None:
        why = self.fits(target.card, target.mode)
        if why:
            raise Skip(why)

    def export_options(self, target: Target) -> dict[str, Any]:
        return {}

    def load(self, target: Target) -> None:
        self.applies(target)
        self.target = target
        h, card = target.harness, target.card
        opts = self.export_options(target)
        tag = hashlib.sha1(repr(sorted(opts.items())).encode()).hexdigest()[:8]
        stem = f"{card.id.replace('/', '__')}.{card.build_digest}.{hashlib.sha1(target.mode.encode()).hexdigest()[:8]}"
        path = h.workdir / "deploy" / f"{stem}.{self.runtime}.{tag}{self.suffix}"

        prefix = path.name[:-len(self.suffix)] if self.suffix else path.name

        def convert() -> dict[str, Any]:
            t0 = time.time() - 1
            built = h.build(card, target.mode, host=self.host)
            made = h.client(self.worker).deploy_export(built.key, self.runtime, path, opts)
            # every file the conversion wrote for this artifact (a Paddle model has two; a quantized torch model
            # keeps its state and ONNX beside it)
            made["_files"] = sorted(p.name for p in path.parent.glob(prefix + "*") if p.stat().st_mtime >= t0)
            return made

        def make() -> dict[str, Any]:
            # a file option (the calibration tensor) enters the key by content, not path
            keyed = {k: (h.cache.sha256(v) if k == "calib" else v) for k, v in opts.items()}
            return h.stored(f"hosted-{self.runtime}", card, {"weights": h.weights_key(card, target.mode),
                                                             "options": keyed}, path.parent, convert,
                            stack=frameworks.stack_of(self.worker).name,
                            outputs=lambda rec: {n: path.parent / n for n in rec["_files"]})
        made = h.artifact((self.runtime, card.id, card.build_digest, target.mode, tag), make)
        self.path, self.made_by = str(made["path"]), dict(made["made_by"])
        self.ran = self._run(target.harness.probe_tensor(card.preprocess)[0][:1], {})

    @property
    def worker(self) -> str:
        """The worker that makes and runs the artifact."""
        assert self.target is not None
        return self.host or self.target.card.framework

    def _run(self, x: Array, extra: dict[str, Any]) -> dict[str, Any]:
        assert self.target is not None
        h = self.target.harness
        inp = h.pool.put_array(np.ascontiguousarray(x, np.float32), self.runtime)
        try:
            r = h.client(self.worker).deploy_run(self.runtime, self.path, inp,
                                                    {"threads": self.options["threads"],
                                                     "precision": self.options["precision"], **extra})
            r["logits"] = np.load(r["output"])
            Path(r["output"]).unlink(missing_ok=True)
        finally:
            Path(inp).unlink(missing_ok=True)
        return r

    def infer(self, x: Array) -> Array:
        y: Array = self._run(x, {})["logits"]
        return y

    def bench(self, x: Array, repeats: int) -> list[float]:
        return [float(t) for t in self._run(x, {"repeats": repeats})["times"]]

    def info(self) -> RuntimeInfo:
        assert self.target is not None
        versions = self.target.harness.pool.info(self.worker).get("versions", {})
        notes = []
        if self.options["precision"] not in ("fp32", self.ran["precision"]):
            notes.append(f"asked for {self.options['precision']}, {self.runtime} runs {self.ran['precision']}")
        return RuntimeInfo(self.name, self.runtime, " ".join(f"{k} {v}" for k, v in sorted(versions.items())),
                           self.ran["precision"], {k: v for k, v in self.options.items() if v is not None}, self.path,
                           notes, {"made_by": self.made_by, "executed": self.ran["detail"], "calibration": self.calib})
