"""Non-finite weights or activations are errors wherever they appear: never a pass, never 'all units agree (nan)'."""
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from parity.compare import ONNX_FP32, compare_logits
from parity.preprocess import preprocess_batch
from parity.probes import probe_images
from parity.weights import canonical
from parity.weights import transplant as T
from parity.weights.bisect import bisect_onnx
from support import REGISTRY

TV = REGISTRY.get("torchvision/mobilenet_v2.IMAGENET1K_V1")


def test_nan_in_compared_logits_fails():
    a = np.random.default_rng(0).normal(0, 4, (6, 1000)).astype(np.float32)
    b = a.copy()
    b[2, 7] = np.nan
    c = compare_logits(a, b, ONNX_FP32)
    assert not c.passed and "non-finite" in c.failures[0]


@pytest.fixture(scope="module")
def nan_canon(harness, tmp_path_factory):
    from safetensors.numpy import save_file
    built = harness.build(TV, "seeded")
    d = tmp_path_factory.mktemp("nan")
    good = d / "good.safetensors"
    harness.client("torchvision").export_canonical(built.key, good)
    c = canonical.load(good)
    c.tensors["features.5.conv.1.0.weight"][0, 0, 1, 1] = np.nan
    bad = d / "nan.safetensors"
    save_file(c.tensors, str(bad), metadata={"format": canonical.FORMAT, "version": "1", "bn_eps": "1e-05",
                                             "padding": "symmetric", "source": "nan", "width": "1.0"})
    return bad


def test_canonical_with_nan_is_refused(nan_canon):
    with pytest.raises(canonical.CanonicalError, match=r"features\.5\.conv\.1\.0\.weight: 1 non-finite"):
        canonical.load(nan_canon)


def test_transplant_of_nan_weights_exits_non_zero_and_writes_nothing(nan_canon, tmp_path):
    out = tmp_path / "x.pth"
    p = subprocess.run([sys.executable, "-m", "parity.cli", "transplant", str(nan_canon), "--to", "timm", "--out",
                        str(out), "--workdir", str(tmp_path)], capture_output=True, text=True)
    assert p.returncode == 2 and "non-finite" in p.stderr and not out.exists(), p.stderr


def test_bisection_refuses_nan_activations(harness, tmp_path):
    x = preprocess_batch([im for _, im in probe_images()][:3], T.tflite_spec(1 / 127.5, 127))
    path = harness.export(TV, "seeded", exporter="keep-bn").path
    m = onnx.load(path)
    init = next(i for i in m.graph.initializer if numpy_helper.to_array(i).ndim == 4)
    w = numpy_helper.to_array(init).copy()
    w.flat[0] = np.nan
    init.CopyFrom(numpy_helper.from_array(w, init.name))
    bad = tmp_path / "nan.onnx"
    onnx.save(m, bad)
    with pytest.raises(T.TransplantError, match="non-finite activations"):
        bisect_onnx(harness, TV, "seeded", x, onnx_path=bad)
