"""The deployment judging without a worker: budgets per precision (each bound shown to fail alone), which precision a
result is judged as, runtime names and families, which runtimes take the calibration options, what `check --deploy
all` plans per card and weights mode."""
import json

import numpy as np
import pytest

from parity import checks, runtimes
from parity.checks.deploy import judged_as
from parity.deploy.precisions import BUDGETS, FP16, FP16_SEEDED, INT8, judge, sqnr_db, top1_in_top5
from parity.errors import UsageError
from support import REGISTRY

TORCH = REGISTRY.get("torchvision/mobilenet_v2.IMAGENET1K_V1")
KERAS = REGISTRY.get("keras/mobilenet_v2.alpha_1.0_224")


def logits(n=24, seed=0):
    r = np.random.default_rng(seed)
    x = r.normal(0, 2.0, (n, 1000))
    x[np.arange(n), r.integers(0, 1000, n)] += 12.0     # a confident top-1, as trained weights give
    return x.astype(np.float32)


def test_sqnr_and_top5_measures():
    ref = logits()
    assert sqnr_db(ref, ref) == float("inf")
    assert abs(sqnr_db(ref, ref * 1.1) - 20.0) < 0.01          # noise = 0.1 x signal -> 20 dB
    assert top1_in_top5(ref, ref) == 1.0
    assert top1_in_top5(ref, -ref) == 0.0


@pytest.mark.parametrize("precision", sorted(BUDGETS))
def test_each_budget_passes_small_noise_and_fails_large(precision):
    ref = logits()
    r = np.random.default_rng(1)
    small = ref + r.normal(0, 0.01, ref.shape).astype(np.float32)
    assert judge(ref, small, precision, "x").failures == []
    large = ref + r.normal(0, 6.0, ref.shape).astype(np.float32)
    assert len(judge(ref, large, precision, "x").failures) >= 3


def test_each_fp16_and_int8_bound_fails_alone():
    ref = logits()
    base = {"cosine_min": 1.0, "sqnr_db": 99.0, "top1_agree": 1.0, "top1_in_top5": 1.0}
    for budget, seeded in ((FP16, False), (INT8, False), (FP16_SEEDED, True)):
        bounds = {"cosine_min": budget.min_cosine, "sqnr_db": budget.min_sqnr_db, "top1_agree": budget.min_top1,
                  "top1_in_top5": budget.min_top5}
        for key, bound in bounds.items():
            if bound is None:         # reported, not judged: the lowest agreement fails nothing
                bound = 1e-3
            import parity.deploy.precisions as P
            m = {**base, key: bound - 1e-3}
            orig = (P.compare_logits, P.sqnr_db, P.top1_in_top5)
            try:
                P.compare_logits = lambda r, t, tol, label, m=m: P.Comparison(label, "x", dict(m), [])
                P.sqnr_db = lambda r, t, m=m: m["sqnr_db"]
                P.top1_in_top5 = lambda r, t, m=m: m["top1_in_top5"]
                fails = judge(ref, ref, budget.name, "x", seeded=seeded).failures
            finally:
                P.compare_logits, P.sqnr_db, P.top1_in_top5 = orig
            assert len(fails) == (budget.min_top1 is not None or key != "top1_agree"), (budget.name, key, fails)


def test_seeded_fp16_is_judged_by_its_own_budget_and_still_fails_a_fault():
    """Seeded weights' fp16 noise (measured to 22.5 dB, 6 of 14 top-1 flips) passes their budget and fails the
    trained one; noise at a conversion fault's level (SQNR ~0 dB) fails both."""
    ref = logits(14)
    r = np.random.default_rng(2)
    seeded_like = ref + r.normal(0, ref.std() * 10 ** (-23 / 20), ref.shape).astype(np.float32)   # ~23 dB
    for i in range(6):                                          # 6 top-1 flips to the runner-up, as near ties do
        top, second = np.argsort(seeded_like[i])[::-1][:2]
        seeded_like[i, top] = seeded_like[i, second] - 0.1
    assert judge(ref, seeded_like, "fp16", "x", seeded=True).failures == []
    trained = judge(ref, seeded_like, "fp16", "x").failures
    assert any("SQNR" in f for f in trained) and any("top-1 agreement" in f for f in trained), trained
    fault = ref + r.normal(0, ref.std(), ref.shape).astype(np.float32)
    assert len(judge(ref, fault, "fp16", "x", seeded=True).failures) >= 2


def test_trivial_reference_fails_every_precision():
    ref = np.full((4, 1000), 1e-9, np.float32)
    assert any("trivial" in f for f in judge(ref, ref, "int8", "x").failures)


def test_unknown_precision_is_a_bug_not_a_pass():
    with pytest.raises(ValueError, match="no budget"):
        judge(logits(), logits(), "int4", "x")


def test_judged_as_the_lowest_of_artifact_and_execution():
    assert judged_as("fp16", "fp32") == "fp16"      # ORT upcasts an fp16 file: its weights are still fp16-rounded
    assert judged_as("fp32", "bf16") == "bf16"      # OpenVINO default on a bf16 CPU
    assert judged_as("int8", "fp32") == "int8"
    assert judged_as("fp32", "fp32") == "fp32"


def test_families_resolve_and_refuse():
    assert runtimes.resolve("openvino", "int8") == "openvino-int8"
    assert runtimes.resolve("ort", "fp16") == "ort-fp16"
    assert runtimes.resolve("openvino") == "openvino-default"
    assert runtimes.resolve("tflite-int8") == "tflite-int8"
    with pytest.raises(UsageError, match="not offered"):
        runtimes.resolve("torchscript", "int8")
    with pytest.raises(UsageError, match="names a precision already"):
        runtimes.resolve("ort-fp16", "int8")
    with pytest.raises(UsageError, match="unknown runtime"):
        runtimes.resolve("tensorrt")


def test_quant_options_go_to_the_runtimes_that_take_them():
    per, notes = runtimes.quant_options(["ort-int8", "openvino-int8", "ort-fp16"],
                                        {"granularity": "per-tensor", "calib_images": 64, "method": None})
    assert per == {"ort-int8": {"granularity": "per-tensor", "calib_images": 64},
                   "openvino-int8": {"calib_images": 64}, "ort-fp16": {}}
    assert any("--quant applies to ort-int8; openvino-int8 quantize their own way" in n for n in notes)
    with pytest.raises(UsageError, match="--quant: none of the selected runtimes"):
        runtimes.quant_options(["openvino-f32"], {"granularity": "per-tensor"})


def test_deploy_all_plans_only_runtimes_that_fit():
    def planned(card, mode):
        return [p.params["runtime"] for p in checks.plan(card, (mode,), (17,), ("all",)) if p.kind == "deploy"]
    torch_seeded = planned(TORCH, "seeded")
    assert "torchscript" in torch_seeded and "ort-fp16" in torch_seeded and "openvino-f32" in torch_seeded
    assert "ort-int8" not in torch_seeded and "ort-int8" in planned(TORCH, "real")   # int8: trained weights only
    assert not any(n.startswith(("tflite", "paddle")) for n in torch_seeded)
    keras_seeded = planned(KERAS, "seeded")
    assert "tflite" in keras_seeded and "tflite-int8" not in keras_seeded and "tflite-file" not in keras_seeded
    assert "tflite-file" in planned(KERAS, "real")
    assert "torchscript" not in keras_seeded
    # a runtime asked for by name is planned anyway: it skips with the reason instead of vanishing
    assert [p.params["runtime"] for p in checks.plan(TORCH, ("seeded",), (17,), ("tflite",))
            if p.kind == "deploy"] == ["tflite"]
    assert "keras" in runtimes.fits("tflite", TORCH, "seeded")


def test_runtime_info_is_json_whatever_the_detail():
    from collections import Counter
    info = runtimes.RuntimeInfo("x", "onnxruntime", "1", "fp32", {"a": 1}, "f.onnx", ["n"],
                                {"executed": {"float_compute_weights": dict(Counter(["FLOAT", "FLOAT16"]))}})
    assert json.loads(json.dumps(info.to_dict()))["detail"]["executed"]["float_compute_weights"]["FLOAT"] == 1


def test_published_deployed_numbers_are_cited_and_validated():
    from parity.deploy.published import deployed_cells
    from parity.registry import Registry, RegistryError
    cells = deployed_cells(REGISTRY)
    got = {(c.source, c.runtime, c.precision, c.metric): c.value for c in cells}
    assert got[("tflite-hosted", "tflite", "int8", "top1")] == 70.8
    assert got[("tflite-hosted", "tflite", "fp32", "top1")] == 71.8
    assert got[("seed002", "rdk-x5-bpu", "int8", "top1")] == 68.17
    assert got[("torchvision-quantized-meta", "torch-qnnpack", "int8", "top5")] == 90.15
    assert all(REGISTRY.sources[c.source].get("where") for c in cells)
    good = dict(REGISTRY.sections["deployed"][0])
    for bad, why in (({**good, "source": "nowhere"}, "not in"), ({**good, "digits": "7o.8"}, "not a number"),
                     ({k: v for k, v in good.items() if k != "citation"}, "missing citation"),
                     ({**good, "precision": "int4"}, "precision"), ({**good, "colour": "red"}, "unknown field"),
                     ({**good, "sha256": "abc"}, "64 hex digits")):
        reg = Registry([], REGISTRY.sources, sections={"deployed": [bad]})
        with pytest.raises(RegistryError, match=why):
            deployed_cells(reg)


def test_a_deployed_row_matches_a_file_by_sha256_else_by_name_and_says_which():
    """`verify` prints a published number beside a file: by the file's sha256 where the row has one (a renamed copy
    still matches, another file of the same name does not), else by its name, saying so."""
    from parity.deploy.published import cells_for_file, deployed_cells
    from parity.registry import Registry
    good = {k: v for k, v in REGISTRY.sections["deployed"][0].items() if k != "sha256"}
    row = {**good, "model": "hosted m_quant", "sha256": "ab" * 32}
    cells = deployed_cells(Registry([], REGISTRY.sources, sections={"deployed": [row, {**good, "model": "hosted m_x"}]}))
    assert cells_for_file(cells, "renamed", "ab" * 32) == ([cells[0]], "sha256 of the file")
    assert cells_for_file(cells, "m_quant", "cd" * 32) == ([], "")
    got, how = cells_for_file(cells, "m_x", "cd" * 32)
    assert got == [cells[1]] and how.startswith("file name only")


def test_cpu_int8_names_the_saturating_x86_path_only_without_vnni(monkeypatch):
    from parity.runtimes.onnxruntime import cpu_int8
    monkeypatch.setattr("platform.machine", lambda: "x86_64")
    plain = cpu_int8("processor: 0\nflags\t\t: fpu sse4_2 avx avx2 fma\n")
    assert plain["x86"] and plain["saturating"] and plain["vnni"] == []
    for flag in ("avx512_vnni", "avx_vnni", "amx_int8"):
        got = cpu_int8(f"flags\t: avx avx2 avx512f {flag}\n")
        assert not got["saturating"] and got["vnni"] == [flag]
    assert not cpu_int8("")["saturating"]                                  # unknown CPU: no claim
    monkeypatch.setattr("platform.machine", lambda: "aarch64")
    assert not cpu_int8("Features\t: fp asimd asimddp\n")["saturating"]     # not x86: not that kernel


@pytest.mark.parametrize(("unfused_noise", "where"), [(0.02, "integer kernels, not the scheme"),
                                                      (3.0, "the quantization scheme itself")])
def test_an_int8_failure_says_whether_the_scheme_or_the_kernels_lose_it(monkeypatch, unfused_noise, where):
    from types import SimpleNamespace

    from parity.checks.deploy import DeployCheck
    ref = logits()
    rng = np.random.default_rng(1)
    monkeypatch.setattr("parity.runtimes.onnxruntime.run",
                        lambda path, x, opt="off", **kw: ref + rng.normal(0, unfused_noise, ref.shape).astype(np.float32))
    metrics: dict = {}
    said, scheme_loses = DeployCheck._split(ref, None, SimpleNamespace(artifact="q.onnx"), False, "ort-int8", metrics)
    assert where in said and "unfused" in said and metrics["unfused"]["sqnr_db"] > -10
    assert scheme_loses == (where == "the quantization scheme itself")


def test_int8_only_options_on_a_float_runtime_are_refused_not_ignored():
    with pytest.raises(ValueError, match="makes none"):
        runtimes.create("openvino-f32", fault="double_scale:3")
    with pytest.raises(ValueError, match="int8 artifacts only"):
        runtimes.create("ort-fp16", kernels="exact")
    with pytest.raises(ValueError, match="int8 artifacts only"):
        runtimes.create("ort-fp16", fault="double_scale:3")
    runtimes.create("openvino-int8", fault="double_scale:3")              # where they apply, they are taken
    runtimes.create("ort-int8", kernels="exact")


def test_a_cards_published_deployed_weights_are_validated_when_the_registry_loads():
    from parity.registry import RegistryError, _card_from_dict
    tv = REGISTRY.get("torchvision/mobilenet_v2.IMAGENET1K_V1")
    entry = tv.raw["deployed_weights"]["torch-qnnpack"]
    assert entry["hash_prefix"] == "37f702c5" and entry["url"].endswith("mobilenet_v2_qnnpack_37f702c5.pth")
    for bad, why in (({"torch-qnnpack": {**entry, "urll": "x"}}, "urll"), ({"torch-qnnpack": "a url"}, "not a table"),
                     ({"torch-qnnpack": {"hash_prefix": "37f702c5"}}, "url")):
        with pytest.raises(RegistryError, match=why):
            _card_from_dict({**tv.raw, "deployed_weights": bad})


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6


@pytest.mark.parametrize("images", [64, 8])
def test_ort_sessions_give_back_a_bulk_calls_memory(tmp_path, monkeypatch, images):
    """The parent caches ORT sessions; ORT's arena keeps each one's peak. A 1000-image run held 400-700 MB per
    MobileNetV2 session: 8 GB in 17 minutes of `tox -e parity`. A bulk call shrinks the arena when it ends; a bench-size
    call (8 images) keeps ORT's default, and is the control: it must keep the arena, or this test measures nothing."""
    import onnx
    from onnx import TensorProto, helper

    from parity.runtimes import onnxruntime as o
    w = np.random.default_rng(0).normal(size=(64, 3, 3, 3)).astype(np.float32)
    graph = helper.make_graph(
        # the Mul's output is the arena's first region, which ORT never shrinks (as MobileNetV2's first layer); the conv's
        # 64 channels are the peak, in the regions after it
        [helper.make_node("Mul", ["x", "k"], ["m"]), helper.make_node("Conv", ["m", "w"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("GlobalAveragePool", ["c"], ["y"])],
        "wide", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 224, 224])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 64, 1, 1])],
        [helper.make_tensor("w", TensorProto.FLOAT, w.shape, w.ravel()), helper.make_tensor("k", TensorProto.FLOAT, [], [0.5])])
    path = tmp_path / "wide.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    x = np.random.default_rng(1).random((images, 3, 224, 224), dtype=np.float32)
    peak = min(images, o.CHUNK) * 64 * 224 * 224 * 4 / 1e6        # the conv's output of one call: 411 MB at 32
    o.session(path)                                                # the session's own memory is not the arena's
    before = _rss_mb()
    o.run(path, x)
    grown = _rss_mb() - before
    if images > o.BULK:
        assert grown < peak / 4, f"a bulk call kept {grown:.0f} MB of a {peak:.0f} MB peak"
    else:
        assert grown > peak / 2, f"the control kept {grown:.0f} MB of a {peak:.0f} MB peak: the measure is blind"


def test_a_runtime_that_refuses_a_suite_made_file_fails_naming_it_not_as_a_bug():
    """ORT refusing a file the suite made (timm 100's int8 file with session.x64quantprecision=1 on the real weights)
    is a finding about ORT: the check fails with the runtime, its version, the config and its message."""
    from parity.checks.base import guard
    from parity.runtimes.onnxruntime import refused
    card = REGISTRY.get("timm/mobilenetv2_100.ra_in1k")
    e = refused("m.int8.onnx", (("session.x64quantprecision", "1"),),
                RuntimeError("[ONNXRuntimeError] : 1 : FAIL : graph_utils.cc:479 Attempt to replace the existing tensor"))

    def boom():
        raise e
    r = guard(card, "deploy-ort-int8-exact", "real", boom)
    assert r.status == "fail", r.reason
    assert "onnxruntime" in r.reason and "x64quantprecision" in r.reason and "m.int8.onnx" in r.reason
    assert "[known:" in r.reason and "internal error" not in r.reason

    def bug():
        raise KeyError("x")
    assert guard(card, "deploy-ort-int8-exact", "real", bug).status == "error"    # a bug of the suite stays an error


def test_static_shape_arithmetic_folds_to_constants_and_keeps_the_batch_dynamic():
    """timm's TF-SAME pads (Shape -> Gather -> Cast -> Div -> Ceil -> ... -> Pad) fold to constant pads where the
    spatial size is fixed; the folded graph computes the same at any batch (what the fp16 conversion then keeps)."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from adapters.onnx_static import fold_static_shapes

    def c(name, v, dt=np.int64):
        return helper.make_node("Constant", [], [name], value=onnx.numpy_helper.from_array(np.asarray(v, dt), name))
    nodes = [helper.make_node("Shape", ["x"], ["s"]), c("i2", 2), helper.make_node("Gather", ["s", "i2"], ["h"]),
             helper.make_node("Cast", ["h"], ["hf"], to=TensorProto.FLOAT), c("two", 2.0, np.float32),
             helper.make_node("Div", ["hf", "two"], ["q"]), helper.make_node("Ceil", ["q"], ["cq"]),
             helper.make_node("Sub", ["cq", "hf"], ["p"]), helper.make_node("Cast", ["p"], ["pi"], to=TensorProto.INT64),
             c("z", [0, 0, 0, 0, 0, 0, 0], np.int64), c("ax", [0], np.int64),
             helper.make_node("Unsqueeze", ["pi", "ax"], ["pu"]), helper.make_node("Concat", ["z", "pu"], ["pads"], axis=0),
             helper.make_node("Pad", ["x", "pads"], ["y"])]
    g = helper.make_graph(nodes, "same", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 7, 7])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3, 7, "w"])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    folded, n = fold_static_shapes(onnx.load_from_string(m.SerializeToString()))
    assert n > 5 and {nd.op_type for nd in folded.graph.node} == {"Pad"}, [nd.op_type for nd in folded.graph.node]
    for batch in (1, 3):
        x = np.random.default_rng(batch).standard_normal((batch, 3, 7, 7)).astype(np.float32)
        a = ort.InferenceSession(m.SerializeToString()).run(None, {"x": x})[0]
        b = ort.InferenceSession(folded.SerializeToString()).run(None, {"x": x})[0]
        assert a.shape == b.shape == (batch, 3, 7, 4) and np.array_equal(a, b)
