"""The harness: caches and build/export, nothing else. Framework-free.

A ``Harness`` owns a ``WorkerPool`` and one typed ``AdapterClient`` per framework, and caches per card and
weights mode the built model (inside its worker; rebuilt when that worker died), the exported ONNX files (with the
card's preprocessing attached) and the probe tensors per preprocessing spec. Checks (``parity.checks``) and
runtimes (``parity.runtimes``) do the judging and the running.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from . import frameworks
from .cache import Cache
from .errors import UsageError
from .fileio import write_text
from .harness_cache import CacheUse
from .onnxfile import attach_spec, check_model
from .paths import realdata_dir, workdir_path
from .preprocess import preprocess_batch
from .probes import calibration_images, probe_images
from .registry import Card, Registry, load_registry
from .spec import PreprocessSpec
from .weights.canonical import load as load_canonical
from .weights.download import WeightsUnavailable, fetch
from .weights.modes import REAL_TFLITE, parse_mode, seed_for
from .workers import AdapterClient, Built, Exported, WorkerError, WorkerPool
from .workers.client import DeployClient, ExecuTorchClient

Array = npt.NDArray[Any]
DEFAULT_OPSET = 17
T = TypeVar("T")
TESTED_OPSETS = (13, 17)


# Real weights on a card they do not fit: the worker error kinds (adapters/base.py) the harness skips, with why
REAL_MISFITS = {"WidthMismatch": "widths differ", "DepthMismatch": "depth differs"}


class Skip(Exception):
    """A check cannot run here (weights unavailable offline, nothing published to compare): skipped, with why."""


class Harness(CacheUse):
    def __init__(self, registry: Registry | None = None, workdir: Path | str | None = None,
                 pool: WorkerPool | None = None, cache: Cache | None = None) -> None:
        self.registry = registry or load_registry()
        self.cache = cache or Cache.from_settings()
        workdir = workdir_path(workdir) if workdir else None   # workers run elsewhere: never a relative path
        self.pool = pool or WorkerPool(workdir / "workers" if workdir else None)
        self.workdir = workdir or self.pool.workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._clients: dict[str, AdapterClient] = {}
        self._tensors: dict[tuple[Any, ...], str] = {}
        self._built: dict[tuple[str, str, str, str], Built] = {}
        self._onnx: dict[tuple[str, str, str, int, str], Exported] = {}
        self._shapes: dict[str, dict[str, tuple[int, ...]]] = {}
        self._artifacts: dict[tuple[Any, ...], Any] = {}
        self.timings: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    def close(self, kill: bool = False) -> None:
        self.pool.close(kill)

    def __enter__(self) -> Harness:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close(kill=isinstance(e, KeyboardInterrupt))   # interrupted: the workers' current requests are abandoned

    def time(self, card: Card, what: str, seconds: float) -> None:
        with self._lock:
            row = self.timings.setdefault(card.id, {})
            row[what] = row.get(what, 0.0) + seconds

    def deploy(self) -> DeployClient:
        """The deployment-toolchain host (OpenVINO, NNCF, ORT quantization, fp16 conversion)."""
        return DeployClient(self.pool)

    def artifact(self, key: tuple[Any, ...], make: Callable[[], T]) -> T:
        """A derived artifact (an fp16 or int8 model, a converted file), made once per key."""
        with self._lock:
            known = key in self._artifacts
        if not known:
            made = make()
            with self._lock:
                self._artifacts[key] = made
        return self._artifacts[key]  # type: ignore[no-any-return]

    def client(self, framework: str) -> AdapterClient:
        """The typed client of a framework's worker, or of the ExecuTorch host (``ExecuTorchClient``: + ``pte_run``)."""
        if framework not in self._clients:
            self._clients[framework] = ExecuTorchClient(self.pool) if framework == ExecuTorchClient.name else \
                AdapterClient(self.pool, frameworks.get(framework).name)
        return self._clients[framework]

    # ---------------------------------------------------------------- inputs
    def probe_tensor(self, spec: PreprocessSpec) -> tuple[Array, str]:
        key = ("probe", spec)
        if key not in self._tensors:
            self._tensors[key] = self.pool.put_array(preprocess_batch([im for _, im in probe_images()], spec), "probe")
        path = self._tensors[key]
        return np.load(path), path

    def calib_tensor(self, spec: PreprocessSpec) -> str:
        key = ("calib", spec)
        if key not in self._tensors:
            self._tensors[key] = self.pool.put_array(preprocess_batch(calibration_images(), spec), "calib")
        return self._tensors[key]

    def native_tensor(self, card: Card, images: list[Any]) -> Array:
        """The framework's own preprocessing of image files (its loader + transforms), cached per card and files."""
        key = ("native-pre", card.id, tuple(str(p) for p in images))
        if key not in self._tensors:
            out, seconds = self.client(card.framework).native_preprocess(
                card, [str(p) for p in images], self.pool.new_path(f"native-pre-{card.framework}"))
            self.time(card, "native_preprocess", seconds)
            self._tensors[key] = out
        x: Array = np.load(self._tensors[key])
        return x

    # ---------------------------------------------------------------- models
    def canonical_path(self, mode: str) -> Path | None:
        """The canonical weights file of a ``canonical:`` or ``real`` mode (a .tflite converted once), else None."""
        kind, path = parse_mode(mode)
        if kind == "real":
            root = realdata_dir()
            src = root.joinpath(*REAL_TFLITE) if root is not None else None
            if src is None or not src.is_file():
                raise Skip("real weights absent (../shared/realdata/tflite/tf2_mobilenet_v2_1.0_224_ptq.tflite)")
            path = str(src)
        if kind not in ("canonical", "real") or path is None:
            return None
        if path.endswith(".tflite"):
            from .weights.transplant import to_canonical
            return self.artifact(("canonical-of", path), lambda: to_canonical(self, str(path)))
        return Path(path)

    def resolve(self, card: Card, mode: str) -> Card:
        """The card as it will really be built: canonical weights carry the padding they were trained with; a card
        that leaves its padding open is built with it (or refused when its framework cannot be)."""
        path = self.canonical_path(mode)
        if path is None or "padding" in card.build:
            return card
        pad = load_canonical(path).padding
        fw = frameworks.get(card.framework)
        if pad not in fw.paddings:
            raise UsageError(f"{Path(path).name} holds weights trained with {pad!r} padding; {card.framework} "
                             f"builds {', '.join(fw.paddings)} only", hint="the model would not be the one the "
                                                                             "weights were trained as")
        return card.variant(padding=pad)

    def weights_request(self, card: Card, mode: str) -> dict[str, Any]:
        kind, path = parse_mode(mode)
        if kind == "seeded":
            return {"mode": "seeded", "seed": seed_for(card), "calib": self.calib_tensor(card.preprocess)}
        if kind in ("canonical", "real"):
            return {"mode": "canonical", "path": str(Path(str(self.canonical_path(mode))).resolve())}
        if kind == "file":
            return {"mode": kind, "path": str(Path(str(path)).resolve())}
        t0 = time.perf_counter()
        try:
            got = fetch(card.weights)
        except WeightsUnavailable as e:
            raise Skip(f"pretrained weights unavailable: {e}") from None
        self.time(card, "download", time.perf_counter() - t0)
        return {"mode": "file", "path": str(got.path), "sha256": got.sha256}

    def build(self, card: Card, mode: str = "seeded", host: str = "") -> Built:
        """The card's model built in its worker (or in ``host``, a worker that builds its stack's cards with the same
        adapter code: ``frameworks.CARD_HOSTS``). A model lives in one worker process: after that worker died
        (segfault, OOM kill) and the pool started a new one, the model is built again in the new worker."""
        card = self.resolve(card, mode)
        where = host or card.framework
        if host and card.framework not in frameworks.built_by(host):
            raise UsageError(f"{host} does not build {card.framework} cards",
                             hint=f"it builds {', '.join(frameworks.built_by(host)) or 'none'}")
        key = (where, card.id, card.build_digest, mode)
        existed = where in self.pool.workers and self.pool.workers[where].alive
        worker = self.pool.get(where)
        if not existed:
            self.time(card, f"{host}_worker_start" if host else "worker_start", worker.start_seconds)
        generation = self.pool.generation[where]
        if key not in self._built or self._built[key].generation != generation:
            try:
                built = self.client(where).build(card, self.weights_request(card, mode))
            except WorkerError as e:
                kind, path = parse_mode(mode)
                if kind == "real" and e.kind in REAL_MISFITS:   # the adapters' error classes, not their wording
                    detail = f" ({str(e).removeprefix(f'{e.kind}: ')})" if e.kind == "DepthMismatch" else ""
                    raise Skip(f"the real weights are MobileNetV2 1.0; this card's {REAL_MISFITS[e.kind]}{detail}") from None
                if kind == "file" and path and e.kind == "AdapterError" and "in the file but" in str(e):
                    raise WorkerError(str(e), e.kind, self.fitting_cards(card, Path(path))) from None
                raise
            self.time(card, f"{host}_build" if host else "build", built.seconds)
            self._built[key] = built
        return self._built[key]

    def fitting_cards(self, card: Card, path: Path) -> str:
        return fitting_cards(self, card, path)

    def native(self, card: Card, mode: str, x: Array | str) -> Array:
        """The native model's logits on a batch (an array in the card's layout, or the path of one). Reused from the
        artifact cache when the same model (card, weights by content, stack versions, suite code) ran the same input
        bytes before: then no worker starts for it."""
        path = x if isinstance(x, str) else self.pool.put_array(np.ascontiguousarray(x, np.float32), "x")
        try:
            got = self.native_logits(card, mode, path)
            y: Array = np.load(got)
            Path(got).unlink(missing_ok=True)
        finally:
            if not isinstance(x, str):  # a batch written here is deleted here: constant disk over 50,000 images
                Path(path).unlink(missing_ok=True)
        return y

    def export(self, card: Card, mode: str = "seeded", opset: int = DEFAULT_OPSET, exporter: str = "default") -> Exported:
        """The framework's own ONNX export, checked (``onnx.checker`` + strict shape inference) and carrying the
        card's preprocessing spec."""
        fw = frameworks.get(card.framework)
        if not fw.opsets[0] <= opset <= fw.opsets[1]:
            raise UsageError(f"opset {opset} is outside what the {card.framework} exporter supports "
                             f"({fw.opsets[0]}-{fw.opsets[1]}: {fw.opset_source})")
        card = self.resolve(card, mode)
        key = (card.id, card.build_digest, mode, opset, exporter)
        if key not in self._onnx:
            tag = mode.split(":")[0] + ("" if ":" not in mode else "-" + hashlib.sha1(mode.encode()).hexdigest()[:8])
            name = f"{card.id.replace('/', '__')}.{card.build_digest}.{tag}.opset{opset}.{exporter}.onnx"
            self._onnx[key] = self.cached_export(card, mode, opset, exporter, self.workdir / "onnx" / name)
        return self._onnx[key]

    def make_export(self, card: Card, mode: str, opset: int, exporter: str, dst: Path) -> Exported:
        """Export in the worker, check the file, attach the spec."""
        built = self.build(card, mode)
        exp = self.client(card.framework).export_onnx(built.key, dst, opset, exporter)
        self.time(card, "export", exp.seconds)
        if Path(exp.path) != dst:
            Path(exp.path).replace(dst)
        t0 = time.perf_counter()
        summary = check_model(dst)
        attached = attach_spec(dst, card)
        self.time(card, "onnx_check", time.perf_counter() - t0)
        return dataclasses.replace(exp, path=str(dst), check=summary, spec_json=attached["spec_json"],
                                   sha256=attached["sha256"], bytes=attached["bytes"])


def fitting_cards(h: Harness, card: Card, path: Path) -> str:
    """Which cards of the card's framework a weight file would fit (its tensors' names and shapes), as a hint."""
    client = h.client(card.framework)
    try:
        held = client.file_shapes(card, path)
    except WorkerError:
        return ""
    fits = []
    for other in h.registry.select([card.framework]):
        ident = f"{other.id}#{other.build_digest}"
        if ident not in h._shapes:
            h._shapes[ident] = client.weight_shapes(other)
        if h._shapes[ident] == held:
            fits.append(other.id)
    if fits:
        return f"{path.name} fits {', '.join(fits)}"
    return f"no {card.framework} card of the registry fits {path.name}"


def write_json(doc: dict[str, Any], path: Path | str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text(path, json.dumps(doc, indent=2, default=str))   # never half a results file
