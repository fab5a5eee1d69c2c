"""The evaluation's judging (parity.evaluation.verdicts) at its exact boundaries: Wilson intervals stay inside
[0, 1], counting ranks ties by class index, the label-shift rule (image count, top-1 floor, ratio), when a result
cannot stand (with its messages), native vs fp32 runtimes, and the published-number rule (subset and full val)."""
import dataclasses

import numpy as np
import pytest

from parity.evaluation.verdicts import (
    FULL_TOLERANCE_PTS,
    LABEL_SHIFT_MIN_IMAGES,
    LABEL_SHIFT_MIN_TOP1,
    LABEL_SHIFT_RATIO,
    MAX_SKIPPED_SHARE,
    EvalResult,
    PublishedCheck,
    check_against_published,
    count_correct,
    deployed_failures,
    label_shift,
    label_shift_failure,
    native_onnx_failure,
    paired_difference,
    wilson,
)
from parity.registry import Published
from support import REGISTRY

pytestmark = pytest.mark.judging

SUBSET_RULE = "published inside the Wilson 95 % interval of {n} images"
FULL_RULE = "|measured - published| <= 0.3 pts (full val)"


def result(n=1000, skipped=0, top1=0.7, top5=0.9, top1_ci=(0.6, 0.8), top5_ci=(0.8, 0.95), **kw):
    return EvalResult("c", "onnx", "seeded", "x", n, skipped, top1, top5, top1_ci, top5_ci, 1.0, 1.0, False, **kw)


# --- wilson ------------------------------------------------------------------------------------------------------

def test_wilson_of_nothing_is_the_whole_unit_interval():
    assert wilson(0, 0) == (0.0, 1.0)


def test_wilson_never_leaves_the_unit_interval():
    """All hits or no hits: the raw Wilson bound overshoots 1 (n = 16, 40, ...) or 0 (n = 21, 37, ...) by float
    rounding; the interval is clamped into [0, 1] (and reaches 0 and 1 up to rounding)."""
    for n in range(1, 101):
        for k in (0, n):
            lo, hi = wilson(k, n)
            assert 0.0 <= lo < hi <= 1.0
        assert wilson(n, n)[1] == pytest.approx(1.0, abs=1e-15) and wilson(0, n)[0] == pytest.approx(0.0, abs=1e-15)
        if n > 1:
            lo, hi = wilson(n // 2, n)
            assert 0.0 < lo < hi < 1.0


# --- count_correct -------------------------------------------------------------------------------------------------

def test_count_correct_hits_and_tie_order():
    logits = np.zeros((3, 1000), np.float32)
    logits[0, [7, 3, 5, 1, 2]] = [5, 4, 3, 2, 1]      # top-1 7, label 7: a top-1 and a top-5 hit
    logits[1, [9, 4, 6, 8, 0]] = [5, 4, 3, 2, 1]      # label 4 is second: a top-5 hit only
    # row 2: all 1000 logits tie: ranked by class index, top-5 = 0..4, label 3 is a top-5 hit
    c1, c5, pred = count_correct(logits, np.array([7, 4, 3]))
    assert (c1, c5, pred.tolist()) == (1, 3, [7, 9, 0])
    c1, c5, pred = count_correct(logits, np.array([3, 0, 5]))   # second-ranked classes are not top-1 hits
    assert (c1, c5, pred.tolist()) == (0, 2, [7, 9, 0])


# --- label shift ---------------------------------------------------------------------------------------------------

def shifted(n_given, n_shift, d=1, n_other=0):
    """Predictions and labels over n images: n_given predictions equal the label, n_shift equal label + d,
    n_other are neither."""
    labels = np.arange(100, 100 + n_given + n_shift + n_other)
    pred = labels.copy()
    pred[n_given:n_given + n_shift] += d
    pred[n_given + n_shift:] += 500
    return pred, labels


def test_label_shift_of_no_images_is_zero():
    assert label_shift(np.array([], np.int64), np.array([], np.int64)) == {-1: 0.0, 0: 0.0, 1: 0.0}
    pred, labels = shifted(1, 2, d=1, n_other=1)
    assert label_shift(pred, labels) == {-1: 0.0, 0: 0.25, 1: 0.5}


def test_label_shift_judged_from_exactly_the_minimum_number_of_images():
    assert LABEL_SHIFT_MIN_IMAGES == 20
    pred, labels = shifted(0, 20)
    assert label_shift_failure(pred, labels).startswith("labels look off by -1:")
    assert label_shift_failure(pred[:19], labels[:19]) == ""


def test_label_shift_top1_floor_and_ratio_bounds_are_inclusive():
    assert (LABEL_SHIFT_MIN_TOP1, LABEL_SHIFT_RATIO) == (0.2, 3.0)
    pred, labels = shifted(0, 4, n_other=16)           # 20 % shifted, 0 % as given: at the floor
    assert label_shift_failure(pred, labels) != ""
    pred, labels = shifted(0, 3, n_other=17)           # 15 %: below the floor
    assert label_shift_failure(pred, labels) == ""
    pred, labels = shifted(5, 15)                      # 75 % vs 25 %: exactly 3 times
    assert label_shift_failure(pred, labels) == (
        "labels look off by -1: top-1 is 25.0 % against the labels as given but 75.0 % against labels +1 "
        "(a 1-based file or a 1001-class mapping?)")
    pred, labels = shifted(20, 20)                     # 50 % vs 50 %: above the floor but not 3 times
    assert label_shift_failure(pred, labels) == ""


def test_label_shift_message_both_directions():
    pred, labels = shifted(2, 30, d=-1, n_other=8)     # predictions are label - 1: the file counts from 1
    assert label_shift_failure(pred, labels) == (
        "labels look off by +1: top-1 is 5.0 % against the labels as given but 75.0 % against labels -1 "
        "(a 1-based file or a 1001-class mapping?)")


# --- EvalResult ------------------------------------------------------------------------------------------------------

def test_nothing_evaluated_names_the_first_unreadable_file():
    assert result(n=0, skipped=5).failures(False) == ["0 of 5 images evaluated"]
    r = result(n=0, skipped=2, skipped_files=["a.JPEG: truncated", "b.JPEG: not an image"])
    assert r.failures(True) == ["0 of 2 images evaluated (first unreadable: a.JPEG: truncated)"]


def test_unreadable_share_bound_is_exclusive_and_message_exact():
    assert MAX_SKIPPED_SHARE == 0.01
    assert result(n=99, skipped=1, skipped_files=["x"]).failures(False) == []          # exactly 1 %: allowed
    r = result(n=93, skipped=7, skipped_files=["first.JPEG: bad", "second.JPEG: bad"])
    assert r.failures(False) == ["7 of 100 images unreadable (7.0 % > 1 %; first: first.JPEG: bad)"]


def test_label_shift_is_a_failure_with_real_weights_only():
    pred, labels = shifted(2, 30, d=-1, n_other=8)
    r = result(n=40, predictions=pred.tolist(), labels=labels.tolist())
    why = label_shift_failure(pred, labels)
    assert why and r.failures(real_weights=True) == [why]
    assert r.failures(real_weights=False) == []
    r.skipped, r.skipped_files = 10, ["a"] * 10
    assert r.failures(True) == ["10 of 50 images unreadable (20.0 % > 1 %; first: a)", why]
    pred, labels = shifted(35, 5)                                  # an honest 87.5 % model
    assert result(n=40, predictions=pred.tolist(), labels=labels.tolist()).failures(True) == []


def test_to_dict_leaves_out_predictions_and_labels():
    r = result(predictions=[1, 2], labels=[1, 3], skipped_files=["a"], cache_dir="/c", runtime={"precision": "fp32"})
    d = r.to_dict()
    assert "predictions" not in d and "labels" not in d
    assert d == {"card": "c", "backend": "onnx", "mode": "seeded", "dataset": "x", "n": 1000, "skipped": 0, "top1": 0.7,
                 "top5": 0.9, "top1_ci": (0.6, 0.8), "top5_ci": (0.8, 0.95), "seconds": 1.0, "images_per_s": 1.0,
                 "cache_hit": False, "skipped_files": ["a"], "cache_dir": "/c", "runtime": {"precision": "fp32"}}
    assert r.predictions == [1, 2]                                 # the result itself keeps them


# --- native vs fp32 runtimes -----------------------------------------------------------------------------------------

def test_native_onnx_needs_a_native_result():
    assert native_onnx_failure({}) == ""
    assert native_onnx_failure({"ort-opt-on": result(top1=0.7), "ort-opt-off": result(top1=0.5)}) == ""


def test_native_onnx_judges_fp32_runtimes_only():
    fp16 = result(top1=0.60, runtime={"precision": "fp16"})
    assert native_onnx_failure({"native": result(top1=0.70), "ort-fp16": fp16}) == ""
    fp32 = result(top1=0.60, runtime={"precision": "fp32"})
    unnamed = result(top1=0.60)                                    # no precision reported: fp32
    assert native_onnx_failure({"native": result(top1=0.70), "ort-fp16": fp16, "ort": fp32}) == (
        "native vs ort top-1 differ by 10.00 pts > 0.1 (same weights, same tensors)")
    assert native_onnx_failure({"native": result(top1=0.70), "x": unnamed}).startswith("native vs x top-1 differ by")


def test_native_onnx_bound_is_inclusive():
    assert native_onnx_failure({"native": result(top1=0.700), "ort": result(top1=0.699)}) == ""
    assert native_onnx_failure({"native": result(top1=0.700), "ort": result(top1=0.6989)}) == (
        "native vs ort top-1 differ by 0.11 pts > 0.1 (same weights, same tensors)")


# --- the published-number rule ---------------------------------------------------------------------------------------

CARD = REGISTRY.get("torchvision/mobilenet_v2.IMAGENET1K_V1")


def card_with(*published):
    return dataclasses.replace(CARD, published=published)


def pub(metric, digits, unit="%", source="src"):
    return Published(metric, digits, unit, source, "citation")


def test_published_checks_are_listed_per_metric_and_source():
    card = card_with(pub("top1", "71.878", source="a"), pub("top5", "90.286", source="a"),
                     pub("top1", "0.72", unit="fraction", source="b"), pub("params", "3.5", unit="M"))
    r = result(n=500, top1=0.70, top5=0.91, top1_ci=(0.66, 0.74), top5_ci=(0.88, 0.90))
    rule = SUBSET_RULE.format(n=500)
    assert check_against_published(card, r) == [
        PublishedCheck("top1", "a", 71.878 / 100, 0.70, (0.66, 0.74), "pass", rule),
        PublishedCheck("top1", "b", 0.72, 0.70, (0.66, 0.74), "pass", rule),
        PublishedCheck("top5", "a", 90.286 / 100, 0.91, (0.88, 0.90), "fail", rule),
    ]


def test_real_fraction_unit_card_is_not_divided_by_100():
    card = REGISTRY.get("ppcls/MobileNetV2.pretrained")     # 72.150 % (seed000) and 0.722 as a fraction (seed003)
    checks = check_against_published(card, result(n=500, top1=0.72, top1_ci=(0.68, 0.76)))
    assert {c.source: (c.published, c.status) for c in checks if c.metric == "top1"} == {
        "seed000": (72.150 / 100, "pass"), "seed003": (0.722, "pass")}


def test_subset_interval_bounds_are_inclusive():
    card = card_with(pub("top1", "71.878"))
    p = 71.878 / 100
    for ci, status in (((p, 0.75), "pass"), ((0.70, p), "pass"), ((p + 1e-9, 0.75), "fail"), ((0.70, p - 1e-9), "fail")):
        (c,) = check_against_published(card, result(n=500, top1=0.72, top1_ci=ci))
        assert c.status == status, ci


def test_full_rule_applies_from_50000_images_unless_told():
    card = card_with(pub("top1", "71.878"))
    far = {"top1": 0.7150, "top1_ci": (0.711, 0.719)}                 # 0.378 pts off, published inside the interval
    assert [c.status for c in check_against_published(card, result(n=50_000, **far))] == ["fail"]
    assert [c.status for c in check_against_published(card, result(n=49_999, **far))] == ["pass"]
    (c,) = check_against_published(card, result(n=500, **far), full=True)
    assert (c.status, c.rule) == ("fail", FULL_RULE)
    (c,) = check_against_published(card, result(n=50_000, **far), full=False)
    assert (c.status, c.rule) == ("pass", SUBSET_RULE.format(n=50_000))


def test_full_rule_tolerance():
    assert FULL_TOLERANCE_PTS == 0.3
    card = card_with(pub("top1", "71.878"))
    (c,) = check_against_published(card, result(n=50_000, top1=36_088 / 50_000))      # 72.176 %: 0.298 pts
    assert c == PublishedCheck("top1", "src", 71.878 / 100, 0.72176, (0.6, 0.8), "pass", FULL_RULE)
    (c,) = check_against_published(card, result(n=50_000, top1=36_090 / 50_000))      # 72.180 %: 0.302 pts
    assert c.status == "fail"
    # exactly 0.3 pts, where float arithmetic is exact (0.1 % published, 0.4 % measured): inside the bound
    (c,) = check_against_published(card_with(pub("top1", "0.1")), result(n=50_000, top1=200 / 50_000))
    assert c.status == "pass"


def test_full_rule_exactly_at_the_bound_with_real_numbers():
    card = card_with(pub("top1", "71.878"))
    (c,) = check_against_published(card, result(n=50_000, top1=36_089 / 50_000))      # 72.178 %: exactly 0.3 pts
    assert c.status == "pass"


# --- deployed runtimes against native fp32 ---------------------------------------------------------------------------

def test_deployed_failures_judge_the_paired_drop_against_each_precision_budget():
    """Each lower-precision runtime against native fp32 on the same images: a failure exactly when the lower bound of
    the paired 95 % interval of the top-1 drop is above the precision's budget (fp16 0.5, bf16 1.0, int8 2.0 pts);
    fp32 runtimes and empty results are not judged; the message gives the drop, its interval, the budget, a suspect."""
    n = 1000
    labels = [i % 10 for i in range(n)]

    def run(wrong, precision, options=None, n_images=n, **detail):
        preds = [(y + 1) % 10 if i < wrong else y for i, y in enumerate(labels)]
        info = {"precision": precision, "options": options or {}, **({"detail": detail} if detail else {})}
        return result(n=n_images, predictions=preds, labels=labels, runtime=info)

    native = run(0, "fp32")
    res = {"native": native, "int8-bad": run(40, "int8", suspect="Conv_3"), "int8-ok": run(10, "int8"),
           "int8-edge": run(25, "int8"),   # drop 2.5 pts above the budget, its interval not: not a failure
           "fp16-file": run(20, "fp32", {"precision": "fp16"}), "bf16-ok": run(5, "bf16"), "fp32": run(300, "fp32"),
           "empty": run(300, "int8", n_images=0), "better": run(0, "int8")}
    out = deployed_failures(res)
    ok = np.ones(n, bool)

    def drop(wrong):
        bad = ok.copy()
        bad[:wrong] = False
        return paired_difference(ok, bad)

    d, lo, hi = drop(40)
    assert 100 * lo > 2.0
    first = (f"int8-bad (int8) loses {100 * d:.2f} pts of top-1 [95 % CI {100 * lo:.2f}, {100 * hi:.2f}] against "
             "native fp32 on the same images: more than the int8 budget of 2.0 pts (suspect: Conv_3)")
    d, lo, hi = drop(20)
    assert 100 * lo > 0.5                     # an fp16 file run in fp32 is judged as fp16 (its weights are)
    second = (f"fp16-file (fp16) loses {100 * d:.2f} pts of top-1 [95 % CI {100 * lo:.2f}, {100 * hi:.2f}] against "
              "native fp32 on the same images: more than the fp16 budget of 0.5 pts")
    assert out == [first, second]
    assert 100 * drop(10)[1] <= 2.0 and 100 * drop(5)[1] <= 1.0           # within budget: not failures
    assert 100 * drop(25)[1] <= 2.0 < 100 * drop(25)[0]                    # the interval judges, not the estimate
    assert deployed_failures({"int8-bad": res["int8-bad"]}) == []          # no native reference: nothing judged
    assert deployed_failures({"native": run(0, "fp32", n_images=0), "int8-bad": res["int8-bad"]}) == []


def test_eval_makes_a_deployed_drop_a_problem_of_the_card():
    """`eval`'s judging of one card (parity.cli.eval.judge, `eval merge`'s too): a deployed runtime that loses more
    than its precision's budget against native is a problem of the card (the run fails, exit 1); within it, none."""
    from parity.cli.eval import judge
    card = REGISTRY.get("keras/mobilenet_v2.alpha_1.0_224")
    labels = [i % 10 for i in range(1000)]

    def run(wrong, precision):
        preds = [(y + 1) % 10 if i < wrong else y for i, y in enumerate(labels)]
        return result(predictions=preds, labels=labels, runtime={"precision": precision, "options": {}})

    res = {"native": run(0, "fp32"), "ort-int8": run(40, "int8")}
    problems = judge(card, res, True, False, False)
    assert len(problems) == 1 and problems[0].startswith(f"{card.id}: ort-int8 (int8) loses 4.00 pts of top-1 "), problems
    assert "more than the int8 budget of 2.0 pts" in problems[0], problems
    assert judge(card, {**res, "ort-int8": run(10, "int8")}, True, False, False) == []


def test_a_published_error_rate_is_checked_as_accuracy():
    """Seed 004 publishes "Top-1 error 28.12": checked as top-1 accuracy 1 - 0.2812 (a top5_err likewise)."""
    card = card_with(pub("top1_err", "28.12", source="seed004"), pub("top5_err", "9.71", source="seed004"))
    r = result(n=500, top1=0.72, top5=0.90, top1_ci=(0.68, 0.76), top5_ci=(0.87, 0.93))
    rule = SUBSET_RULE.format(n=500)
    assert check_against_published(card, r) == [
        PublishedCheck("top1", "seed004", pytest.approx(1 - 0.2812), 0.72, (0.68, 0.76), "pass", rule),
        PublishedCheck("top5", "seed004", pytest.approx(1 - 0.0971), 0.90, (0.87, 0.93), "pass", rule)]


def test_paired_difference_honours_its_z():
    a, b = [True] * 60 + [False] * 40, [True] * 50 + [False] * 50
    d, lo, hi = paired_difference(a, b)
    d99, lo99, hi99 = paired_difference(a, b, z=2.576)
    assert d == d99 == pytest.approx(0.10) and lo99 < lo < d < hi < hi99
    assert paired_difference(b, a, z=2.576) == pytest.approx((-d99, -hi99, -lo99))   # both sides at that z


def test_top5_ties_rank_the_lower_class_first():
    """Tied logits rank by class index (a stable sort): the same top-5 on every platform."""
    logits = np.zeros((1, 1000), np.float32)
    logits[0, 500:] = 1.0                                  # 500 classes tied at the top
    assert count_correct(logits, np.array([500]))[0] == 1 and count_correct(logits, np.array([504]))[1] == 1
    assert count_correct(logits, np.array([505]))[1] == 0 and count_correct(logits, np.array([999]))[1] == 0
