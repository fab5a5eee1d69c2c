"""What every check shares: its result record, its base class and the guard that turns any exception into a
one-line result. Framework-free."""
from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import ParityError, RuntimeRefused, UsageError
from ..harness import Skip
from ..onnxfile import OnnxCheckError
from ..weights.download import ChecksumError, DownloadError
from ..workers import WorkerError

if TYPE_CHECKING:
    from ..harness import Harness
    from ..registry import Card

STATUSES = ("pass", "fail", "skip", "error")


@dataclass
class CheckResult:
    card: str
    check: str
    status: str              # pass | fail | skip | error
    reason: str = ""
    mode: str = "seeded"
    metrics: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    reused: list[str] = field(default_factory=list)     # artifacts taken from the cache across runs (kind: outcome)

    @property
    def ok(self) -> bool:
        return self.status in ("pass", "skip")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Needs:
    """What a check needs, so a plan can tell before running it: a weights mode, runtimes, image files."""
    weights: bool = False
    runtimes: tuple[str, ...] = ()
    images: bool = False


class Check(ABC):
    """One kind of check. ``run`` returns a ``CheckResult``; ``guarded`` wraps it so that nothing escapes."""

    kind: ClassVar[str]
    needs: ClassVar[Needs] = Needs()
    standard: ClassVar[bool] = False      # part of `mbv2-parity check`'s plan for every card

    def name(self, **params: Any) -> str:
        return self.kind

    @abstractmethod
    def run(self, h: Harness, card: Card, **params: Any) -> CheckResult:
        ...

    def guarded(self, h: Harness, card: Card, **params: Any) -> CheckResult:
        mode = str(params.get("mode", "seeded")) if self.needs.weights else "-"
        return guard(card, self.name(**params), mode, lambda: self.run(h, card, **params))


def guard(card: Card, check: str, mode: str, fn: Callable[[], CheckResult]) -> CheckResult:
    """Any outcome as a result: a Skip is a skip, a failed download/pin/ONNX file a fail, a worker or user error an
    error with its one line; anything else (a bug) an error naming its type -- never a traceback from deep inside a
    framework, never a silent pass."""
    t0 = time.perf_counter()
    try:
        res = fn()
    except Skip as e:
        res = CheckResult(card.id, check, "skip", str(e), mode)
    except (ChecksumError, DownloadError, OnnxCheckError, RuntimeRefused) as e:
        res = CheckResult(card.id, check, "fail", f"{type(e).__name__}: {e.one_line()}", mode)
    except WorkerError as e:
        res = CheckResult(card.id, check, "error", f"{e.kind}: {e}" + (f" (hint: {e.hint})" if e.hint else ""), mode)
    except UsageError:
        raise  # the user's mistake for the whole run (a bad option): one line and exit 2, not one error per check
    except ParityError as e:
        res = CheckResult(card.id, check, "error", f"{type(e).__name__}: {e.one_line()}", mode)
    except Exception as e:  # a bug inside a check: one line here, the full traceback in the run's log
        logging.getLogger("mbv2_parity").exception("internal error in check %s of %s", check, card.id)
        first = str(e).splitlines()[0] if str(e) else ""
        res = CheckResult(card.id, check, "error", f"internal error (a bug) {type(e).__name__}: {first} "
                                                   "(traceback in WORKDIR/mbv2-parity.log)", mode)
    res.timings["total"] = time.perf_counter() - t0
    return res
