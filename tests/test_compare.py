"""Comparator unit tests: each metric can fail, and degenerate logits are refused."""
import numpy as np

from parity.compare import ONNX_FP32, compare_logits, nontrivial_failures


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
