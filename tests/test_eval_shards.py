"""Sharded evaluation: the partition, `eval merge` (identical to an unsharded run, and every refusal), `eval diff`
(changed images, the paired interval, McNemar), on synthetic images and on the real images of ../shared/realdata."""
import argparse
import json
import random

import numpy as np
import pytest
from PIL import Image

from parity.cli import main
from parity.cli.eval import evaluate_card
from parity.evaluation import shards
from parity.evaluation.dataset import Dataset, open_dataset
from parity.evaluation.verdicts import mcnemar, paired_difference
from parity.paths import realdata_dir
from parity.probes import synthetic_image
from support import REGISTRY

REAL = realdata_dir()
CARD = REGISTRY.get("timm/mobilenetv2_050.lamb_in1k")


def run_eval(h, card, weights, full, shard_kn, out, runtimes=("native", "ort-opt-on")):
    """What `eval [--shard K/N] --json out` writes, in-process on the session's workers (no new worker per run)."""
    args = argparse.Namespace(weights=weights, runtimes=list(runtimes), batch=8, workers=1,
                              runtime_options={n: {} for n in runtimes}, shard_kn=shard_kn)
    sub = shards.shard(full, *shard_kn) if shard_kn else full
    doc = shards.document(full, sub, shard_kn, "test")
    assert evaluate_card(h, args, card, sub, [], doc) == []
    out.write_text(json.dumps(doc))
    return doc


def cli(capsys, *argv):
    rc = main(list(argv))
    got = capsys.readouterr()
    return rc, got.out, got.err


@pytest.fixture(scope="module")
def synthetic(harness, tmp_path_factory):
    """24 synthetic images over 4 classes: an unsharded run and its 3 shards (seeded weights)."""
    d = tmp_path_factory.mktemp("shards")
    (d / "data" / "val").mkdir(parents=True)
    names = [f"ILSVRC2012_val_{i:08d}.JPEG" for i in range(24)]
    for i, n in enumerate(names):
        Image.fromarray(synthetic_image(i, 240, 300)).save(d / "data" / "val" / n)
    (d / "data" / "val_label.txt").write_text("".join(f"{n} {i % 4}\n" for i, n in enumerate(names)))
    ds = open_dataset(d / "data")
    run_eval(harness, CARD, "seeded", ds, None, d / "full.json")
    for k in (1, 2, 3):
        run_eval(harness, CARD, "seeded", ds, (k, 3), d / f"s{k}.json")
    return d


def edit(src, dest, fn):
    doc = json.loads(src.read_text())
    fn(doc)
    dest.write_text(json.dumps(doc))
    return str(dest)


@pytest.mark.judging
def test_partition_is_stratified_disjoint_complete_and_independent_of_file_order(tmp_path):
    labels = np.repeat(np.arange(50), 7)
    paths = [tmp_path / f"img{i:04d}.JPEG" for i in range(len(labels))]
    ds = Dataset(tmp_path, "synthetic", tuple(paths), labels)
    order = list(range(len(paths)))
    random.Random(1).shuffle(order)
    shuffled = Dataset(tmp_path, "synthetic", tuple(paths[i] for i in order), labels[order])
    parts = [shards.shard(ds, k, 4) for k in (1, 2, 3, 4)]
    assert [p.paths for p in parts] == [shards.shard(shuffled, k, 4).paths for k in (1, 2, 3, 4)]   # file order
    every = [p for part in parts for p in part.paths]
    assert sorted(every) == sorted(paths) and len(set(every)) == len(paths)     # disjoint and complete
    per_class = np.stack([np.bincount(p.labels, minlength=50) for p in parts])  # 7 per class over 4 shards: 1 or 2
    assert per_class.min() == 1 and per_class.max() == 2
    assert max(len(p) for p in parts) - min(len(p) for p in parts) <= 3          # the class offsets balance sizes
    assert sorted(shards.image_ids(parts[0])) == shards.image_ids(parts[0])      # ordered by name
    for bad in ("0/3", "4/3", "x", "1/0", "2"):
        with pytest.raises(shards.UsageError):
            shards.parse_shard(bad)
    dup = Dataset(tmp_path, "dup", (paths[0], paths[0]), np.array([1, 1]))
    with pytest.raises(shards.UsageError, match="listed more than once"):
        shards.shard(dup, 1, 2)


def test_merge_equals_the_unsharded_run(synthetic, capsys):
    s = [str(synthetic / f"s{k}.json") for k in (3, 1, 2)]            # any order
    rc, out, err = cli(capsys, "eval", "merge", *s, "--workdir", str(synthetic / "w"), "--json",
                       str(synthetic / "merged.json"))
    assert rc == 0, out + err
    full, merged = (json.loads((synthetic / f).read_text()) for f in ("full.json", "merged.json"))
    assert merged["shard"] is None and [m["k"] for m in merged["merged_from"]] == [1, 2, 3]
    assert merged["dataset"]["fingerprint"] == full["dataset"]["fingerprint"]
    for a, b in zip(full["results"], merged["results"]):
        assert (a["card"], a["backend"]) == (b["card"], b["backend"])
        same_records(a["images"], b["images"])
        assert (a["n"], a["top1"], a["top5"], a["top1_ci"]) == (b["n"], b["top1"], b["top5"], b["top1_ci"])
        assert a["identity"] == b["identity"]


@pytest.mark.judging
@pytest.mark.parametrize("case,match", [
    ("missing", "missing shard 3/3 \\(given: 1, 2\\)"),
    ("twice", "shard 2/3 given twice"),
    ("overlap", "shards overlap: image val/"),
    ("weights", "not a shard of the same evaluation .* weights_sha256"),
    ("count", "not a shard of the same evaluation .*shards: 3 vs 4"),
    ("suite", "not a shard of the same evaluation .*suite"),
    ("unsharded", "not a shard \\(written without --shard\\)"),
    ("version", "eval JSON version 1, this suite reads version 2"),
    ("edited", "covers other images than its shard"),
    ("union", "not the dataset they name"),
])
def test_merge_refuses(synthetic, capsys, tmp_path, case, match):
    s1, s2, s3 = (synthetic / f"s{k}.json" for k in (1, 2, 3))

    def steal(doc):     # an image of shard 1 added to shard 3, its file made self-consistent
        one = json.loads(s1.read_text())["results"]
        for r, r1 in zip(doc["results"], one):
            for f in shards.PER_IMAGE:
                r["images"][f].append(r1["images"][f][0])
        ids, labels = shards.covered(doc["results"][0]["images"])
        doc["shard"]["fingerprint"] = shards.fingerprint(ids, labels)

    def union(doc):
        doc["dataset"]["fingerprint"] = "0" * 16

    files = {
        "missing": [s1, s2],
        "twice": [s1, s2, s2, s3],
        "overlap": [s1, s2, edit(s3, tmp_path / "o.json", steal)],
        "weights": [s1, edit(s2, tmp_path / "w.json", lambda d: d["results"][1]["identity"].update(weights_sha256="ab")),
                    s3],
        "count": [s1, edit(s2, tmp_path / "c.json", lambda d: d["shard"].update(n=4)), s3],
        "suite": [s1, s2, edit(s3, tmp_path / "v.json", lambda d: d.update(suite="0.0.1"))],
        "unsharded": [s1, synthetic / "full.json"],
        "version": [s1, s2, edit(s3, tmp_path / "x.json", lambda d: d.update(version=1))],
        "edited": [s1, s2, edit(s3, tmp_path / "e.json", lambda d: d["results"][0]["images"]["id"].pop())],
        "union": [edit(s, tmp_path / f"u{i}.json", union) for i, s in enumerate((s1, s2, s3))],
    }[case]
    rc, out, err = cli(capsys, "eval", "merge", *map(str, files), "--workdir", str(tmp_path / "w"))
    assert rc == 2 and "Traceback" not in err, out + err
    line = err.strip()
    assert line.count("\n") == 0 and __import__("re").search(match, line), line
    assert not (tmp_path / "w" / "eval-merged.json").exists()


@pytest.mark.judging
def test_diff_counts_changed_images_and_the_paired_change(synthetic, capsys, tmp_path):
    a = synthetic / "full.json"
    flipped = []

    def change(doc):    # B gets 3 images right that A has wrong, on the ort runtime
        im = doc["results"][1]["images"]
        for j in (0, 5, 9):
            top5 = im["top5"][j]
            top5[0] = im["label"][j] if top5[0] != im["label"][j] else (top5[0] + 1) % 1000
            flipped.append(im["id"][j])
    b = edit(a, tmp_path / "b.json", change)
    rc, out, err = cli(capsys, "eval", "diff", str(a), b, "--runtime", "ort-opt-on", "--workdir", str(tmp_path),
                       "--json", str(tmp_path / "d.json"))
    assert rc == 0, out + err
    d = json.loads((tmp_path / "d.json").read_text())["pairs"]
    assert len(d) == 1 and d[0]["top1_changed"] == 3 and sorted(r["id"] for r in d[0]["changed"]) == sorted(flipped)
    A, B = (json.loads(p.read_text())["results"][1]["images"] for p in (a, tmp_path / "b.json"))
    ok_a = np.array([t[0] == y for t, y in zip(A["top5"], A["label"])])
    ok_b = np.array([t[0] == y for t, y in zip(B["top5"], B["label"])])
    delta, lo, hi = paired_difference(ok_b, ok_a)
    assert d[0]["top1_change"] == pytest.approx(delta) and d[0]["top1_change_ci"] == pytest.approx([lo, hi])
    assert d[0]["top1_change"] == pytest.approx((ok_b.sum() - ok_a.sum()) / len(ok_a)) and d[0]["top1_change"] > 0
    assert d[0]["mcnemar_p"] == pytest.approx(mcnemar(ok_a, ok_b)) and d[0]["fixed"] == int((ok_b & ~ok_a).sum())
    assert "top-1 changed on 3 images" in out and flipped[0] in out
    # the same run against itself (merged vs unsharded): nothing changed
    rc, out, err = cli(capsys, "eval", "diff", str(a), str(a), "--workdir", str(tmp_path), "--json",
                       str(tmp_path / "same.json"))
    same = json.loads((tmp_path / "same.json").read_text())["pairs"]
    assert rc == 0 and len(same) == 2 and all(p["top1_changed"] == 0 and p["logits_changed"] == 0 for p in same)


@pytest.mark.judging
def test_diff_refuses_other_images_and_other_labels(synthetic, capsys, tmp_path):
    a = synthetic / "full.json"
    rc, _, err = cli(capsys, "eval", "diff", str(a), str(synthetic / "s1.json"), "--workdir", str(tmp_path))
    assert rc == 2 and "not the same images" in err and err.strip().count("\n") == 0, err
    b = edit(a, tmp_path / "b.json", lambda d: [r["images"]["label"].__setitem__(0, 7) for r in d["results"]])
    rc, _, err = cli(capsys, "eval", "diff", str(a), b, "--workdir", str(tmp_path))
    assert rc == 2 and "label image" in err, err
    rc, _, err = cli(capsys, "eval", "diff", str(a), str(a), "--runtime", "nope", "--workdir", str(tmp_path))
    assert rc == 2 and "no result to compare" in err, err
    (tmp_path / "junk.json").write_text('{"results": []}')
    rc, _, err = cli(capsys, "eval", "diff", str(a), str(tmp_path / "junk.json"), "--workdir", str(tmp_path))
    assert rc == 2 and "not an eval JSON" in err, err


def test_eval_shard_argument_is_refused_before_any_work(tmp_path, capsys):
    rc, _, err = cli(capsys, "eval", CARD.id, "--data", str(tmp_path), "--shard", "4/3", "--workdir",
                     str(tmp_path / "w"))
    assert rc == 2 and "--shard 4/3" in err and not (tmp_path / "w" / "workers").exists(), err


def same_records(a, b):
    """Per image the same name, label and top-5 classes, and the same scores to float32 noise. (The logits of one
    image can differ in the last bits with the other images of its batch: the digests are compared by `eval diff`,
    which counts them.)"""
    for f in ("id", "label", "top5", "skipped_id", "skipped_label"):
        assert a[f] == b[f], f
    np.testing.assert_allclose(np.asarray(a["score"]), np.asarray(b["score"]), rtol=1e-4, atol=1e-4)


@pytest.mark.slow   # CI time (20 s): merged shards equal the unsharded run (test_merge_equals_the_unsharded_run),
# eval diff (test_diff_counts_..., test_diff_refuses_...), a missing shard (test_merge_refuses[missing-...]), a .tflite
# as canonical: weights (test_deploy.py::test_a_given_tflite_file_is_judged_against_its_own_weights), the real weights
# through evaluate (test_evaluate.py::test_real_weights_on_real_images_every_framework_and_onnx_agree[60])
@pytest.mark.realdata
@pytest.mark.skipif(REAL is None, reason="../shared/realdata is absent")
def test_real_images_shards_merge_to_the_unsharded_run_and_diff_is_empty(harness, tmp_path, capsys):
    """90 stratified real images, the real TFLite weights (torchvision architecture, TF padding): 3 shards merged
    give the unsharded run's per-image top-5 and top-1/top-5 (a non-trivial top-1), and diff finds no change."""
    ds = open_dataset(REAL / "images" / "imagenet_sample_1000" / "labels.txt").subset(90)
    card = REGISTRY.get("torchvision/mobilenet_v2.IMAGENET1K_V1")
    weights = f"canonical:{REAL / 'tflite' / 'tf2_mobilenet_v2_1.0_224_ptq.tflite'}"
    full = run_eval(harness, card, weights, ds, None, tmp_path / "full.json")
    for k in (1, 2, 3):
        run_eval(harness, card, weights, ds, (k, 3), tmp_path / f"s{k}.json")
    rc, out, err = cli(capsys, "eval", "merge", *(str(tmp_path / f"s{k}.json") for k in (1, 2, 3)), "--workdir",
                       str(tmp_path / "w"), "--json", str(tmp_path / "merged.json"))
    assert rc == 0, out + err
    merged = json.loads((tmp_path / "merged.json").read_text())
    for a, b in zip(full["results"], merged["results"]):
        same_records(a["images"], b["images"])
        assert (a["n"], a["top1"], a["top5"]) == (b["n"], b["top1"], b["top5"]) and 0.5 < a["top1"] < a["top5"]
        assert a["identity"]["weights"] == "canonical" and len(a["identity"]["weights_sha256"]) == 64
    rc, out, err = cli(capsys, "eval", "diff", str(tmp_path / "full.json"), str(tmp_path / "merged.json"),
                       "--workdir", str(tmp_path), "--json", str(tmp_path / "d.json"))
    pairs = json.loads((tmp_path / "d.json").read_text())["pairs"]
    assert rc == 0 and len(pairs) == 2 and all(p["top1_changed"] == 0 and p["images"] == 90 for p in pairs), out
    rc, _, err = cli(capsys, "eval", "merge", str(tmp_path / "s1.json"), str(tmp_path / "s3.json"), "--workdir",
                     str(tmp_path / "w"))
    assert rc == 2 and "missing shard 2/3" in err


def test_watch_issue_points_to_the_diff_when_a_dataset_is_configured(monkeypatch):
    from parity.drift.watch import Diff, diff_markdown
    d = Diff(CARD.id, "published", "top-1 cell changed", {"old": {"top1": 1}, "new": {"top1": 2}})
    monkeypatch.delenv("MBV2_PARITY_IMAGENET", raising=False)
    assert "eval diff" not in diff_markdown(d) and "configure `MBV2_PARITY_IMAGENET`" in diff_markdown(d)
    monkeypatch.setenv("MBV2_PARITY_IMAGENET", "/data/imagenet")
    monkeypatch.setenv("MBV2_PARITY_GITHUB_REPO", "me/mbv2")
    text = diff_markdown(d)
    assert f"mbv2-parity eval {CARD.id} --data" in text and "mbv2-parity eval diff before.json after.json" in text
    assert "https://github.com/me/mbv2/actions/workflows/full-val.yml" in text


@pytest.fixture
def twenty(tmp_path):
    """20 images over 5 classes in one folder, and list files naming parts of them (same folder)."""
    d = tmp_path / "imgs"
    d.mkdir()
    names = [f"img{i:02d}.JPEG" for i in range(20)]
    for i, n in enumerate(names):
        Image.fromarray(synthetic_image(i, 40, 50)).save(d / n)

    def listing(name, idx):
        (d / name).write_text("".join(f"{names[i]} {i % 5}\n" for i in idx))
        return str(d / name)
    return listing


def test_an_empty_shard_is_refused_before_any_work(tmp_path, twenty, capsys):
    listing = twenty
    data = listing("all.txt", range(20))
    k = next(k for k in range(1, 101) if not len(shards.shard(open_dataset(data), k, 100)))   # 80 of the 100 are empty
    rc = main(["eval", CARD.id, "--data", data, "--weights", "seeded", "--shard", f"{k}/100", "--workdir",
               str(tmp_path / "w")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and f"--shard {k}/100" in err and "no images" in err and "20 images" in err, (rc, err)
    assert err.count("\n") == 0          # one line; "before any work": no worker started (below), not a timing
    assert not list((tmp_path / "w").glob("workers/*/worker-*.log"))      # no worker was started


def test_the_calibration_note_compares_image_files_not_folders(tmp_path, twenty, capsys):
    from parity.cli import eval as E
    from parity.cli import namespace_for
    from parity.errors import UsageError
    listing = twenty
    data, disjoint, overlap = listing("a.txt", range(10)), listing("b.txt", range(10, 20)), listing("c.txt", range(5, 15))

    def note(calib):
        args = namespace_for(["eval", CARD.id, "--data", data, "--runtime", "ort-int8", "--calib", calib,
                              "--calib-images", "10", "--workdir", str(tmp_path / "w")])
        E.prepare(args)
        return [ln for ln in capsys.readouterr().out.splitlines() if "calibrated on" in ln]

    assert note(disjoint) == []                                # one folder, other images: held out
    got = note(overlap)
    assert len(got) == 1 and "calibrated on 5 of the 10 evaluated images" in got[0], got
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match=r"--calib .*not a known ImageNet layout"):   # one line, before work
        note(str(tmp_path / "empty"))


def test_diff_of_a_runtime_neither_file_has_names_the_runtimes_they_have():
    """`eval diff A B --runtime X` where neither has X: not "A has none, B has none" (both have results) but the
    runtimes each does have."""
    def doc(*backends):
        return {"results": [{"card": CARD.id, "backend": b, "images": {}} for b in backends]}
    a, b = doc("native", "ort-opt-on"), doc("ort-fp16")
    with pytest.raises(shards.ShardError) as e:
        shards.pairs(a, b, ["openvino"])
    msg = e.value.one_line()
    assert "A has none" not in msg and "B has none" not in msg
    assert "A has no 'openvino' result (its runtimes: native, ort-opt-on)" in msg
    assert "B has no 'openvino' result (its runtimes: ort-fp16)" in msg
    with pytest.raises(shards.ShardError) as e:          # one side has it: only the other is named
        shards.pairs(a, doc("native"), ["ort-opt-on"])
    assert "B has no 'ort-opt-on' result (its runtimes: native)" in e.value.one_line()
    assert "A has no" not in e.value.one_line()
    assert [(x["backend"], y["backend"]) for x, y in shards.pairs(a, doc("native"), ["ort-opt-on", "native"])] == [
        ("ort-opt-on", "native")]


def test_two_shards_in_one_workdir_without_json_keep_both_results(synthetic, capsys, tmp_path):
    """`eval --shard 1/2` then `--shard 2/2` in one work directory, no --json: each shard its own default file
    (eval-shard-K-of-N.json), both recorded in the run, and `eval merge` of the two works."""
    wd = tmp_path / "w"
    for k in (1, 2):
        rc, out, err = cli(capsys, "eval", CARD.id, "--data", str(synthetic / "data"), "--shard", f"{k}/2",
                           "--weights", "seeded", "--runtime", "ort-opt-on", "--workers", "1", "--jobs", "1",
                           "--workdir", str(wd))
        assert rc == 0, out + err
    files = sorted(p.name for p in wd.glob("eval*.json"))
    assert files == ["eval-shard-1-of-2.json", "eval-shard-2-of-2.json"], files
    assert [json.loads((wd / f).read_text())["shard"]["k"] for f in files] == [1, 2]
    steps = json.loads((wd / "run.json").read_text())["steps"]
    assert [s["outputs"] for s in steps] == [[str((wd / f).resolve())] for f in files]
    rc, out, err = cli(capsys, "eval", "merge", *(str(wd / f) for f in files), "--workdir", str(wd))
    assert rc == 0 and "merged 2 shards: 24 images" in out, out + err
