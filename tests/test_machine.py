"""The machine profile (``parity.machine``): what is read from /proc/cpuinfo and the runtimes' read-backs, said in
sentences made only from what was read, and a changed machine named as the cause of verdicts that moved only on
runtimes whose choice depends on the CPU."""
import pytest

from parity import machine

pytestmark = pytest.mark.judging

AVX2 = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse4_2 avx avx2 fma\n"
SAPPHIRE = ("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\nflags\t\t: avx avx2 avx512f avx512_bf16 "
            "avx512_vnni avx_vnni amx_tile amx_bf16 amx_int8 avx512_fp16\n")


def test_the_cpu_is_read_not_assumed():
    a = machine.read_cpu(AVX2, "x86_64")
    assert a == {"model": "AMD EPYC", "machine": "x86_64", "source": "recorded", "known": True, "flags": ["avx2"]}
    assert not machine.has_bf16(a) and not machine.has_vnni(a)
    b = machine.read_cpu(SAPPHIRE, "x86_64")
    assert machine.has_bf16(b) and machine.has_vnni(b) and "amx_bf16" in b["flags"]
    unknown = machine.read_cpu("", "x86_64")
    assert not unknown["known"] and "could not be read" in machine.describe(unknown)
    here = machine.read_cpu()
    assert here["source"] == "/proc/cpuinfo"


def test_describe_names_what_it_has_and_lacks():
    s = machine.describe(machine.read_cpu(AVX2, "x86_64"))
    assert "'AMD EPYC'" in s and "avx2" in s and "no avx512_bf16, amx_bf16, avx512_vnni, avx_vnni, amx_int8" in s
    s = machine.describe(machine.read_cpu(SAPPHIRE, "x86_64"))
    assert "no " not in s and "avx512_bf16" in s


def rt(family, precision, detail):
    return {"card": "c", "check": "deploy-x", "status": "pass", "mode": "seeded",
            "metrics": {"runtime": {"family": family, "options": {"precision": precision}, "detail": detail}}}


def test_runtime_capabilities_come_from_the_results_read_backs():
    res = [rt("openvino", "default", {"capabilities": ["FP32", "INT8"], "hint": "fp32"}),
           rt("onnxruntime", "int8", {"cpu": {"vnni": [], "saturating": True}}),
           rt("paddle-inference", "bf16", {"bf16_supported": False}), rt("tflite", "fp32", {})]
    caps = machine.runtime_capabilities(res)
    assert caps == {"openvino": {"OPTIMIZATION_CAPABILITIES": ["FP32", "INT8"], "default_hint": "fp32"},
                    "onnxruntime": {"int8_vnni": [], "int8_saturating": True},
                    "paddle-inference": {"supports_bfloat16": False}}


def test_a_changed_machine_explains_only_cpu_dependent_verdicts():
    a = {"cpu": machine.read_cpu(AVX2, "x86_64"), "runtimes": {"openvino": {"default_hint": "fp32"}}}
    b = {"cpu": machine.read_cpu(SAPPHIRE, "x86_64"), "runtimes": {"openvino": {"default_hint": "bf16"}}}
    diff = machine.differences(a, b)
    assert any("+avx512_bf16" in d for d in diff) and "openvino default_hint: fp32 -> bf16" in diff
    why = machine.explains({"deploy-openvino-default", "deploy-ort-int8"}, a, b)
    assert "the machine changed" in why and "not upstream drift" in why
    assert machine.explains({"deploy-openvino-default", "onnx"}, a, b) == ""      # an fp32 ONNX check moved too
    assert machine.explains({"deploy-openvino-default"}, a, a) == ""              # the same machine
    assert machine.explains({"deploy-openvino-default"}, None, b) == ""           # not recorded: no claim
    assert machine.differences(a, a) == []


def test_report_compare_names_the_machine_for_cpu_dependent_moves_only(tmp_path):
    """`report --compare EARLIER/results.json`: the verdicts that changed, and the machine named as their cause only
    when every one is on a runtime whose choice depends on the CPU."""
    import json
    import subprocess
    import sys

    from parity import runlog
    before_cpu, after_cpu = machine.read_cpu(AVX2, "x86_64"), machine.read_cpu(SAPPHIRE, "x86_64")

    def res(check, status):
        return {"card": "timm/mobilenetv2_050.lamb_in1k", "check": check, "status": status, "reason": "r",
                "mode": "seeded", "metrics": {}}
    before = {"run": "old", "results": [res("deploy-openvino-default", "pass"), res("onnx-opset17", "pass")],
              "machine": {"cpu": before_cpu, "runtimes": {}}}
    (tmp_path / "before.json").write_text(json.dumps(before))

    def report(after_results):
        wd = tmp_path / "wd"
        run, step = runlog.start(wd, "check", ["check"], [wd / "results.json"], fresh=True)
        (wd / "results.json").write_text(json.dumps({"run": run.id, "partial": False, "versions": {},
                                                     "results": after_results,
                                                     "machine": {"cpu": after_cpu, "runtimes": {}}}))
        runlog.finish(wd, step, 0)
        subprocess.run([sys.executable, "-m", "parity.cli", "report", "--workdir", str(wd), "--compare",
                        str(tmp_path / "before.json")], check=True, capture_output=True)
        return (wd / "report.md").read_text()
    md = report([res("deploy-openvino-default", "skip"), res("onnx-opset17", "pass")])
    assert "deploy-openvino-default [seeded]: pass -> skip" in md and "the machine changed" in md
    assert "+avx512_bf16" in md
    md = report([res("deploy-openvino-default", "skip"), res("onnx-opset17", "fail")])
    assert "onnx-opset17 [seeded]: pass -> fail" in md and "the machine changed" not in md   # not the machine's
    bad = subprocess.run([sys.executable, "-m", "parity.cli", "report", "--workdir", str(tmp_path / "wd"),
                          "--compare", str(tmp_path / "nope.json")], capture_output=True, text=True)
    assert bad.returncode == 2 and "--compare" in bad.stderr
