"""Recipes every adapter shares, written once, framework-free (numpy only): the adapters call them and only do the
framework-specific assignment. Allowed imports for ``adapters/`` (with ``parity.spec``, ``parity.faults``,
``parity.weights.canonical``, ``parity.weights.safe_pickle`` and ``parity.workers.protocol``).

* ``SeededRecipe``: deterministic weights with realistic statistics. Default init gives |logits| ~ 1e-9 in eval
  mode (zero BN running mean, unit variance, a tiny classifier), which makes any parity check vacuous. The recipe:
  He-normal convs, a random BatchNorm affine, BN running statistics calibrated on a seeded batch of images (the
  adapter runs one training-mode pass), and a classifier whose logits over that batch are centred with standard
  deviation ``LOGIT_STD_TARGET``.
* ``shift_variance``: a native weight file is read by a *stock* model with the ecosystem's own BatchNorm epsilon;
  the running variance is shifted so ``var + eps`` (what BatchNorm computes with) is unchanged.
* ``sqnr_db``: the logits' signal-to-quantization-noise ratio, the deploy budgets' and the per-layer blame's measure.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[Any]
LOGIT_STD_TARGET = 4.0   # seeded heads are scaled so logits over the calibration batch have this std


class SeededRecipe:
    """One seeded stream of draws per model; the adapter asks in its modules' registration order."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def conv(self, shape: tuple[int, ...], fan_in: int) -> Array:
        """He-normal weights in the framework's own layout (``fan_in`` = inputs per output of one kernel)."""
        out: Array = (self.rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        return out

    def conv_bias(self, n: int) -> Array:
        return (self.rng.standard_normal(n) * 0.1).astype(np.float32)

    def bn_affine(self, channels: int) -> tuple[Array, Array]:
        gamma = (0.5 + self.rng.random(channels)).astype(np.float32)
        beta = (self.rng.standard_normal(channels) * 0.25).astype(np.float32)
        return gamma, beta

    def head(self, features: Array, classes: int) -> tuple[Array, Array]:
        """Classifier (weight ``[classes, in]``, bias) for the eval-mode ``features`` (N, in) of the calibration batch:
        centred logits with std ``LOGIT_STD_TARGET``, plus a small random bias so classes differ a priori."""
        f = np.asarray(features, np.float64).reshape(len(features), -1)
        w = self.rng.standard_normal((classes, f.shape[1]))
        mu = f.mean(0)
        spread = float(((f - mu) @ w.T).std())
        w *= LOGIT_STD_TARGET / max(spread, 1e-12)
        b = -(w @ mu) + self.rng.standard_normal(classes) * 0.5
        return w.astype(np.float32), b.astype(np.float32)


def shift_variance(var: Array, eps_model: float, eps_stock: float) -> tuple[Array, float]:
    """Running variance for a stock model whose BatchNorm epsilon is ``eps_stock`` (``var + eps`` unchanged, in
    float64 then rounded to float32); returns it and the largest shift applied."""
    new = (np.asarray(var, np.float64) + float(eps_model) - float(eps_stock)).astype(np.float32)
    return new, float(np.abs(new.astype(np.float64) - np.asarray(var, np.float64)).max()) if new.size else 0.0


def softmax(z: Array) -> Array:
    e = np.exp(z - z.max(-1, keepdims=True))
    return np.asarray(e / e.sum(-1, keepdims=True), np.float32)


def build_digest(build: dict[str, Any]) -> str:
    """Identity of a card's build section (the parent and the workers compute it the same way)."""
    return hashlib.sha256(json.dumps(build, sort_keys=True, default=str).encode()).hexdigest()[:10]


def sqnr_db(ref: Array, test: Array) -> float:
    """Signal-to-quantization-noise ratio in dB: 10 log10(|ref|^2 / |ref - test|^2); inf when identical. Shared by
    the deploy budgets (core) and the deploy host's per-layer blame (adapter)."""
    ref = np.asarray(ref, np.float64)
    noise = float(np.sum((ref - np.asarray(test, np.float64)) ** 2))
    signal = float(np.sum(ref ** 2))
    if noise == 0:
        return float("inf")
    return 10.0 * float(np.log10(max(signal, 1e-300) / noise))
