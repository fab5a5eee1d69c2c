"""FLOPs/params: the graph counter's categories, the named conventions against the real counters, every
published cell reproduced with its convention, and faults that must fail the count check."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from parity.checks.counts import counts
from parity.counting import flops
from support import CARDS, REGISTRY, SEEDED_TWINS, counts_check, matrix

COUNTED = [c for c in CARDS if any(p.metric in ("flops", "params") for p in c.published)]


def tiny_graph(path):
    """1x4x8x8 -> conv3x3(4->8, bias) -> BN -> Clip -> depthwise 3x3 (8 groups) -> Add(residual) -> GAP -> FC 8->10."""
    rng = np.random.default_rng(0)
    init = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n) for n, s in (
        ("w1", (8, 4, 3, 3)), ("b1", (8,)), ("g", (8,)), ("be", (8,)), ("mu", (8,)), ("w2", (8, 1, 3, 3)),
        ("fw", (10, 8)), ("fb", (10,)))]
    init.append(numpy_helper.from_array(np.abs(rng.standard_normal(8)).astype(np.float32) + 1, "var"))
    init += [numpy_helper.from_array(np.array(0, np.float32), "lo"), numpy_helper.from_array(np.array(6, np.float32), "hi")]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "g", "be", "mu", "var"], ["n1"]),
        helper.make_node("Clip", ["n1", "lo", "hi"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], group=8),
        helper.make_node("Add", ["c2", "r1"], ["a1"]),
        helper.make_node("GlobalAveragePool", ["a1"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], transB=1),
    ]
    g = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])], init)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)


def test_graph_categories_by_hand(tmp_path):
    tiny_graph(tmp_path / "t.onnx")
    c = flops.op_counts(tmp_path / "t.onnx")
    out = 8 * 8 * 8                                      # elements of every 8x8x8 activation
    assert c["conv_macs"] == out * 4 * 9 + out * 1 * 9    # regular + depthwise
    assert c["dw_conv_macs"] == out * 9 and c["dw_conv_macs_over_groups"] == out * 9 / 8
    assert c["conv_bias"] == out and c["conv_bias_params"] == 8
    assert c["bn_elems"] == out and c["bn_channels"] == 8 and c["bn_layers"] == 1
    assert c["act_elems"] == out and c["add_elems"] == out
    assert c["pool_in_elems"] == out and c["pool_out_elems"] == 8
    assert c["fc_macs"] == 80 and c["fc_bias"] == 10 and c["fc_weights"] == 80 and c["fc_bias_params"] == 10
    t = flops.convention_table(c)
    assert t["macs"] == out * 45 + 80
    assert t["paddle.flops"] == out * 45 + out + 80 + 2 * out + out + 8
    assert t["thop"] == out * 45 + 80 + 4 * out + out + 8
    assert t["fluid.model_stat"] == 2 * (out * 36 + out * 9 / 8) + 160 + out + out + out
    assert flops.graph_params(c)["fluid.model_stat"] == 8 * 4 * 9 + 8 * 9 / 8 + 8 + 16 + 80


def test_bn_conventions_refuse_a_folded_graph(tmp_path):
    tiny_graph(tmp_path / "t.onnx")
    c = flops.op_counts(tmp_path / "t.onnx")
    c["bn_layers"] = 0
    with pytest.raises(flops.CountError, match="folded"):
        flops.CONVENTIONS["paddle.flops"].apply(c)
    assert flops.convention_table(c)["paddle.flops"] is None and flops.graph_params(c)["fluid.model_stat"] is None


# torchvision V2 (in SEEDED_TWINS) under -m slow only (CI time: 3.4 s): its cells (torchvision-meta params 3504872,
# flops 0.301) are V1's on V1's build, reproduced in CI by [torchvision/mobilenet_v2.IMAGENET1K_V1-counts] and
# test_ppcls_and_torchvision_meta_cells_are_exact
@pytest.mark.parametrize("card", matrix(COUNTED, slow=SEEDED_TWINS), ids=lambda c: f"{c.id}-counts")
def test_every_published_flops_params_cell_is_reproduced(harness, card):
    r = counts_check(harness, card)
    assert r.status == "pass", r.reason
    for cell in r.metrics["cells"]:
        assert cell["convention"], cell
        if cell["status"] == "within-tolerance":  # only where the registry documents why no rule is exact
            pub = next(p for p in card.published if p.source == cell["source"] and p.metric == cell["metric"])
            assert pub.tolerance_rel <= 0.005 and pub.note


def test_ppcls_and_torchvision_meta_cells_are_exact(harness):
    for card in [c for c in CARDS if c.framework == "ppcls"] + [REGISTRY.get("torchvision/mobilenet_v2.IMAGENET1K_V1")]:
        cells = counts_check(harness, card).metrics["cells"]
        exact = [c for c in cells if c["source"] in ("seed000", "seed003", "torchvision-meta") and
                 (card.framework == "ppcls" or c["source"] == "torchvision-meta")]
        assert exact and all(c["status"] == "exact" for c in exact), (card.id, exact)


@pytest.mark.parametrize("cid", [c.id for c in CARDS if c.framework == "ppcls"])
def test_paddle_flops_itself_equals_the_graph_rule(harness, cid):
    t = counts(harness, REGISTRY.get(cid))
    assert t["native_counters"]["paddle.flops"] == t["flops"]["paddle.flops"]


def test_torch_counters_equal_the_graph_rules_or_differ_by_what_they_skip(harness):
    tv = counts(harness, REGISTRY.get("torchvision/mobilenet_v2.IMAGENET1K_V1"))
    g = tv["graph"]
    assert tv["native_counters"]["ptflops"] == tv["flops"]["ptflops"]
    # torchvision pools with F.adaptive_avg_pool2d: thop (which counts nn.Module types) misses exactly that term
    assert tv["native_counters"]["thop"] == tv["flops"]["thop"] - g["pool_in_elems"] - g["pool_out_elems"]
    mm = counts(harness, REGISTRY.get("mmcls/mobilenet-v2_8xb32_in1k.20200708-3b2dc3af"))
    assert mm["native_counters"]["thop"] == mm["flops"]["thop"]          # mmcls pools with an nn.Module
    assert mm["native_counters"]["mmengine"] == mm["flops"]["mmengine"]
    timm = counts(harness, REGISTRY.get("timm/mobilenetv2_100.ra_in1k"))
    # timm's BatchNormAct2d is not a type thop registers: thop counts no BatchNorm at all on timm models
    assert timm["native_counters"]["thop"] == timm["flops"]["thop"] - 4 * timm["graph"]["bn_elems"]


@pytest.mark.parametrize("fault", ["width_0.75", "dropped_block", "paddle.vision"])
def test_count_check_fails_on_structural_fault(harness, fault):
    if fault == "width_0.75":
        card = REGISTRY.get("torchvision/mobilenet_v2.IMAGENET1K_V1").variant(width_mult=0.75)
    elif fault == "dropped_block":
        card = REGISTRY.get("torchvision/mobilenet_v2.IMAGENET1K_V1").variant(faults=["drop_block:3"])
    else:
        card = REGISTRY.get("ppcls/MobileNetV2.pretrained").variant(faults=["impl:paddle.vision"])
    r = counts_check(harness, card)
    assert r.status == "fail", r.reason
    assert "mismatch" in r.reason
