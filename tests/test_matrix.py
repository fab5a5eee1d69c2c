"""The parity matrix: registry cards x checks, plus injected faults that every parity check must catch."""
import pytest

from parity import frameworks
from parity.checks.onnx_parity import INPUT_FAULTS
from parity.harness import DEFAULT_OPSET, TESTED_OPSETS
from support import (
    CARDS,
    HEAVY,
    REFERENCE,
    SEEDED_TWINS,
    STACK_SIBLINGS,
    matrix,
    meta_check,
    nontrivial_check,
    onnx_check,
    spec_check,
)

MODEL_FAULTS = ("conv_channel_scale", "bn_eps", "softmax")


def assert_result(r, allow_skip=False):
    if r.status == "skip" and allow_skip:
        pytest.skip(r.reason)
    assert r.status == "pass", f"{r.card} {r.check} [{r.mode}]: {r.status}: {r.reason}"


@pytest.mark.parametrize("card", matrix(light=True), ids=lambda c: f"{c.id}-spec")
def test_spec_derived_from_framework_matches_registry(harness, card):
    assert_result(spec_check(harness, card))


@pytest.mark.parametrize("card", matrix(light=True), ids=lambda c: f"{c.id}-meta")
def test_registry_matches_framework_metadata(harness, card):
    r = meta_check(harness, card)
    if not frameworks.get(card.framework).ships_meta:   # tonylins: no code-side metadata; a skip, never a pass
        assert r.status == "skip" and "ships no metadata" in r.reason, r
    else:
        assert_result(r)


# SEEDED_TWINS (torchvision V2, tonylins csail) under -m slow only (CI time: 6.6 s): with seeded weights each is its
# reference card's model (same arch and build, another seed), which stays in CI
@pytest.mark.parametrize("card", matrix(slow=SEEDED_TWINS), ids=lambda c: f"{c.id}-nontrivial")
def test_seeded_weights_are_realistic(harness, card):
    r = nontrivial_check(harness, card)
    assert_result(r)
    assert r.metrics["logit_spread_min"] >= 4.0 and r.metrics["logit_std_min"] >= 1.0 and r.metrics["distinct_top1"] >= 3


# every card at the default opset; the other tested opsets on one reference card per exporter (torchvision for the torch
# stack, whose timm/mmcls/tonylins adapters export with the same adapters/torch_common.export_onnx; ppcls; keras)
# (`tox -e parity` runs every card at every opset): keeps CI within its time budget as the registry grows. Also under
# -m slow only: SEEDED_TWINS at the default opset (CI time: 3.5 s; their reference card's model stays in CI) and
# STACK_SIBLINGS at the other opsets (CI time: 7.4 s; torchvision's opset 13 stays in CI)
OPSET_CASES = [pytest.param(c, o, marks=pytest.mark.slow)
               if c.id in HEAVY or c.id in SEEDED_TWINS or (o != DEFAULT_OPSET and c.id in STACK_SIBLINGS) else (c, o)
               for c in CARDS for o in TESTED_OPSETS if o == DEFAULT_OPSET or c in REFERENCE]


@pytest.mark.parametrize(("card", "opset"), OPSET_CASES, ids=lambda v: f"{v.id}-onnx" if hasattr(v, "id") else f"opset{v}")
def test_onnx_parity_seeded(harness, card, opset):
    r = onnx_check(harness, card, "seeded", opset)
    assert_result(r)
    for opt in ("ort-opt-off", "ort-opt-on"):
        assert r.metrics[opt]["ref_logit_spread_min"] >= 4.0  # the comparison was on non-trivial logits


@pytest.mark.network
@pytest.mark.parametrize("card", matrix(), ids=lambda c: f"{c.id}-onnx-pretrained")
def test_onnx_parity_pretrained(harness, card):
    assert_result(onnx_check(harness, card, "pretrained"), allow_skip=True)


@pytest.mark.slow
@pytest.mark.parametrize("card", [c for c in CARDS if c.framework in ("torchvision", "timm", "mmcls")][:3],
                         ids=lambda c: f"{c.id}-onnx-dynamo")
def test_onnx_parity_dynamo_exporter(harness, card):
    assert_result(onnx_check(harness, card, "seeded", 18, exporter="dynamo"))


# one card per stack in CI: the torch stack's timm/mmcls/tonylins (STACK_SIBLINGS) under -m slow only (CI time: 36 s):
# their model faults are TorchAdapter.fault_model (adapters/torch_common.py) and the softmax fault base.op_run, as for
# torchvision; the input faults are core-side (INPUT_FAULTS): all four faults stay in CI on torchvision, ppcls, keras
@pytest.mark.parametrize("fault", MODEL_FAULTS + tuple(INPUT_FAULTS))
@pytest.mark.parametrize("card", [pytest.param(c, marks=pytest.mark.slow) if c.id in STACK_SIBLINGS else c
                                  for c in REFERENCE], ids=lambda c: f"{c.id}-fault")
def test_parity_check_fails_on_injected_fault(harness, card, fault):
    r = onnx_check(harness, card, "seeded", fault=fault)   # input faults to the runtime side, others to native
    assert r.status == "fail", f"{fault} was not caught: {r.reason}"
    assert "max_abs" in r.reason  # caught by the metric, not by accident


def test_spec_check_fails_on_registry_drift(harness):
    """A registry that still says resize 256 for V2 (torchvision uses 232), or BGR, must fail the spec check."""
    import dataclasses

    from support import REGISTRY
    v2 = REGISTRY.get("torchvision/mobilenet_v2.IMAGENET1K_V2")
    for bad in (v2.preprocess.replace(resize_size=256), v2.preprocess.replace(channel_order="BGR"),
                v2.preprocess.replace(interpolation="bicubic")):
        r = spec_check(harness, dataclasses.replace(v2, preprocess=bad))
        assert r.status == "fail", r.reason


def test_meta_check_fails_on_wrong_published_number(harness):
    import dataclasses

    from parity.registry import WeightsRef
    from support import REGISTRY
    v1 = REGISTRY.get("torchvision/mobilenet_v2.IMAGENET1K_V1")
    wrong = tuple(dataclasses.replace(p, digits="3504873") if p.metric == "params" and p.source == "torchvision-meta"
                  else p for p in v1.published)
    r = meta_check(harness, dataclasses.replace(v1, published=wrong))
    assert r.status == "fail" and "num_params" in r.reason
    moved = dataclasses.replace(v1, weights=WeightsRef(**{**v1.weights.__dict__, "url": v1.weights.url + "x"}))
    assert meta_check(harness, moved).status == "fail"
