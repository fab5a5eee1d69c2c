"""The artifact cache across runs (parity.cache): keys, verified reads, rebuilds of damaged entries, LRU bound,
concurrent runs. Framework-free: the store is exercised with files made here."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from parity import cache as cache_mod
from parity.cache import Cache, Corrupt, Store, make_key
from parity.cache.store import canonical


def maker(content: bytes, calls: list[int]):
    def make(dst: Path):
        def go():
            calls.append(1)
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(content)
            return {"path": str(dst), "n": len(content)}
        return go
    return make


def test_key_is_canonical_and_content_only():
    a = {"card": "x", "opset": 17, "weights": {"sha256": "ab", "mode": "file"}}
    b = {"weights": {"mode": "file", "sha256": "ab"}, "opset": 17, "card": "x"}
    assert make_key(a) == make_key(b)
    assert make_key(a) != make_key({**a, "opset": 13})
    with pytest.raises(TypeError):      # an object's repr (a path object, an address) is never a key ingredient
        canonical({"path": Path("/x")})
    with pytest.raises(ValueError):
        canonical({"x": float("nan")})


def test_hit_reuses_and_each_ingredient_rebuilds(tmp_path):
    c = Cache(tmp_path / "c", 2 ** 30)
    calls: list[int] = []
    dst = tmp_path / "wd" / "model.onnx"
    base = {"card": "timm/x", "build": "b1", "spec": "s1", "weights": {"sha256": "w1"}, "opset": 17,
            "exporter": "default", "calibration": {"tensor": "t1"}}
    rec = c.files("export", base, {"m": dst}, maker(b"A" * 1000, calls)(dst), card="timm/x", workdir=tmp_path / "wd")
    assert calls == [1] and rec["n"] == 1000
    dst.unlink()
    rec = c.files("export", base, {"m": dst}, maker(b"B", calls)(dst), card="timm/x", workdir=tmp_path / "wd")
    assert calls == [1] and dst.read_bytes() == b"A" * 1000 and rec["path"] == str(dst)
    assert [e.outcome for e in c.events] == ["miss", "hit"]
    for k, v in [("card", "timm/y"), ("build", "b2"), ("spec", "s2"), ("weights", {"sha256": "w2"}), ("opset", 13),
                 ("exporter", "dynamo"), ("calibration", {"tensor": "t2"})]:
        n = len(calls)
        c.files("export", {**base, k: v}, {"m": dst}, maker(b"C", calls)(dst))
        assert len(calls) == n + 1, f"changing {k} did not rebuild"
    # the stack's package versions (converter, runtime) and the suite's code are in every key
    n = len(calls)
    old = dict(cache_mod._STACKS), cache_mod._SUITE
    try:
        cache_mod._STACKS["torch"] = "packages-1"
        c.files("export", base, {"m": dst}, maker(b"D", calls)(dst), stack="torch")
        c.files("export", base, {"m": dst}, maker(b"D", calls)(dst), stack="torch")
        assert len(calls) == n + 1
        cache_mod._STACKS["torch"] = "packages-2"          # e.g. torch 2.14.1 -> 2.14.2
        c.files("export", base, {"m": dst}, maker(b"D", calls)(dst), stack="torch")
        assert len(calls) == n + 2
        cache_mod._SUITE = "0" * 64                        # any edit of parity/ or adapters/
        c.files("export", base, {"m": dst}, maker(b"D", calls)(dst), stack="torch")
        assert len(calls) == n + 3
    finally:
        cache_mod._STACKS.clear()
        cache_mod._STACKS.update(old[0])
        cache_mod._SUITE = old[1]


def test_suite_digest_follows_the_source(tmp_path, monkeypatch):
    src = tmp_path / "parity"
    (src / "sub").mkdir(parents=True)
    (src / "a.py").write_text("x = 1\n")
    (src / "sub" / "b.py").write_text("y = 2\n")
    monkeypatch.setattr(cache_mod, "PACKAGE", src)
    monkeypatch.setattr(cache_mod, "ADAPTERS", tmp_path / "adapters")
    digests = []
    for edit in (None, "y = 3\n"):
        if edit:
            (src / "sub" / "b.py").write_text(edit)
        monkeypatch.setattr(cache_mod, "_SUITE", None)
        digests.append(cache_mod.suite_digest())
    assert digests[0] != digests[1]


@pytest.mark.parametrize("damage", ["truncate", "flip", "no-manifest", "delete-file"])
def test_a_damaged_entry_is_rebuilt_never_trusted(tmp_path, damage):
    c = Cache(tmp_path / "c", 2 ** 30)
    calls: list[int] = []
    dst = tmp_path / "wd" / "a.bin"
    good = os.urandom(50_000)
    ing = {"card": "x"}
    c.files("int8", ing, {"a.bin": dst}, maker(good, calls)(dst))
    key, _ = c.key("int8", ing)
    stored = c.store.entry_dir(key) / "files" / "a.bin"
    if damage == "truncate":                 # a partial copy, a full disk
        stored.write_bytes(good[:1000])
    elif damage == "flip":                   # same size, one byte different
        stored.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    elif damage == "no-manifest":
        (c.store.entry_dir(key) / "manifest.json").unlink()
    else:
        stored.unlink()
    dst.unlink()
    c.files("int8", ing, {"a.bin": dst}, maker(good, calls)(dst))
    assert calls == [1, 1], "the damaged entry was used instead of rebuilt"
    assert dst.read_bytes() == good
    assert c.events[-1].outcome == "rebuilt"
    dst.unlink()
    c.files("int8", ing, {"a.bin": dst}, maker(b"other", calls)(dst))   # the rebuilt entry is whole again
    assert calls == [1, 1] and dst.read_bytes() == good and c.events[-1].outcome == "hit"


def test_fetch_checks_the_bytes_it_copied(tmp_path):
    s = Store(tmp_path, 2 ** 30)
    src = tmp_path / "f"
    src.write_bytes(b"x" * 100)
    s.put("k" * 64, {"f": src}, {}, {}, 0.0)
    (s.entry_dir("k" * 64) / "files" / "f").write_bytes(b"x" * 99 + b"y")
    with pytest.raises(Corrupt, match="sha256"):
        s.fetch("k" * 64, {"f": tmp_path / "out"})
    assert not (tmp_path / "out").exists() and not s.entry_dir("k" * 64).exists()


def test_lru_eviction_by_recorded_use(tmp_path):
    s = Store(tmp_path / "store", 2500)
    for i, name in enumerate("abc"):
        f = tmp_path / name
        f.write_bytes(bytes([i]) * 1000)
        s.put(name * 64, {"f": f}, {}, {}, 0.0)
        time.sleep(0.02)
    # 3000 bytes > 2500: the oldest (a) went at the third put
    assert not s.entry_dir("a" * 64).exists()
    s.fetch("b" * 64, {"f": tmp_path / "out"})          # b is used: c is now the least recently used
    f = tmp_path / "d"
    f.write_bytes(b"d" * 1000)
    s.put("d" * 64, {"f": f}, {}, {}, 0.0)
    assert s.entry_dir("b" * 64).exists() and not s.entry_dir("c" * 64).exists()
    assert s.size() <= 2500


def test_no_cache_makes_everything_stores_nothing(tmp_path):
    c = Cache(tmp_path / "c", 2 ** 30, enabled=False)
    calls: list[int] = []
    dst = tmp_path / "a"
    for _ in range(2):
        c.files("export", {"x": 1}, {"a": dst}, maker(b"z", calls)(dst))
    assert calls == [1, 1] and not (tmp_path / "c" / "v1" / "entries").exists()
    assert {e.outcome for e in c.events} == {"off"}


RACER = r"""
import os, sys
from pathlib import Path
from parity.cache import Cache
root, me, rounds = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
c = Cache(root, int(sys.argv[4]))
bad = 0
for r in range(rounds):
    for i in range(6):
        content = bytes([i]) * (200_000 + i)           # the same key always means the same bytes
        dst = root.parent / f"out-{me}" / f"{i}.bin"
        def make():
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_suffix(".tmp"); tmp.write_bytes(content); os.replace(tmp, dst)
            return {"i": i}
        rec = c.files("int8", {"i": i}, {"f": dst}, make)
        bad += dst.read_bytes() != content or rec != {"i": i}
print(bad, sum(e.outcome == "hit" for e in c.events), sum(e.outcome == "rebuilt" for e in c.events))
"""


@pytest.mark.parametrize("bound", [10 ** 9, 700_000])   # roomy; tight (evictions while the other run reads)
def test_concurrent_runs_share_the_store_without_corruption(tmp_path, bound):
    root = tmp_path / "cache"
    procs = [subprocess.Popen([sys.executable, "-c", RACER, str(root), str(n), "15", str(bound)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    all_hits = 0
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
        bad, hits, rebuilt = map(int, out.split())
        assert bad == 0 and (hits > 0 or bound < 10 ** 9)   # tight: one run may see every entry evicted first
        assert rebuilt == 0, "a concurrent writer or evictor left an entry a reader saw as damaged"
        all_hits += hits
    assert all_hits > 0, "the runs never reused each other's entries"
    s = Store(root, bound)
    for _, _size, key in s.entries():                   # every entry left is whole
        man = json.loads((s.entry_dir(key) / "manifest.json").read_text())
        assert s.fetch(key, {n: tmp_path / "check" / n for n in man["files"]}) is not None
    assert not list((root / "v1" / "tmp").glob("*")), "staging directories left behind"


def test_progress_lines_per_stack_with_an_eta_from_recorded_times(tmp_path):
    from parity.cli.progress import Progress
    from support import REGISTRY
    tv, tm, kr = (REGISTRY.get(i) for i in ("torchvision/mobilenet_v2.IMAGENET1K_V1", "timm/mobilenetv2_100.ra_in1k",
                                            "keras/mobilenet_v2.alpha_1.0_224"))
    record = tmp_path / "progress.json"
    printed: list[str] = []
    with Progress([tv, tm, kr], record, "flags-a", every=0.05, out=printed.append) as p:
        assert p.lines()[0].startswith("[torch] 0/2 cards, waiting") and "ETA" not in p.lines()[0]  # nothing recorded
        p.start_card(tv)
        p.step(tv, "onnx-opset17 (seeded)")
        time.sleep(0.2)
        assert any("[torch] 0/2 cards, torchvision/mobilenet_v2.IMAGENET1K_V1 onnx-opset17 (seeded)" in ln
                   for ln in printed), printed          # piped: plain periodic lines while the card runs
        p.end_card(tv)
        assert p.lines()[1].startswith("[tf] 0/1 cards, waiting")
    times = json.loads(record.read_text())["flags-a"]
    assert set(times) == {tv.id}
    json.dump({"flags-a": {tv.id: 100.0, tm.id: 300.0, kr.id: 50.0}}, record.open("w"))
    p = Progress([tv, tm, kr], record, "flags-a", every=0)
    assert "ETA 6m40s" in p.lines()[0] and "ETA 0m50s" in p.lines()[1]   # 100 + 300 s left on torch, 50 on tf
    p.start_card(tv)
    p.end_card(tv)
    assert "1/2 cards" in p.lines()[0] and "ETA 5m00s" in p.lines()[0]
    assert "ETA" not in Progress([tv], record, "flags-b", every=0).lines()[0]   # other flags: no ETA from these


def test_records_move_with_the_work_directory_and_nothing_else_changes(tmp_path):
    c = Cache(tmp_path / "c", 2 ** 30)
    wd1, wd2 = tmp_path / "build", tmp_path / "other" / "build"
    rec = {"path": str(wd1 / "deploy" / "m.pt"), "tool": "build of build", "made_by": {"src": f"{wd1}/onnx/x.onnx"},
           "elsewhere": "/opt/build/x"}
    dst1, dst2 = wd1 / "deploy" / "m.pt", wd2 / "deploy" / "m.pt"
    def make():
        maker(b"m", [])(dst1)()
        return rec
    c.files("hosted-torchscript", {"x": 1}, {"m.pt": dst1}, make, workdir=wd1)
    got = c.files("hosted-torchscript", {"x": 1}, {"m.pt": dst2}, dict, workdir=wd2)
    assert got == {"path": str(dst2), "tool": "build of build", "made_by": {"src": f"{wd2}/onnx/x.onnx"},
                   "elsewhere": "/opt/build/x"}
    rel = Path("build")                                      # a relative --workdir: only paths under it move
    assert cache_mod._rel({"a": "build/onnx/x", "b": "build_digest"}, rel) == {"a": "${WORKDIR}/onnx/x",
                                                                              "b": "build_digest"}


def test_the_report_says_what_was_reused(tmp_path):
    from parity import report, runlog
    from support import REGISTRY
    run, step = runlog.start(tmp_path, "check", ["check"], [tmp_path / "results.json"], fresh=True)
    runlog.finish(tmp_path, step, 0)
    tv = "torchvision/mobilenet_v2.IMAGENET1K_V1"
    results = [{"card": tv, "check": "onnx-opset17", "status": "pass", "mode": "seeded", "reason": "ok", "metrics": {},
                "reused": ["native: hit", "export: hit"]}]
    cache = {"enabled": True, "kinds": {"native": {"hit": 1, "miss": 0, "rebuilt": 0, "off": 0},
                                        "export": {"hit": 1, "miss": 1, "rebuilt": 0, "off": 0}}, "saved_seconds": 42.0}
    (tmp_path / "results.json").write_text(json.dumps({"run": run.id, "partial": False, "results": results,
                                                       "cache": cache}))
    out = report.write(tmp_path, REGISTRY)
    line = "2 artifacts reused, 1 made, 0 damaged entries rebuilt (reused/used per kind: export 1/2, native 1/1)"
    assert line in out["md"].read_text()
    assert line in out["html"].read_text().split("id='cache'", 1)[1]


# ------------------------------------------------------------------------------------------------ canonical weights
def _reordered_metadata(src: Path, dst: Path) -> Path:
    """The same safetensors content with its metadata written in reverse order (what safetensors' writer does on its
    own from one save to the next: it keeps the metadata in a hash map)."""
    import struct
    raw = src.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    header["__metadata__"] = dict(reversed(list(header["__metadata__"].items())))
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (n - len(text))           # the same header length: the tensors' offsets stay valid
    dst.write_bytes(raw[:8] + text + raw[8 + n:])
    return dst


def test_canonical_weights_are_keyed_by_content_not_by_the_files_bytes(tmp_path):
    """Real weights are the shared TFLite file converted to a canonical safetensors file in each run; safetensors
    orders its metadata differently from one save to the next, so keying by the file's sha256 made every real-weights
    artifact a miss in the next run (a full warm `tox -e parity` rebuilt 75 of them). The key is the content: the same
    tensors and metadata in another byte order are a hit; a changed value or a changed metadata entry is not."""
    import numpy as np
    from safetensors.numpy import save_file

    from parity.harness import Harness
    from support import REGISTRY
    meta = {"format": "mbv2-canonical", "version": "1", "bn_eps": "0.0", "padding": "same", "source": "t",
            "width": "1.0"}
    rng = np.random.default_rng(0)
    tensors = {"a.weight": rng.normal(size=(8, 3, 3, 3)).astype(np.float32), "b.bias": np.ones(8, np.float32)}
    one = tmp_path / "one.safetensors"
    save_file(tensors, str(one), metadata=meta)
    two = _reordered_metadata(one, tmp_path / "two.safetensors")
    assert one.read_bytes() != two.read_bytes()
    changed = tmp_path / "changed.safetensors"
    save_file({**tensors, "b.bias": np.full(8, 1.0 + 2 ** -20, np.float32)}, str(changed), metadata=meta)
    padded = tmp_path / "padded.safetensors"
    save_file(tensors, str(padded), metadata={**meta, "padding": "symmetric"})
    # the same bytes under another name, in another shape, in another dtype; two tensors' values swapped
    others = {"renamed": {"a.weight": tensors["a.weight"], "c.bias": tensors["b.bias"]},
              "reshaped": {**tensors, "a.weight": tensors["a.weight"].reshape(8, 27, 1, 1)},
              "retyped": {**tensors, "b.bias": tensors["b.bias"].view(np.int32)}}
    swapped = tensors["a.weight"].copy()           # 8 values moved from one tensor to the other and back
    swapped.reshape(-1)[:8] = tensors["b.bias"]
    others["swapped"] = {"a.weight": swapped, "b.bias": tensors["a.weight"].reshape(-1)[:8].copy()}
    paths = [one, two, changed, padded]
    for name, t in others.items():
        paths.append(tmp_path / f"{name}.safetensors")
        save_file(t, str(paths[-1]), metadata=meta)
    card = REGISTRY.get("timm/mobilenetv2_100.ra_in1k")
    with Harness(REGISTRY, workdir=tmp_path / "wd") as h:
        key = {p.name: json.dumps(h.weights_key(card, f"canonical:{p}"), sort_keys=True) for p in paths}
        assert not h.pool.workers, "no worker is needed to key weights"
    assert key["one.safetensors"] == key["two.safetensors"], key
    assert len(set(key.values())) == len(paths) - 1, key     # every other change is another key


@pytest.mark.realdata
def test_the_real_weights_converted_twice_have_one_key(tmp_path):
    """The shared TFLite file converted twice (what two runs do) keys its weights the same."""
    from parity.harness import Harness
    from parity.paths import realdata_dir
    from parity.weights.modes import REAL_TFLITE
    from parity.weights.transplant import to_canonical
    from support import REGISTRY
    real = realdata_dir()
    if real is None or not real.joinpath(*REAL_TFLITE).is_file():
        pytest.skip("no ../shared/realdata")
    src = real.joinpath(*REAL_TFLITE)
    card = REGISTRY.get("torchvision/mobilenet_v2.IMAGENET1K_V1")
    with Harness(REGISTRY, workdir=tmp_path / "wd") as h:
        paths = [to_canonical(h, src, out=tmp_path / f"run{i}.safetensors") for i in range(3)]
        keys = {json.dumps(h.weights_key(card, f"canonical:{p}"), sort_keys=True) for p in paths}
        assert not h.pool.workers
    assert len(keys) == 1, keys
