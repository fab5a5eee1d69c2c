"""keras's own MobileNetV2 table (keras-applications ``mobilenet_v2.py`` module docstring, 22 checkpoints): every row
is a card with its four cells, the counting rule that reproduces the MACs/params columns holds on every row, and the
8 alpha x size combinations keras accepts without a published checkpoint are recorded with the URL keras builds."""
import itertools
import math

import pytest

from support import REGISTRY

ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)       # keras's accepted alphas for weights='imagenet'
SIZES = (96, 128, 160, 192, 224)                # and input sizes
KERAS = [c for c in REGISTRY if c.framework == "keras"]


def table_cells(card):
    return {p.metric: p for p in card.published if p.source == "keras-applications"}


def test_every_table_row_is_a_card_and_every_other_combination_is_recorded():
    cards = {(c.build["alpha"], c.build["input_size"]) for c in KERAS}
    unlisted = {(u.build["alpha"], u.build["input_size"]) for u in REGISTRY.unlisted if u.framework == "keras"}
    assert len(cards) == 22 and len(unlisted) == 8 and not cards & unlisted
    assert cards | unlisted == set(itertools.product(ALPHAS, SIZES))
    assert unlisted == {(a, s) for a in (1.3, 1.4) for s in SIZES if s != 224}
    for c in KERAS:
        cells = table_cells(c)
        assert sorted(cells) == ["flops", "params", "top1", "top5"], c.id
        assert c.preprocess.crop_size == c.build["input_size"] and c.tag == f"alpha_{c.build['alpha']}_{c.build['input_size']}"
        assert c.weights.url.endswith(f"_{c.build['alpha']}_{c.build['input_size']}.h5")
        assert not c.unpublished, f"{c.id}: keras publishes its accuracy"
    assert "keras.io publishes ImageNet accuracy for MobileNetV2 alpha 1.0 only" not in REGISTRY.path.read_text()


def _md(v, d=8):
    n = max(d, int(v + d / 2) // d * d)
    return n + d if n < 0.9 * v else n


def analytic(alpha, size):
    """MobileNetV2 (paper Table 2, keras's channel rounding and TF 'SAME' output sizes) counted by hand: conv+FC
    multiply-adds and conv+FC weights+FC bias. Independent of the ONNX graph counter."""
    h, c = math.ceil(size / 2), _md(32 * alpha)
    macs, params = h * h * 27 * c, 27 * c
    for t, f, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)):
        for i in range(n):
            oc, e = _md(f * alpha), c * t
            if t != 1:
                macs, params = macs + h * h * c * e, params + c * e
            h = math.ceil(h / (s if i == 0 else 1))
            macs, params = macs + h * h * 9 * e + h * h * e * oc, params + 9 * e + e * oc
            c = oc
    last = 1280 if alpha <= 1.0 else _md(1280 * alpha)
    return macs + h * h * c * last + last * 1000, params + c * last + last * 1000 + 1000


@pytest.mark.parametrize("card", KERAS, ids=lambda c: c.tag)
def test_named_rules_reproduce_the_macs_and_params_columns(card):
    """The registry's rule for the MACs column (``macs``, truncated) and the params column (``without_bn``) is exact on
    every row, counted independently of the graph counter; rounding the MACs to nearest instead misses 8 rows."""
    from parity.counting.flops import check_cell
    macs, params = analytic(card.build["alpha"], card.build["input_size"])
    cells = table_cells(card)
    assert (cells["flops"].convention, cells["flops"].rounding, cells["params"].convention) == ("macs", "down", "without_bn")
    assert check_cell(cells["flops"], {"macs": macs}).status == "exact", (card.id, macs)
    assert check_cell(cells["params"], {"without_bn": params}).status == "exact", (card.id, params)


def test_rounding_to_nearest_would_not_reproduce_the_table():
    missed = [c.tag for c in KERAS if round(analytic(c.build["alpha"], c.build["input_size"])[0] / 1e6)
              != int(table_cells(c)["flops"].digits)]
    assert len(missed) == 8 and "alpha_1.0_224" in missed


def test_keras_builds_the_recorded_url_for_each_unlisted_combination(harness):
    """keras's own code, get_file intercepted: the 8 combinations without a checkpoint still pass keras's checks and
    ask for exactly the recorded file (nothing is downloaded)."""
    base = REGISTRY.get("keras/mobilenet_v2.alpha_1.0_224")
    for u in REGISTRY.unlisted:
        got = harness.client("keras").meta(base.variant(**u.build))
        assert got.url == u.would_download, (u.upstream_id, got.url)
        assert got.meta["fname"] == u.would_download.rsplit("/", 1)[1] and got.meta["file_hash"] is None


def test_meta_names_keras_refusal_for_a_combination_keras_refuses(harness):
    from parity.workers.process import WorkerError
    base = REGISTRY.get("keras/mobilenet_v2.alpha_1.0_224")
    with pytest.raises(WorkerError, match=r"keras refuses ImageNet weights for alpha=0\.9"):
        harness.client("keras").meta(base.variant(alpha=0.9))


def test_an_unlisted_combination_is_refused_with_the_reason():
    from parity.registry import UnknownModel
    with pytest.raises(UnknownModel, match=r"not a card: keras accepts alpha 1\.3 at 96x96") as e:
        REGISTRY.get("keras/mobilenet_v2.alpha_1.3_96")
    assert "tf_kernels_1.3_96.h5" in e.value.one_line()


def test_the_watch_names_the_history_only_for_a_normalization_change():
    """A keras spec change that is not a normalization change (interpolation) names no history; a scale change
    between two recorded normalizations names both."""
    from parity.drift.watch import _spec_diffs
    card = REGISTRY.get("keras/mobilenet_v2.alpha_1.0_224")
    now = card.preprocess.to_dict()
    (d,) = _spec_diffs(card, {"spec": {**now, "interpolation": "bilinear"}}, {"spec": now}, REGISTRY)
    assert "was " not in d.summary and d.details["history"] == {"old": [], "new": []}
    (d,) = _spec_diffs(card, {"spec": {**now, "scale": 1 / 128}}, {"spec": now}, REGISTRY)
    assert "x /= 128." in d.summary and "x /= 127.5" in d.summary and d.details["history"]["old"]
