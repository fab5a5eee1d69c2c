"""The comparator's rules at their exact boundaries, with values computed by hand (parity.compare): top-k order,
the non-triviality rules (shape, finiteness, spread, distinct top-5, input dependence), every metric of
compare_logits, its failure messages, the summary line and the serialized form."""
import math
import statistics

import numpy as np
import pytest

from parity.compare import (
    METRICS,
    MIN_LOGIT_SPREAD,
    MIN_TOP5_GAP,
    ONNX_FP32,
    Comparison,
    Tolerance,
    compare_logits,
    nontrivial_failures,
    topk,
)

pytestmark = pytest.mark.judging


def rows(*tops, classes=1000, rest=-1.0):
    """One probe per argument: {column: value} over `classes` logits that are `rest` everywhere else."""
    a = np.full((len(tops), classes), rest, np.float64)
    for i, top in enumerate(tops):
        for col, v in top.items():
            a[i, col] = v
    return a


def good(i, first=10.0):
    """A clearly non-trivial probe: five distinct leading logits starting at column 10*i."""
    return {10 * i: first, 10 * i + 1: 9.0, 10 * i + 2: 8.0, 10 * i + 3: 7.0, 10 * i + 4: 6.0}


# --- topk -------------------------------------------------------------------------------------------------------

def test_topk_breaks_ties_by_class_index():
    """Equal logits rank by class index (a stable sort), so the reference and the compared output rank ties alike."""
    a = np.zeros((2, 1000))
    a[:, ::7] = 1.0                                  # 143 tied maxima per row
    assert topk(a, 5).tolist() == [[0, 7, 14, 21, 28]] * 2
    assert topk(np.zeros((1, 1000)), 3).tolist() == [[0, 1, 2]]


def test_topk_default_is_five_and_works_on_one_probe():
    a = np.array([[0.0, 5.0, 1.0, 4.0, 2.0, 3.0, -1.0]])
    assert topk(a).tolist() == [[1, 3, 5, 4, 2]]      # default k = 5
    assert topk(a[0], 2).tolist() == [1, 3]            # a single 1-D probe: the last axis is the class axis
    assert topk(a, 1).tolist() == [[1]]


# --- nontrivial_failures ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(3, 4), (1000,), (2, 3, 1000)])
def test_nontrivial_refuses_anything_but_batch_by_classes(shape):
    a = np.arange(math.prod(shape), dtype=np.float64).reshape(shape)
    assert nontrivial_failures(a) == [f"logits must be (batch, classes>=5), got {shape}"]


def test_five_classes_are_enough():
    a = np.array([[10.0, 8, 6, 4, 2], [2, 10, 8, 6, 4], [4, 2, 10, 8, 6]])
    assert nontrivial_failures(a) == []


def test_non_finite_logits_are_named():
    a = rows(good(0), good(1), good(2))
    a[1, 500] = np.inf
    assert nontrivial_failures(a) == ["logits contain NaN/inf"]
    a[1, 500] = np.nan
    assert nontrivial_failures(a) == ["logits contain NaN/inf"]


def test_spread_is_judged_per_probe_at_its_exact_bound():
    """Probe 1 spreads exactly MIN_LOGIT_SPREAD (passes) or 3.5 (fails); probe 0 reaches higher and probe 2 lower,
    so a spread over the whole batch instead of per probe would hide probe 1."""
    assert MIN_LOGIT_SPREAD == 4.0
    low = {0: -5.0}
    ok = rows(good(1, first=20.0), {21: 4.0, 22: 3.0, 23: 2.5, 24: 2.0, 25: 1.5}, {**good(3), **low}, rest=0.0)
    assert nontrivial_failures(ok) == []
    bad = rows(good(1, first=20.0), {21: 3.5, 22: 3.0, 23: 2.5, 24: 2.0, 25: 1.5}, {**good(3), **low}, rest=0.0)
    assert nontrivial_failures(bad) == [
        "logit spread 3.5 < 4.0 on probe 1 (degenerate weights, or probabilities instead of logits?)"]


def test_top5_gap_exact_bound_and_probe():
    """A gap of exactly MIN_TOP5_GAP between the 4th and 5th logit fails (<=); twice that passes. The failing probe is
    named (probe 2 here, not the first)."""
    assert MIN_TOP5_GAP == 1e-6
    tie = {20: 10.0, 21: 9.0, 22: 8.0, 23: 1e-6, 24: 0.0}
    assert nontrivial_failures(rows(good(0), good(1), tie)) == [
        "top-5 not distinct: smallest gap 1.00e-06 <= 1.0e-06 on probe 2"]
    tie[23] = 2e-6
    assert nontrivial_failures(rows(good(0), good(1), tie)) == []


def test_ties_outside_the_top5_are_not_degenerate():
    """Only the five leading logits must be distinct: the 995 equal logits below them (ReLU-like zeros), or a 6th
    logit equal to the 5th, leave five distinct top values."""
    assert nontrivial_failures(rows(good(0), good(1), good(2), rest=0.0)) == []
    sixth = rows(good(0), good(1), {**good(2), 25: 6.0})
    assert nontrivial_failures(sixth) == []


def test_same_top1_needs_three_probes():
    same = {0: 10.0, 1: 9.0, 2: 8.0, 3: 7.0, 4: 6.0}
    assert nontrivial_failures(rows(same, same)) == []                 # two probes may share a class
    assert nontrivial_failures(rows(same, same, same)) == [
        "every probe has the same top-1 class (input-independent output)"]


# --- compare_logits ---------------------------------------------------------------------------------------------

def test_shape_mismatch_is_one_failure_with_nan_metrics():
    c = compare_logits(np.zeros((3, 10)), np.zeros((2, 10)), ONNX_FP32, label="x")
    assert (c.label, c.tolerance, c.failures, c.passed) == ("x", "onnx-fp32", ["shape (2, 10) != reference (3, 10)"],
                                                            False)
    assert list(c.metrics) == list(METRICS) and all(math.isnan(v) for v in c.metrics.values())


def test_non_finite_compared_logits_are_counted():
    a = rows(good(0), good(1), good(2))
    b = a.copy()
    b[0, 3], b[1, 7], b[2, 9] = np.nan, np.inf, -np.inf
    c = compare_logits(a, b, ONNX_FP32, label="ort")
    assert (c.label, c.tolerance, c.failures) == ("ort", "onnx-fp32",
                                                  ["3 non-finite values (NaN/inf) in the compared logits"])
    assert list(c.metrics) == list(METRICS) and all(math.isnan(v) for v in c.metrics.values())


def test_every_metric_computed_by_hand():
    ref = np.array([[8.0, 4, 2, 1, 0, -1],
                    [-2, 12, 6, 3, 1, 0],
                    [0, 1, 2, 4, 16, -4]])
    test = ref.copy()
    test[1, 5] = 0.5                  # row 1: small change, same top-5 set
    test[2, 5] = 0.5                  # row 2: class 5 (-4 -> 0.5) enters the top-5 in place of class 0
    c = compare_logits(ref, test, ONNX_FP32)
    cos1 = 194 / math.sqrt(194 * 194.25)
    cos2 = 275 / math.sqrt(293 * 277.25)
    assert c.label == "" and c.tolerance == "onnx-fp32"
    assert set(c.metrics) == {"max_abs", "max_rel", "cosine_min", "top1_agree", "top5_agree", "ref_logit_std_min",
                              "ref_logit_spread_min", "n"}
    m = c.metrics
    assert m["max_abs"] == 4.5 and m["max_rel"] == 4.5 / 16
    assert m["cosine_min"] == pytest.approx(min(cos1, cos2), rel=1e-12) and cos2 < cos1
    assert m["top1_agree"] == 1.0 and m["top5_agree"] == pytest.approx(2 / 3)
    assert m["ref_logit_std_min"] == pytest.approx(min(statistics.pstdev(r) for r in ref.tolist()), rel=1e-12)
    assert m["ref_logit_std_min"] < float(ref.std()) - 0.5          # per probe, not over the batch
    assert m["ref_logit_spread_min"] == 9.0 and m["n"] == 3
    strict = Tolerance("strict", max_abs=1.0, max_rel=0.25, min_cosine=0.99, min_top1=1.0, min_top5=0.9, why="test")
    assert compare_logits(ref, test, strict).failures == [
        "max_abs 4.500e+00 > 1.0e+00", "max_rel 2.812e-01 > 2.5e-01", f"cosine {min(cos1, cos2):.7f} < 0.99",
        "top-5 set agreement 0.667 < 0.9"]


def test_a_zero_tolerance_accepts_bit_identical_logits():
    """Every bound is inclusive: identical integer-valued logits (norm 141, so the cosine is exactly 1.0) pass a
    tolerance of max_abs = max_rel = 0 and cosine = top-1 = top-5 = 1."""
    a = rows(*({10 * i: 140.0, 10 * i + 1: 10.0, 10 * i + 2: 9.0, 10 * i + 3: 8.0, 10 * i + 4: 6.0} for i in range(3)),
             rest=0.0)
    zero = Tolerance("zero", max_abs=0.0, max_rel=0.0, min_cosine=1.0, min_top1=1.0, min_top5=1.0, why="test")
    c = compare_logits(a, a.copy(), zero)
    assert c.metrics["cosine_min"] == 1.0 and c.failures == [] and c.passed
    b = a.copy()
    b[0, 500] = 0.5
    assert compare_logits(a, b, zero).failures[:2] == ["max_abs 5.000e-01 > 0.0e+00", "max_rel 3.571e-03 > 0.0e+00"]


def test_integer_logits_are_compared_without_wraparound():
    """int8 outputs (a quantized model's logits) are widened before any arithmetic: 100 - (-128) is a spread of 228,
    not -28, and -(-128) does not wrap back to -128 when ranking."""
    base = np.array([100, 50, 20, 10, 5, 0, -50, -128], np.int8)
    a = np.stack([np.roll(base, i) for i in range(3)])
    c = compare_logits(a, a.copy(), ONNX_FP32)
    assert c.passed, c.failures
    assert c.metrics["ref_logit_spread_min"] == 228.0 and c.metrics["top1_agree"] == 1.0


def test_max_rel_and_cosine_do_not_depend_on_the_logit_scale():
    """Relative error and cosine are scale-free: logits scaled down by 2**-12 (|logits| < 1) give the same values;
    all-zero logits give cosine 0 (not NaN) and max_rel 0."""
    ref = rows(good(0), good(1), good(2), rest=0.0)
    test = ref.copy()
    test[0, 1] += 0.25
    test[2, 500] -= 0.5
    big = compare_logits(ref, test, ONNX_FP32).metrics
    s = 2.0 ** -12
    small = compare_logits(ref * s, test * s, ONNX_FP32).metrics
    assert small["max_abs"] == big["max_abs"] * s
    assert small["max_rel"] == big["max_rel"] and small["cosine_min"] == pytest.approx(big["cosine_min"], rel=1e-14)
    z = compare_logits(np.zeros((3, 8)), np.zeros((3, 8)), ONNX_FP32)
    assert z.metrics["cosine_min"] == 0.0 and z.metrics["max_rel"] == 0.0
    assert "cosine 0.0000000 < 0.999999" in z.failures


# --- Comparison ----------------------------------------------------------------------------------------------------

def metrics(**kw):
    return {"max_abs": 1.5e-3, "max_rel": 2.5e-5, "cosine_min": 0.99999991, "top1_agree": 1.0, "top5_agree": 0.5} | kw


def test_summary_line_passed_and_failed():
    assert Comparison("torch", "onnx-fp32", metrics()).summary() == (
        "torch: max_abs=1.50e-03 max_rel=2.50e-05 cos_min=0.9999999 top1=1.000 top5=0.500")
    failed = Comparison("torch", "onnx-fp32", metrics(top1_agree=0.75), ["max_abs 1 > 0", "top-1 agreement 0.750 < 1"])
    assert failed.summary() == ("torch: max_abs=1.50e-03 max_rel=2.50e-05 cos_min=0.9999999 top1=0.750 top5=0.500"
                                " FAILED: max_abs 1 > 0; top-1 agreement 0.750 < 1")


def test_to_dict_carries_every_field_and_the_verdict():
    c = Comparison("ort", "onnx-fp32", metrics(), ["x"])
    assert c.to_dict() == {"label": "ort", "tolerance": "onnx-fp32", "metrics": metrics(), "failures": ["x"],
                           "passed": False}
    assert Comparison("ort", "onnx-fp32", metrics()).to_dict()["passed"] is True
