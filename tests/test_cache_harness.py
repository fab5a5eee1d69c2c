"""The artifact cache in the harness, with real workers: a warm run reuses and gives the cold run's verdicts; a changed
weight file, spec, converter version or suite code makes it rebuild (one case each)."""
import dataclasses
import shutil

import numpy as np
import pytest

from parity import cache as cache_mod
from parity import checks
from parity.cache import Cache
from parity.harness import Harness
from parity.workers import WorkerPool
from support import REGISTRY

TV = REGISTRY.get("torchvision/mobilenet_v2.IMAGENET1K_V1")
TV2 = REGISTRY.get("torchvision/mobilenet_v2.IMAGENET1K_V2")


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    p = WorkerPool(tmp_path_factory.mktemp("workers"))
    yield p
    p.close()


@pytest.fixture
def run(pool, tmp_path):
    """``run(name)``: a fresh harness (a new run: empty in-process caches, its own workdir) on one shared store."""
    n = [0]

    def make(root=tmp_path / "store"):
        n[0] += 1
        return Harness(REGISTRY, workdir=tmp_path / f"run{n[0]}", pool=pool, cache=Cache(root, 2 ** 33))
    return make


def outcomes(h, kind):
    return [e.outcome for e in h.cache.events if e.kind == kind]


def verdicts(results):
    """What a check concluded: status, reason (its measured numbers, rounded as printed) -- without the reuse notes."""
    return [(r.card, r.check, r.mode, r.status, r.reason) for r in results]


def test_warm_run_reuses_and_every_verdict_equals_the_cold_one(run):
    items = checks.plan(TV, ("seeded",), (17,), ("ort-fp16", "torchscript"))
    cold_h, warm_h = run(), run()
    cold = checks.run_plan(cold_h, TV, items)
    warm = checks.run_plan(warm_h, TV, items)
    assert verdicts(warm) == verdicts(cold)
    assert all(r.status == "pass" for r in cold), verdicts(cold)
    made = {e.kind for e in cold_h.cache.events}
    assert {"native", "export", "counts", "fp16", "hosted-torchscript", "derived-spec", "framework-meta"} <= made
    assert {e.outcome for e in warm_h.cache.events} == {"hit"}, [e.to_dict() for e in warm_h.cache.events]
    assert not any("build" in t or t == "export" for t in warm_h.timings.get(TV.id, {})), warm_h.timings
    # the results say what was reused; the comparison itself ran again (its ORT timing is there)
    onnx = next(r for r in warm if r.check == "onnx-opset17")
    assert sorted(onnx.reused) == ["export: hit", "native: hit"]
    assert warm_h.timings[TV.id]["ort_inference"] > 0


def test_a_changed_weight_file_rebuilds_the_same_bytes_elsewhere_do_not(run, tmp_path):
    h = run()
    a, b = tmp_path / "a.pth", tmp_path / "elsewhere" / "b.pth"
    h.client("torchvision").save_native(h.build(TV, "seeded").key, a)
    b.parent.mkdir()
    shutil.copy(a, b)
    h.export(TV, f"file:{a}")
    h2 = run()
    h2.export(TV, f"file:{b}")                        # same bytes, another path: the key holds content, not paths
    assert outcomes(h2, "export") == ["hit"]
    h2.client("torchvision").save_native(h2.build(TV2, "seeded").key, b)   # other weights, same file name
    h3 = run()
    h3.export(TV, f"file:{b}")
    assert outcomes(h3, "export") == ["miss"]


def test_a_changed_spec_rebuilds(run, tmp_path):
    """With weights from a file (their key does not involve the spec, as seeded weights' calibration tensor does) the
    spec alone must make the difference: the exported file carries it, and the native model's output is its own."""
    h = run()
    w = tmp_path / "w.pth"
    h.client("torchvision").save_native(h.build(TV, "seeded").key, w)
    mode = f"file:{w}"
    h.export(TV, mode)
    h = run()
    h.export(TV, mode)
    assert outcomes(h, "export") == ["hit"]
    other = dataclasses.replace(TV, preprocess=dataclasses.replace(TV.preprocess, resize_size=TV.preprocess.resize_size + 8))
    h = run()                                         # (within a run a card id has one spec: a new run)
    h.export(other, mode)
    assert outcomes(h, "export") == ["miss"]
    x = np.zeros((1, 3, 224, 224), np.float32)
    h.native(TV, mode, x)
    h.native(other, mode, x)                          # same input bytes, other spec: its own entry
    assert outcomes(h, "native") == ["miss", "miss"]


def test_a_changed_converter_version_or_suite_code_rebuilds(run, monkeypatch):
    run().export(TV)
    real = cache_mod.stack_versions("torch")
    monkeypatch.setitem(cache_mod._STACKS, "torch", "0" * 64)      # e.g. torch 2.14.1 -> 2.14.2 in w-torch
    h = run()
    h.export(TV)
    assert outcomes(h, "export") == ["miss"]
    monkeypatch.setitem(cache_mod._STACKS, "torch", real)
    monkeypatch.setattr(cache_mod, "_SUITE", "1" * 64)              # any edit of parity/ or adapters/
    h = run()
    h.export(TV)
    assert outcomes(h, "export") == ["miss"]
    monkeypatch.setattr(cache_mod, "_SUITE", None)
    h = run()
    h.export(TV)
    assert outcomes(h, "export") == ["hit"]


def test_stack_versions_are_read_from_the_interpreter():
    """The converter/runtime versions in the key: every package of the stack's venv, read without importing it."""
    saved = cache_mod._STACKS.pop("torch", None)
    try:
        d = cache_mod.stack_versions("torch")
        assert len(d) == 64 and d != cache_mod.stack_versions("deploy")
    finally:
        if saved:
            cache_mod._STACKS["torch"] = saved
