"""Registry and spec: parsing, lookup errors, equivalence rules. No workers needed."""
import math

import pytest

from parity.registry import Registry, RegistryError, UnknownModel, load_registry
from parity.spec import PreprocessSpec, SpecError


def test_registry_has_required_cards():
    ids = {c.id for c in load_registry()}
    assert {"torchvision/mobilenet_v2.IMAGENET1K_V1", "torchvision/mobilenet_v2.IMAGENET1K_V2",
            "timm/mobilenetv2_050.lamb_in1k", "timm/mobilenetv2_100.ra_in1k", "timm/mobilenetv2_110d.ra_in1k",
            "timm/mobilenetv2_120d.ra_in1k", "timm/mobilenetv2_140.ra_in1k"} <= ids


def test_every_card_is_pinned_and_cited():
    reg = load_registry()
    for c in reg:
        # plain http only where upstream serves nothing else (CSAIL), the card says so, and no pin can be trusted yet
        assert c.weights.url.startswith("https://") or (
            c.weights.url.startswith("http://") and "plain http" in c.weights.unpinned and not c.weights.sha256), c.id
        assert c.weights.hash_prefix or c.weights.sha256 or c.weights.unpinned, c.id  # a pin, or why upstream has none
        if c.weights.hash_prefix:  # torch-hub convention: the prefix is in the file name
            assert f"-{c.weights.hash_prefix}." in c.weights.filename, c.id
        assert c.published_for("top1") or c.unpublished, c.id
        for p in c.published:
            assert p.source in reg.sources and p.citation
            float(p.digits)


def test_seed000_rows_are_on_the_right_cards():
    reg = load_registry()
    tv = reg.get("torchvision/mobilenet_v2.IMAGENET1K_V1")
    assert [p.digits for p in tv.published if p.source == "seed000"] == ["71.878", "90.286", "327.650", "3.505"]
    timm = reg.get("timm/mobilenetv2_100.ra_in1k")
    assert [p.digits for p in timm.published if p.source == "seed000"] == ["72.956", "91.010", "327.544", "3.500"]
    assert timm.published_for("flops")[0].decimals == 3


def test_unknown_model_gives_close_matches():
    with pytest.raises(UnknownModel, match=r"did you mean: timm/mobilenetv2_100\.ra_in1k"):
        load_registry().get("timm/mobilenetv2_100")
    with pytest.raises(UnknownModel, match="matches no model"):
        load_registry().select(["caffe/*"])


def test_select_by_framework_and_glob():
    reg = load_registry()
    assert len(reg.select(["torchvision"])) == 2
    assert [c.id for c in reg.select(["timm/*140*"])] == ["timm/mobilenetv2_140.ra_in1k"]


def test_bad_registry_is_a_clear_error(tmp_path):
    p = tmp_path / "r.toml"
    p.write_text('[[cards]]\nid = "timm/x.y"\nframework = "timm"\narch = "x"\ntag = "y"\n')
    with pytest.raises(RegistryError, match="missing field"):
        Registry.load(p)
    p.write_text("not toml [")
    with pytest.raises(RegistryError, match="not valid TOML"):
        Registry.load(p)


def spec(**kw):
    base = {"resize_mode": "shorter_side", "resize_size": 256, "crop_size": 224, "interpolation": "bilinear", "antialias": True,
                "backend": "pil", "channel_order": "RGB", "scale": 1 / 255, "mean": (0.485, 0.456, 0.406),
                "std": (0.229, 0.224, 0.225), "layout": "NCHW"}
    base.update(kw)
    return PreprocessSpec(**base)


def test_spec_validation():
    with pytest.raises(SpecError):
        spec(interpolation="fancy")
    with pytest.raises(SpecError):
        spec(resize_size=None)
    with pytest.raises(SpecError, match="unknown spec fields"):
        PreprocessSpec.from_dict({**spec().to_dict(), "colour": "blue"})


def test_spec_differences_and_affine():
    a = spec()
    assert a.differences(spec()) == []
    assert a.differences(spec(resize_size=232)) == ["resize_size: 256 != 232"]
    # mmcls writes mean/std on the 0-255 scale: same arithmetic, same affine
    b = spec(scale=1.0, mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375))
    for x, y in zip(a.affine()[0] + a.affine()[1], b.affine()[0] + b.affine()[1]):
        assert math.isclose(x, y, rel_tol=1e-6)
    assert PreprocessSpec.resize_from_crop_pct(224, 0.875) == 256
    assert PreprocessSpec.from_dict(a.to_dict()) == a
