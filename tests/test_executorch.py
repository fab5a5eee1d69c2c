"""ExecuTorch as a deployment runtime (README "Deployment"): the torch stack's cards built in the ExecuTorch host from
the same card and weights, lowered to XNNPACK .pte files (fp32, and int8 through PT2E with the XNNPACK quantizer), run
by the ExecuTorch runtime, and what ran read back from the file (delegates, their tensor datatypes, the operators
outside them). Skipped, with the reason, when the ExecuTorch interpreter (tox env w-executorch) is missing."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from parity import checks, runtimes
from parity.paths import realdata_dir
from parity.runtimes.executorch import interpreter_missing
from parity.weights.modes import REAL_TFLITE
from parity.workers import WorkerError
from support import REGISTRY

TORCH = REGISTRY.get("torchvision/mobilenet_v2.IMAGENET1K_V1")
KERAS = REGISTRY.get("keras/mobilenet_v2.alpha_1.0_224")
REAL = realdata_dir()
MISSING = interpreter_missing()
pytestmark = pytest.mark.skipif(bool(MISSING), reason=MISSING)
needs_real = pytest.mark.skipif(REAL is None or not REAL.joinpath(*REAL_TFLITE).is_file(),
                                reason="../shared/realdata is absent")
CALIB = {"calib_images": 64}     # two observer calls of 32 (HistogramObservers: slow per call)


def deploy(h, card, runtime, mode="seeded", **kw):
    return checks.run("deploy", h, card, mode=mode, runtime=runtime, **kw)


def xnnpack(detail):
    return [d for d in detail["executed"]["delegates"] if d["backend"] == "XnnpackBackend"]


def test_executorch_fp32_passes_reads_back_its_delegates_and_fails_on_a_swapped_input(harness):
    ok = deploy(harness, TORCH, "executorch-fp32")
    assert ok.status == "pass", ok.reason
    info = ok.metrics["runtime"]
    assert info["precision"] == "fp32" and "executorch 1." in info["version"], info
    assert info["artifact"].endswith(".pte")
    lowered = info["detail"]["made_by"]["lowered"]
    assert lowered["delegates"] and not [o for o in lowered["outside"] if "convolution" in o], lowered
    (delegate,) = xnnpack(info["detail"])                 # the whole network in one XNNPACK delegate, read from the file
    assert set(delegate["datatypes"]) == {"xnn_datatype_fp32"} and delegate["bytes"] > 0, delegate
    assert ok.metrics["executorch-fp32"]["cosine_min"] > 0.99999, ok.metrics
    json.dumps(ok.metrics)
    bad = deploy(harness, TORCH, "executorch-fp32", fault="transposed_input")
    assert bad.status == "fail", bad.reason


def test_executorch_int8_runs_int8_and_on_seeded_weights_is_not_judged(harness):
    r = deploy(harness, TORCH, "executorch-int8", options=CALIB)
    # skipped only after the promise (int8, read back from the file) and the calibration spec were checked
    assert r.status == "skip" and "untrained weights quantize to noise" in r.reason, r.reason
    with runtimes.create("executorch-int8", **CALIB) as rt:
        rt.load(runtimes.Target(harness, TORCH, "seeded"))
        info = rt.info()
    assert info.precision == "int8"
    (delegate,) = xnnpack(info.detail)
    assert {"xnn_datatype_qint8", "xnn_datatype_qcint8"} <= set(delegate["datatypes"]), delegate
    assert info.detail["calibration"]["n"] == 64 and info.detail["calibration"]["spec"] == TORCH.preprocess.digest()
    made = info.detail["made_by"]
    assert made["calib_images"] == 64 and "XNNPACKQuantizer" in made["quantizer"]


def test_a_pte_file_is_read_back_and_run(harness, tmp_path):
    with runtimes.create("executorch-fp32") as rt:
        rt.load(runtimes.Target(harness, TORCH, "seeded"))
        x = harness.probe_tensor(TORCH.preprocess)[0][:3]
        y = rt.infer(x)
        path = rt.info().artifact
    et = harness.client("executorch")
    got = et.pte_run(path, harness.pool.put_array(x, "pte-in"))
    assert got.methods == ["forward"] and got.precision == "fp32"
    assert [(t.dtype, t.shape) for t in got.inputs] == [("float32", (1, 3, 224, 224))]
    assert [(t.dtype, t.shape) for t in got.outputs] == [("float32", (1, 1000))]
    assert [d.backend for d in got.delegates] == ["XnnpackBackend"]
    out = np.load(got.output)["arr_0"]
    assert out.shape == (3, 1000) and np.array_equal(out, y)     # the same file, the same runtime
    spec_only = et.pte_run(path)
    assert spec_only.output == "" and spec_only.inputs == got.inputs
    not_pte = tmp_path / "x.pte"
    not_pte.write_bytes(b"\0" * 64)
    with pytest.raises(WorkerError, match="is not an ExecuTorch program"):
        et.pte_run(not_pte)
    with pytest.raises(WorkerError, match="does not fit the method's input"):
        et.pte_run(path, harness.pool.put_array(x[:, :, :100], "pte-bad"))


def test_verify_reads_and_runs_the_runtimes_pte(harness):
    """The runtime's .pte as `verify` reads it: sniffed and inspected by the parent, then run by the ExecuTorch host's
    artifact op (adapters/artifacts.py): I/O, delegates and precision read from the file, the runtime's own outputs."""
    from parity.verify.artifact import open_artifact
    with runtimes.create("executorch-fp32") as rt:
        rt.load(runtimes.Target(harness, TORCH, "seeded"))
        x = harness.probe_tensor(TORCH.preprocess)[0][:3]
        y, path = rt.infer(x), Path(rt.info().artifact)
    art = open_artifact(path)
    assert art.fmt.name == "executorch", art.fmt
    art.load(harness)
    assert art.io["input_shape"] == [1, 3, 224, 224] and art.io["output_shape"] == [1, 1000], art.io
    assert art.precision == "fp32" and art.detail["delegates"][0]["backend"] == "XnnpackBackend", art.detail
    np.testing.assert_allclose(art.run(harness, x), y, rtol=1e-5, atol=1e-5)


def test_executorch_runs_torch_cards_only(harness):
    r = deploy(harness, KERAS, "executorch-fp32")
    assert r.status == "skip" and "torch.export" in r.reason and "keras" in r.reason, r.reason
    assert "executorch-fp32" in checks.deploy_runtimes(TORCH, "seeded", ("all",))
    assert "executorch-fp32" not in checks.deploy_runtimes(KERAS, "seeded", ("all",))


def test_the_host_implements_its_contract(harness):
    c = harness.client("executorch").contract()
    assert c.missing == [] and "pte_run" in c.implemented, c


@pytest.mark.slow   # CI time (123 s): the runtime's code runs on seeded weights above; the judged-int8 path of the
@needs_real         # deploy check runs in CI through ort/openvino/tflite int8 on the real weights (test_deploy.py)
def test_executorch_on_the_real_weights(harness):
    for runtime in ("executorch-fp32", "executorch-int8"):
        r = deploy(harness, TORCH, runtime, mode="real", options=CALIB if runtime.endswith("int8") else None)
        assert r.status == "pass", r.reason
        assert r.metrics["runtime"]["precision"] == runtime.split("-")[1]


@pytest.mark.slow   # CI time (62 s): eval through a hosted deploy runtime runs in CI (test_deploy.py's eval tests)
@needs_real
def test_eval_through_executorch_reports_what_it_ran(tmp_path):
    out = tmp_path / "eval.json"
    p = subprocess.run([sys.executable, "-m", "parity.cli", "eval", TORCH.id, "--data",
                        str(REAL / "images" / "imagenet_sample_1000" / "labels.txt"), "--limit", "24", "--weights",
                        "real", "--runtime", "executorch", "--workdir", str(tmp_path), "--json", str(out)],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    row = next(r for r in json.loads(out.read_text())["deployed"] if r["runtime"] == "executorch-fp32")
    assert row["precision"] == "fp32" and row["n"] == 24 and row["agreement"] == 1.0, row


def test_a_missing_executorch_interpreter_skips_with_where_to_get_it(harness, monkeypatch, tmp_path):
    monkeypatch.setenv("MBV2_PARITY_PYTHON_EXECUTORCH", str(tmp_path / "no-python"))
    interpreter_missing.cache_clear()
    try:
        r = deploy(harness, TORCH, "executorch-fp32")
        assert r.status == "skip" and "no ExecuTorch interpreter" in r.reason and "w-executorch" in r.reason, r.reason
        assert "executorch-fp32" not in checks.deploy_runtimes(TORCH, "seeded", ("all",))
    finally:
        monkeypatch.undo()
        interpreter_missing.cache_clear()
