"""The machine profile: what a run read about the CPU it ran on and what each runtime reported it can do there.

Runtimes choose their kernels and precisions by the CPU (OpenVINO's default runs bf16 where the CPU has
AVX512_BF16 or AMX; ONNX Runtime's x86 int8 kernels saturate without VNNI; Paddle runs bf16 only where
``supports_bfloat16()``), so a verdict on those runtimes holds for the profile it was measured on. Every sentence the
suite prints about the machine is made here from what was read (``/proc/cpuinfo``, a runtime's own report), never
assumed. Framework-free: the runtimes' read-backs arrive in the results (``metrics.runtime.detail``).
"""
from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

# The CPU flags that change a runtime's choice: bf16 (OpenVINO default precision, Paddle bf16), VNNI (ORT int8
# without saturation), AMX (both), AVX-512 (oneDNN's kernel family).
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8",
             "avx512_fp16")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
# The runtime families whose choice depends on the profile (their verdicts may move with it)
DEPENDS_ON_CPU = {"openvino": "bf16 (default precision) and int8 kernels", "onnxruntime": "int8 kernels (VNNI)",
                  "paddle-inference": "bf16"}


def read_cpu(cpuinfo: str | None = None, machine: str | None = None) -> dict[str, Any]:
    """The CPU as ``/proc/cpuinfo`` describes it (``cpuinfo``: a recorded text instead, for another machine's logic):
    model name, architecture and the ISA flags of ``ISA_FLAGS`` it has. ``known`` is False where nothing was read."""
    source = "recorded" if cpuinfo is not None else "/proc/cpuinfo"
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    lines = cpuinfo.splitlines()
    flags = set(next((ln.split(":", 1)[1].split() for ln in lines if ln.startswith(("flags", "Features"))), []))
    model = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "")
    return {"model": model or "unknown", "machine": (machine or platform.machine()).lower(), "source": source,
            "known": bool(flags), "flags": [f for f in ISA_FLAGS if f in flags]}


def describe(cpu: dict[str, Any]) -> str:
    """One phrase about a read CPU: its model and which of the choice-changing flags it has and lacks."""
    if not cpu.get("known"):
        return f"a CPU whose flags could not be read ({cpu.get('machine', '?')})"
    has = [f for f in ISA_FLAGS if f in cpu["flags"]]
    lacks = [f for f in (*BF16_FLAGS, *VNNI_FLAGS) if f not in cpu["flags"]]
    return (f"CPU {cpu['model']!r} ({cpu['source']}: {', '.join(has) or 'none of ' + ', '.join(ISA_FLAGS)}"
            + (f"; no {', '.join(lacks)}" if lacks else "") + ")")


def has_bf16(cpu: dict[str, Any]) -> bool:
    return any(f in cpu.get("flags", []) for f in BF16_FLAGS)


def has_vnni(cpu: dict[str, Any]) -> bool:
    return any(f in cpu.get("flags", []) for f in VNNI_FLAGS)


def runtime_capabilities(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What each runtime family reported about this machine, gathered from the results' runtime read-backs (the
    first report of a family wins: it is the same machine throughout a run)."""
    out: dict[str, dict[str, Any]] = {}
    for r in results:       # a check result keeps its runtime's info in metrics, an eval result in ``runtime``
        for v in [r.get("runtime"), *(r.get("metrics") or {}).values()]:
            if not (isinstance(v, dict) and "family" in v and isinstance(v.get("detail"), dict)):
                continue
            fam, d = str(v["family"]), v["detail"]
            got: dict[str, Any] = {}
            if fam == "openvino" and "capabilities" in d:
                got = {"OPTIMIZATION_CAPABILITIES": sorted(d["capabilities"]), "default_hint": d.get("hint")
                       if v.get("options", {}).get("precision") == "default" else None}
            elif fam == "onnxruntime" and isinstance(d.get("cpu"), dict):
                got = {"int8_vnni": d["cpu"].get("vnni"), "int8_saturating": d["cpu"].get("saturating")}
            elif fam == "paddle-inference" and "bf16_supported" in d:
                got = {"supports_bfloat16": d["bf16_supported"]}
            if got:
                cur = out.setdefault(fam, {})
                for k, val in got.items():
                    if val is not None and cur.get(k) is None:
                        cur[k] = val
    return out


def profile(results: list[dict[str, Any]], cpu: dict[str, Any] | None = None) -> dict[str, Any]:
    """The machine profile a results file records: the CPU read here and every runtime's capability read-back."""
    return {"cpu": cpu or read_cpu(), "runtimes": runtime_capabilities(results)}


def of_eval(doc: dict[str, Any]) -> dict[str, Any] | None:
    """The profile of an eval JSON: the CPU it recorded and its results' runtime read-backs (None: not recorded)."""
    cpu = (doc.get("machine") or {}).get("cpu")
    return profile(doc.get("results", []), cpu) if cpu else None


def differences(a: dict[str, Any] | None, b: dict[str, Any] | None) -> list[str]:
    """What differs between two recorded profiles, one phrase each (empty: the same, or one of them not recorded)."""
    if not a or not b:
        return []
    out = []
    ca, cb = a.get("cpu", {}), b.get("cpu", {})
    if ca.get("model") != cb.get("model"):
        out.append(f"CPU {ca.get('model')!r} -> {cb.get('model')!r}")
    fa, fb = set(ca.get("flags", [])), set(cb.get("flags", []))
    if fa != fb:
        gained, lost = sorted(fb - fa), sorted(fa - fb)
        out.append("flags" + (f" +{', +'.join(gained)}" if gained else "") + (f" -{', -'.join(lost)}" if lost else ""))
    ra, rb = a.get("runtimes", {}), b.get("runtimes", {})
    for fam in sorted(set(ra) & set(rb)):
        for k in sorted(set(ra[fam]) | set(rb[fam])):
            if ra[fam].get(k) is not None and rb[fam].get(k) is not None and ra[fam].get(k) != rb[fam].get(k):
                out.append(f"{fam} {k}: {ra[fam][k]} -> {rb[fam][k]}")
    return out


def explains(changed_runtimes: set[str], a: dict[str, Any] | None, b: dict[str, Any] | None) -> str:
    """A sentence naming the machine as a cause when the verdicts that changed are all on runtimes whose choice depends
    on the CPU and the profiles differ; "" otherwise (then the change is not the machine's)."""
    diff = differences(a, b)
    if not diff or not changed_runtimes:
        return ""
    families = {family_of(n) for n in changed_runtimes}
    if not all(f in DEPENDS_ON_CPU for f in families):
        return ""
    return ("the machine changed (" + "; ".join(diff) + "): the verdicts that differ are all on runtimes whose choice "
            f"depends on the CPU ({', '.join(sorted(families))}): not upstream drift")


def family_of(runtime: str) -> str:
    """The runtime family of a runtime or check name (``deploy-openvino-default`` -> ``openvino``)."""
    name = runtime.removeprefix("deploy-")
    if name.startswith("openvino"):
        return "openvino"
    if name.startswith("ort"):
        return "onnxruntime"
    if name.startswith("paddle-inference"):
        return "paddle-inference"
    return name.split("-")[0]
