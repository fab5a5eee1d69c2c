"""Canonical weights, TFLite import, transplant between the five architectures, cross-framework matrix, bisection."""
import numpy as np
import pytest

from parity import frameworks
from parity.paths import realdata_dir
from parity.preprocess import decode, preprocess_batch, resize
from parity.probes import probe_images
from parity.weights import canonical
from parity.weights import transplant as T
from parity.weights.bisect import bisect, bisect_onnx
from parity.weights.canonical import UNITS
from support import REFERENCE, REGISTRY, STACK_SIBLINGS, onnx_check, seeded_canonical

TV = REGISTRY.get("torchvision/mobilenet_v2.IMAGENET1K_V1")
CROSS = REFERENCE
VARIANTS = [(c, pad) for c in CROSS for pad in frameworks.get(c.framework).paddings]
# the ONNX conversion: timm, mmcls, tonylins (STACK_SIBLINGS) under -m slow only (CI time: 11.1 s): their canonical
# import, SAME padding and ONNX export are the torch stack's shared code (adapters/torch_common.py), in CI through
# [torchvision-symmetric] and [torchvision-same]; each adapter's canonical import for both paddings stays in CI in
# test_round_trip_through_every_framework_is_bit_exact, their native runs in test_cross_matrix_seeded, their SAME
# ONNX export with real weights in test_evaluate.py::test_real_weights_on_real_images_every_framework_and_onnx_agree[60]
ONNX_VARIANTS = [pytest.param(c, pad, marks=pytest.mark.slow) if c.id in STACK_SIBLINGS else (c, pad)
                 for c, pad in VARIANTS]
REAL = realdata_dir()
PTQ = REAL / "tflite" / "tf2_mobilenet_v2_1.0_224_ptq.tflite" if REAL else None
QUANT = REAL / "tflite" / "mobilenet_v2_1.0_224_quant.tflite" if REAL else None
needs_real = pytest.mark.skipif(REAL is None or not PTQ.is_file(), reason="../shared/realdata is absent")


@pytest.fixture(scope="module")
def seeded_canon(harness):
    """Canonical weights exported from seeded torchvision (symmetric padding, BN eps 1e-5)."""
    return seeded_canonical(harness, TV, "tv-seeded")


@pytest.fixture(scope="module")
def probe_x():
    spec = T.tflite_spec(1 / 127.5, 127)
    ims = [im for _, im in probe_images()]
    return preprocess_batch(ims, spec), np.stack([resize(decode(im), spec) for im in ims])


@pytest.fixture(scope="module")
def ptq_canon(harness):
    if REAL is None or not PTQ.is_file():
        pytest.skip("../shared/realdata is absent")
    return T.to_canonical(harness, PTQ)


def test_canonical_schema_is_torchvision_state_dict(seeded_canon):
    c = canonical.load(seeded_canon)
    assert len(UNITS) == 52 and UNITS[0].conv == "features.0.0" and UNITS[-1].conv == "features.18.0"
    assert c.bn_eps == 1e-5 and c.padding == "symmetric" and c.fc[0].shape == (1000, 1280)
    assert sum(u.kind == "depthwise" for u in UNITS) == 17 and [u.index for u in UNITS if u.stride == 2] == [0, 4, 10, 19, 40]


def test_canonical_rejects_a_wrong_file(tmp_path, seeded_canon):
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(canonical.CanonicalError, match="not a safetensors file"):
        canonical.load(bad)
    c = canonical.load(seeded_canon)
    del c.tensors["features.3.conv.1.0.weight"]
    with pytest.raises(canonical.CanonicalError, match="missing"):
        c.validate()


@pytest.mark.parametrize("card,pad", VARIANTS, ids=lambda v: v if isinstance(v, str) else v.framework)
def test_round_trip_through_every_framework_is_bit_exact(harness, seeded_canon, card, pad):
    """torchvision -> <framework> -> canonical: every tensor bit-identical, bn_eps carried (keras's 1e-3 is not
    imposed on torch statistics: the model takes the canonical epsilon)."""
    v = card.variant(padding=pad)
    built = harness.build(v, f"canonical:{seeded_canon}")
    out = harness.workdir / "canonical" / f"rt-{v.id.replace('/', '_')}.safetensors"
    harness.client(v.framework).export_canonical(built.key, out)
    back = canonical.load(out)
    diffs = canonical.identical(canonical.load(seeded_canon), back.replace(padding="symmetric"))
    assert diffs == [], diffs[:5]


def test_torchvision_keras_torchvision_native_files(harness, seeded_canon, tmp_path):
    """Through keras's own weight file (stock BN eps 1e-3, variance shifted) and back into torchvision's."""
    res = T.transplant(harness, seeded_canon, "keras", tmp_path / "w.weights.h5")
    assert res["max_var_shift"] == pytest.approx(1e-3 - 1e-5, rel=1e-3)
    keras_card = REGISTRY.get("keras/mobilenet_v2.alpha_1.0_224")
    k_file = harness.build(keras_card, f"file:{tmp_path / 'w.weights.h5'}")
    # the same symmetric-trained weights in keras's SAME-padded model, pinned explicitly (a card that leaves its
    # padding open would take the file's and be refused: keras cannot be built symmetric)
    k_canon = harness.build(keras_card.variant(padding="same"), f"canonical:{seeded_canon}")
    xs = preprocess_batch([im for _, im in probe_images()], keras_card.preprocess)
    p = harness.pool.put_array(xs, "k")
    a = np.load(harness.client("keras").run(k_file.key, p)[0])
    b = np.load(harness.client("keras").run(k_canon.key, p)[0])
    # a stock keras model on the written file == the canonical-built model, to fp32 rounding of the shifted
    # variances (measured 1.2e-4 on logits of std 4; the suite's fp32 tolerance is 5e-3)
    from parity.compare import ONNX_FP32
    assert np.abs(a - b).max() < ONNX_FP32.max_abs
    back = T.to_canonical(harness, tmp_path / "w.weights.h5", out=tmp_path / "back.safetensors")
    c0, c1 = canonical.load(seeded_canon), canonical.load(back)
    assert c1.bn_eps == 1e-3
    var_ok = all(np.allclose(c0.tensors[k] + 1e-5, c1.tensors[k] + 1e-3, rtol=0, atol=1e-6)
                 for k in c0.tensors if k.endswith("running_var"))
    others = [k for k in c0.tensors if not k.endswith("running_var") and not np.array_equal(c0.tensors[k], c1.tensors[k])]
    assert var_ok and others == []


def test_cross_matrix_seeded(harness, seeded_canon, probe_x):
    x, _ = probe_x
    m = T.cross_matrix(harness, seeded_canon, x)
    for a, b, mx, agree in m.pairs():
        if m.padding[a] == m.padding[b]:
            assert mx <= T.EXACT_MAX_ABS and agree == 1.0, (a, b, mx, agree)
        else:  # same weights, other padding: a different model
            assert mx > 0.1, (a, b, mx)
    from parity.compare import nontrivial_failures
    assert nontrivial_failures(m.logits["torchvision[symmetric]"]) == []  # realistic logits


@pytest.mark.parametrize("card,pad", ONNX_VARIANTS, ids=lambda v: v if isinstance(v, str) else v.framework)
def test_transplanted_models_convert_to_onnx_with_parity(harness, seeded_canon, card, pad):
    r = onnx_check(harness, card.variant(padding=pad), f"canonical:{seeded_canon}")
    assert r.status == "pass", r.reason


def test_bisection_names_the_first_stride2_conv_for_a_padding_pair(harness, seeded_canon, probe_x):
    x, _ = probe_x
    b = bisect(harness, TV.variant(padding="symmetric"), TV.variant(padding="same"), f"canonical:{seeded_canon}", x)
    assert b.first == 0 and UNITS[0].stride == 2, b.message()
    assert "features.0.0 (stem, block 0, stride 2)" in b.message() and "neighbours" in b.message()
    k = bisect(harness, REGISTRY.get("keras/mobilenet_v2.alpha_1.0_224").variant(padding="same"),
               TV.variant(padding="symmetric"),
                 f"canonical:{seeded_canon}", x)
    assert k.first == 0, k.message()


@pytest.mark.parametrize("card", [c for c in CROSS if c.framework in ("timm", "keras", "ppcls")], ids=lambda c: c.framework)
def test_bisection_finds_a_transposed_depthwise_kernel(harness, seeded_canon, probe_x, card):
    dw = [u for u in UNITS if u.kind == "depthwise"][5]
    x, _ = probe_x
    pad = frameworks.get(card.framework).native_padding
    good = card.variant(padding=pad)
    bad = card.variant(padding=pad, faults=[f"transpose_dw:{dw.index}"])
    b = bisect(harness, good, bad, f"canonical:{seeded_canon}", x)
    assert b.first == dw.index, b.message()
    assert all(e <= b.tol for e in b.errors[: dw.index])


def test_ppcls_refuses_widths_int_rounding_cannot_match(harness, tmp_path):
    half = REGISTRY.get("torchvision/mobilenet_v2.IMAGENET1K_V1")
    half = half.variant(width_mult=0.5)
    built = harness.build(half, "seeded")
    path = tmp_path / "half.safetensors"
    harness.client("torchvision").export_canonical(built.key, path)
    pp = REGISTRY.get("ppcls/MobileNetV2_x0_5.pretrained")
    r = onnx_check(harness, pp, f"canonical:{path}")
    assert r.status == "error" and "width mismatch" in r.reason and "int()" in r.reason


def test_ppcls_with_a_trained_expand_conv_cannot_leave_exactly(harness, tmp_path):
    pp = REGISTRY.get("ppcls/MobileNetV2.pretrained")
    built = harness.build(pp, "seeded")
    from parity.workers import WorkerError
    with pytest.raises(WorkerError, match="trained 1x1 expand conv"):
        harness.client("ppcls").export_canonical(built.key, tmp_path / "x.safetensors")


@needs_real
@pytest.mark.realdata
@pytest.mark.parametrize(("cid", "why"), [("timm/mobilenetv2_110d.ra_in1k", "depth differs (67 conv units"),
                                          ("keras/mobilenet_v2.alpha_0.35_96", "widths differ")])
def test_real_weights_skip_the_cards_they_do_not_fit(harness, cid, why):
    """MobileNetV2 1.0 weights on a deeper or narrower card: a skip with why, not an error (`tox -e parity` had
    errored on timm's 110d and 120d)."""
    r = onnx_check(harness, REGISTRY.get(cid), "real")
    assert r.status == "skip" and why in r.reason, r.reason


@needs_real
@pytest.mark.realdata
@pytest.mark.parametrize("name", ["tf2_mobilenet_v2_1.0_224_ptq.tflite", "mobilenet_v2_1.0_224_quant.tflite"])
def test_tflite_import(name):
    from parity.weights.tflite_import import read
    c, info = read(REAL / "tflite" / name)
    assert c.padding == "same" and c.bn_eps == 0.0 and c.fc[0].shape == (1000, 1280)
    assert c.channel_plan()[:3] == [32, 32, 16] and c.channel_plan()[-1] == 1280
    assert ("per-channel int8" if "ptq" in name else "per-tensor uint8") in info.quantization
    assert info.ops.count("CONV_2D") + info.ops.count("DEPTHWISE_CONV_2D") == 53


@pytest.mark.slow   # CI time (66 s): cross_matrix and exact pairs on seeded weights (test_cross_matrix_seeded); the
# real weights in every framework (test_evaluate.py::test_real_weights_on_real_images_every_framework_and_onnx_agree[60]);
# the interpreter branch and the coral labels (test_cross_matrix_runs_the_interpreter_on_the_same_pixels)
@needs_real
@pytest.mark.realdata
def test_real_weights_agree_across_exact_pairs_and_with_the_interpreter(harness, ptq_canon):
    """Coral images + the first 60 ImageNet sample images: exact pairs agree on every image; the float models
    agree with the quantized interpreter on most (its scores have 1/256 resolution)."""
    imgs = sorted((REAL / "images" / "coral").iterdir()) + sorted((REAL / "images" / "imagenet_sample_1000").glob("*.JPEG"))[:60]
    spec = T.tflite_spec(1 / 127.5, 127)
    x = preprocess_batch(imgs, spec)
    u8 = np.stack([resize(decode(p), spec) for p in imgs])
    m = T.cross_matrix(harness, ptq_canon, x, tflite=(str(PTQ), u8))
    for a, b, mx, agree in m.pairs():
        if "tflite" in (a + b):
            continue
        if m.padding[a] == m.padding[b]:
            assert agree == 1.0 and mx <= T.EXACT_MAX_ABS, (a, b, mx, agree)
    i, j = m.names.index("keras[same]"), m.names.index("tflite-interpreter")
    assert m.top1_agree[i, j] >= 0.85, m.top1_agree[i, j]
    k = m.names.index("torchvision[symmetric]")
    assert m.top1_agree[i, k] < 1.0  # the padding difference changes real predictions
    coral = {p.stem: int(m.logits["keras[same]"][n].argmax()) for n, p in enumerate(imgs[:17])}
    labels = (REAL / "tflite" / "imagenet_labels.txt").read_text().splitlines()[1:]
    assert labels[coral["grace_hopper"]] == "military uniform" and labels[coral["parrot"]] == "macaw"
    from parity.compare import nontrivial_failures
    assert nontrivial_failures(m.logits["keras[same]"]) == []  # real logits: spread ~15-25 units, distinct top-5


@needs_real
@pytest.mark.realdata
def test_cross_matrix_runs_the_interpreter_on_the_same_pixels(harness, ptq_canon):
    """cross_matrix's TFLite branch (tflite_run in the TF worker: dequantized scores, background class dropped; its
    probabilities against the float model's softmax) on the 17 coral images and keras only; every framework on 77
    real images: test_real_weights_agree_across_exact_pairs_and_with_the_interpreter (-m slow)."""
    imgs = sorted((REAL / "images" / "coral").iterdir())
    spec = T.tflite_spec(1 / 127.5, 127)
    u8 = np.stack([resize(decode(p), spec) for p in imgs])
    m = T.cross_matrix(harness, ptq_canon, preprocess_batch(imgs, spec), tflite=(str(PTQ), u8), only=("keras",))
    assert m.names == ["keras[same]", T.INTERPRETER] and m.padding[T.INTERPRETER] == "same", (m.names, m.padding)
    itp = m.logits[T.INTERPRETER]
    assert itp.shape == (len(imgs), 1000), itp.shape                     # the background class dropped
    assert itp.min() >= 0.0 and (itp.sum(1) <= 1.01).all(), itp.sum(1)   # dequantized probabilities (1/256 steps)
    assert 0.0 < m.max_abs[0, 1] <= 1.0, m.max_abs                       # probabilities vs keras's softmax
    assert m.top1_agree[0, 1] >= 0.85, m.top1_agree                     # measured: 17 of 17, max_abs 0.14
    labels = (REAL / "tflite" / "imagenet_labels.txt").read_text().splitlines()[1:]
    for name, label in (("grace_hopper", "military uniform"), ("parrot", "macaw")):
        n = [p.stem for p in imgs].index(name)
        assert labels[int(m.logits["keras[same]"][n].argmax())] == label == labels[int(itp[n].argmax())], name


@pytest.mark.slow   # CI time (8.4 s): the transplant CLI from a .tflite
# (test_cli_inputs.py::test_transplant_warns_when_the_stock_target_pads_differently), a missing source
# (test_cli_inputs.py::test_bad_input_is_one_line_before_any_worker[transplant missing source]), the QAT file's import
# (test_tflite_import[mobilenet_v2_1.0_224_quant.tflite]), timm's save_native
# (test_weight_files.py::test_real_weight_files_pass_the_parents_format_check)
@needs_real
@pytest.mark.realdata
def test_transplant_cli_writes_a_loadable_native_file(tmp_path):
    import subprocess
    import sys
    out = tmp_path / "mbv2.pth"
    p = subprocess.run([sys.executable, "-m", "parity.cli", "transplant", str(QUANT), "--to", "timm", "--out", str(out),
                        "--workdir", str(tmp_path)], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout[-1500:] + p.stderr[-1500:]
    assert out.is_file() and "same padding" in p.stdout
    p = subprocess.run([sys.executable, "-m", "parity.cli", "transplant", str(tmp_path / "nope.tflite"), "--to", "keras",
                        "--workdir", str(tmp_path)], capture_output=True, text=True)
    assert p.returncode == 2 and "not found" in p.stderr and "Traceback" not in p.stderr


# mmcls under -m slow only (CI time: 7.8 s): its activations are torch_common.activations, as torchvision's, which
# stays in CI (timm's BatchNormAct2d branch of it: test_bisection_finds_a_transposed_depthwise_kernel[timm])
@pytest.mark.parametrize("cid", ["torchvision/mobilenet_v2.IMAGENET1K_V1",
                                 pytest.param("mmcls/mobilenet-v2_8xb32_in1k.20200708-3b2dc3af", marks=pytest.mark.slow),
                                 "ppcls/MobileNetV2.pretrained"])
def test_native_vs_onnx_bisection_finds_a_transposed_kernel_in_the_onnx_file(harness, probe_x, cid, tmp_path):
    """Native hooks vs every BatchNormalization output of the ONNX graph: clean -> no divergence; one depthwise
    kernel transposed inside the exported ONNX file -> that unit."""
    import onnx
    from onnx import numpy_helper
    card = REGISTRY.get(cid)
    x, _ = probe_x
    clean = bisect_onnx(harness, card, "seeded", x)
    assert clean.first is None, clean.message()
    path = harness.export(card, "seeded", exporter=frameworks.get(card.framework).bisect_exporter).path
    m = onnx.load(path)
    dw_nodes = [n for n in m.graph.node if n.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in n.attribute)]
    target = dw_nodes[5]
    init = next(i for i in m.graph.initializer if i.name == target.input[1])
    w = numpy_helper.to_array(init)
    init.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(w.transpose(0, 1, 3, 2)), init.name))
    bad = tmp_path / "bad.onnx"
    onnx.save(m, bad)
    b = bisect_onnx(harness, card, "seeded", x, onnx_path=bad)
    dw = [u for u in UNITS if u.kind == "depthwise"][5]
    assert b.first == dw.index, b.message()
    assert "first diverging layer" in b.message() and dw.conv in b.message()


def test_keras_graph_refuses_layer_bisection_with_the_reason(harness, probe_x):
    x, _ = probe_x
    with pytest.raises(T.TransplantError, match="folded"):
        bisect_onnx(harness, REGISTRY.get("keras/mobilenet_v2.alpha_1.0_224"), "seeded", x)
