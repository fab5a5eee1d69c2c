"""The shape of the suite, enforced: import rules, the framework table as the only place a framework is named, one
settings module, the op contract, size limits, and plug-in points proven from outside the core."""
import ast
import json
import os
import re
import subprocess
import sys

from parity import frameworks, settings
from parity.frameworks import FRAMEWORKS, STACKS
from parity.paths import ROOT
from parity.workers.protocol import OPS

CORE = sorted((ROOT / "parity").rglob("*.py"))
ADAPTERS = sorted((ROOT / "adapters").glob("*.py"))
FRAMEWORK_MODULES = {m for s in STACKS.values() for m in s.modules}
ADAPTER_MAY_IMPORT = {"parity.spec", "parity.faults", "parity.kit", "parity.weights.canonical",
                      "parity.weights.safe_pickle", "parity.workers.protocol", "parity.frameworks", "parity"}


def imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def test_core_imports_no_framework():
    bad = [(p.relative_to(ROOT), m) for p in CORE for m in imports(p) if m.split(".")[0] in FRAMEWORK_MODULES]
    assert bad == []


def test_adapters_import_only_the_framework_free_helpers_they_may():
    bad = [(p.name, m) for p in ADAPTERS for m in imports(p) if m.startswith("parity") and m not in ADAPTER_MAY_IMPORT]
    assert bad == []


def string_constants(path):
    """String literals of a module, docstrings excluded."""
    tree = ast.parse(path.read_text())
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            yield node.value


def test_framework_names_appear_only_in_the_framework_table():
    """No string literal in the core names a framework or a card of one (prose -- a fault's or a convention's
    description citing where a number comes from -- is not a name: it has spaces)."""
    pattern = re.compile(r"\b(" + "|".join(FRAMEWORKS) + r")\b")
    hits = [(p.relative_to(ROOT), s) for p in CORE if p.name != "frameworks.py"
            for s in string_constants(p) if pattern.search(s) and not re.search(r"\s", s.strip())]
    assert hits == [], "name a framework through parity.frameworks, not as a literal"


def test_environment_variables_are_read_in_settings_only_and_documented():
    reads = re.compile(r"""(environ\.get\(|environ\[|getenv\()\s*f?["']""")
    readers = [p.relative_to(ROOT) for p in CORE if p.name != "settings.py" and reads.search(p.read_text())]
    assert readers == []
    page = (ROOT / "docs" / "environment.md").read_text()
    missing = [v for v in settings.VARIABLES if f"`{v}`" not in page]
    assert missing == [], "docs/environment.md's table lacks these"
    used = {m for p in CORE for m in re.findall(r"MBV2_PARITY_[A-Z_]+", p.read_text())}
    known = {v.replace("<STACK>", "") for v in settings.VARIABLES} | {s.env_var for s in STACKS.values()}
    assert {u for u in used if u not in known and not any(u.startswith(k) for k in known if k.endswith("_"))} == set()


def sizes(paths):
    for p in paths:
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                yield p.relative_to(ROOT), node.name, type(node).__name__, node.end_lineno - node.lineno + 1


def test_small_units():
    big = [s for s in sizes(CORE + ADAPTERS) if (s[2] == "ClassDef" and s[3] > 210) or (s[2] != "ClassDef" and s[3] > 80)]
    assert big == [], "no class over ~200 lines, no function over 80"


def test_every_adapter_implements_every_op_or_says_why_not(harness):
    for fw in FRAMEWORKS:
        c = harness.client(fw).contract()
        assert c.missing == [], (fw, c.missing)
        assert set(c.implemented) | set(c.unsupported) == set(OPS), fw
        for op, why in c.unsupported.items():
            assert OPS[op].optional and len(why) > 10, (fw, op, why)


def test_nightly_matrix_is_the_framework_table():
    import yaml
    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "nightly.yml").read_text())
    assert wf["jobs"]["parity"]["strategy"]["matrix"]["framework"] == list(FRAMEWORKS)


def test_cli_choices_come_from_the_framework_table():
    from parity.cli import parser
    sub = next(a for a in parser()._actions if a.dest == "cmd")
    to = next(a for a in sub.choices["transplant"]._actions if a.dest == "to")
    assert tuple(to.choices) == frameworks.names()


def test_a_runtime_and_a_check_from_outside_the_core_run_in_the_matrix(tmp_path):
    """tests/plugins_demo.py (one module, outside parity/) adds a runtime to the ONNX parity comparison and a check
    to every card's plan: `check` runs both."""
    env = {**os.environ, "MBV2_PARITY_PLUGINS": "plugins_demo",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    p = subprocess.run([sys.executable, "-m", "parity.cli", "check", "timm/mobilenetv2_050.lamb_in1k", "--weights",
                        "seeded", "--workdir", str(tmp_path), "--fresh"], capture_output=True, text=True, env=env,
                       timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    doc = json.loads((tmp_path / "results.json").read_text())
    by = {r["check"]: r for r in doc["results"]}
    assert by["demo-shipped-spec"]["status"] == "pass"
    onnx = by["onnx-opset17"]
    assert onnx["status"] == "pass" and "demo-ort-1thread" in onnx["metrics"]
    assert onnx["metrics"]["demo-ort-1thread"]["max_abs"] < 5e-3
    p = subprocess.run([sys.executable, "-m", "parity.cli", "list", "--runtimes"], capture_output=True, text=True,
                       env=env)
    assert "demo-ort-1thread" in p.stdout


def test_the_demo_plugin_check_can_fail(harness):
    """The plug-in check is a real check: a card whose registry spec no longer matches the exported file fails it."""
    import dataclasses
    sys.path.insert(0, str(ROOT / "tests"))
    import plugins_demo  # noqa: F401  (registers its runtime and check)

    from parity import checks
    from support import REGISTRY
    card = REGISTRY.get("timm/mobilenetv2_050.lamb_in1k")
    assert checks.run("demo-shipped-spec", harness, card).status == "pass"
    drifted = dataclasses.replace(card, preprocess=card.preprocess.replace(resize_size=300))
    r = checks.run("demo-shipped-spec", harness, drifted)
    assert r.status == "fail" and "resize_size" in r.reason
