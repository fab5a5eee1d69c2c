"""The harness: builds, exports and compares models through framework workers. Framework-free.

A ``Harness`` owns a ``WorkerPool`` and caches, per card and weights mode, the built model (inside its
worker), the exported ONNX files and the probe tensors per preprocessing spec. Checks return
``CheckResult`` records that the CLI prints, the tests assert and the reports serialise.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import flops as flops_mod
from . import onnxrt
from .compare import ONNX_FP32, Comparison, Tolerance, compare_logits, nontrivial_failures
from .preprocess import preprocess_batch
from .probes import calibration_images, probe_images
from .registry import Card, Registry, load_registry
from .spec import PreprocessSpec
from .weights import ChecksumError, DownloadError, WeightsUnavailable, fetch, parse_mode, seed_for
from .workers import WorkerError, WorkerPool

DEFAULT_OPSET = 17
# reference vs native preprocessing, in model-input units: both sides use the same decoder and resize library,
# so only float reordering remains (x / 255 vs x * (1/255), (x - m) / s vs x * a + b). One 0-255 level of one
# pixel is >= 7.8e-3 in every framework's input units (keras: 1/127.5 = 7.8e-3; ImageNet mean/std specs:
# 1/(0.229*255) = 1.7e-2 and up), so 1e-4 cannot hide a one-level difference anywhere.
PREPROCESS_MAX_ABS = 1e-4
TESTED_OPSETS = (13, 17)
INPUT_FAULTS = {"transposed_input": "the ONNX side gets the probe tensor with H and W swapped"}


@dataclass
class CheckResult:
    card: str
    check: str
    status: str              # pass | fail | skip | error
    reason: str = ""
    mode: str = "seeded"
    metrics: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in ("pass", "skip")

    def to_dict(self) -> dict:
        return asdict(self)


class Skip(Exception):
    pass


class Harness:
    def __init__(self, registry: Registry | None = None, workdir: Path | str | None = None,
                 pool: WorkerPool | None = None):
        self.registry = registry or load_registry()
        self.pool = pool or WorkerPool(Path(workdir) / "workers" if workdir else None)
        self.workdir = Path(workdir) if workdir else self.pool.workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._tensors: dict[tuple, str] = {}
        self._built: dict[tuple, dict] = {}
        self._onnx: dict[tuple, dict] = {}
        self.timings: dict[str, dict[str, float]] = {}

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> "Harness":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _time(self, card: Card, what: str, seconds: float) -> None:
        self.timings.setdefault(card.id, {})
        self.timings[card.id][what] = self.timings[card.id].get(what, 0.0) + seconds

    # ---------------------------------------------------------------- inputs
    def probe_tensor(self, spec: PreprocessSpec) -> tuple[np.ndarray, str]:
        key = ("probe", spec)
        if key not in self._tensors:
            x = preprocess_batch([im for _, im in probe_images()], spec)
            self._tensors[key] = self.pool.put_array(x, "probe")
        path = self._tensors[key]
        return np.load(path), path

    def calib_tensor(self, spec: PreprocessSpec) -> str:
        key = ("calib", spec)
        if key not in self._tensors:
            self._tensors[key] = self.pool.put_array(preprocess_batch(calibration_images(), spec), "calib")
        return self._tensors[key]

    # ---------------------------------------------------------------- models
    def weights_request(self, card: Card, mode: str) -> dict:
        kind, path = parse_mode(mode)
        if kind == "seeded":
            return {"mode": "seeded", "seed": seed_for(card), "calib": self.calib_tensor(card.preprocess)}
        if kind in ("file", "canonical"):
            return {"mode": kind, "path": str(Path(path).resolve())}
        t0 = time.perf_counter()
        try:
            got = fetch(card.weights)
        except WeightsUnavailable as e:
            raise Skip(f"pretrained weights unavailable: {e}") from None
        self._time(card, "download", time.perf_counter() - t0)
        return {"mode": "file", "path": str(got.path), "sha256": got.sha256}

    def build(self, card: Card, mode: str = "seeded") -> dict:
        """The card's model built in its worker. A model lives in one worker process: after that worker died
        (segfault, OOM kill) and the pool started a new one, the model is built again in the new worker."""
        key = (card.id, mode)
        worker_existed = card.framework in self.pool.workers and self.pool.workers[card.framework].alive
        w = self.pool.get(card.framework)
        generation = self.pool.generation[card.framework]
        if key not in self._built or self._built[key]["_generation"] != generation:
            req = self.weights_request(card, mode)
            if not worker_existed:
                self._time(card, "worker_start", w.start_seconds)
            res = w.call("build", card=card.to_request(), weights=req)
            self._time(card, "build", res["seconds"])
            self._built[key] = {**res, "_generation": generation}
        return self._built[key]

    def native(self, card: Card, mode: str, x_path: str, fault: str | None = None) -> np.ndarray:
        built = self.build(card, mode)
        res = self.pool.call(card.framework, "run", key=built["key"], input=x_path, fault=fault)
        self._time(card, "native_inference", res["seconds"])
        return np.load(res["output"])

    def native_array(self, card: Card, mode: str, x: np.ndarray, name: str = "x") -> np.ndarray:
        """``native`` on an in-memory batch (already in the card's layout)."""
        return self.native(card, mode, self.pool.put_array(np.ascontiguousarray(x, dtype=np.float32), name))

    def export(self, card: Card, mode: str = "seeded", opset: int = DEFAULT_OPSET, exporter: str = "default") -> dict:
        key = (card.id, mode, opset, exporter)
        if key not in self._onnx:
            built = self.build(card, mode)
            tag = mode.split(":")[0] + ("" if ":" not in mode else "-" + hashlib.sha1(mode.encode()).hexdigest()[:8])
            path = self.workdir / "onnx" / f"{card.id.replace('/', '__')}.{tag}.opset{opset}.{exporter}.onnx"
            res = self.pool.call(card.framework, "export_onnx", key=built["key"], path=str(path), opset=opset,
                                 exporter=exporter)
            self._time(card, "export", res["seconds"])
            t0 = time.perf_counter()
            res["check"] = onnxrt.check_model(path)
            res.update(attach_spec(path, card))
            self._time(card, "onnx_check", time.perf_counter() - t0)
            self._onnx[key] = res
        return self._onnx[key]

    # ---------------------------------------------------------------- checks
    def _guard(self, card: Card, check: str, mode: str, fn) -> CheckResult:
        t0 = time.perf_counter()
        try:
            res = fn()
        except Skip as e:
            res = CheckResult(card.id, check, "skip", str(e), mode)
        except (ChecksumError, DownloadError) as e:
            res = CheckResult(card.id, check, "fail", f"{type(e).__name__}: {e}", mode)
        except WorkerError as e:
            res = CheckResult(card.id, check, "error", f"{e.kind}: {e}" + (f" (hint: {e.hint})" if e.hint else ""), mode)
        except onnxrt.OnnxCheckError as e:
            res = CheckResult(card.id, check, "fail", f"ONNX check: {e}", mode)
        except Exception as e:  # anything else: one line, never a traceback from deep inside a framework
            res = CheckResult(card.id, check, "error", f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", mode)
        res.timings["total"] = time.perf_counter() - t0
        return res

    def check_spec(self, card: Card) -> CheckResult:
        """The spec the adapter derives from the framework's own API == the registry's spec."""
        def run() -> CheckResult:
            derived = PreprocessSpec.from_dict(self.pool.call(card.framework, "derive_spec", card=card.to_request())["spec"])
            diffs = card.preprocess.differences(derived)
            status = "fail" if diffs else "pass"
            reason = ("registry vs framework: " + "; ".join(diffs)) if diffs else f"matches {derived.source}"
            return CheckResult(card.id, "spec", status, reason, "-", {"derived": derived.to_dict()})
        return self._guard(card, "spec", "-", run)

    def check_onnx(self, card: Card, mode: str = "seeded", opset: int = DEFAULT_OPSET, exporter: str = "default",
                   fault: str | None = None, input_fault: str | None = None, tol: Tolerance = ONNX_FP32) -> CheckResult:
        """Native logits vs ONNX Runtime logits (graph optimizations off and on) on the probe batch."""
        name = f"onnx-opset{opset}" + (f"-{exporter}" if exporter != "default" else "")

        def run() -> CheckResult:
            x, x_path = self.probe_tensor(card.preprocess)
            ref = self.native(card, mode, x_path, fault)
            exp = self.export(card, mode, opset, exporter)
            x_onnx = x
            if input_fault == "transposed_input":
                hw = (-1, -2) if card.preprocess.layout == "NCHW" else (1, 2)
                x_onnx = np.ascontiguousarray(np.swapaxes(x, *hw))
            elif input_fault is not None:
                raise ValueError(f"unknown input fault {input_fault!r}")
            comps: list[Comparison] = []
            for opt in ("off", "on"):
                t0 = time.perf_counter()
                onnxrt.session(exp["path"], opt)
                self._time(card, "ort_session", time.perf_counter() - t0)
                t0 = time.perf_counter()
                y = onnxrt.run(exp["path"], x_onnx, opt)
                self._time(card, "ort_inference", time.perf_counter() - t0)
                comps.append(compare_logits(ref, y, tol, f"ort-opt-{opt}"))
            failures = [f"{c.label}: {f}" for c in comps for f in c.failures]
            metrics = {c.label: c.metrics for c in comps}
            metrics["onnx"] = {k: exp[k] for k in ("sha256", "bytes", "exporter", "opset") if k in exp} | {
                "nodes": exp["check"]["nodes"], "producer": exp["check"]["producer"]}
            reason = "; ".join(failures) if failures else comps[0].summary() + " | " + comps[1].summary()
            if failures and fault is None and input_fault is None:
                reason += " | " + self._bisect_message(card, mode, x)
            return CheckResult(card.id, name, "fail" if failures else "pass", reason, mode, metrics)
        return self._guard(card, name, mode, run)

    def _bisect_message(self, card: Card, mode: str, x: np.ndarray) -> str:
        """A genuine (not injected) parity failure: name the first diverging layer, native vs ONNX."""
        from .transplant import bisect_onnx
        try:
            x_nchw = x if card.preprocess.layout == "NCHW" else np.ascontiguousarray(x.transpose(0, 3, 1, 2))
            b = bisect_onnx(self, card, mode, x_nchw)
            return "bisection: " + b.message()
        except Exception as e:  # never hide the parity failure behind a bisection problem
            return f"bisection unavailable: {type(e).__name__}: {str(e)[:160]}"

    def check_nontrivial(self, card: Card, mode: str = "seeded") -> CheckResult:
        def run() -> CheckResult:
            _, x_path = self.probe_tensor(card.preprocess)
            y = self.native(card, mode, x_path)
            fails = nontrivial_failures(y)
            m = {"logit_std_min": float(y.std(1).min()), "logit_spread_min": float((y.max(1) - y.min(1)).min()),
                 "distinct_top1": int(len(set(y.argmax(1).tolist())))}
            return CheckResult(card.id, "nontrivial", "fail" if fails else "pass", "; ".join(fails) or
                               f"logit spread >= {m['logit_spread_min']:.1f} (std >= {m['logit_std_min']:.2f}), "
                               f"{m['distinct_top1']} distinct top-1", mode, m)
        return self._guard(card, "nontrivial", mode, run)

    def check_meta(self, card: Card) -> CheckResult:
        """The registry's URL and published numbers vs the metadata the framework ships with the weights.

        The adapter's ``meta`` op maps its framework's own metadata onto registry terms: ``published``
        ({metric: {field, value}} as cited under registry source ``source``) and ``card_fields`` ({"section.field":
        value} of the card). Only what the framework ships is compared.
        """
        def run() -> CheckResult:
            got = self.pool.call(card.framework, "meta", card=card.to_request())
            diffs = []
            if got.get("url") and got["url"] != card.weights.url:
                diffs.append(f"url {got['url']} != registry {card.weights.url}")
            for metric, entry in got.get("published", {}).items():
                pubs = card.published_for(metric, got.get("source"))
                if pubs and float(pubs[0].digits) != float(entry["value"]):
                    diffs.append(f"{entry['field']} {entry['value']} != registry {pubs[0].digits}")
            for dotted, value in got.get("card_fields", {}).items():
                section, name = dotted.split(".", 1)
                mine = getattr(getattr(card, section), name)
                if mine not in (None, "") and mine != value:
                    diffs.append(f"{name} {value} != registry {mine}")
            return CheckResult(card.id, "meta", "fail" if diffs else "pass", "; ".join(diffs) or "registry matches framework metadata",
                               "-", {"framework_meta": got.get("meta", {})})
        return self._guard(card, "meta", "-", run)

    # ---------------------------------------------------------------- preprocessing
    def native_tensor(self, card: Card, images: list) -> np.ndarray:
        key = ("native-pre", card.id, tuple(str(p) for p in images))
        if key not in self._tensors:
            out = self.pool.new_path(f"native-pre-{card.framework}")
            res = self.pool.call(card.framework, "native_preprocess", card=card.to_request(),
                                 images=[str(p) for p in images], out=out)
            self._time(card, "native_preprocess", res["seconds"])
            self._tensors[key] = res["output"]
        return np.load(self._tensors[key])

    def check_preprocess(self, card: Card, images: list, spec: PreprocessSpec | None = None,
                         mode: str | None = None, name: str = "preprocess") -> CheckResult:
        """The reference pipeline driven by the card's spec (or ``spec``) vs the framework's own pipeline on the
        same image files: max difference in input units and in 0-255 pixel levels; with ``mode``, the model's
        top-1 agreement on the two tensors."""
        def run() -> CheckResult:
            s = spec or card.preprocess
            t0 = time.perf_counter()
            ref = preprocess_batch(images, s)
            self._time(card, "reference_preprocess", time.perf_counter() - t0)
            nat = self.native_tensor(card, images)
            if ref.shape != nat.shape:
                return CheckResult(card.id, name, "fail", f"shape: reference {ref.shape} vs native {nat.shape} "
                                   f"(layout {s.layout}?)", mode or "-", {})
            d = np.abs(ref.astype(np.float64) - nat)
            per_img = d.reshape(len(d), -1).max(1)
            pix_unit = np.array(s.std) / s.scale                 # input unit -> 0-255 pixel levels
            ch_axis = 1 if s.layout == "NCHW" else 3
            dpix = np.moveaxis(d, ch_axis, -1) * pix_unit
            m = {"max_abs": float(d.max()), "mean_abs": float(d.mean()), "max_pixel_levels": float(dpix.max()),
                 "mean_pixel_levels": float(dpix.mean()), "images": len(images),
                 "worst_image": str(images[int(per_img.argmax())]), "tolerance": PREPROCESS_MAX_ABS}
            if mode is not None:
                ya = self.native_array(card, mode, ref, "ref-pre")
                yb = self.native_array(card, mode, nat, "nat-pre")
                m["top1_agree"] = float((ya.argmax(1) == yb.argmax(1)).mean())
            ok = m["max_abs"] <= PREPROCESS_MAX_ABS
            reason = (f"max_abs {m['max_abs']:.2e} (max {m['max_pixel_levels']:.3g} pixel levels, mean "
                      f"{m['mean_pixel_levels']:.3g}) over {len(images)} images"
                      + (f", top-1 agreement {m['top1_agree']:.3f}" if "top1_agree" in m else ""))
            if not ok:
                reason = f"max_abs {m['max_abs']:.2e} > {PREPROCESS_MAX_ABS:.0e} (worst: {Path(m['worst_image']).name}); " + reason
            return CheckResult(card.id, name, "pass" if ok else "fail", reason, mode or "-", m)
        return self._guard(card, name, mode or "-", run)

    def check_end_to_end(self, card: Card, mode: str, images: list, opset: int = DEFAULT_OPSET,
                         tol: Tolerance = ONNX_FP32) -> CheckResult:
        """What a deployment ships: image file -> the framework's preprocessing -> native model, vs image file ->
        reference preprocessing -> ONNX Runtime."""
        def run() -> CheckResult:
            ref_logits = self.native_array(card, mode, self.native_tensor(card, images), "e2e-native")
            exp = self.export(card, mode, opset)
            x = preprocess_batch(images, card.preprocess)
            y = onnxrt.run(exp["path"], x, "on")
            c = compare_logits(ref_logits, y, tol, "end-to-end")
            return CheckResult(card.id, "end-to-end", "fail" if c.failures else "pass",
                               "; ".join(c.failures) or c.summary(), mode, {"end-to-end": c.metrics})
        return self._guard(card, "end-to-end", mode, run)

    def counts(self, card: Card, mode: str = "seeded") -> dict[str, dict[str, float | None]]:
        """Every FLOPs convention (on the keep-BN counting graph) and every params convention (the framework's
        own counts + the graph-derived ones) for one card: {"flops": {...}, "params": {...}, "graph": {...}}."""
        exp = self.export(card, mode, DEFAULT_OPSET, "keep-bn")
        t0 = time.perf_counter()
        graph = flops_mod.op_counts(exp["path"])
        self._time(card, "count", time.perf_counter() - t0)
        built = self.build(card, mode)
        native = built["params"]
        t0 = time.perf_counter()
        counters = self.pool.call(card.framework, "count_native", key=built["key"])["counts"]
        self._time(card, "count", time.perf_counter() - t0)
        return {"flops": flops_mod.convention_table(graph), "native_counters": counters,
                "params": {**{k: float(v) for k, v in native.items()}, **flops_mod.graph_params(graph)},
                "graph": graph}

    def check_counts(self, card: Card, mode: str = "seeded") -> CheckResult:
        """Every published FLOPs/params cell of the card reproduced with the convention the registry names."""
        def run() -> CheckResult:
            table = self.counts(card, mode)
            cells = [flops_mod.check_cell(p, table[p.metric]) for p in card.published
                     if p.metric in ("flops", "params")]
            if not cells:
                raise Skip("no published FLOPs/params for this card")
            bad = [c for c in cells if c.status not in ("exact", "within-tolerance")]
            approx = [c for c in cells if c.status == "within-tolerance"]
            summary = "; ".join(f"{c.metric}[{c.source}] {c.published} {c.unit}: {c.status} ({c.detail}"
                                + (f", residual {100 * c.residual_rel:+.3f}%" if c.residual_rel is not None else "") + ")"
                                for c in (bad or approx))
            reason = summary if bad else (f"{len(cells)} cells, {len(cells) - len(approx)} exact"
                                          + (f"; {summary}" if approx else ""))
            return CheckResult(card.id, "counts", "fail" if bad else "pass", reason, mode,
                               {"cells": [dataclasses.asdict(c) for c in cells], "conventions": table})
        return self._guard(card, "counts", mode, run)

    def checks_for(self, card: Card, modes: tuple[str, ...] = ("seeded", "pretrained"),
                   opsets: tuple[int, ...] = (DEFAULT_OPSET,)) -> list[CheckResult]:
        """The standard checks of one card: spec, meta, then ONNX parity per weights mode and opset."""
        out = [self.check_spec(card), self.check_meta(card), self.check_counts(card)]
        for mode in modes:
            out += [self.check_onnx(card, mode, opset) for opset in opsets]
        return out


def attach_spec(path: Path | str, card: Card) -> dict:
    """Ship the exact preprocessing with the model: the card's spec as ONNX ``metadata_props`` (key
    ``mbv2_parity.preprocess``, JSON) and as ``<model>.preprocess.json`` beside the file."""
    import onnx
    path = Path(path)
    doc = {"card": card.id, "upstream_id": card.upstream_id, "preprocess": card.preprocess.to_dict(),
           "input": {"layout": card.preprocess.layout, "dtype": card.preprocess.dtype,
                     "size": card.preprocess.crop_size, "formula": "x = (pixel * scale - mean) / std, channels in "
                                                              "channel_order"}}
    text = json.dumps(doc, indent=1, sort_keys=True)
    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props}
    props.update({"mbv2_parity.preprocess": text, "mbv2_parity.card": card.id})
    del model.metadata_props[:]
    for k, v in sorted(props.items()):
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(path))
    side = path.with_suffix(".preprocess.json")
    side.write_text(text)
    data = path.read_bytes()
    return {"spec_json": str(side), "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def write_results(results: list[CheckResult], path: Path | str, extra: dict | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"results": [r.to_dict() for r in results], **(extra or {})}
    path.write_text(json.dumps(doc, indent=2, default=str))
    return path
