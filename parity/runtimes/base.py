"""The runtime interface (Polygraphy's ``BaseRunner``: activate / infer / deactivate, kept apart from the
comparators in ``parity.compare``). Framework-free.

A runtime runs one card's model from some artifact (the exported ONNX file, the native model in its worker, a
converted file) and reports what it *actually* ran: its version, its options and the precision read back from the
runtime itself where the runtime says (never just what was asked for).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy.typing as npt

if TYPE_CHECKING:
    from ..harness import Harness
    from ..registry import Card

Array = npt.NDArray[Any]


@dataclass(frozen=True)
class Target:
    """What a runtime is asked to run: a card with a weights mode, and how its artifact is made."""
    harness: Harness
    card: Card
    mode: str = "seeded"
    opset: int = 17
    exporter: str = "default"


@dataclass
class RuntimeInfo:
    name: str
    family: str                 # onnxruntime | native | openvino | tflite | ...
    version: str
    precision: str              # what it ran, as the runtime reports it
    options: dict[str, Any] = field(default_factory=dict)
    artifact: str = ""          # the file it loaded
    notes: list[str] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)   # how the artifact was made, what the runtime read back

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Runtime(ABC):
    """load (Polygraphy: activate) -> infer ... -> close (deactivate). One instance per loaded model."""

    family: ClassVar[str] = ""
    # the calibration/quantization options (calib_dir, calib_images, granularity, method) this runtime honors
    honors: ClassVar[tuple[str, ...]] = ()

    def __init__(self, name: str, **options: Any) -> None:
        self.name = name
        self.options = options
        self.target: Target | None = None

    @classmethod
    def fits(cls, card: Card, mode: str) -> str:
        """Why this runtime cannot run ``card`` with weights ``mode`` ("" when it can): ``check --deploy all`` plans
        only the runtimes that fit, and a runtime asked for anyway skips with this reason."""
        return ""

    def unfit(self, card: Card, mode: str) -> str:
        """``fits`` for this instance: its options may widen what it can run (a runtime given its own file)."""
        return self.fits(card, mode)

    @abstractmethod
    def load(self, target: Target) -> None:
        """Make (or fetch from the harness's caches) the artifact and get ready to infer."""

    @abstractmethod
    def infer(self, x: Array) -> Array:
        """Logits (or scores) for a batch already in the card's input layout."""

    def bench(self, x: Array, repeats: int) -> list[float]:
        """Seconds per ``infer(x)`` call, ``repeats`` times after one warm-up. Runtimes hosted in a worker override it
        to time inside the worker (the transfer of arrays is not the runtime's cost)."""
        import time
        self.infer(x)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            self.infer(x)
            times.append(time.perf_counter() - t0)
        return times

    @abstractmethod
    def info(self) -> RuntimeInfo:
        """Version, options and the precision it actually runs, read back after ``load``."""

    def close(self) -> None:  # noqa: B027 - optional: most runtimes hold nothing to release
        """Release what ``load`` acquired."""

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
