"""`mbv2-parity verify`: refusals (truncated, unknown, unsupported, foreign task) before any work, identification and
a passing verdict on artifacts made in the test from seeded weights by each toolchain's own export, the injected
faults each caught with its named finding, a worker crash retried one image at a time, and the two real TFLite
files of ../shared/realdata."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from parity.cli import main
from parity.paths import realdata_dir
from parity.verify.artifact import open_artifact
from parity.verify.formats import ArtifactRefused
from support import REGISTRY

REAL = realdata_dir()
TF2 = REAL / "tflite" / "tf2_mobilenet_v2_1.0_224_ptq.tflite" if REAL else None
QAT = REAL / "tflite" / "mobilenet_v2_1.0_224_quant.tflite" if REAL else None
needs_real = pytest.mark.skipif(TF2 is None or not TF2.is_file(), reason="no ../shared/realdata")
TV = "torchvision/mobilenet_v2.IMAGENET1K_V1"


def verify(tmp_path, *args):
    out = tmp_path / "verify.json"
    rc = main(["verify", *map(str, args), "--workdir", str(tmp_path / "wd"), "--json", str(out)])
    return rc, (json.loads(out.read_text()) if out.is_file() else None)


# ------------------------------------------------------------------------------------------------ refusals
@needs_real
def test_truncated_tflite_is_refused_in_one_line(tmp_path, capsys):
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(TF2.read_bytes()[: TF2.stat().st_size // 2])
    rc, _ = verify(tmp_path, cut)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "truncated" in err, err


def test_unknown_files_are_refused(tmp_path, capsys):
    junk = tmp_path / "model.bin"
    junk.write_bytes(b"\x00garbage" * 100)
    assert verify(tmp_path, junk)[0] == 2
    assert "not a format verify knows" in capsys.readouterr().err


def _tiny_onnx(path: Path, classes: int) -> Path:
    import onnx
    from onnx import TensorProto, helper
    w = helper.make_tensor("w", TensorProto.FLOAT, [classes, 3], np.ones(3 * classes, np.float32).tolist())
    g = helper.make_graph([helper.make_node("GlobalAveragePool", ["x"], ["p"]),
                           helper.make_node("Flatten", ["p"], ["f"]),
                           helper.make_node("Gemm", ["f", "w"], ["y"], transB=1)], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 224, 224])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, classes])], [w])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_a_file_for_another_task_is_refused_before_any_work(tmp_path, capsys):
    rc, _ = verify(tmp_path, _tiny_onnx(tmp_path / "ten.onnx", 10))
    err = capsys.readouterr().err
    assert rc == 2 and "another task" in err
    assert not (tmp_path / "wd" / "deploy").exists()


def test_truncated_onnx_is_refused(tmp_path):
    p = _tiny_onnx(tmp_path / "ok.onnx", 1000)
    p.write_bytes(p.read_bytes()[:-20])
    with pytest.raises(ArtifactRefused, match="truncated"):
        open_artifact(p)


# ------------------------------------------------------------------------------------------------ TorchScript (torch worker)
def _torchscript(harness, card_id: str, path: Path) -> Path:
    card = REGISTRY.get(card_id)
    b = harness.build(card, "seeded")
    return Path(harness.client(card.framework).deploy_export(b.key, "torchscript", path, {})["path"])


def test_torchscript_from_seeded_weights_is_identified_and_passes(harness, tmp_path):
    rc, doc = verify(tmp_path, _torchscript(harness, TV, tmp_path / "tv.pt"))
    assert rc == 0, doc
    assert doc["identification"]["identical"] and doc["card"] == TV and doc["weights"] == "seeded"
    assert doc["verdict"] == "pass" and doc["probe"]["metrics"]["top1_agree"] == 1.0


def test_another_cards_weights_are_named(harness, tmp_path):
    other = "timm/mobilenetv2_100.ra_in1k"
    rc, doc = verify(tmp_path, _torchscript(harness, other, tmp_path / "timm.pt"), "--card", TV)
    assert rc == 1
    assert doc["identification"]["matches"][0]["card"] == other
    assert any(f["name"] == "other-weights" and other in f["text"] for f in doc["findings"])


def test_a_worker_crash_at_batch_2_is_retried_one_image_at_a_time(harness, tmp_path):
    art = open_artifact(_torchscript(harness, TV, tmp_path / "tv.pt"))
    art.fault = "crash_above_batch:1"
    art.load(harness)
    x = np.random.default_rng(0).normal(size=(3, 3, 224, 224)).astype(np.float32)
    y = art.run(harness, x)
    assert y.shape == (3, 1000)
    assert art.crashed_at == 3 and "crashes at batch 3: ran one image at a time" in art.notes[0]
    clean = open_artifact(art.path)
    clean.load(harness)
    np.testing.assert_allclose(clean.run(harness, x), y, rtol=1e-4, atol=1e-4)


# -------------------------------------------------------------------------------------------- ExecuTorch .pte (executorch host)
def _pte(harness, card, path: Path, mode: str = "seeded") -> Path:
    """A .pte lowered by the ExecuTorch host from the card built there (the `executorch-fp32` runtime's path)."""
    b = harness.build(card, mode, host="executorch")
    return Path(harness.client("executorch").deploy_export(b.key, "executorch", path, {"quantize": False})["path"])


@pytest.mark.slow   # CI time (50 s): the runtime's .pte read and run by verify's runner
# (test_executorch.py::test_verify_reads_and_runs_the_runtimes_pte), the lowering (test_executorch.py's fp32 tests), a
# truncated .pte refused (test_a_pte_shorter_than_its_header_says_is_refused_before_any_work); identification and the
# probe verdict are the same code for every format (the other formats here)
def test_pte_from_seeded_weights_is_identified_and_passes(harness, tmp_path):
    path = _pte(harness, REGISTRY.get(TV), tmp_path / "tv.pte")
    rc, doc = verify(tmp_path, path)
    assert doc is not None and doc["format"] == "executorch", doc
    assert doc["io"]["input_shape"] == [1, 3, 224, 224] and doc["io"]["output_shape"] == [1, 1000], doc["io"]
    assert doc["identification"]["identical"] and doc["card"] == TV and doc["weights"] == "seeded", \
        doc["identification"]
    assert doc["precision"] == "fp32" and doc["detail"]["delegates"][0]["backend"] == "XnnpackBackend"
    assert doc["verdict"] == "pass" and rc == 0, doc["failures"]
    assert doc["probe"]["judged"] and doc["probe"]["metrics"]["top1_agree"] == 1.0
    cut = tmp_path / "cut.pte"      # a truncated copy: refused before any worker starts
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ArtifactRefused, match="truncated ExecuTorch program"):
        open_artifact(cut)


def test_a_pte_shorter_than_its_header_says_is_refused_before_any_work(tmp_path):
    """The .pte extended header (eh00: its length, program size, segment base offset) against the file's length: a
    copy cut short is refused before any worker starts; the same header with the bytes it promises is read."""
    head = (b"\0\0\0\0ET12" + b"eh00" + (24).to_bytes(4, "little")              # file id, extended header, its length
            + (4096).to_bytes(8, "little") + (4096).to_bytes(8, "little"))      # program size, segment base offset
    cut = tmp_path / "cut.pte"
    cut.write_bytes(head + b"\0" * 100)
    with pytest.raises(ArtifactRefused, match="truncated ExecuTorch program"):
        open_artifact(cut)
    whole = tmp_path / "whole.pte"
    whole.write_bytes(head + b"\0" * (4096 - len(head)))
    assert open_artifact(whole).fmt.name == "executorch"


@pytest.mark.parametrize("content,message", [(b"junk\n", "not an ExecuTorch program"), (b"", "empty file"),
                                             (b"\0\0\0\0XX12eh00" + b"\0" * 64, "not an ExecuTorch program")],
                         ids=["junk", "empty", "other-identifier"])
def test_a_file_named_pte_that_is_no_executorch_program_is_refused_before_any_work(tmp_path, content, message):
    """A .pte without ExecuTorch's file identifier is refused in one line (it reached the ExecuTorch host, whose
    loader answered 'RuntimeError: Failed to create MmapDataLoader ... 0x:22', exit 1)."""
    bad = tmp_path / "x.pte"
    bad.write_bytes(content)
    with pytest.raises(ArtifactRefused, match=message):
        open_artifact(bad)


@pytest.mark.slow   # CI time (44 s): the bgr_input model fault and its channel-order finding on the ONNX export
# (test_a_model_that_wants_bgr_by_its_first_conv_fails_with_channel_order); verify on a .pte as above
def test_pte_of_a_model_that_wants_bgr_fails_with_channel_order(harness, tmp_path):
    # the card's seeded weights (a variant's own id would seed others), its first conv's input channels reversed
    canon = tmp_path / "tv.safetensors"
    harness.client("torchvision").export_canonical(harness.build(REGISTRY.get(TV), "seeded").key, canon)
    card = REGISTRY.get(TV).variant(faults=["bgr_input"])
    rc, doc = verify(tmp_path, _pte(harness, card, tmp_path / "bgr.pte", f"canonical:{canon}"), "--card", TV,
                     "--weights", "seeded")
    assert rc == 1, doc
    assert [f["name"] for f in doc["findings"] if f["severity"] == "error"] == ["channel-order"], doc["findings"]


# ------------------------------------------------------------------------------------------------ each toolchain's own export
KERAS = "keras/mobilenet_v2.alpha_1.0_224"
PADDLE = "ppcls/MobileNetV2.pretrained"


def _exported(harness, card_id: str, runtime: str, path: Path) -> Path:
    b = harness.build(REGISTRY.get(card_id), "seeded")
    return Path(harness.client(REGISTRY.get(card_id).framework).deploy_export(b.key, runtime, path, {})["path"])


@pytest.fixture(scope="module")
def seeded_files(harness, tmp_path_factory):
    """One file per format, made once from seeded weights by each toolchain's own export: OpenVINO IR by
    openvino.convert_model of the suite's ONNX export, TFLite by the keras card's TFLiteConverter (the `tflite`
    runtime's export), a Paddle inference model by paddle.jit.save (the `paddle-inference` runtime's), a .keras file
    by keras.Model.save, a SavedModel by keras.Model.export."""
    d = tmp_path_factory.mktemp("seeded-files")
    made: dict[str, Path] = {}

    def get(fmt: str) -> Path:
        if fmt not in made:
            if fmt == "openvino":
                onnx_path = harness.export(REGISTRY.get(TV), "seeded").path
                made[fmt] = Path(harness.deploy().ov_convert(Path(onnx_path), d / "tv.xml")["path"])
            elif fmt == "tflite":
                made[fmt] = _exported(harness, KERAS, "tflite", d / "keras.tflite")
            elif fmt == "paddle":
                made[fmt] = _exported(harness, PADDLE, "paddle-inference", d / "ppcls" / "inference.pdmodel")
            elif fmt == "keras":
                made[fmt] = _exported(harness, KERAS, "keras-file", d / "keras.keras")
            elif fmt == "savedmodel":
                made[fmt] = _exported(harness, KERAS, "savedmodel", d / "keras_savedmodel")
        return made[fmt]
    return get


# under -m slow only: openvino (CI time: 5.2 s; the same IR verified in CI by
# test_openvino_ir_on_a_bf16_read_back_is_identified_at_fp32_and_judged_as_deployed, OpenVINO IRs at this CPU's own
# read-back by the three MO tests below) and keras (CI time: 17.9 s; the keras-file export, the TF worker's load_model
# runner, identification and pass in CI by test_keras_full_model_h5_from_seeded_weights_is_identified_and_passes, the
# .keras suffix and a damaged zip by test_a_keras_file_is_told_by_its_suffix_and_its_zip_is_checked)
@pytest.mark.parametrize("fmt,card,shape", [pytest.param("openvino", TV, [None, 3, 224, 224], marks=pytest.mark.slow),
                                            ("tflite", KERAS, [1, 224, 224, 3]),
                                            ("paddle", PADDLE, [None, 3, 224, 224]),
                                            pytest.param("keras", KERAS, [None, 224, 224, 3], marks=pytest.mark.slow),
                                            ("savedmodel", KERAS, [None, 224, 224, 3])])
def test_each_format_from_seeded_weights_is_identified_and_passes(seeded_files, tmp_path, fmt, card, shape):
    rc, doc = verify(tmp_path, seeded_files(fmt))
    assert doc is not None and doc["format"] == fmt
    assert doc["io"]["input_shape"] == shape and doc["io"]["output_shape"][-1] == 1000, doc["io"]
    assert doc["identification"]["identical"] and doc["card"] == card and doc["weights"] == "seeded", \
        doc["identification"]
    assert doc["identification"]["ran_at"] == "fp32" and doc["verdict"] == "pass" and rc == 0, doc["failures"]
    if doc["precision"] == "fp32":
        assert doc["probe"]["judged"] and doc["probe"]["metrics"]["top1_agree"] == 1.0
    else:   # read back: OpenVINO's default ran this fp32 IR at bf16 on this CPU (AVX512_BF16): the branch below
        assert fmt == "openvino" and doc["precision"] == "bf16", doc["precision"]
        _bf16_branch(doc)


def _bf16_branch(doc):
    """An fp32 OpenVINO IR the plugin runs at bf16: identified at the file's own precision (INFERENCE_PRECISION_HINT
    f32, the fp32 threshold), judged as deployed (bf16: seeded weights are not judged), and the output says so."""
    assert doc["identification"]["threshold"] == 0.995 and doc["identification"]["identical"], doc["identification"]
    assert not doc["probe"]["judged"] and "bf16 on seeded weights is not judged" in doc["probe"]["why"], doc["probe"]
    assert any("identified with INFERENCE_PRECISION_HINT f32" in n for n in doc["notes"]), doc["notes"]


def test_openvino_ir_on_a_bf16_read_back_is_identified_at_fp32_and_judged_as_deployed(seeded_files, tmp_path,
                                                                                      monkeypatch):
    """The branch a CPU with BF16 takes, on any CPU: the plugin's read-back of a default run injected as bf16 (its
    numbers stay the CPU's own); identification must run with the f32 hint, the verdict on the default run."""
    from parity.verify.artifact import Artifact
    real, exact_calls = Artifact._call, []

    def bf16_cpu(self, h, inp, options):
        r = real(self, h, inp, options)
        if self.fmt.name == "openvino":
            exact_calls.append(bool(options.get("f32")))
            if not options.get("f32"):
                r = {**r, "precision": "bf16", "detail": {"compute_layers": {"bf16": 53}}}
        return r
    monkeypatch.setattr(Artifact, "_call", bf16_cpu)
    rc, doc = verify(tmp_path, seeded_files("openvino"))
    assert doc is not None and doc["precision"] == "bf16" and rc == 0, doc
    assert doc["identification"]["ran_at"] == "fp32" and doc["card"] == TV, doc["identification"]
    _bf16_branch(doc)
    assert True in exact_calls and False in exact_calls, exact_calls   # identified exact, judged as deployed


# ------------------------------------------------------------------------------------------------ ONNX faults (deploy host)
def _onnx_variant(harness, tmp_path, fault: str) -> Path:
    import onnx
    from onnx import helper, numpy_helper
    card = REGISTRY.get(TV)
    m = onnx.load(harness.export(card, "seeded").path)
    g = m.graph
    x, y = g.input[0].name, g.output[0].name
    for n in g.node:
        for i, v in enumerate(n.input):
            if v == x and fault in ("bgr", "baked"):
                n.input[i] = "x_in"
            if v == y and fault in ("offset", "background"):
                pass
    if fault == "bgr":       # a model that wants BGR: it swaps the channels back first
        g.initializer.append(numpy_helper.from_array(np.array([2, 1, 0], np.int64), "rev"))
        g.node.insert(0, helper.make_node("Gather", [x, "rev"], ["x_in"], axis=1))
    elif fault == "bgr_weights":   # a model that wants BGR by its weights: the first conv's input channels reversed
        conv = next(n for n in g.node if n.op_type == "Conv")
        w = next(t for t in g.initializer if t.name == conv.input[1])
        w.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(w)[:, ::-1].copy(), w.name))
    elif fault == "baked":   # normalization baked in: the model takes 0-255 pixels
        s = card.preprocess
        a = np.array([s.scale / d for d in s.std], np.float32).reshape(1, 3, 1, 1)
        b = np.array([-mu / d for mu, d in zip(s.mean, s.std)], np.float32).reshape(1, 3, 1, 1)
        g.initializer.extend([numpy_helper.from_array(a, "na"), numpy_helper.from_array(b, "nb")])
        g.node.insert(0, helper.make_node("Mul", [x, "na"], ["x_m"]))
        g.node.insert(1, helper.make_node("Add", ["x_m", "nb"], ["x_in"]))
    elif fault in ("offset", "background"):   # 1001 outputs, background first; the offset fault keeps 0..999
        for n in g.node:
            for i, v in enumerate(n.output):
                if v == y:
                    n.output[i] = "y_1000"
        g.initializer.append(numpy_helper.from_array(np.array([0, 1, 0, 0], np.int64), "pads"))
        g.node.append(helper.make_node("Pad", ["y_1000", "pads"], ["y_1001" if fault == "offset" else y]))
        if fault == "offset":   # classes 0..999 of the 1001: output k is class k-1 (the background kept, 999 lost)
            g.initializer.extend(numpy_helper.from_array(np.array([v], np.int64), n)
                                 for n, v in (("s0", 0), ("s1", 1000), ("ax", 1)))
            g.node.append(helper.make_node("Slice", ["y_1001", "s0", "s1", "ax"], [y]))
        g.output[0].type.tensor_type.shape.dim[1].dim_value = 1000 if fault == "offset" else 1001
    elif fault == "scrambled":   # weights of no card: every conv's weights permuted
        rng = np.random.default_rng(7)
        convs = {n.input[1] for n in g.node if n.op_type == "Conv"}
        for t in g.initializer:
            if t.name in convs:
                a = numpy_helper.to_array(t).copy()
                rng.shuffle(a.reshape(-1))
                t.CopyFrom(numpy_helper.from_array(a, t.name))
    elif fault == "batch1":  # a batch-1-only file: batch fixed to 1 in its declared input and output
        g.input[0].type.tensor_type.shape.dim[0].dim_value = 1
        g.output[0].type.tensor_type.shape.dim[0].dim_value = 1
    out = tmp_path / f"{fault}.onnx"
    onnx.save(m, str(out))
    return out


# golden: identification against the cards' golden fingerprints only (no real-weight candidates built); golden+real
# under -m slow only (CI time: 25 s): identification also builds the real-weight candidates, in CI through
# test_onnx_faults_fail_with_their_named_finding[*] and test_real_tflite_files_with_data[tf2]
@pytest.mark.parametrize("candidates", ["golden", pytest.param("golden+real", marks=pytest.mark.slow)])
def test_a_file_of_no_known_weights_is_not_a_pass(harness, tmp_path, capsys, monkeypatch, candidates):
    """Weights of no card and no --data: nothing could be compared, so nothing is judged (exit 3), never a pass; with
    the claim --card/--weights the probe comparison runs and fails."""
    if candidates == "golden":
        from parity.verify import identify
        monkeypatch.setattr(identify, "realdata_dir", lambda: None)
    path = _onnx_variant(harness, tmp_path, "scrambled")
    rc, doc = verify(tmp_path, path)
    out = capsys.readouterr().out
    assert rc == 3 and doc["verdict"] == "nothing judged" and not doc["identification"]["identical"], doc
    assert "verify: nothing judged" in out and "--data" in out, out[-600:]
    rc, doc = verify(tmp_path / "claimed", path, "--card", TV, "--weights", "seeded")
    assert rc == 1 and doc["verdict"] == "fail" and doc["probe"]["judged"], doc


def test_a_claimed_comparison_that_is_not_judged_is_nothing_judged(harness, tmp_path, capsys, monkeypatch):
    """A file of no card read back as int8 (what a quantized file reports), claimed --card/--weights seeded: identified
    at the int8 threshold (not identical), the claimed comparison runs but int8 on seeded weights is not judged, so
    nothing is judged (exit 3), never a pass. The quantized TorchScript files themselves (-m slow):
    test_quantized_torchscript_is_int8_on_its_engine_and_seeded_int8_is_nothing_judged."""
    from parity.verify import identify
    from parity.verify.artifact import Artifact
    monkeypatch.setattr(identify, "realdata_dir", lambda: None)   # golden candidates only (no real-weight builds)
    real_load = Artifact.load

    def as_int8(self, h):                                          # what a quantized file reads back
        real_load(self, h)
        self.precision = "int8"
    monkeypatch.setattr(Artifact, "load", as_int8)
    rc, doc = verify(tmp_path, _onnx_variant(harness, tmp_path, "scrambled"), "--card", TV, "--weights", "seeded")
    out = " ".join(capsys.readouterr().out.split())      # the output is wrapped
    ident, p = doc["identification"], doc["probe"]
    assert ident["ran_at"] == "int8" and ident["threshold"] == 0.9 and not ident["identical"], ident
    assert p["precision"] == "int8" and not p["judged"] and "int8 on seeded weights is not judged" in p["why"], p
    assert rc == 3 and doc["verdict"] == "nothing judged" and not doc["failures"], (rc, doc["verdict"], doc["failures"])
    assert "verify: nothing judged" in out and "probe comparison with the claimed weights is not judged" in out, out


def test_a_model_that_wants_bgr_by_its_first_conv_fails_with_channel_order(harness, tmp_path):
    """The registered model fault bgr_input (the first conv's input channels reversed, applied in the worker to a copy
    of the model) exported to ONNX: verify names it channel-order. On a .pte (-m slow):
    test_pte_of_a_model_that_wants_bgr_fails_with_channel_order."""
    canon = tmp_path / "tv.safetensors"     # the card's seeded weights (a variant's own id would seed others)
    harness.client("torchvision").export_canonical(harness.build(REGISTRY.get(TV), "seeded").key, canon)
    bad = REGISTRY.get(TV).variant(faults=["bgr_input"])
    rc, doc = verify(tmp_path, harness.export(bad, f"canonical:{canon}").path, "--card", TV, "--weights", "seeded")
    assert rc == 1, doc
    assert [f["name"] for f in doc["findings"] if f["severity"] == "error"] == ["channel-order"], doc["findings"]


@pytest.mark.parametrize("fault,finding", [("bgr", "channel-order"), ("baked", "normalization-twice"),
                                           ("offset", "class-offset")])
def test_onnx_faults_fail_with_their_named_finding(harness, tmp_path, fault, finding):
    rc, doc = verify(tmp_path, _onnx_variant(harness, tmp_path, fault), "--card", TV, "--weights", "seeded")
    assert rc == 1, doc
    assert [f["name"] for f in doc["findings"] if f["severity"] == "error"] == [finding], doc["findings"]
    # the run's report gets a verify section with the file and its named finding
    assert main(["report", "--workdir", str(tmp_path / "wd")]) == 0
    md = (tmp_path / "wd" / "report.md").read_text()
    row = next(ln for ln in md.splitlines() if ln.startswith(f"| {fault}.onnx |"))
    assert "## Verify (deployed files)" in md and "| fail |" in row and f"* {fault}.onnx: {finding}" in md, md
    assert "id='verify'" in (tmp_path / "wd" / "report.html").read_text()


def test_a_batch_1_only_file_runs_one_image_at_a_time_and_passes(harness, tmp_path, capsys):
    rc, doc = verify(tmp_path, _onnx_variant(harness, tmp_path, "batch1"), "--card", TV, "--weights", "seeded")
    assert "batch fixed 1" in capsys.readouterr().out
    assert rc == 0 and doc["io"]["input_shape"] == [1, 3, 224, 224] and doc["verdict"] == "pass", doc["failures"]
    assert doc["probe"]["n"] == 14 and doc["probe"]["metrics"]["top1_agree"] == 1.0


@pytest.mark.parametrize("fault", ["none", "background"])
def test_correct_onnx_passes_and_1001_with_background_passes(harness, tmp_path, fault):
    path = Path(harness.export(REGISTRY.get(TV), "seeded").path) if fault == "none" else \
        _onnx_variant(harness, tmp_path, fault)
    rc, doc = verify(tmp_path, path)
    assert rc == 0, doc
    assert doc["card"] == TV and doc["io"]["output_shape"][-1] == (1000 if fault == "none" else 1001)


# ------------------------------------------------------------------------------------------------ ncnn and MNN (deploy host)
CONVERTERS = {"ncnn": ("pnnx", ".ncnn.param"), "mnn": ("mnnconvert", ".mnn")}


def _converted(harness, tmp_path, fmt: str, src: Path | None = None, name: str = "tv", **options) -> Path:
    """The seeded torchvision ONNX export (or a faulty variant of it) converted by the format's own converter in the
    deploy host: pnnx -> ncnn .param + .bin (pnnx's defaults: fp16 weights), mnnconvert -> .mnn."""
    tool, suffix = CONVERTERS[fmt]
    src = src or Path(harness.export(REGISTRY.get(TV), "seeded").path)
    return Path(harness.deploy().convert(src, tmp_path / f"{name}{suffix}", tool, options)["path"])


@pytest.mark.parametrize("fmt,precision", [("ncnn", "fp16"), ("mnn", "fp32")])
def test_ncnn_and_mnn_from_seeded_weights_are_identified_and_pass(harness, tmp_path, fmt, precision):
    rc, doc = verify(tmp_path, _converted(harness, tmp_path, fmt))
    assert doc is not None and doc["format"] == fmt, doc
    assert doc["io"]["output_shape"][-1] == 1000 and doc["io"]["input_shape"][1] == 3, doc["io"]
    assert doc["identification"]["identical"] and doc["card"] == TV and doc["weights"] == "seeded", \
        doc["identification"]
    assert doc["precision"] == precision and doc["verdict"] == "pass" and rc == 0, doc["failures"]
    # fp16 weights (pnnx's default) are judged by the fp16 budget: measured SQNR 29.9 dB, top-1 agreement 13/14
    assert doc["probe"]["judged"] and doc["probe"]["precision"] == precision
    assert doc["probe"]["metrics"]["top1_agree"] == 1.0 or precision != "fp32"
    # what the runtime's reduced-precision switches do here is measured, not assumed (fp16 weights: nothing more)
    measured = doc["detail"]["fp16_options_effect" if fmt == "ncnn" else "precision_normal_vs_high"]
    assert "identical" in measured and (measured["identical"] or doc["precision"] != "fp32"), measured


@pytest.mark.parametrize("fmt,fp16", [("ncnn", False), ("mnn", True)])
def test_ncnn_and_mnn_precision_is_the_lower_of_the_files_storage_and_the_measured_runtime(harness, tmp_path, fmt,
                                                                                          fp16):
    """fp32 ncnn weights: judged at fp16 exactly when ncnn's default fp16 options measurably change the output on this
    CPU; MNN with --fp16 weights: the file's fp16 storage, whatever precision normal does."""
    art = open_artifact(_converted(harness, tmp_path, fmt, fp16=fp16))
    assert art.file["precision"] == ("fp16" if fp16 else "fp32"), art.file["weights"]
    art.load(harness)
    measured = art.detail["fp16_options_effect" if fmt == "ncnn" else "precision_normal_vs_high"]
    assert art.precision == ("fp32" if measured["identical"] and not fp16 else "fp16"), (art.precision, measured)
    assert any(line.startswith("measured on this machine: ") for line in art.describe())


@pytest.mark.slow   # CI time (33 s): the converters, runners and refusals (the ncnn/MNN tests above and below); the
# faults and their findings on ONNX (test_onnx_faults_fail_with_their_named_finding[offset-...], [bgr-...]); the first
# conv's channels reversed (test_a_model_that_wants_bgr_by_its_first_conv_fails_with_channel_order)
@pytest.mark.parametrize("fmt,fault,finding", [("ncnn", "bgr_weights", "channel-order"),
                                                 ("mnn", "offset", "class-offset")])
def test_ncnn_and_mnn_faults_fail_with_their_named_finding(harness, tmp_path, fmt, fault, finding):
    path = _converted(harness, tmp_path, fmt, _onnx_variant(harness, tmp_path, fault), fault)
    rc, doc = verify(tmp_path, path, "--card", TV, "--weights", "seeded")
    assert rc == 1, doc
    assert [f["name"] for f in doc["findings"] if f["severity"] == "error"] == [finding], doc["findings"]


def _damaged(src: Path, dst: Path, keep: float = 1.0, junk: bool = False) -> Path:
    data = src.read_bytes()
    dst.write_bytes(np.random.default_rng(0).bytes(len(data)) if junk else data[: int(len(data) * keep)])
    return dst


@pytest.mark.parametrize("fmt,damage", [("ncnn", "param cut"), ("ncnn", "bin cut"), ("ncnn", "bin foreign"),
                                        ("mnn", "cut"), ("mnn", "foreign")])
def test_truncated_or_foreign_ncnn_and_mnn_files_are_refused_before_any_work(harness, tmp_path, capsys, fmt, damage):
    good = _converted(harness, tmp_path / "made", fmt)
    bad = tmp_path / f"bad{good.name[2:]}"
    if fmt == "ncnn":          # the .param and its .bin, one of them damaged
        param, binary = good, good.with_suffix(".bin")
        _damaged(param, bad, 0.5 if damage == "param cut" else 1.0)
        _damaged(binary, bad.with_suffix(".bin"), 0.5 if damage == "bin cut" else 1.0, damage == "bin foreign")
    else:
        _damaged(good, bad, 0.5, damage == "foreign")
    capsys.readouterr()
    rc, _ = verify(tmp_path, bad)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert any(w in err for w in ("truncated", "damaged", "not the weights")), err
    assert not (tmp_path / "wd" / "deploy").exists()


# ------------------------------------------------------------------------------------------------ real TFLite files
def _patch_input_zero_point(src: Path, dst: Path, zp: int) -> None:
    import tflite
    buf = bytearray(src.read_bytes())
    model = tflite.Model.GetRootAsModel(buf, 0)
    sg = model.Subgraphs(0)
    q = sg.Tensors(sg.Inputs(0)).Quantization()
    o = q._tab.Offset(10)          # QuantizationParameters.zero_point (field 3)
    pos = q._tab.Vector(o)
    struct.pack_into("<q", buf, pos, zp)
    dst.write_bytes(bytes(buf))


# qat under -m slow only (CI time: 16.8 s): the same data verdict as [tf2]; its published cell matched by file name
# (test_deploy_units.py::test_a_deployed_row_matches_a_file_by_sha256_else_by_name_and_says_which) and printed
# (test_verify_prints_the_qat_files_published_cells_beside_its_data)
@needs_real
@pytest.mark.parametrize("which", ["tf2", pytest.param("qat", marks=pytest.mark.slow)])
def test_real_tflite_files_with_data(tmp_path, which):
    path = TF2 if which == "tf2" else QAT
    # 30 images: the data verdict's code paths (Wilson intervals, the paired drop, the published cell) at a tenth of
    # tox -e parity's cost; both files run one image at a time (fixed batch 1)
    rc, doc = verify(tmp_path, path, "--data", REAL / "images" / "imagenet_sample_1000" / "labels.txt", "--limit", "30")
    assert doc["io"]["output_shape"][-1] == 1001
    assert doc["io"]["input_dtype"] == "uint8" and doc["io"]["input_quantization"][1] in (127, 128)
    assert doc["card"] == "keras/mobilenet_v2.alpha_1.0_224"
    lo, hi = doc["data"]["top1_ci"]
    assert lo < doc["data"]["top1"] < hi and doc["data"]["n"] == 30
    if which == "tf2":
        assert rc == 0 and doc["identification"]["identical"], doc
        assert "drop" in doc["data"]
    else:
        assert doc["published"] and doc["published"][0]["digits"] == "70.8"


def test_verify_prints_the_qat_files_published_cells_beside_its_data(capsys):
    """The QAT file's published top-1 (registry [[deployed]], no sha256) is found by its file name and printed beside
    the data verdict, saying how it matched."""
    from parity.cli.verify import _show
    from parity.deploy.published import cells_for_file, deployed_cells
    from parity.verify.verdict import Verdict
    cells, how = cells_for_file(deployed_cells(REGISTRY), "mobilenet_v2_1.0_224_quant", "")
    assert [c.digits for c in cells][:1] == ["70.8"] and how.startswith("file name only"), (cells, how)
    v = Verdict(data={"n": 30, "top1": 0.7, "top1_ci": (0.5, 0.85), "top5": 0.9, "top5_ci": (0.75, 0.97), "source": "x"})
    _show(v, cells, how)
    out = " ".join(capsys.readouterr().out.split())
    assert "published: top1 70.8" in out and "matched by file name only" in out, out


@needs_real
def test_wrong_input_zero_point_is_named(tmp_path):
    bad = tmp_path / "zp0.tflite"
    _patch_input_zero_point(TF2, bad, 0)
    assert open_artifact(bad).io["input_quantization"][1] == 0
    rc, doc = verify(tmp_path, bad, "--card", "keras/mobilenet_v2.alpha_1.0_224", "--weights", "real")
    assert rc == 1
    assert "input-zero-point" in [f["name"] for f in doc["findings"]]


# ------------------------------------------------------------------------------------------------ quantized TorchScript
def _quantized_torchscript(harness, engine: str, path: Path) -> Path:
    """The torchvision card's `torch-<engine>` runtime's export from seeded weights: torchvision's eager quantization
    recipe, calibrated on the suite's calibration set (16 images here), saved by torch.jit.trace + save."""
    from parity.deploy.calibration import calibration
    card = REGISTRY.get(TV)
    calib = calibration(harness, card.preprocess, None, 16)
    b = harness.build(card, "seeded")
    return Path(harness.client(card.framework).deploy_export(
        b.key, "torch-quantized", path, {"engine": engine, "width_mult": 1.0, "calib": calib.path})["path"])


@pytest.mark.slow   # CI time (100 s): the export and verify's TorchScript runner on its engine, both engines
# (test_deploy.py::test_torchvision_quantization_recipe_on_float_weights_fails_and_names_the_relu_swap[*]); no claim,
# not identical: nothing judged (test_a_file_of_no_known_weights_is_not_a_pass[golden]); a claim whose int8 probe is
# not judged: nothing judged (test_a_claimed_comparison_that_is_not_judged_is_nothing_judged)
@pytest.mark.parametrize("engine", ["qnnpack", "fbgemm"])
def test_quantized_torchscript_is_int8_on_its_engine_and_seeded_int8_is_nothing_judged(harness, tmp_path, capsys,
                                                                                      engine):
    """torchvision's quantized TorchScript (the `torch-<engine>` runtime's export) is read as int8 from its
    `quantized::` ops and run on the engine its weights need (per-tensor: QNNPACK, per-channel: FBGEMM). Its recipe
    swaps every ReLU6 for ReLU before quantizing: on seeded weights that alone is -16.4 dB from the float model (the
    export's architecture_sqnr_db), so the file behaves as no card: not identified at the int8 threshold, and alone it
    is 'nothing judged' (exit 3). With the claim the probe comparison runs, but int8 on seeded weights is not judged
    (SEEDED_NOT_JUDGED): still nothing judged, exit 3, never a pass (it was 'pass', exit 0, having judged nothing)."""
    path = _quantized_torchscript(harness, engine, tmp_path / f"tv_{engine}.pt")
    rc, doc = verify(tmp_path, path)
    assert doc is not None and doc["format"] == "torchscript" and doc["precision"] == "int8", doc
    scheme = {"qnnpack": "per_tensor_affine", "fbgemm": "per_channel_affine"}[engine]   # the recipe's weights
    assert doc["detail"]["weight_qschemes"] == [f"torch.{scheme}"] and doc["detail"]["engine_set"] == engine, \
        doc["detail"]
    assert "quantized::conv2d.new" in doc["detail"]["quantized_ops"], doc["detail"]
    ident = doc["identification"]
    assert ident["ran_at"] == "int8" and ident["threshold"] == 0.9 and not ident["identical"], ident
    assert rc == 3 and doc["verdict"] == "nothing judged", (rc, doc["verdict"])
    capsys.readouterr()
    rc, doc = verify(tmp_path / "claimed", path, "--card", TV, "--weights", "seeded")
    out = " ".join(capsys.readouterr().out.split())      # the output is wrapped
    p = doc["probe"]
    assert p["precision"] == "int8" and not p["judged"] and "int8 on seeded weights is not judged" in p["why"], p
    assert rc == 3 and doc["verdict"] == "nothing judged" and not doc["failures"], (rc, doc["verdict"], doc["failures"])
    assert "verify: nothing judged" in out and "probe comparison with the claimed weights is not judged" in out, out


# ------------------------------------------------------------------------------------------------ Keras full-model .h5
def test_keras_full_model_h5_from_seeded_weights_is_identified_and_passes(harness, tmp_path):
    """keras `Model.save("x.h5")` (the `keras-file` export to a .h5 name: Keras 3's legacy HDF5 full model) of the
    seeded keras 1.0_224 card: recognised by its HDF5 signature (not a `.weights.h5`), loaded by
    `keras.saving.load_model` in the TF worker, identified and passing."""
    path = _exported(harness, KERAS, "keras-file", tmp_path / "keras_full.h5")
    assert path.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n", "not an HDF5 file"
    rc, doc = verify(tmp_path, path)
    assert doc is not None and doc["format"] == "keras", doc
    assert doc["io"]["input_shape"] == [None, 224, 224, 3] and doc["io"]["output_shape"] == [None, 1000], doc["io"]
    assert doc["identification"]["identical"] and doc["card"] == KERAS and doc["weights"] == "seeded", \
        doc["identification"]
    assert doc["precision"] == "fp32" and doc["verdict"] == "pass" and rc == 0, doc["failures"]
    assert doc["probe"]["judged"] and doc["probe"]["metrics"]["top1_agree"] == 1.0, doc["probe"]


def test_a_keras_file_is_told_by_its_suffix_and_its_zip_is_checked(tmp_path):
    """A .keras file (a zip, as TorchScript is) is told by its suffix; a damaged one is refused before any work."""
    import zipfile
    p = tmp_path / "m.keras"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("config.json", "{}")
    assert open_artifact(p).fmt.name == "keras"
    cut = tmp_path / "cut.keras"
    cut.write_bytes(p.read_bytes()[:-30])
    with pytest.raises(ArtifactRefused, match="truncated or damaged archive"):
        open_artifact(cut)


# ------------------------------------------------------------------------------------------------ OpenVINO IR, MO mean/scale
def _mo_ir(harness, tmp_path, baked: bool, given: bool = True) -> Path:
    """An IR as Model Optimizer writes one with `--mean_values --scale_values`: the card's normalization in the graph
    (the seeded torchvision ONNX export with it baked in before conversion: it takes 0-255 pixels; `baked=False`: the
    plain export) and its rt_info's `conversion_parameters` recording the values, as MO writes them (every option,
    those not given as "()"; `given=False`: an IR converted without them, both "()")."""
    src = _onnx_variant(harness, tmp_path, "baked") if baked else Path(harness.export(REGISTRY.get(TV), "seeded").path)
    name = "mo_baked" if baked else "mo_not_baked"
    xml = Path(harness.deploy().ov_convert(src, tmp_path / f"{name}.xml")["path"])
    s = REGISTRY.get(TV).preprocess
    mean = "x[" + ",".join(f"{m / s.scale:.3f}" for m in s.mean) + "]" if given else "()"
    scale = "x[" + ",".join(f"{d / s.scale:.3f}" for d in s.std) + "]" if given else "()"
    params = (f'<conversion_parameters><input_model value="DIR/{src.name}"/><layout value="()"/>'
              f'<mean_values value="{mean}"/><reverse_input_channels value="False"/>'
              f'<scale_values value="{scale}"/><source_layout value="()"/></conversion_parameters>')
    text = xml.read_text()
    text = text.replace("<rt_info>", f"<rt_info>{params}", 1) if "<rt_info>" in text else \
        text.replace("</net>", f"<rt_info>{params}</rt_info></net>")
    xml.write_text(text)
    return xml


def test_openvino_ir_with_mo_mean_scale_values_is_fed_raw_pixels_and_passes(harness, tmp_path, capsys):
    rc, doc = verify(tmp_path, _mo_ir(harness, tmp_path, baked=True))
    out = " ".join(capsys.readouterr().out.split())
    assert doc is not None and doc["format"] == "openvino", doc
    meta = doc["metadata"]
    assert meta["mean"] == [123.675, 116.28, 103.53] and meta["scale"] == [58.395, 57.12, 57.375], meta
    assert "layout" not in meta and "reverse_input_channels" in meta, meta      # "()": not given
    assert "preprocessing from the artifact's metadata (OpenVINO IR mean_values=x[123.675" in out, out
    assert doc["spec"]["scale"] == 1.0 and doc["spec"]["mean"] == [0.0, 0.0, 0.0], doc["spec"]     # raw 0-255 fed
    ident = doc["identification"]
    assert ident["identical"] and doc["card"] == TV and doc["weights"] == "seeded", ident
    assert ident["matches"][0]["evidence"] == "golden fingerprint, fed as its metadata says", ident["matches"][0]
    assert not doc["findings"] and doc["verdict"] == "pass" and rc == 0, (doc["findings"], doc["failures"])
    if doc["precision"] == "fp32":
        assert doc["probe"]["judged"] and doc["probe"]["metrics"]["top1_agree"] == 1.0, doc["probe"]


def test_openvino_ir_whose_mean_values_are_not_in_the_graph_fails_named(harness, tmp_path):
    """The rt_info claims mean_values/scale_values, the graph does not apply them: identified only fed the card's spec,
    and the verdict fails with the named finding `metadata-disagrees`."""
    rc, doc = verify(tmp_path, _mo_ir(harness, tmp_path, baked=False))
    ident = doc["identification"]
    assert ident["identical"] and doc["card"] == TV, ident
    assert ident["matches"][0]["evidence"] == "golden fingerprint, fed the card's spec, not as its metadata says", \
        ident["matches"][0]
    # named from identification (at the file's own precision), so also where the deployed run is bf16 and its seeded
    # probe not judged; at fp32 the probe's raw-pixel feed fails too and its alternative (the card's spec) names it
    errors = [f["name"] for f in doc["findings"] if f["severity"] == "error"]
    assert rc == 1 and doc["verdict"] == "fail" and errors == ["metadata-disagrees"], doc["findings"]


def test_openvino_ir_whose_mo_rt_info_gives_no_mean_values_is_fed_the_cards_spec(harness, tmp_path, capsys):
    """Model Optimizer records options not given as "()": read as absent (it was read as baked-in normalization, the
    IR then fed raw pixels), so the card's spec feeds the plain export and it passes."""
    rc, doc = verify(tmp_path, _mo_ir(harness, tmp_path, baked=False, given=False))
    out = " ".join(capsys.readouterr().out.split())
    assert "mean_values" not in doc["metadata"] and "scale_values" not in doc["metadata"], doc["metadata"]
    assert f"preprocessing from the card's spec ({TV})" in out, out
    assert doc["identification"]["identical"] and doc["card"] == TV and not doc["findings"], doc["findings"]
    assert doc["verdict"] == "pass" and rc == 0, doc["failures"]
