"""The drift watch and issue filing, end to end against a fake upstream file server and a fake GitHub API (real
HTTP servers on 127.0.0.1): a weight change, a preprocessing change, a converter change, dedupe, a comment on a
tracked card, an API 500 and an API timeout."""
import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time

import pytest

from parity.drift import golden
from support import REGISTRY

TV1 = REGISTRY.get("torchvision/mobilenet_v2.IMAGENET1K_V1")
TV2 = REGISTRY.get("torchvision/mobilenet_v2.IMAGENET1K_V2")


class Upstream(http.server.BaseHTTPRequestHandler):
    files: dict = {}          # path -> (bytes, last_modified)

    def log_message(self, *a):
        pass

    def _head(self):
        item = Upstream.files.get(self.path)
        if item is None:
            self.send_error(404)
            return None
        body, lm = item
        self.send_response(200)
        self.send_header("ETag", '"' + hashlib.sha256(body).hexdigest()[:16] + '"')
        self.send_header("Last-Modified", lm)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        return body

    def do_HEAD(self):
        self._head()

    def do_GET(self):
        body = self._head()
        if body is not None:
            self.wfile.write(body)


class FakeGitHub(http.server.BaseHTTPRequestHandler):
    issues: list = []
    comments: dict = {}
    mode = "ok"               # ok | 500 | slow

    def log_message(self, *a):
        pass

    def _send(self, code, obj):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _gate(self):
        if FakeGitHub.mode == "500":
            self._send(500, {"message": "boom"})
            return False
        if FakeGitHub.mode == "slow":
            time.sleep(3)
        return True

    def do_GET(self):
        if not self._gate():
            return None
        if "/comments" in self.path:
            n = int(self.path.split("/issues/")[1].split("/")[0])
            return self._send(200, FakeGitHub.comments.get(n, []))
        return self._send(200, [i for i in FakeGitHub.issues if i["state"] == "open"])

    def do_POST(self):
        if not self._gate():
            return None
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if "/comments" in self.path:
            n = int(self.path.split("/issues/")[1].split("/")[0])
            FakeGitHub.comments.setdefault(n, []).append(body)
            return self._send(201, body)
        issue = {"number": len(FakeGitHub.issues) + 1, "state": "open", **body}
        FakeGitHub.issues.append(issue)
        return self._send(201, issue)


def serve(handler):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}"


@pytest.fixture(scope="module")
def world(harness, tmp_path_factory):
    """Two real torchvision weight files (v1, v2), servers, a golden dir recording v1."""
    tmp = tmp_path_factory.mktemp("watch")
    import dataclasses
    files = {}
    for v in ("v1", "v2"):
        card = dataclasses.replace(TV1, id=TV1.id + f"+{v}")
        built = harness.build(card, "seeded")
        p = tmp / f"{v}.pth"
        harness.client("torchvision").save_native(built.key, p)
        files[v] = p.read_bytes()
    up, up_url = serve(Upstream)
    gh, gh_url = serve(FakeGitHub)
    gdir = tmp / "golden"
    shutil.copytree(golden.GOLDEN_DIR, gdir, ignore=shutil.ignore_patterns("keras*", "ppcls*", "timm*", "mmcls*"))
    Upstream.files["/models/" + TV1.weights.filename] = (files["v1"], "Mon, 23 Nov 2026 10:00:00 GMT")
    Upstream.files["/models/" + TV2.weights.filename] = (files["v1"], "Mon, 23 Nov 2026 10:00:00 GMT")
    for card in (TV1, TV2):  # the golden record of what upstream served last time
        doc = golden.load(card.id, gdir)
        body = files["v1"]
        doc["weights"].update({"sha256": hashlib.sha256(body).hexdigest(), "size": len(body),
                               "etag": '"' + hashlib.sha256(body).hexdigest()[:16] + '"',
                               "last_modified": "Mon, 23 Nov 2026 10:00:00 GMT", "content_length": len(body)})
        golden.save(doc, gdir)
    # the previous file, as the watch cache would hold it from the last run
    cache = tmp / "work" / "watch-cache" / TV1.id.replace("/", "__")
    cache.mkdir(parents=True)
    (cache / (hashlib.sha256(files["v1"]).hexdigest() + ".bin")).write_bytes(files["v1"])
    env = {**os.environ, "MBV2_PARITY_URL_REWRITE": f"https://download.pytorch.org={up_url};"
                                                     f"https://storage.googleapis.com={up_url}",
           "MBV2_PARITY_GITHUB_API": gh_url, "MBV2_PARITY_GITHUB_REPO": "acme/zoo", "GITHUB_TOKEN": "t0ken",
           "MBV2_PARITY_GITHUB_TIMEOUT": "1", "MBV2_PARITY_OFFLINE": "0"}
    yield {"files": files, "gdir": gdir, "work": tmp / "work", "env": env, "upstream": up_url}
    up.shutdown()
    gh.shutdown()


def watch(world, *models, file_issues=True):
    args = [sys.executable, "-m", "parity.cli", "watch", *models, "--golden-dir", str(world["gdir"]),
            "--workdir", str(world["work"])] + (["--file-issues"] if file_issues else [])
    p = subprocess.run(args, capture_output=True, text=True, env=world["env"], timeout=600)
    doc = json.loads((world["work"] / "watch.json").read_text())
    return p, doc


def test_1_nothing_changed_nothing_filed(world):
    p, doc = watch(world, TV1.id)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert doc["results"][0]["status"] == "unchanged" and FakeGitHub.issues == []
    assert "validators changed: none" in doc["results"][0]["notes"][0]   # HEAD only, no download


def test_2_weight_change_is_classified_and_filed_once(world):
    Upstream.files["/models/" + TV1.weights.filename] = (world["files"]["v2"], "Tue, 24 Nov 2026 03:00:00 GMT")
    p, doc = watch(world, TV1.id)
    assert p.returncode == 10, p.stdout[-2000:] + p.stderr[-2000:]
    diffs = doc["results"][0]["diffs"]
    assert [d["kind"] for d in diffs] == ["weights"]
    d = diffs[0]["details"]
    assert d["new"]["sha256"] == hashlib.sha256(world["files"]["v2"]).hexdigest()
    assert d["tensors"] and d["tensors"][0]["rel_l2"] > 0.1               # per-tensor relative L2
    assert d["probe"]["max_abs_logit_change"] > 1.0
    assert len(FakeGitHub.issues) == 1 and "weights changed" in FakeGitHub.issues[0]["title"]
    assert f"mbv2-parity:{diffs[0]['fingerprint']}" in FakeGitHub.issues[0]["body"]
    assert "relative L2" in (world["work"] / "watch.md").read_text()
    p, doc = watch(world, TV1.id)                                         # the same diff again
    assert len(FakeGitHub.issues) == 1 and doc["filing"]["issues"][0]["action"] == "already-filed"


def test_3_preprocessing_change_files_one_new_issue(world):
    doc = golden.load(TV2.id, world["gdir"])
    doc["spec"]["resize_size"] = 256            # recorded 256; torchvision now derives 232 for V2
    golden.save(doc, world["gdir"])
    _p, out = watch(world, TV2.id)
    kinds = [d["kind"] for d in out["results"][0]["diffs"]]
    assert kinds == ["preprocessing"], out["results"][0]
    assert "resize_size 256 -> 232" in out["results"][0]["diffs"][0]["summary"]
    assert len(FakeGitHub.issues) == 2 and TV2.id in FakeGitHub.issues[1]["title"]


def test_4_converter_change_on_a_tracked_card_becomes_a_comment(world):
    doc = golden.load(TV1.id, world["gdir"])
    doc["_logits"]["onnx"] = doc["_logits"]["onnx"] * 1.01
    golden.save(doc, world["gdir"])
    _p, out = watch(world, TV1.id)
    kinds = sorted(d["kind"] for d in out["results"][0]["diffs"])
    assert "converter" in kinds, out["results"][0]
    assert len(FakeGitHub.issues) == 2 and FakeGitHub.comments.get(1)   # commented on the card's open issue
    assert any("converter" in c["body"] or "ONNX output" in c["body"] for c in FakeGitHub.comments[1])


def test_5_api_500_is_a_clear_error_and_results_are_kept(world):
    doc = golden.load(TV2.id, world["gdir"])
    doc["published"]["params"] = 3504873
    golden.save(doc, world["gdir"])
    FakeGitHub.mode = "500"
    try:
        p, out = watch(world, TV2.id)
    finally:
        FakeGitHub.mode = "ok"
    assert p.returncode == 1 and "HTTP 500" in p.stderr and "Traceback" not in p.stderr
    assert any(d["kind"] == "published" for d in out["results"][0]["diffs"])  # results written anyway
    assert out["filing"]["error"]


def test_6_api_timeout_is_a_clear_error(world):
    FakeGitHub.mode = "slow"
    try:
        p, out = watch(world, TV2.id)
    finally:
        FakeGitHub.mode = "ok"
    assert p.returncode == 1 and ("timed out" in p.stderr or "timeout" in p.stderr.lower()), p.stderr[-800:]
    assert out["results"][0]["diffs"] and out["filing"]["error"]


def test_dry_run_prints_the_issue(world):
    doc = golden.load(TV2.id, world["gdir"])
    doc["published"]["params"] = 3504870
    golden.save(doc, world["gdir"])
    n = len(FakeGitHub.issues)
    p, out = watch(world, TV2.id, file_issues=False)
    assert len(FakeGitHub.issues) == n, "a dry run must not touch the API"
    assert "[dry-run] would file" in p.stdout and out["filing"]["mode"] == "dry-run"


def test_golden_is_reproducible_here(harness):
    """The stored fingerprint equals what this machine computes: a framework/converter upgrade fails here first."""
    for cid in ("torchvision/mobilenet_v2.IMAGENET1K_V1", "ppcls/MobileNetV2.pretrained", "keras/mobilenet_v2.alpha_1.0_224"):
        card = REGISTRY.get(cid)
        new, old = golden.compute(harness, card), golden.load(cid)
        d = [x for x in golden.diff(old, new) if not x.startswith("versions.")]
        assert d == [], (cid, d)


def test_hf_revision_check_reads_the_hub_api(monkeypatch):
    """The Hugging Face revision the watch compares for timm cards (a fake Hub API on 127.0.0.1)."""
    class Hub(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            body = json.dumps({"sha": "0123abcd" if self.path == "/api/models/timm/mobilenetv2_100.ra_in1k/revision/main"
                               else None}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
    srv, url = serve(Hub)
    try:
        monkeypatch.setenv("MBV2_PARITY_HF_ENDPOINT", url)
        from parity.drift.watch import hf_revision
        card = REGISTRY.get("timm/mobilenetv2_100.ra_in1k")
        assert hf_revision(card.weights.hf_hub_id, card.weights.hf_revision) == "0123abcd"
    finally:
        srv.shutdown()


def test_keras_preprocess_input_drift_is_a_preprocessing_diff(world):
    """keras's preprocess_input was ``x / 128 - 1`` in keras-applications (registry ``[[preprocess_history]]``) and
    is ``x / 127.5 - 1`` in the keras the worker runs: a golden recorded in that era meets today's upstream and the
    watch reports a preprocessing diff naming both versions (weights unchanged: served by the fake upstream with the
    recorded validators, so nothing but the spec differs)."""
    old = next(r for r in REGISTRY.preprocess_history if r.framework == "keras" and "/= 128." in r.function)
    card = REGISTRY.get("keras/mobilenet_v2.alpha_1.0_224")
    doc = golden.load(card.id)                                    # the shipped golden, recorded with keras 3
    doc["spec"].update(scale=old.scale, mean=list(old.mean), std=list(old.std))
    body = b"keras weights as served last time"
    Upstream.files[card.weights.url.replace("https://storage.googleapis.com", "")] = (body, "Mon, 23 Nov 2026 10:00:00 GMT")
    doc["weights"].update({"sha256": hashlib.sha256(body).hexdigest(), "size": len(body), "content_length": len(body),
                           "etag": '"' + hashlib.sha256(body).hexdigest()[:16] + '"',
                           "last_modified": "Mon, 23 Nov 2026 10:00:00 GMT"})
    golden.save(doc, world["gdir"])
    n = len(FakeGitHub.issues)
    p, out = watch(world, card.id, file_issues=False)
    res = out["results"][0]
    assert p.returncode == 10 and [d["kind"] for d in res["diffs"]] == ["preprocessing"], res
    summary = res["diffs"][0]["summary"]
    assert "scale 0.0078125 -> 0.00784313725490196" in summary and "x /= 128." in summary and "127.5" in summary
    assert "old normalization is keras_applications" in (world["work"] / "watch.md").read_text()  # the issue text
    assert "keras-applications at commit 85c4954" in (world["work"] / "watch.md").read_text()
    assert len(FakeGitHub.issues) == n
