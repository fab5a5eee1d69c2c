"""Framework-specific facts of the keras, PaddleClas and mmpretrain adapters, checked through their workers."""
import dataclasses

import pytest

from support import REGISTRY, meta_check, nontrivial_check, onnx_check, spec_check

KERAS_1 = REGISTRY.get("keras/mobilenet_v2.alpha_1.0_224")
PPCLS_1 = REGISTRY.get("ppcls/MobileNetV2.pretrained")
MMCLS = REGISTRY.get("mmcls/mobilenet-v2_8xb32_in1k.20200708-3b2dc3af")


def test_keras_counts_params_both_ways(harness):
    """keras count_params() includes BN moving mean/variance; the trainable count is torchvision's num_params."""
    p = harness.build(KERAS_1).params
    assert p["with_bn_stats"] == p["keras_count_params"] == 3_538_984
    assert p["trainable"] == 3_504_872
    assert p["with_bn_stats"] - p["trainable"] == 2 * 17_056  # moving mean + variance of every BN channel


def test_ppcls_counts_bn_statistics_as_parameters(harness):
    """paddle's BatchNorm holds _mean/_variance as parameters: ppcls MobileNetV2 has 3,540,136 of them, and the
    extra 1x1 expand conv (+BN) in its t=1 block makes it larger than torchvision's 3,538,984 with stats."""
    p = harness.build(PPCLS_1).params
    assert p["paddle_parameters"] == p["with_bn_stats"] == 3_540_136
    # torchvision's 3,504,872 + the t=1 block's 1x1 expand conv (32*32) and its BN affine (2*32)
    assert p["trainable"] == 3_504_872 + 32 * 32 + 2 * 32 == 3_505_960
    assert p["with_bn_stats"] - p["trainable"] == 2 * (17_056 + 32)


def test_mmcls_counts(harness):
    p = harness.build(MMCLS).params
    assert p["trainable"] == 3_504_872 and p["with_bn_stats"] == 3_538_984


def test_keras_softmax_left_on_both_sides_fails_nontrivial_check(harness):
    """Built with keras's default classifier_activation='softmax', native and ONNX agree to 1e-7 on probabilities:
    parity alone would pass. The non-trivial-logits check is what catches it (softmax on one side only is the
    'softmax' fault of the fault matrix)."""
    soft = dataclasses.replace(KERAS_1, id=KERAS_1.id + "+softmax",
                               build={**KERAS_1.build, "classifier_activation": "softmax"})
    r = nontrivial_check(harness, soft)
    assert r.status == "fail", r.reason
    assert r.metrics["logit_std_min"] < 0.1


def test_keras_softmax_on_native_side_only_is_caught(harness):
    r = onnx_check(harness, KERAS_1, "seeded", fault="softmax")
    assert r.status == "fail" and "max_abs" in r.reason


def test_ppcls_export_never_reaches_for_pip(harness):
    """paddle2onnx switches polygraphy's auto-install on; the adapter forces it off (and PIP_NO_INDEX=1), and
    reports the two conversion steps' times."""
    exp = harness.export(PPCLS_1)
    assert exp.extra["polygraphy_autoinstall"] is False
    assert set(exp.extra["step_seconds"]) == {"jit_save", "paddle2onnx_export"}
    from parity.runtimes.onnxruntime import session
    assert list(session(exp.path, "off").get_inputs()[0].shape[1:]) == [3, 224, 224]


def test_keras_export_is_tf2onnx_nhwc(harness):
    exp = harness.export(KERAS_1)
    assert exp.exporter == "tf2onnx.from_function" and exp.check["producer"].startswith("tf2onnx")
    from parity.runtimes.onnxruntime import session
    sess = session(exp.path, "off")
    assert list(sess.get_inputs()[0].shape[1:]) == [224, 224, 3]


@pytest.mark.parametrize("card,bad", [
    (PPCLS_1, {"backend": "pil", "antialias": True}),     # PaddleClas resizes with OpenCV
    (PPCLS_1, {"resize_rounding": "floor"}),               # ResizeImage rounds the long side
    (KERAS_1, {"layout": "NCHW"}),                        # keras takes NHWC
    (KERAS_1, {"scale": 1 / 255, "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "channel_order": "BGR"}),
    (MMCLS, {"mean": (0.485, 0.456, 0.406)}),            # mean on the wrong scale
    (MMCLS, {"backend": "cv2", "antialias": False}),      # the test pipeline says backend='pillow'
], ids=["ppcls-pil", "ppcls-floor", "keras-nchw", "keras-bgr", "mmcls-mean-scale", "mmcls-cv2"])
def test_spec_check_catches_drift(harness, card, bad):
    r = spec_check(harness, dataclasses.replace(card, preprocess=card.preprocess.replace(**bad)))
    assert r.status == "fail", r.reason


def test_meta_check_catches_wrong_mmpretrain_numbers(harness):
    wrong = tuple(dataclasses.replace(p, digits="71.87") if p.metric == "top1" and p.source == "mmpretrain-metafile"
                  else p for p in MMCLS.published)
    r = meta_check(harness, dataclasses.replace(MMCLS, published=wrong))
    assert r.status == "fail" and "Top 1 Accuracy" in r.reason


def test_meta_check_catches_wrong_ppcls_and_keras_urls(harness):
    from parity.registry import WeightsRef
    for card in (PPCLS_1, KERAS_1, REGISTRY.get("ppcls/MobileNetV2.ssld_pretrained")):
        moved = dataclasses.replace(card, weights=WeightsRef(**{**card.weights.__dict__,
                                                                "url": card.weights.url.replace("_", "-", 1)}))
        assert meta_check(harness, moved).status == "fail", card.id
