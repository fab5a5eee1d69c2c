"""`eval --jobs`: the cards of different stacks are evaluated at once (the same scheduler as `check --jobs`), the
JSON and the table in card order with the same results as `--jobs 1`; the decode cache shared by evaluations of the
same geometry is built by one of them at a time (shown to fail without the lock)."""
import contextlib
import json
import shutil
import threading
import time

import numpy as np
import pytest
from PIL import Image

from parity.cli import eval as E
from parity.cli import main
from parity.evaluation import evaluate as EV
from parity.evaluation.dataset import open_dataset
from parity.probes import synthetic_image
from support import REGISTRY

# keras (tf stack) first: its worker is the slowest, so with --jobs 2 the torch card finishes first
CARDS = ["keras/mobilenet_v2.alpha_0.35_96", "timm/mobilenetv2_050.lamb_in1k"]
RUNTIMES = ("--runtime", "native")
VOLATILE = ("seconds", "wall_seconds", "images_per_s", "cache_hit", "cache_dir")   # timings; the cache dir


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("jobs-data")
    (d / "val").mkdir()
    names = [f"ILSVRC2012_val_{i:08d}.JPEG" for i in range(12)]
    for i, n in enumerate(names):
        Image.fromarray(synthetic_image(i, 120, 150)).save(d / "val" / n)
    (d / "val_label.txt").write_text("".join(f"{n} {i % 3}\n" for i, n in enumerate(names)))
    return d


def run_eval(harness, monkeypatch, capsys, data, wd, jobs):
    """`eval --jobs N` through the CLI on the session's workers (its cache of decoded images removed afterwards, so
    that both runs build it); returns the JSON, the output, and the most evaluations seen running at once."""
    live, seen = [0], [0]
    lock = threading.Lock()
    real = E.evaluate

    def tracked(*a, **k):
        with lock:
            live[0] += 1
            seen[0] = max(seen[0], live[0])
        try:
            return real(*a, **k)
        finally:
            with lock:
                live[0] -= 1

    monkeypatch.setattr(E, "evaluate", tracked)
    monkeypatch.setattr(E, "Harness", lambda *a, **k: contextlib.nullcontext(harness))
    cache = harness.workdir / "eval-cache"
    before = set(cache.iterdir()) if cache.is_dir() else set()
    rc = main(["eval", "--data", str(data), "--weights", "seeded", "--workdir", str(wd), "--jobs", str(jobs),
               "--workers", "1", *RUNTIMES, *CARDS])
    for p in set(cache.iterdir()) - before:
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    out = capsys.readouterr().out
    assert rc == 0, out
    return json.loads((wd / "eval.json").read_text()), out, seen[0]


def stable(doc):
    doc = dict(doc, run=None)
    doc["results"] = [{k: v for k, v in r.items() if k not in VOLATILE and k != "runtime"}
                      | {"runtime": {k: v for k, v in r.get("runtime", {}).items() if "time" not in k}}
                      for r in doc["results"]]
    return doc


def test_eval_jobs_runs_stacks_at_once_with_the_results_and_order_of_a_sequential_run(harness, monkeypatch, capsys,
                                                                                     data, tmp_path):
    seq, out_seq, most_seq = run_eval(harness, monkeypatch, capsys, data, tmp_path / "seq", 1)
    con, out_con, most_con = run_eval(harness, monkeypatch, capsys, data, tmp_path / "con", 2)
    assert most_seq == 1 and most_con == 2                     # really concurrent, bounded by --jobs
    assert [r["card"] for r in con["results"]] == CARDS
    assert stable(con) == stable(seq)                          # same results (per-image records included), same order
    assert all(r["images"] for r in con["results"])
    assert table_cards(out_con) == table_cards(out_seq) == CARDS, out_con


def table_cards(out):
    """The card column of the evaluation table."""
    return [ln.split("│")[1].strip() for ln in out.splitlines() if ln.count("│") > 5 and "/" in ln]


def test_eval_jobs_argument_is_refused_before_any_work(tmp_path, capsys, data):
    assert main(["eval", "--data", str(data), "--jobs", "0", "--workdir", str(tmp_path), CARDS[1]]) == 2
    assert "--jobs 0" in capsys.readouterr().err
    assert not (tmp_path / "eval.json").exists()


def build_twice(tmp_path, data, claimed):
    """Two threads evaluating the same geometry at once: what each decoded, whether each found the cache complete,
    and what failed (a batch file read while the other thread rewrites it)."""
    ds = open_dataset(data)
    spec = REGISTRY.get(CARDS[1]).preprocess
    built, hits, errors = [], [], []

    def one():
        cache = EV.TensorCache(tmp_path / "cache", spec, ds, 4)
        with claimed(cache) as hit:
            hits.append(hit)
            time.sleep(0.05)    # the other thread arrives while this one holds the cache
            try:
                xs = [x for x, _ok, _e in cache.batches(workers=1)]
            except (OSError, EOFError, ValueError) as e:
                errors.append(e)
                return
            if not hit:
                built.append(np.concatenate(xs))

    ts = [threading.Thread(target=one) for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return built, hits, errors


def test_the_decode_cache_is_built_by_one_evaluation_at_a_time(tmp_path, data):
    built, hits, errors = build_twice(tmp_path / "locked", data, lambda c: c.claimed())
    assert sorted(hits) == [False, True] and len(built) == 1 and not errors   # one built it, the other read it
    # injected fault: no lock, as before `eval --jobs`: both see an incomplete cache and decode into the same files
    @contextlib.contextmanager
    def unlocked(cache):
        yield cache.complete

    built, hits, errors = build_twice(tmp_path / "unlocked", data, unlocked)
    assert hits == [False, False]                                # the check above fails



def test_a_decode_cache_file_is_never_seen_half_written(tmp_path, data, monkeypatch):
    """Another evaluation reads a batch file as soon as it exists (a cache it finds complete, or one it decodes
    into without the lock): the file appears whole or not at all. np.savez is paused half-way through its bytes."""
    import io
    real_savez, halfway, go_on = np.savez, threading.Event(), threading.Event()

    def slow_savez(file, **arrays):
        buf = io.BytesIO()
        real_savez(buf, **arrays)
        data_ = buf.getvalue()
        with open(file, "wb") as f:
            f.write(data_[:len(data_) // 2])
            f.flush()
            halfway.set()
            go_on.wait(10)
            f.write(data_[len(data_) // 2:])

    monkeypatch.setattr(EV.np, "savez", slow_savez)
    ds = open_dataset(data)
    dest = tmp_path / "batch-000000.npz"
    job = ([str(p) for p in ds.paths[:2]], REGISTRY.get(CARDS[1]).preprocess.to_dict(), str(dest))
    t = threading.Thread(target=EV._prep_batch, args=(job,))
    t.start()
    try:
        assert halfway.wait(10)
        if dest.exists():                   # what a reader finds while the writer is half-way
            with np.load(dest) as z:
                z["x"]
    finally:
        go_on.set()
        t.join()
    with np.load(dest) as z:
        assert z["x"].shape[0] == 2 and z["ok"].all()
    assert [p.name for p in tmp_path.iterdir()] == [dest.name]     # no temporary file left behind


def test_an_atomic_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path):
    from parity.fileio import atomic
    f = tmp_path / "run.json"
    f.write_text("old")
    with pytest.raises(RuntimeError), atomic(f) as tmp:
        tmp.write_text("half")
        raise RuntimeError("the writer died")
    assert f.read_text() == "old" and list(tmp_path.iterdir()) == [f]
