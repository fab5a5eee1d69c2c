"""Two runs on the same images (parity.evaluation.verdicts.paired_difference and mcnemar): the exact McNemar p-value
from binomial tails counted by hand, and Newcombe's paired interval (method 10) in the three cases where its
correlation term is known in closed form (phi = 0, +1, -1), built from the Wilson intervals of each run."""
import math

import numpy as np
import pytest

from parity.evaluation.verdicts import mcnemar, paired_difference, wilson

pytestmark = pytest.mark.judging


def pairs(both, only_a, only_b, neither):
    a = [True] * both + [True] * only_a + [False] * only_b + [False] * neither
    b = [True] * both + [False] * only_a + [True] * only_b + [False] * neither
    return a, b


# --- McNemar -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("only_a,only_b,p", [
    (0, 5, 2 * 1 / 32),                        # one tail of Binomial(5, 1/2): P(X <= 0) = 1/32
    (2, 8, 2 * (1 + 10 + 45) / 1024),          # P(X <= 2) for n = 10
    (8, 2, 2 * (1 + 10 + 45) / 1024),          # symmetric in the two runs
    (3, 3, 1.0),                               # an even split: capped at 1
    (1, 2, 1.0),                               # 2 * P(X <= 1) = 2 * 4/8 = 1
])
def test_mcnemar_exact_p(only_a, only_b, p):
    assert mcnemar(*pairs(40, only_a, only_b, 7)) == p


def test_mcnemar_without_discordant_pairs_is_1():
    assert mcnemar(*pairs(10, 0, 0, 5)) == 1.0
    assert mcnemar(np.array([True, False]), np.array([True, False])) == 1.0


# --- Newcombe's paired interval --------------------------------------------------------------------------------------

def test_paired_difference_refuses_unequal_or_empty_samples():
    with pytest.raises(ValueError) as e:
        paired_difference([], [])
    assert str(e.value) == "paired difference needs two equal, non-empty samples (0 vs 0)"
    with pytest.raises(ValueError, match=r"\(3 vs 2\)"):
        paired_difference([True, False, True], [True, False])


def test_uncorrelated_pairs_square_and_add():
    """both * neither == only_a * only_b: phi = 0, the interval is Newcombe's square-and-add of the two Wilson
    intervals."""
    a, b = pairs(8, 4, 2, 1)                                            # 8 * 1 == 4 * 2
    n = 15
    p1, p2 = 12 / n, 10 / n
    (l1, u1), (l2, u2) = wilson(12, n), wilson(10, n)
    d, lo, hi = paired_difference(a, b)
    assert d == pytest.approx(2 / 15, abs=1e-15)
    assert lo == pytest.approx(d - math.hypot(p1 - l1, u2 - p2), rel=1e-12)
    assert hi == pytest.approx(d + math.hypot(u1 - p1, p2 - l2), rel=1e-12)


def test_identical_runs_give_a_narrow_interval_around_zero():
    """phi = +1: the Wilson widths cancel up to their asymmetry, |(p - l) - (u - p)|."""
    a = [True] * 13 + [False] * 7
    (lo1, hi1) = wilson(13, 20)
    p = 13 / 20
    d, lo, hi = paired_difference(a, a)
    w = abs((p - lo1) - (hi1 - p))
    assert d == 0.0 and lo == pytest.approx(-w, abs=1e-12) and hi == pytest.approx(w, abs=1e-12)
    assert hi < (hi1 - lo1) / 4                        # far narrower than either run's own interval


def test_opposite_runs_add_the_widths():
    """phi = -1 (every image right in exactly one run): the widths add."""
    a, b = pairs(0, 6, 4, 0)
    n = 10
    (l1, u1), (l2, u2) = wilson(6, n), wilson(4, n)
    d, lo, hi = paired_difference(a, b)
    assert d == pytest.approx(0.2)
    assert lo == pytest.approx(d - ((0.6 - l1) + (u2 - 0.4)), rel=1e-12)
    assert hi == pytest.approx(d + ((u1 - 0.6) + (0.4 - l2)), rel=1e-12)


def test_swapping_the_runs_mirrors_the_interval():
    a, b = pairs(30, 9, 3, 8)
    d, lo, hi = paired_difference(a, b)
    assert paired_difference(b, a) == pytest.approx((-d, -hi, -lo), abs=1e-15)
    assert lo < 0.12 == d < hi


def test_interval_stays_within_minus_one_and_one():
    """All right vs all wrong: the margins of one run are empty (phi taken as 0), the difference is 1 and the
    upper bound is clamped to 1."""
    a, b = [True] * 3, [False] * 3
    d, lo, hi = paired_difference(a, b)
    (l1, _), (_, u2) = wilson(3, 3), wilson(0, 3)
    assert (d, hi) == (1.0, 1.0)
    assert lo == pytest.approx(1.0 - math.hypot(1.0 - l1, u2), rel=1e-12)
    d, lo, hi = paired_difference(b, a)
    assert (d, lo) == (-1.0, -1.0)
