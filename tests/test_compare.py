"""Comparator unit tests: each metric can fail, and degenerate logits are refused."""
import numpy as np
import pytest

from parity.compare import ONNX_FP32, compare_logits, nontrivial_failures

pytestmark = pytest.mark.judging  # pure: no workers


def logits(seed=0, n=6):
    return np.random.default_rng(seed).normal(0, 4, (n, 1000)).astype(np.float32)


def test_identical_passes():
    a = logits()
    assert compare_logits(a, a.copy(), ONNX_FP32).passed


def test_small_noise_within_tolerance_passes_large_fails():
    a = logits()
    assert compare_logits(a, a + 1e-4, ONNX_FP32).passed
    c = compare_logits(a, a + 1e-2, ONNX_FP32)
    assert not c.passed and any("max_abs" in f for f in c.failures)


def test_trivial_logits_fail_even_when_equal():
    a = np.full((4, 1000), 1e-9, np.float32) + np.random.default_rng(0).normal(0, 1e-9, (4, 1000)).astype(np.float32)
    c = compare_logits(a, a.copy(), ONNX_FP32)
    assert not c.passed and any("trivial" in f for f in c.failures)
    assert nontrivial_failures(logits()) == []


def test_same_top1_everywhere_is_trivial():
    a = logits()
    a[:, 7] = 100
    assert any("same top-1" in f for f in nontrivial_failures(a))


def test_softmax_and_shape_mismatch_fail():
    a = logits()
    e = np.exp(a - a.max(1, keepdims=True))
    assert not compare_logits(a, e / e.sum(1, keepdims=True), ONNX_FP32).passed
    assert not compare_logits(a, a[:, :10], ONNX_FP32).passed


def test_probabilities_are_trivial_but_real_looking_logits_with_std_below_one_are_not():
    """The spread rule: softmax outputs (spread < 1) fail; trained-model-like logits (std ~0.8, a few strong
    classes, spread > 10) pass."""
    a = logits()
    p = np.exp(a - a.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    assert any("spread" in f for f in nontrivial_failures(p))
    rng = np.random.default_rng(1)
    real = rng.normal(0, 0.7, (6, 1000)).astype(np.float32)
    real[np.arange(6), rng.choice(1000, 6, replace=False)] += 12
    assert real.std(1).max() < 1.0 and nontrivial_failures(real) == []


def spiky(n=6, spike=50.0):
    """Trained-model-like logits: one strong class per probe (all different), four runners-up, the rest ~0."""
    a = np.zeros((n, 1000), np.float64)
    rng = np.random.default_rng(3)
    a += rng.normal(0, 1e-3, a.shape)
    for i in range(n):
        a[i, 10 * i] = spike
        a[i, 10 * i + 1:10 * i + 5] = [10, 9, 8, 7]
    return a


def only(c, word):
    assert not c.passed and len(c.failures) == 1 and word in c.failures[0], c.failures
    return True


def test_each_fp32_criterion_can_fail_alone():
    """Every criterion of ONNX_FP32 is exercised alone: a mutant that drops any one of them is caught here."""
    # max_abs alone: a 6e-3 error on a non-top class of logits reaching 100 (max_rel 6e-5 < 1e-4)
    a = spiky(spike=100.0)
    b = a.copy()
    b[0, 500] += 6e-3
    assert only(compare_logits(a, b, ONNX_FP32), "max_abs")
    # max_rel alone: a 4e-3 error (< 5e-3) on logits reaching only 10
    a = spiky(spike=10.0)
    a[:, 1::10] = 0  # runners-up below the spike
    b = a.copy()
    b[0, 500] -= 4e-3
    assert only(compare_logits(a, b, ONNX_FP32), "max_rel")
    # cosine alone: 4.9e-3 of noise on every logit (max_abs and max_rel within bounds, ranks unchanged)
    a = spiky(spike=50.0)
    b = a + np.where(np.random.default_rng(1).random(a.shape) < 0.5, -4.9e-3, 4.9e-3)
    assert only(compare_logits(a, b, ONNX_FP32), "cosine")
    # top-1 alone: the two leading classes 2e-3 apart, swapped
    a = spiky(spike=50.0)
    a[0, 1] = 50.0 - 2e-3
    b = a.copy()
    b[0, [0, 1]] = b[0, [1, 0]]
    assert only(compare_logits(a, b, ONNX_FP32), "top-1")
    # top-5 alone: the 5th and 6th classes 2e-3 apart, swapped
    a = spiky(spike=50.0)
    a[0, 5] = 7.0 - 2e-3
    b = a.copy()
    b[0, [4, 5]] = b[0, [5, 4]]
    assert only(compare_logits(a, b, ONNX_FP32), "top-5")
