"""The artifact cache in the harness, with real workers: a warm run reuses and gives the cold run's verdicts; a changed
weight file, spec, converter version or suite code makes it rebuild (one case each)."""
import dataclasses
import shutil
from pathlib import Path

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
    assert Path(h2.export(TV, f"file:{b}").path).is_file()   # same bytes, another path: the key holds content
    assert outcomes(h2, "export") == ["hit"]
    h2.client("torchvision").save_native(h2.build(TV2, "seeded").key, b)   # other weights, same file name
    h3 = run()
    h3.export(TV, f"file:{b}")
    assert outcomes(h3, "export") == ["miss"]


def test_the_same_canonical_weights_under_another_name_are_a_hit_at_this_runs_paths(run, tmp_path):
    """Canonical weights are keyed by content, so the same weights under another file name (each run converts the real
    TFLite file into its own work directory) are a hit: the export and the fp16 file must then be where this run asked
    for them, not under the name the storing run gave them (CI red on 12 real-weights tests before: FileNotFoundError
    on the storing run's file name)."""
    from parity.deploy.artifacts import fp16_onnx
    h = run()
    a, b = tmp_path / "a.safetensors", tmp_path / "other" / "b.safetensors"
    h.client("torchvision").export_canonical(h.build(TV, "seeded").key, a)
    b.parent.mkdir()
    shutil.copy(a, b)
    ex_a, fp_a = h.export(TV, f"canonical:{a}"), fp16_onnx(h, TV, f"canonical:{a}", 17)
    h2 = run()
    ex_b, fp_b = h2.export(TV, f"canonical:{b}"), fp16_onnx(h2, TV, f"canonical:{b}", 17)
    assert outcomes(h2, "export") == ["hit"] and outcomes(h2, "fp16") == ["hit"]
    for mine, theirs in ((ex_b.path, ex_a.path), (fp_b.path, fp_a.path)):
        assert Path(mine).is_file() and Path(mine).parent.is_relative_to(h2.workdir), mine
        assert Path(mine).read_bytes() == Path(theirs).read_bytes()


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
