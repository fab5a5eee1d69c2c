"""VastAI vdsp_params, the OpConfig layout and the older layout's numeric op codes (``parity/audit/importers/
vastai_opconfig.py``): import, each injected error caught, ``--fix`` round trips, fields not understood reported.
The test files (tests/data/audit/vdsp_opconfig_*.json, vdsp_params.json) are written for these tests."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from parity.audit import importers
from parity.audit.diff import differences
from parity.audit.importers import ConfigError
from parity.cli import main
from parity.registry import load_registry

DATA = Path(__file__).parent / "data" / "audit"
REG = load_registry()
TV = REG.get("torchvision/mobilenet_v2.IMAGENET1K_V1").preprocess
TIMM = REG.get("timm/mobilenetv2_100.ra_in1k").preprocess
KERAS = REG.get("keras/mobilenet_v2.alpha_1.0_224").preprocess
TV_STRETCH = TV.replace(resize_mode="stretch", resize_size=256)   # torchvision's numbers on the op's square resize
LIMITS = importers.get("vastai-vdsp").limits


def _load(tmp: Path, name: str, edit: Callable[[str], str] = lambda t: t):  # type: ignore[no-untyped-def]
    dst = tmp / name
    dst.write_text(edit((DATA / name).read_text()))
    imp, decl, _ = importers.read(dst)
    return imp, decl, dst


def _found(decl, up, limits: bool = True) -> set[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return {(f.field, f.severity) for f in differences(up, decl.spec(up))
            if f.severity != "info" and (limits or f.field not in LIMITS)}


def test_opconfig_import(tmp_path: Path) -> None:
    imp, k, _ = _load(tmp_path, "vdsp_opconfig_keras.json")
    assert imp.name == "vastai-vdsp" and k.unknown == []
    assert k.fields == {"scale": 1.0, "mean": (127.5,) * 3, "std": (127.5,) * 3, "channel_order": "RGB",
                        "interpolation": "bilinear", "backend": "pil", "resize_mode": "squash", "crop_size": 224}
    assert _found(k, KERAS) == {("interpolation", "warning"), ("antialias", "warning")}   # bilinear vs nearest
    _, t, _ = _load(tmp_path, "vdsp_opconfig_tv.json")
    # BGR888 in, BGR2RGB: the model gets RGB; DIV255: 0-1 means; no Oimage*: the centered crop 256 - 2*16
    assert t.fields["channel_order"] == "RGB" and t.fields["scale"] == 1 / 255 and t.unknown == []
    assert (t.fields["resize_mode"], t.fields["resize_size"], t.fields["crop_size"]) == ("stretch", 256, 224)
    assert any("centered, 224x224" in n for n in t.notes)
    assert [f.severity for f in differences(TV_STRETCH, t.spec(TV_STRETCH))] == ["info"]   # fp16-rounded values
    assert _found(t, TV) == {("resize_mode", "error")}          # the op squares before cropping: torchvision does not


def test_numeric_op_codes_from_the_public_pairs(tmp_path: Path) -> None:
    _, d, _ = _load(tmp_path, "vdsp_params.json")
    assert d.unknown == ["norma_type: 3"]                       # contradictory in the public files: not read
    assert (d.fields["interpolation"], d.fields["backend"], d.fields["channel_order"]) == ("bilinear", "cv2", "RGB")
    assert _found(d, TIMM) == {("interpolation", "warning"), ("backend", "warning")}    # timm: bicubic, PIL
    _, d, _ = _load(tmp_path, "vdsp_params.json", lambda t: t.replace('"resize_type": 1', '"resize_type": 7')
                    .replace('"color_cvt_code": 2', '"color_cvt_code": 9'))
    assert {"resize_type: 7", "color_cvt_code: 9"} <= set(d.unknown)
    assert "interpolation" not in d.fields and "channel_order" not in d.fields and d.colour_named


# (file, upstream, edit, expected finding): each error class as it occurs in the OpConfig layout
INJECTED = [
    ("vdsp_opconfig_tv.json", TV_STRETCH, ("0.223999", "0.243999"), ("normalization", "error")),       # std typo
    ("vdsp_opconfig_keras.json", KERAS, ('"Std": [127.5, 127.5, 127.5]', '"Std": [127.5, 127.5, 172.5]'),
     ("normalization", "error")),
    # another family's normalization: ImageNet's for a [-1, 1] model, [-1, 1] for an ImageNet model
    ("vdsp_opconfig_keras.json", KERAS, ('"Mean": [127.5, 127.5, 127.5],\n        "Std": [127.5, 127.5, 127.5]',
                                         '"Mean": [123.675, 116.28, 103.53],\n        "Std": [58.395, 57.12, 57.375]'),
     ("normalization", "error")),
    ("vdsp_opconfig_tv.json", TV_STRETCH, ('"DIV255_MINUSMEAN_DIVSTD"', '"DIV1275_MINUSONE"'), ("normalization", "error")),
    # channel swap
    ("vdsp_opconfig_tv.json", TV_STRETCH, ('"BGR2RGB"', '"NO_CHANGE"'), ("channel_order", "error")),
    ("vdsp_opconfig_keras.json", KERAS, ('"NO_CHANGE"', '"RGB2BGR"'), ("channel_order", "error")),
    # geometry: a 256 resize + centered 224 crop where upstream squashes to 224; another resize size
    ("vdsp_opconfig_keras.json", KERAS, ('"ResizeWidth": 224,\n        "ResizeHeight": 224,\n        "CropX": 0,\n'
                                         '        "CropY": 0', '"ResizeWidth": 256,\n        "ResizeHeight": 256,\n'
                                         '        "CropX": 16,\n        "CropY": 16'), ("resize_mode", "error")),
    ("vdsp_opconfig_tv.json", TV_STRETCH, ('"ResizeWidth": 256,\n        "ResizeHeight": 256',
                                           '"ResizeWidth": 288,\n        "ResizeHeight": 288'), ("resize_size", "error")),
    # the numeric layout: a std typo and another library's kernel are already covered in test_audit.py
]


@pytest.mark.parametrize("name,up,edit,expected", INJECTED, ids=[f"{n}:{e[0]}:{i}" for i, (n, _, _, e)
                                                                  in enumerate(INJECTED)])
def test_opconfig_injected_error_is_caught(tmp_path: Path, name: str, up, edit, expected) -> None:  # type: ignore[no-untyped-def]
    assert edit[0] in (DATA / name).read_text(), "the injection must edit the file"
    _, clean, _ = _load(tmp_path, name)
    _, bad, _ = _load(tmp_path, name, lambda t: t.replace(*edit))
    assert expected in _found(bad, up)
    assert expected not in _found(clean, up), "the clean file must not carry the injected finding"


FIXABLE = [("vdsp_opconfig_keras.json", KERAS, ('"NO_CHANGE"', '"RGB2BGR"')),
           ("vdsp_opconfig_keras.json", TV_STRETCH, ('"Std": [127.5, 127.5, 127.5]', '"Std": [127.5, 127.5, 172.5]')),
           ("vdsp_opconfig_tv.json", TV_STRETCH, ('"BGR2RGB"', '"NO_CHANGE"')),
           ("vdsp_opconfig_tv.json", KERAS, ("0.223999", "0.243999")),
           ("vdsp_opconfig_tv.json", TV_STRETCH.replace(channel_order="BGR", mean=TV.mean[::-1], std=TV.std[::-1]),
            ("0.223999", "0.243999"))]


@pytest.mark.parametrize("name,up,edit", FIXABLE, ids=[f"{n}:{i}" for i, (n, _, _) in enumerate(FIXABLE)])
def test_opconfig_fix_round_trips(tmp_path: Path, name: str, up, edit) -> None:  # type: ignore[no-untyped-def]
    imp, bad, path = _load(tmp_path, name, lambda t: t.replace(*edit))
    assert _found(bad, up, limits=False)
    out = tmp_path / ("fixed-" + name)
    out.write_text(str(imp.fix(path, path.read_text(), up)))
    imp2, d, _ = importers.read(out)
    assert imp2.name == "vastai-vdsp" and d.unknown == [] and _found(d, up, limits=False) == set()
    doc, src = json.loads(out.read_text()), json.loads((DATA / name).read_text())
    assert set(doc) == {"OpType", "OpConfig"}                          # the same layout, written back
    assert doc["OpConfig"]["IimageFormat"] == src["OpConfig"]["IimageFormat"]   # the application's input is kept


def test_opconfig_fix_refuses_what_the_op_cannot_express(tmp_path: Path) -> None:
    imp, _, path = _load(tmp_path, "vdsp_opconfig_keras.json")
    with pytest.raises(ConfigError, match="cannot express resize_mode 'shorter_side'"):
        imp.fix(path, path.read_text(), TV)
    _, _, path = _load(tmp_path, "vdsp_opconfig_keras.json", lambda t: t.replace("RGB_PLANAR", "YUV_NV12"))
    with pytest.raises(ConfigError, match="IimageFormat 'YUV_NV12' not understood"):
        imp.fix(path, path.read_text(), KERAS)
    _, _, path = _load(tmp_path, "vdsp_params.json")
    with pytest.raises(ConfigError, match="RGB2BGR is not known"):       # the numeric layout: no code for a swap
        imp.fix(path, path.read_text(), TV_STRETCH.replace(resize_mode="shorter_side", channel_order="BGR"))


def test_opconfig_fields_not_understood_are_reported(tmp_path: Path) -> None:
    _, d, _ = _load(tmp_path, "vdsp_opconfig_keras.json", lambda t: t.replace(
        '"ResizeType": "BILINEAR_PILLOW"', '"ResizeType": "LANCZOS_X",\n        "Rotate": 90').replace(
        '"OpType"', '"Version": 2,\n    "OpType"'))
    assert {"ResizeType: LANCZOS_X", "OpConfig.Rotate: 90", "Version: 2"} <= set(d.unknown)
    assert "interpolation" not in d.fields                              # not understood: upstream's, said so
    _, d, _ = _load(tmp_path, "vdsp_opconfig_keras.json", lambda t: t.replace('"CropX": 0', '"CropX": 5'))
    assert any(u.startswith("CropX/CropY 5,0: not the centered crop") for u in d.unknown)
    assert "crop_size" not in d.fields                                  # an off-centre crop: not expressed, listed
    _, d, _ = _load(tmp_path, "vdsp_opconfig_tv.json", lambda t: t.replace('"CropX": 16', '"CropX": 10'))
    assert "resize 256x256 / crop 236x224 (not square)" in d.unknown and "crop_size" not in d.fields
    _, d, _ = _load(tmp_path, "vdsp_opconfig_tv.json", lambda t: t.replace(
        "FUSION_OP_RGB_RESIZE_CVTCOLOR_CROP_NORM_TENSOR", "FUSION_OP_RGB_LETTERBOX_CVTCOLOR_NORM_TENSOR").replace(
        '"DIV255_MINUSMEAN_DIVSTD"', '"MYSTERY"').replace('"BGR2RGB"', '"BGR2GRAY"'))
    assert {"OpType: FUSION_OP_RGB_LETTERBOX_CVTCOLOR_NORM_TENSOR", "NormaType: MYSTERY",
            "ColorCvtCode: BGR2GRAY"} <= set(d.unknown)
    assert not {"resize_mode", "mean", "channel_order"} & set(d.fields)
    with pytest.raises(ConfigError, match=r"OpConfig\.ResizeWidth: expected a whole number"):  # a user error, one line
        _load(tmp_path, "vdsp_opconfig_tv.json", lambda t: t.replace('"ResizeWidth": 256', '"ResizeWidth": "256px"'))
    with pytest.raises(ConfigError, match="without ResizeHeight"):
        _load(tmp_path, "vdsp_opconfig_tv.json", lambda t: t.replace('"ResizeHeight": 256,', ''))
    _, d, _ = _load(tmp_path, "vdsp_params.json", lambda t: t.replace('"resize_type": 1', '"resize_type": [1]'))
    assert "resize_type: [1]" in d.unknown and "interpolation" not in d.fields
    with pytest.raises(ConfigError, match="OpConfig must be an object"):
        _load(tmp_path, "vdsp_opconfig_tv.json", lambda t: '{"OpType": "X", "OpConfig": [1]}')


def test_cli_opconfig_fault_fails_and_fix_is_clean(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    rng = np.random.default_rng(1)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(imgs / f"im{i}.png")
    bad = tmp_path / "vdsp.json"
    bad.write_text((DATA / "vdsp_opconfig_keras.json").read_text().replace('"NO_CHANGE"', '"RGB2BGR"'))
    out = tmp_path / "fixed.json"
    rc = main(["audit", str(bad), "--card", "keras/mobilenet_v2.alpha_1.0_224", "--data", str(imgs),
               "--workdir", str(tmp_path), "--fix", str(out)])
    doc = json.loads((tmp_path / "audit.json").read_text())
    assert rc == 1 and doc["format"] == "vastai-vdsp" and any("channel_order" in f for f in doc["failures"])
    assert doc["fix"]["clean"] and {f["field"] for f in doc["fix"]["format_limits"]} == {"interpolation", "antialias"}
    assert json.loads(out.read_text())["OpConfig"]["ColorCvtCode"] == "NO_CHANGE"
