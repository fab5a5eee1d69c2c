"""The deployment preprocessing audit: importers (one test file per format under tests/data/audit, written for
these tests), each error class injected into each format it can occur in and caught, ``--fix`` round trips, the
cost measurement (synthetic model) and the CLI end to end (exit codes, JSON; one run with the real TFLite-derived
weights when ../shared/realdata is present)."""
from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from parity.audit import importers
from parity.audit.cost import measure
from parity.audit.diff import calibration_vs_runtime, differences
from parity.audit.importers import ConfigError
from parity.cli import main
from parity.paths import realdata_dir
from parity.registry import load_registry

DATA = Path(__file__).parent / "data" / "audit"
REG = load_registry()
TV = REG.get("torchvision/mobilenet_v2.IMAGENET1K_V1").preprocess
TIMM = REG.get("timm/mobilenetv2_100.ra_in1k").preprocess
KERAS = REG.get("keras/mobilenet_v2.alpha_1.0_224")
PP = REG.get("ppcls/MobileNetV2.pretrained").preprocess
MM = REG.get("mmcls/mobilenet-v2_8xb32_in1k.20200708-3b2dc3af").preprocess
REAL = realdata_dir()


def _load(tmp: Path, name: str, edit: Callable[[str], str] = lambda t: t, fmt: str | None = None):  # type: ignore[no-untyped-def]
    src = DATA / name
    dst = tmp / src.name
    dst.write_text(edit(src.read_text()))
    imp, decl, _ = importers.read(dst, fmt)
    return imp, decl, dst


def _run_time(decl, up):  # type: ignore[no-untyped-def]
    return {(f.field, f.severity) for f in differences(up, decl.spec(up)) if f.severity != "info"}


# ------------------------------------------------------------------ importers read what the files say
def test_openvino_model_yml(tmp_path: Path) -> None:
    imp, d, _ = _load(tmp_path, "model.yml")
    assert imp.name == "openvino-model-yml" and d.unknown == []
    assert d.fields["mean"] == (123.675, 116.28, 103.53) and d.fields["std"] == (58.624, 57.12, 57.375)
    assert d.fields["channel_order"] == "RGB" and d.fields["crop_size"] == 224 and d.fields["layout"] == "NCHW"
    assert any("feeds BGR" in n for n in d.notes)
    # the published 58.624 for R: a 0.2 % normalization warning, not an error
    assert _run_time(d, TV) == {("normalization", "warning")}


def test_unknown_fields_are_reported_never_dropped(tmp_path: Path) -> None:
    _, d, _ = _load(tmp_path, "model.yml", lambda t: t.replace("  - --output=prob", "  - --output=prob\n  - "
                                                               "--mean_scale_magic=1\nextra_key: 3"))
    assert "model_optimizer_args: --mean_scale_magic" in d.unknown and "extra_key" in d.unknown
    _, d, _ = _load(tmp_path, "hb_mapper_nv12.yaml", lambda t: t.replace("  norm_type:", "  std_scale_x: 2\n"
                                                                         "  norm_type:"))
    assert "input_parameters.std_scale_x" in d.unknown
    _, d, _ = _load(tmp_path, "vdsp_params.json")
    assert d.unknown == ["norma_type: 3"]    # the codes public file pairs pin down are read (test_audit_vastai.py)
    _, d, _ = _load(tmp_path, "vamc_timm.yaml", lambda t: t.replace("    - type: ToTensor",
                                                                    "    - type: Pad\n    - type: ToTensor"))
    assert "op 'Pad'" in d.unknown
    _, d, _ = _load(tmp_path, "accuracy-check.yml", lambda t: t.replace("          - type: crop",
                                                                        "          - type: flip\n"
                                                                        "          - type: crop"))
    assert "preprocessing step 'flip'" in d.unknown


def test_accuracy_check_with_model_yml_beside_it(tmp_path: Path) -> None:
    imp, d, _ = importers.read(DATA / "omz" / "accuracy-check.yml")
    assert imp.name == "openvino-accuracy-check"
    # pillow reader (RGB) -> bgr_to_rgb (BGR fed to the IR) -> --reverse_input_channels: the model sees RGB
    assert d.fields["channel_order"] == "RGB" and d.fields["backend"] == "pil" and d.fields["decoder"] == "pil"
    assert d.fields["resize_mode"] == "shorter_side" and d.fields["resize_size"] == 256
    assert _run_time(d, TV) == {("normalization", "warning")}     # model.yml's 58.624


def test_horizon_nv12_and_its_calibration(tmp_path: Path) -> None:
    _, d, _ = _load(tmp_path, "hb_mapper_nv12.yaml")
    spec = d.spec(TV)
    assert spec.input_color == "nv12" and spec.yuv_range == "bt601_full"
    assert _run_time(d, TV) == {("input_color", "warning")}       # 0.01712475 = 1 / (255 * 0.229): same arithmetic
    calib = d.calibration_spec(TV)
    assert calib is not None and calib.input_color == "rgb"
    assert {(f.field, f.scope) for f in calibration_vs_runtime(calib, spec)} == {("input_color",
                                                                                   "calibration vs run time")}
    _, d, _ = _load(tmp_path, "hb_mapper_nv12.yaml", lambda t: t.replace("  input_type_rt: 'nv12'",
                                                                         "  input_type_rt: 'nv12'\n"
                                                                         "  input_space_and_range: bt601_video"))
    assert d.spec(TV).yuv_range == "bt601_video"
    _, d, _ = _load(tmp_path, "hb_mapper_nv12.yaml", lambda t: t.replace("input_type_rt: 'nv12'",
                                                                         "input_type_rt: 'yuv444'"))
    assert d.spec(TV).input_color == "yuv444" and _run_time(d, TV) == {("input_color", "warning")}
    with pytest.raises(ConfigError, match="input_type_train"):
        _load(tmp_path, "hb_mapper_nv12.yaml", lambda t: t.replace("input_type_train: 'rgb'",
                                                                   "input_type_train: 'yuv444'"))


def test_vastai_vamc_and_vdsp(tmp_path: Path) -> None:
    imp, d, _ = _load(tmp_path, "vamc_timm.yaml")
    assert imp.name == "vastai-vamc" and d.calibration == d.fields
    assert _run_time(d, TIMM) == {("interpolation", "warning")}   # Resize without interpolation: bilinear assumed
    assert any("assumed bilinear" in n for n in d.notes)
    _, d2, _ = _load(tmp_path, "vamc_timm.yaml", lambda t: t.replace("transform_ops", "process_ops"))
    assert d2.fields == d.fields
    imp, v, _ = _load(tmp_path, "vdsp_params.json")
    assert imp.name == "vastai-vdsp"
    assert v.fields["mean"] == (123.6875, 116.25, 103.5) and v.fields["std"] == (58.40625, 57.125, 57.375)
    # fp16 is the format's limit: info, never a difference; resize_type 1 is OpenCV's bilinear (timm: PIL bicubic)
    assert [(f.field, f.severity) for f in differences(TIMM, v.spec(TIMM))] == [
        ("normalization", "info"), ("interpolation", "warning"), ("backend", "warning")]
    with pytest.raises(ConfigError, match="OpConfig"):
        _load(tmp_path, "vdsp_params.json", lambda t: '{"OpConfig": [], "meanr": 1}')


def test_format_detection_refuses_unknown_files(tmp_path: Path) -> None:
    p = tmp_path / "notes.yaml"
    p.write_text("hello: world\n")
    with pytest.raises(ConfigError, match="no known format"):
        importers.read(p)
    with pytest.raises(ConfigError, match="unknown config format"):
        importers.read(p, "caffe")
    p.write_text("input_parameters: [unclosed\n norm_type")
    with pytest.raises(ConfigError, match="not valid YAML"):
        importers.read(p, "horizon-hb-mapper")


# ------------------------------------------------------------------ each error class, in each format, is caught
# (file, card spec, edit, expected run-time finding): the edit injects one error class as it occurs in that format
INJECTED = [
    # a typo in one std value
    ("model.yml", TV, ("58.624,57.12", "58.624,62.22"), ("normalization", "error")),
    ("accuracy-check.yml", TV, ("58.395, 57.12", "58.395, 62.22"), ("normalization", "error")),
    ("hb_mapper_nv12.yaml", TV, ("0.01712475 0.017507", "0.01712475 0.01607"), ("normalization", "error")),
    ("vamc_timm.yaml", TIMM, ("std: [58.395, 57.12", "std: [58.395, 62.22"), ("normalization", "error")),
    ("vdsp_params.json", TIMM, ('"stdg": 21284', '"stdg": 21439'), ("normalization", "error")),
    # calibration normalization copied from another model family ([-1, 1] for an ImageNet-normalized model)
    ("model.yml", TV, ("data[123.675,116.28,103.53]", "data[127.5,127.5,127.5]"), ("normalization", "error")),
    ("hb_mapper_nv12.yaml", TV, ("scale_value: 0.01712475 0.017507 0.01742919", "scale_value: 0.0078125"),
     ("normalization", "error")),
    ("vamc_timm.yaml", TIMM, ("div255: false", "div255: true"), ("normalization", "error")),
    ("accuracy-check.yml", TV, ("mean: 123.675, 116.28, 103.53", "mean: 127.5, 127.5, 127.5"),
     ("normalization", "error")),
    # channel order swapped
    ("model.yml", TV, ("  - --reverse_input_channels\n", ""), ("channel_order", "error")),
    ("hb_mapper_nv12.yaml", TV, ("input_type_train: 'rgb'", "input_type_train: 'bgr'"), ("channel_order", "error")),
    ("accuracy-check.yml", TV, ("reader: pillow_imread", "reader: opencv_imread"), ("channel_order", "error")),
    # a square resize where upstream resizes the shorter side
    ("vamc_timm.yaml", TIMM, ("      size: 256", "      size: [256, 256]"), ("resize_mode", "error")),
    ("accuracy-check.yml", TV, ("            aspect_ratio_scale: greater\n", ""), ("resize_mode", "error")),
    ("vdsp_params.json", TIMM, ('"short_edge_threshold": 256', '"short_edge_threshold": 224'),
     ("resize_size", "error")),
    # NV12 at run time for a model trained on RGB
    ("hb_mapper_nv12.yaml", TV, ("input_type_rt: 'nv12'", "input_type_rt: 'nv12'"), ("input_color", "warning")),
    # another resize library / kernel, layout
    ("accuracy-check.yml", TV, ("size: 256\n            aspect_ratio_scale: greater\n            use_pillow: true",
                                "size: 256\n            aspect_ratio_scale: greater"), ("backend", "warning")),
    ("hb_mapper_nv12.yaml", TV, ("input_layout_train: 'NCHW'", "input_layout_train: 'NHWC'"), ("layout", "error")),
    # DeepStream nvinfer (keras card: one scale is exact there)
    ("nvinfer_keras.txt", KERAS.preprocess, ("model-color-format=0", "model-color-format=1"),
     ("channel_order", "error")),
    ("nvinfer_keras.txt", KERAS.preprocess, ("net-scale-factor=0.00784313725", "net-scale-factor=0.0174292"),
     ("normalization", "error")),
    ("nvinfer_keras.txt", KERAS.preprocess, ("maintain-aspect-ratio=0", "maintain-aspect-ratio=1\nsymmetric-padding=1"),
     ("resize_mode", "error")),
    ("nvinfer_keras.txt", KERAS.preprocess, ("network-input-order=1", "network-input-order=0"), ("layout", "error")),
    # Rockchip RKNN, toolkit 2 and 1
    ("rknn_tv.yml", TV, ("[[58.395, 57.12", "[[58.395, 62.22"), ("normalization", "error")),
    ("rknn_tv.yml", TV, ("[[123.675, 116.28, 103.53]]", "[[127.5, 127.5, 127.5]]"), ("normalization", "error")),
    ("rknn1_tv.yml", TV, ("reorder_channel: 0 1 2", "reorder_channel: 2 1 0"), ("channel_order", "error")),
    ("rknn1_tv.yml", TV, ("103.53 57.63", "103.53 127.5"), ("normalization", "error")),
    # PaddleClas inference_cls.yaml, Paddle Lite config.txt, MMDeploy SDK pipeline.json
    ("inference_cls.yaml", PP, ("std: [0.229, 0.224", "std: [0.229, 0.244"), ("normalization", "error")),
    ("inference_cls.yaml", PP, ("resize_short: 256", "size: [256, 256]"), ("resize_mode", "error")),
    ("inference_cls.yaml", PP, ("scale: 0.00392157", "scale: 1.0"), ("normalization", "error")),
    ("lite_config.txt", PP, ("resize_short_size 256", "resize_short_size 224"), ("resize_size", "error")),
    ("pipeline.json", MM, ('"to_rgb": true', '"to_rgb": false'), ("channel_order", "error")),
    ("pipeline.json", MM, ("[58.395, 57.12", "[58.395, 62.22"), ("normalization", "error")),
    ("pipeline.json", MM, ('"scale": 256, "edge": "short"', '"scale": 224, "edge": "short"'), ("resize_size", "error")),
    ("pipeline.json", MM, ('{"type": "ResizeEdge", "scale": 256, "edge": "short"}', '{"type": "Resize", "size": [256, 256]}'),
     ("resize_mode", "error")),
    ("vdsp_params.json", TIMM, ('"meanr": 22459,\n    "meang": 22340,\n    "meanb": 22136,\n    "stdr": 21325,\n    '
                                '"stdg": 21284,\n    "stdb": 21292',
                                '"meanr": 22520,\n    "meang": 22520,\n    "meanb": 22520,\n    "stdr": 22520,\n    '
                                '"stdg": 22520,\n    "stdb": 22520'), ("normalization", "error")),
]


@pytest.mark.parametrize("name,up,edit,expected", INJECTED,
                         ids=[f"{n}:{e[0]}:{i}" for i, (n, _, _, e) in enumerate(INJECTED)])
def test_injected_error_is_caught(tmp_path: Path, name: str, up, edit, expected) -> None:  # type: ignore[no-untyped-def]
    old, new = edit
    assert old in (DATA / name).read_text(), "the injection must edit the file"
    _, clean, _ = _load(tmp_path, name)
    _, bad, _ = _load(tmp_path, name, lambda t: t.replace(old, new))
    found = _run_time(bad, up)
    assert expected in found
    if old != new:
        assert expected not in _run_time(clean, up), "the clean file must not carry the injected finding"


# ------------------------------------------------------------------ --fix: the corrected file reports nothing
FIXABLE = [("model.yml", TV, ("  - --reverse_input_channels\n", "")),
           ("accuracy-check.yml", TV, ("reader: pillow_imread", "reader: opencv_imread")),
           ("hb_mapper_nv12.yaml", TV, ("0.01712475 0.017507", "0.01712475 0.01607")),
           ("vamc_timm.yaml", TIMM, ("      size: 256", "      size: [256, 256]")),
           ("vdsp_params.json", TIMM, ('"stdg": 21284', '"stdg": 21439')),
           ("nvinfer_keras.txt", KERAS.preprocess, ("model-color-format=0", "model-color-format=1")),
           ("rknn_tv.yml", TV, ("quant_img_RGB2BGR: false", "quant_img_RGB2BGR: true")),
           ("rknn1_tv.yml", TV, ("reorder_channel: 0 1 2", "reorder_channel: 2 1 0")),
           ("inference_cls.yaml", PP, ("resize_short: 256", "size: [256, 256]")),
           ("lite_config.txt", PP, ("crop_size 224", "crop_size 192")),
           ("pipeline.json", MM, ('"to_rgb": true', '"to_rgb": false'))]


@pytest.mark.parametrize("name,up,edit", FIXABLE, ids=[f[0] for f in FIXABLE])
def test_fix_round_trips(tmp_path: Path, name: str, up, edit) -> None:  # type: ignore[no-untyped-def]
    imp, bad, path = _load(tmp_path, name, lambda t: t.replace(*edit))
    calib0 = bad.calibration_spec(up)
    assert _run_time(bad, up) or (calib0 is not None and calibration_vs_runtime(calib0, bad.spec(up)))
    fixed = imp.fix(path, path.read_text(), up)
    out = tmp_path / ("fixed-" + path.name)
    out.write_text(str(fixed))
    imp2, d, _ = importers.read(out)
    assert imp2.name == imp.name                                 # same format, still detected as such
    assert {f for f in _run_time(d, up) if f[0] not in imp.limits} == set()
    calib = d.calibration_spec(up)
    assert calib is None or not [f for f in calibration_vs_runtime(calib, d.spec(up)) if f.severity != "info"]


def test_deepstream_one_scale_for_three_stds(tmp_path: Path) -> None:
    """nvinfer's single net-scale-factor cannot express ImageNet's three stds: the error it implies is reported,
    and the fix writes the factor that halves the worst channel's error (a limit of the format, not a bug)."""
    cfg = tmp_path / "nvinfer_tv.txt"
    cfg.write_text((DATA / "nvinfer_keras.txt").read_text().replace("0.00784313725", str(1 / (255 * 0.224)))
                   .replace("127.5;127.5;127.5", "123.675;116.28;103.53").replace("network-input-order=1",
                                                                                  "network-input-order=0")
                   .replace("infer-dims=224;224;3", "infer-dims=3;224;224"))
    sq = TV.replace(resize_mode="squash", resize_size=None, interpolation="nearest")   # what nvinfer can do
    imp, d, _ = importers.read(cfg)
    (f,) = differences(sq, d.spec(sq))
    # 1 / (255 * 0.224) for all three: 1.15 % of the input range on R (std 0.229): an error
    assert f.field == "normalization" and f.severity == "error" and "channel R" in f.why
    fixed = tmp_path / "fixed.txt"
    fixed.write_text(str(imp.fix(cfg, cfg.read_text(), sq)))
    _, d2, _ = importers.read(fixed)
    (g,) = differences(sq, d2.spec(sq))
    assert g.field in imp.limits and g.severity == "warning" and float(g.why.split("up to ")[1].split(" %")[0]) < \
        float(f.why.split("up to ")[1].split(" %")[0])
    with pytest.raises(ConfigError, match="cannot be expressed"):
        imp.fix(cfg, cfg.read_text(), TV)                         # resize + crop: not an nvinfer thing


def test_mmdeploy_sdk_resizes_with_opencv() -> None:
    """mmpretrain's config resizes with PIL; the SDK with OpenCV: a warning the fix cannot remove (format limit)."""
    imp, d, _ = importers.read(DATA / "pipeline.json")
    assert _run_time(d, MM) == {("backend", "warning")} and "backend" in imp.limits
    assert _run_time(d, MM.replace(backend="cv2", antialias=False)) == set()


def test_rknn_calibration_swap_is_flagged(tmp_path: Path) -> None:
    _, d, _ = _load(tmp_path, "rknn_tv.yml", lambda t: t.replace("quant_img_RGB2BGR: false", "quant_img_RGB2BGR: true"))
    assert _run_time(d, TV) == set()
    calib = d.calibration_spec(TV)
    assert calib is not None
    assert {(f.field, f.severity) for f in calibration_vs_runtime(calib, d.spec(TV))} == {("channel_order", "error")}


@pytest.mark.realdata
@pytest.mark.skipif(REAL is None, reason="../shared/realdata is absent")
def test_tflite_metadata_of_the_real_files(tmp_path: Path) -> None:
    assert REAL is not None
    for name in ("tf2_mobilenet_v2_1.0_224_ptq.tflite", "mobilenet_v2_1.0_224_quant.tflite"):
        imp, d, _ = importers.read(REAL / "tflite" / name)
        assert imp.name == "tflite-metadata" and d.unknown == []
        assert d.fields["mean"] == (127.5,) * 3 and d.fields["std"] == (127.5,) * 3
        assert d.fields["crop_size"] == 224 and d.fields["layout"] == "NHWC" and d.fields["channel_order"] == "RGB"
        assert _run_time(d, KERAS.preprocess) == set()
    # inject an error in place (another family's normalization), audit, fix back: clean
    src = REAL / "tflite" / "tf2_mobilenet_v2_1.0_224_ptq.tflite"
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(imp.fix(src, "", KERAS.preprocess.replace(scale=1.0, mean=(128.0,) * 3, std=(58.0,) * 3)))  # type: ignore[arg-type]
    _, d, _ = importers.read(bad)
    assert ("normalization", "error") in _run_time(d, KERAS.preprocess)
    good = tmp_path / "good.tflite"
    good.write_bytes(imp.fix(bad, "", KERAS.preprocess))  # type: ignore[arg-type]
    _, d, _ = importers.read(good)
    assert _run_time(d, KERAS.preprocess) == set() and good.stat().st_size == src.stat().st_size
    with pytest.raises(ConfigError, match="one mean value"):
        imp.fix(src, "", TV)


# ------------------------------------------------------------------ the cost, on a synthetic model
def _images(n: int = 12) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        out.append(np.asarray(Image.fromarray(small).resize((320, 240), Image.Resampling.BILINEAR)))
    return out


def _colour_model(x: np.ndarray) -> np.ndarray:
    """Logits from per-channel means: sensitive to channel order and normalization, like a real model is."""
    m = x.mean(axis=(2, 3))                                       # NCHW -> N x 3
    w = np.array([[3.0, -1.0, -2.0], [-2.0, 3.0, -1.0], [-1.0, -2.0, 3.0], [0.5, 0.5, 0.5]])
    return m @ w.T


def test_cost_identical_and_faulted() -> None:
    imgs = _images()
    labels = _colour_model(np.stack([np.zeros((3, 2, 2))])).argmax(1).tolist() * len(imgs)
    same = measure(imgs, TV, TV, _colour_model, labels)
    assert same.mean_abs == 0 and same.psnr_db == float("inf") and same.agreement == 1.0
    assert same.top1_change == 0.0
    swapped = measure(imgs, TV, TV.replace(channel_order="BGR"), _colour_model, labels)
    assert swapped.mean_abs > 0.1 and swapped.psnr_db < 30 and swapped.agreement is not None
    assert swapped.agreement < 1.0 and swapped.agreement_ci is not None and swapped.agreement_ci[1] <= 1.0
    nv12 = measure(imgs, TV, TV.replace(input_color="nv12"))
    assert 0 < nv12.mean_abs < 0.1 and nv12.agreement is None


# ------------------------------------------------------------------ the CLI
@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("audit-images")
    for i, im in enumerate(_images(6)):
        Image.fromarray(im).save(d / f"im{i}.jpg", quality=95)
    return d


def test_cli_clean_config_passes_and_fix_is_clean(tmp_path: Path, folder: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "fixed.yml"
    rc = main(["audit", str(DATA / "model.yml"), "--card", "torchvision/mobilenet_v2.IMAGENET1K_V1", "--data",
               str(folder), "--workdir", str(tmp_path), "--fix", str(out)])
    doc = json.loads((tmp_path / "audit.json").read_text())
    assert rc == 0 and doc["verdict"] == "pass" and doc["fix"]["clean"]
    assert [f["field"] for f in doc["findings"]] == ["normalization"]
    assert doc["costs"]["whole config"]["n"] == 6 and doc["costs"]["whole config"]["psnr_db"] > 50
    assert "--scale_values=data[58.395,57.12,57.375]" in out.read_text()
    rc = main(["audit", str(out), "--card", "torchvision/mobilenet_v2.IMAGENET1K_V1", "--data", str(folder),
               "--workdir", str(tmp_path)])
    assert rc == 0 and json.loads((tmp_path / "audit.json").read_text())["findings"] == []


def test_cli_injected_error_fails(tmp_path: Path, folder: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "hb.yaml"
    bad.write_text((DATA / "hb_mapper_nv12.yaml").read_text().replace("input_type_train: 'rgb'",
                                                                       "input_type_train: 'bgr'"))
    rc = main(["audit", str(bad), "--card", "torchvision/mobilenet_v2.IMAGENET1K_V1", "--data", str(folder),
               "--workdir", str(tmp_path)])
    doc = json.loads((tmp_path / "audit.json").read_text())
    assert rc == 1 and doc["verdict"] == "fail"
    assert any("channel_order" in f for f in doc["failures"])
    assert doc["costs"]["channel_order"]["mean_abs"] > 0.5
    assert "FAIL" in capsys.readouterr().out
    # the run's report gets an audit section with the failing finding
    main(["report", "--workdir", str(tmp_path)])
    md = (tmp_path / "report.md").read_text()
    assert "## Audit (deployment configs)" in md and "hb.yaml" in md and "channel_order" in md
    assert "id='audit'" in (tmp_path / "report.html").read_text()


def test_cli_user_errors_are_one_line(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    rc = main(["audit", str(tmp_path / "missing.yml"), "--card", "torchvision/mobilenet_v2.IMAGENET1K_V1",
               "--workdir", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "no such file" in err and len(err.strip().splitlines()) == 1
    p = tmp_path / "x.yaml"
    p.write_text("a: 1\n")
    rc = main(["audit", str(p), "--card", "torchvision/mobilenet_v2.IMAGENET1K_V1", "--workdir", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "no known format" in err and "hint" in err and "Traceback" not in err


def test_cli_vamc_calibration_against_vdsp_runtime(tmp_path: Path, folder: Path) -> None:
    """VastAI: the vamc yaml declares the calibration, vdsp_params the run time (--runtime): compared both ways."""
    rc = main(["audit", str(DATA / "vamc_timm.yaml"), "--runtime", str(DATA / "vdsp_params.json"), "--card",
               "timm/mobilenetv2_100.ra_in1k", "--data", str(folder), "--workdir", str(tmp_path)])
    doc = json.loads((tmp_path / "audit.json").read_text())
    assert rc == 0 and doc["runtime"]["format"] == "vastai-vdsp" and doc["format"] == "vastai-vamc"
    found = {(f["field"], f["scope"], f["severity"]) for f in doc["findings"]}
    assert ("normalization", "run time", "info") in found                      # fp16: the format's limit
    assert ("interpolation", "calibration", "warning") in found                # bilinear assumed vs timm's bicubic
    # both bilinear; the vamc Resize's library is undeclared (timm's PIL), vdsp's resize_type 1 is OpenCV's
    assert ("backend", "calibration vs run time", "warning") in found
    assert ("interpolation", "run time", "warning") in found                   # resize_type 1 vs timm's bicubic
    assert ("normalization", "calibration vs run time", "info") in found
    assert doc["unknown"] == ["norma_type: 3"]                  # the vdsp numeric op code not pinned down, listed


def test_cli_refuses_before_any_work(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    cfg = DATA / "model.yml"
    for argv, text in ((["--fix", str(cfg)], "must not overwrite CONFIG"), (["--int8", "4"], "--int8 needs a model"),
                       (["--limit", "0"], "--limit"), (["--card", "nope/x"], "nope/x")):
        args = ["audit", str(cfg), "--card", "torchvision/mobilenet_v2.IMAGENET1K_V1", "--workdir", str(tmp_path)]
        rc = main(args + argv)
        err = capsys.readouterr().err
        assert rc == 2 and text in err and len(err.strip().splitlines()) == 1, (argv, err)


@pytest.mark.realdata
@pytest.mark.skipif(REAL is None, reason="../shared/realdata is absent")
def test_cli_real_weights_price_a_channel_swap(tmp_path: Path) -> None:
    """keras MobileNetV2 with the TFLite-derived ImageNet weights: an hb_mapper config for it (NV12 at run time)
    with the channels swapped fails; each difference is priced with a paired interval, and the int8 cost of
    calibrating on RGB while running on NV12 is measured."""
    cfg = tmp_path / "keras_hb.yaml"
    cfg.write_text((DATA / "hb_mapper_nv12.yaml").read_text()
                   .replace("input_type_train: 'rgb'", "input_type_train: 'bgr'")
                   .replace("input_layout_train: 'NCHW'", "input_layout_train: 'NHWC'")
                   .replace("mean_value: 123.675 116.28 103.53", "mean_value: 127.5")
                   .replace("scale_value: 0.01712475 0.017507 0.01742919", "scale_value: 0.0078431373"))
    assert REAL is not None
    weights = f"canonical:{REAL / 'tflite' / 'tf2_mobilenet_v2_1.0_224_ptq.tflite'}"
    rc = main(["audit", str(cfg), "--card", KERAS.id, "--weights", weights, "--limit", "24", "--int8", "8",
               "--workdir", str(tmp_path)])
    doc = json.loads((tmp_path / "audit.json").read_text())
    assert rc == 1
    assert {(f["field"], f["scope"]) for f in doc["findings"] if f["severity"] != "info"} == {
        ("channel_order", "run time"), ("channel_order", "calibration"), ("input_color", "run time"),
        ("input_color", "calibration vs run time")}
    assert doc["costs"]["input_color"]["agreement"] > doc["costs"]["channel_order"]["agreement"]
    # int8 (ORT static QDQ) calibrated on RGB as hb_mapper does vs on the NV12 run-time pixels, priced
    q = doc["int8"]
    assert q["n"] == 24 and q["calib_images"] == 8 and 0 <= q["agreement"] <= 1
    assert q["change_ci"][0] <= q["change"] <= q["change_ci"][1]
    whole = doc["costs"]["whole config"]
    assert whole["n"] == 24 and whole["agreement"] < 0.95 and whole["top1_change"] < 0
    lo, hi = whole["top1_change_ci"]
    assert lo <= whole["top1_change"] <= hi


def test_example_files_are_small() -> None:
    assert all(p.stat().st_size < 4000 for p in DATA.rglob("*") if p.is_file())


# ------------------------------------------------------------------ found by trying the CLI as a new user
TVID = "torchvision/mobilenet_v2.IMAGENET1K_V1"


def _one_line(rc: int, err: str, code: int, *words: str) -> None:
    assert rc == code and len(err.strip().splitlines()) == 1 and "Traceback" not in err, (rc, err)
    for w in words:
        assert w in err, (w, err)


def test_fix_out_is_refused_before_any_work(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """--fix OUT onto the --runtime file, CONFIG, an existing file (without --force) or a directory: refused in one
    line (exit 2) before anything is audited or written; --force replaces an existing file."""
    cfg, rt = tmp_path / "vamc.yaml", tmp_path / "vdsp.json"
    cfg.write_text((DATA / "vamc_timm.yaml").read_text())
    rt.write_text((DATA / "vdsp_params.json").read_text())
    other = tmp_path / "mine.yaml"
    other.write_text("# my notes\n")
    base = ["audit", str(cfg), "--card", "timm/mobilenetv2_100.ra_in1k", "--workdir", str(tmp_path / "wd")]
    for extra, words in (([ "--runtime", str(rt), "--fix", str(rt)], ["must not overwrite the --runtime file"]),
                         (["--fix", str(cfg)], ["must not overwrite CONFIG"]),
                         (["--fix", str(tmp_path / "." / cfg.name)], ["must not overwrite CONFIG"]),
                         (["--fix", str(other)], ["exists", "--force"]),
                         (["--fix", str(tmp_path)], ["is a directory"]),
                         (["--fix", str(tmp_path / "no" / "such" / "x.yaml")], ["does not exist"]),
                         (["--force"], ["--force goes with --fix"])):
        rc = main(base + extra)
        _one_line(rc, capsys.readouterr().err, 2, *words)
        assert not (tmp_path / "wd" / "audit.json").exists(), extra       # refused before any work
    assert cfg.read_text() == (DATA / "vamc_timm.yaml").read_text() and rt.read_text() == (DATA / "vdsp_params.json").read_text()
    assert other.read_text() == "# my notes\n"
    rc = main([*base, "--fix", str(other), "--force"])
    assert rc == 0 and "transform_ops" in other.read_text() and "# my notes" not in other.read_text()


# the four crashes a new user hit (exit 4) and what the one-line refusal must name: file, field, value
MALFORMED = [("nvinfer_keras.txt", "keras/mobilenet_v2.alpha_1.0_224", ("net-scale-factor=", "net-scale-factor=1/127.5\n#"),
              ["nvinfer_keras.txt", "net-scale-factor", "1/127.5"]),
             ("lite_config.txt", "ppcls/MobileNetV2.pretrained", ("crop_size 224", "crop_size abc"),
              ["lite_config.txt", "crop_size", "abc"]),
             ("model.yml", TVID, ("model_optimizer_args:", "model_optimizer_args: 5\nx:"),
              ["model.yml", "model_optimizer_args", "5"])]


@pytest.mark.parametrize("name,card,edit,words", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_value_is_one_line_naming_file_field_value(tmp_path: Path, capsys, name, card, edit,  # type: ignore[no-untyped-def]
                                                            words) -> None:
    text = (DATA / name).read_text()
    assert edit[0] in text
    p = tmp_path / name
    p.write_text(text.replace(edit[0], edit[1], 1))
    rc = main(["audit", str(p), "--card", card, "--workdir", str(tmp_path / "wd")])
    _one_line(rc, capsys.readouterr().err, 2, *words)


def test_malformed_model_yml_beside_accuracy_check(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    for f in (DATA / "omz").iterdir():
        (tmp_path / f.name).write_text(f.read_text())
    for bad, words in (("model_optimizer_args: 5\n", ["accuracy-check.yml", "model.yml", "model_optimizer_args", "5"]),
                       ("input_info: [{shape: [1, 3, abc, 224]}]\nmodel_optimizer_args: []\n",
                        ["accuracy-check.yml", "model.yml", "input_info.shape", "abc"]),
                       ("- just\n- a list\n", ["accuracy-check.yml", "model.yml", "mapping"])):
        (tmp_path / "model.yml").write_text(bad)
        rc = main(["audit", str(tmp_path / "accuracy-check.yml"), "--card", TVID, "--workdir", str(tmp_path / "wd")])
        _one_line(rc, capsys.readouterr().err, 2, *words)


def _leaves(doc, pre=()):  # type: ignore[no-untyped-def]
    yield pre
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else []
    for k, v in items:
        yield from _leaves(v, (*pre, k))


def _put(doc, where, value):  # type: ignore[no-untyped-def]
    if not where:
        return value
    out = json.loads(json.dumps(doc))
    cur = out
    for k in where[:-1]:
        cur = cur[k]
    cur[where[-1]] = value
    return out


WRONG = [5, -1, 2.5, "abc", "1/127.5", [1], [], {"a": 1}, None, True, float("nan")]


@pytest.mark.parametrize("name", sorted(p.name for p in DATA.iterdir() if p.is_file()))
def test_every_field_with_a_wrong_type_is_a_config_error(tmp_path: Path, name: str) -> None:
    """Every field (and every container) of every example file, replaced by a value of the wrong type or a bad
    number: the importer reads it, or refuses it with a ConfigError naming the file -- never another exception
    (which the CLI reports as a bug, exit 4). The fix is tried on what loads."""
    import yaml
    src = DATA / name
    fmt = importers.read(src)[0].name
    for sib in DATA.iterdir():
        if sib.is_file():
            (tmp_path / sib.name).write_bytes(sib.read_bytes())
    dst, text = tmp_path / name, src.read_text()
    if src.suffix in (".yml", ".yaml", ".json"):
        doc = json.loads(text) if src.suffix == ".json" else yaml.safe_load(text)
        variants = [json.dumps(_put(doc, w, v)) if src.suffix == ".json" else yaml.safe_dump(_put(doc, w, v))
                    for w in _leaves(doc) for v in WRONG]
    else:   # key=value / key value lines
        lines = text.splitlines()
        variants = []
        for i, line in enumerate(lines):
            if line.strip() and not line.lstrip().startswith(("#", "[")):
                sep = "=" if "=" in line else " "
                key = line.split(sep, 1)[0]
                variants += ["\n".join([*lines[:i], f"{key}{sep}{v}", *lines[i + 1:]]) + "\n"
                             for v in ("abc", "1/127.5", "", "-1", "1e400", "nan", "2.5", "1;2")]
    assert len(variants) > 20
    for v in variants:
        dst.write_text(v)
        try:
            imp, decl, t = importers.read(dst, fmt)
            decl.spec(TV)
            decl.calibration_spec(TV)
        except ConfigError as e:
            assert name in str(e), (str(e), v[:300])
            continue
        with contextlib.suppress(ConfigError):     # `audit --fix` names the file (cli/audit.py)
            imp.fix(dst, t, TV)


def test_a_markdown_file_is_not_a_config_and_every_hint_can_be_followed(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """README.md mentions every format: it is not "several formats", it is not a config. A file two formats
    recognize: the hint names only formats that read it, and following it (--format each) audits it."""
    readme = Path(__file__).parents[1] / "README.md"
    rc = main(["audit", str(readme), "--card", TVID, "--workdir", str(tmp_path / "wd")])
    err = capsys.readouterr().err
    _one_line(rc, err, 2, "README.md is a markdown document, not a deployment config")
    assert "--format" not in err
    both = tmp_path / "both.yaml"      # Model Optimizer arguments and an hb_mapper input_parameters in one file
    both.write_text((DATA / "model.yml").read_text() + (DATA / "hb_mapper_nv12.yaml").read_text())
    rc = main(["audit", str(both), "--card", TVID, "--workdir", str(tmp_path / "wd")])
    err = capsys.readouterr().err
    _one_line(rc, err, 2, "several formats recognized", "--format")
    named = err.split("--format:", 1)[1].split("can read it")[0].split(" or ")
    assert sorted(n.strip() for n in named) == ["horizon-hb-mapper", "openvino-model-yml"]
    for fmt in named:
        rc = main(["audit", str(both), "--card", TVID, "--format", fmt.strip(), "--workdir", str(tmp_path / "wd")])
        assert rc in (0, 1), (fmt, capsys.readouterr().err)
        assert json.loads((tmp_path / "wd" / "audit.json").read_text())["format"] == fmt.strip()
    # recognized by two, read by one: taken
    one = tmp_path / "one.yaml"
    one.write_text((DATA / "model.yml").read_text() + "input_parameters: {norm_type: x}\n")
    assert importers.read(one)[0].name == "openvino-model-yml"


@pytest.mark.parametrize("value", ["-5", "nan", "inf", "101"])
def test_max_top1_change_out_of_range_is_refused(tmp_path: Path, capsys, value: str) -> None:  # type: ignore[no-untyped-def]
    rc = main(["audit", str(DATA / "model.yml"), "--card", TVID, "--workdir", str(tmp_path), f"--max-top1-change={value}"])
    _one_line(rc, capsys.readouterr().err, 2, "--max-top1-change")
    assert not (tmp_path / "audit.json").exists()


def test_a_refused_audit_does_not_leave_an_earlier_pass_as_its_result(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """An audit that passed, then an audit of another config refused (--fix onto CONFIG): the report names the
    refused one as not audited, and the pass is the first config's only."""
    wd = tmp_path / "wd"
    assert main(["audit", str(DATA / "model.yml"), "--card", TVID, "--workdir", str(wd)]) == 0
    cfg, rt = tmp_path / "vamc.yaml", tmp_path / "vdsp.json"
    cfg.write_text((DATA / "vamc_timm.yaml").read_text())
    rt.write_text((DATA / "vdsp_params.json").read_text())
    rc = main(["audit", str(cfg), "--runtime", str(rt), "--fix", str(cfg), "--card", "timm/mobilenetv2_100.ra_in1k",
               "--workdir", str(wd)])
    assert rc == 2
    capsys.readouterr()
    main(["report", "--workdir", str(wd)])
    doc = json.loads((wd / "report.json").read_text())
    rows = {r["config"]: r for r in doc["audit"]}
    assert rows[str(DATA / "model.yml")]["verdict"] == "pass"
    assert rows[str(cfg)]["verdict"] == "not audited (exit 2)", rows
    assert any("must not overwrite" in f for f in rows[str(cfg)]["failures"])
    md = (wd / "report.md").read_text()
    assert "not audited (exit 2)" in md and "vamc.yaml" in md
    # the refused step is not credited with the audit.json it did not write
    steps = json.loads((wd / "run.json").read_text())["steps"]
    assert steps[0]["outputs"] == [str((wd / "audit.json").resolve())]
    assert steps[1]["outputs"] == [] and steps[1]["not_written"] == [str((wd / "audit.json").resolve())]
