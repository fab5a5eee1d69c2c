"""The harness's use of the artifact cache across runs (``parity.cache``): the keys of what it makes -- the card's
identity, the weights by content -- and the records the framework's API gives (derived spec, shipped metadata).
A mixin of ``Harness`` (kept apart so that each stays small). Framework-free."""
from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import frameworks
from .spec import PreprocessSpec
from .weights import canonical
from .weights.modes import parse_mode, seed_for
from .workers import Built, Exported, Meta

if TYPE_CHECKING:
    from .cache import Cache
    from .registry import Card
    from .workers import AdapterClient, WorkerPool


class CacheUse:
    cache: Cache
    workdir: Path
    pool: WorkerPool

    if TYPE_CHECKING:
        def time(self, card: Card, what: str, seconds: float) -> None: ...
        def client(self, framework: str) -> AdapterClient: ...
        def calib_tensor(self, spec: PreprocessSpec) -> str: ...
        def canonical_path(self, mode: str) -> Path | None: ...
        def weights_request(self, card: Card, mode: str) -> dict[str, Any]: ...
        def resolve(self, card: Card, mode: str) -> Card: ...
        def build(self, card: Card, mode: str = ...) -> Built: ...
        def make_export(self, card: Card, mode: str, opset: int, exporter: str, dst: Path) -> Exported: ...

    def run_native(self, card: Card, mode: str, path: str) -> str:
        """The native model run on the batch at ``path`` in its worker: the path of its logits."""
        built = self.build(card, mode)
        got, seconds = self.client(card.framework).run(built.key, path)
        self.time(card, "native_inference", seconds)
        return got

    def native_logits(self, card: Card, mode: str, path: str) -> str:
        """The path of the native logits on the batch at ``path``: from the cache when the same model (card, weights
        by content, stack versions, suite code) ran the same input bytes, else run in the worker."""
        if not self.cache.enabled:
            return self.run_native(card, mode, path)
        out = self.pool.new_path(f"native-{card.framework}")

        def make() -> dict[str, Any]:
            Path(self.run_native(card, mode, path)).replace(out)
            return {}
        rcard = self.resolve(card, mode)
        self.stored("native", rcard, {"weights": self.weights_key(rcard, mode), "input": self.cache.sha256(path)},
                    {"logits.npy": Path(out)}, make, stack=frameworks.get(card.framework).stack)
        return out

    def cached_export(self, card: Card, mode: str, opset: int, exporter: str, dst: Path) -> Exported:
        rec = self.stored("export", card, {"weights": self.weights_key(card, mode), "opset": opset,
                                           "exporter": exporter},
                          {"model.onnx": dst, "preprocess.json": dst.with_suffix(".preprocess.json")},
                          lambda: dataclasses.asdict(self.make_export(card, mode, opset, exporter, dst)),
                          stack=frameworks.get(card.framework).stack)
        return Exported(**rec)

    def stored(self, kind: str, card: Card, ingredients: dict[str, Any], dests: dict[str, Path] | Path,
               make: Callable[[], dict[str, Any]], stack: str | None = None,
               outputs: Callable[[dict[str, Any]], dict[str, Path]] | None = None) -> dict[str, Any]:
        """An artifact of the cache across runs (``parity.cache``): its record, its files at ``dests`` (name -> path,
        or a directory for files named by the make), made by ``make`` only when the store does not hold the key.
        The card's identity (id, build, preprocessing spec, upstream id) is part of every key."""
        ident = {"card": card.id, "build": card.build_digest, "spec": card.preprocess.digest(),
                 "upstream": card.upstream_id}
        t0 = time.perf_counter()
        try:
            return self.cache.files(kind, {**ident, **ingredients}, dests, make, card=card.id, stack=stack,
                                    workdir=self.workdir, outputs=outputs)
        finally:
            self.time(card, f"cache_{kind}", time.perf_counter() - t0)

    def derived_spec(self, card: Card) -> PreprocessSpec:
        """The preprocessing the adapter derives from its framework's own API (a record of the artifact cache, keyed
        on the whole card as the worker receives it and the stack's versions)."""
        rec = self.stored("derived-spec", card, {"request": _jsonable(card.to_request())},
                          {}, lambda: {"spec": self.client(card.framework).derive_spec(card).to_dict()},
                          stack=frameworks.get(card.framework).stack)
        return PreprocessSpec.from_dict(rec["spec"])

    def framework_meta(self, card: Card) -> Meta:
        """The metadata the framework ships with the card's weights (a record of the artifact cache, as above)."""
        rec = self.stored("framework-meta", card, {"request": _jsonable(card.to_request())}, {},
                          lambda: dataclasses.asdict(self.client(card.framework).meta(card)),
                          stack=frameworks.get(card.framework).stack)
        return Meta(**rec)

    def weights_key(self, card: Card, mode: str) -> dict[str, Any]:
        """The weights of a mode by content, for cache keys: seeded ones by their seed and the calibration tensor
        their statistics come from, every file by its sha256 (never its path), canonical weights by their content
        (``weights.canonical.digest``: a file the suite converts is not byte-reproducible, its content is)."""
        kind, path = parse_mode(mode)
        if kind == "seeded":
            return {"mode": "seeded", "seed": seed_for(card), "calib": self.cache.sha256(self.calib_tensor(card.preprocess))}
        if kind in ("canonical", "real"):
            return {"mode": "canonical", "content": self.cache.sha256(str(self.canonical_path(mode)), canonical.digest)}
        if kind == "file":
            return {"mode": "file", "sha256": self.cache.sha256(str(path))}
        req = self.weights_request(card, mode)
        return {"mode": "file", "sha256": req.get("sha256") or self.cache.sha256(req["path"])}



def _jsonable(doc: Any) -> Any:
    return json.loads(json.dumps(doc, sort_keys=True, default=str))
