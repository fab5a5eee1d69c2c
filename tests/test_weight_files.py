"""Weight files given by path: never unpickled unrestricted (a crafted file must not run code), and a file that does
not fit says which tensor, with both shapes."""
import os
import pickle

import numpy as np
import pytest

from parity import frameworks
from parity.weights.safe_pickle import UnsafePickle, load_state_dict
from support import REGISTRY, nontrivial_check, onnx_check

PPCLS = REGISTRY.get("ppcls/MobileNetV2.pretrained")
TIMM = REGISTRY.get("timm/mobilenetv2_100.ra_in1k")


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def evil_file(path, marker):
    path.write_bytes(pickle.dumps({"conv1_1_weights": Evil(marker)}, protocol=2))
    return path


def test_restricted_unpickler_refuses_code_and_loads_arrays(tmp_path):
    marker = tmp_path / "pwned"
    with pytest.raises(UnsafePickle, match=r"posix\.system|os\.system"):
        load_state_dict(evil_file(tmp_path / "evil.pdparams", marker))
    assert not marker.exists()
    good = tmp_path / "good.pdparams"
    good.write_bytes(pickle.dumps({"a": np.arange(6, dtype=np.float32).reshape(2, 3), "names": {"a": "b"}}, protocol=4))
    sd = load_state_dict(good)
    assert list(sd) == ["a"] and sd["a"].shape == (2, 3)


@pytest.mark.parametrize("card,suffix", [(PPCLS, ".pdparams"), (TIMM, ".pth")], ids=["ppcls", "timm"])
def test_malicious_weight_file_never_runs(harness, tmp_path, card, suffix):
    marker = tmp_path / "pwned"
    r = onnx_check(harness, card, f"file:{evil_file(tmp_path / ('evil' + suffix), marker)}")
    assert r.status in ("error", "fail") and not marker.exists(), r.reason
    assert "refuse" in r.reason and "weights_only=False" not in r.reason, r.reason


def test_resized_tensor_in_a_pdparams_is_named_with_both_shapes(harness, tmp_path):
    built = harness.build(PPCLS, "seeded")
    good = tmp_path / "good.pdparams"
    harness.client("ppcls").save_native(built.key, good)
    sd = load_state_dict(good)
    name = sorted(k for k in sd if sd[k].ndim == 4)[3]
    sd[name] = np.zeros((sd[name].shape[0] + 8, *sd[name].shape[1:]), np.float32)
    bad = tmp_path / "bad.pdparams"
    bad.write_bytes(pickle.dumps(sd, protocol=4))
    r = nontrivial_check(harness, PPCLS, f"file:{bad}")
    assert r.status == "error" and name in r.reason and "in the file but" in r.reason, r.reason
    assert nontrivial_check(harness, PPCLS, f"file:{good}").status == "pass"


def test_torch_file_of_another_width_names_the_first_mismatching_tensor(harness, tmp_path):
    small = REGISTRY.get("timm/mobilenetv2_050.lamb_in1k")
    built = harness.build(small, "seeded")
    f = tmp_path / "w050.pth"
    harness.client("timm").save_native(built.key, f)
    r = nontrivial_check(harness, TIMM, f"file:{f}")
    assert r.status == "error" and "conv_stem.weight" in r.reason and "[16, 3, 3, 3]" in r.reason, r.reason


@pytest.mark.parametrize("fw,small,big", [("keras", "keras/mobilenet_v2.alpha_0.5_224", "keras/mobilenet_v2.alpha_1.0_224"),
                                          ("timm", "timm/mobilenetv2_050.lamb_in1k", "timm/mobilenetv2_100.ra_in1k"),
                                          ("ppcls", "ppcls/MobileNetV2_x0_5.pretrained", "ppcls/MobileNetV2.pretrained")])
def test_weight_file_of_another_width_names_the_tensor_and_the_card_that_fits(harness, tmp_path, fw, small, big):
    """A native weight file saved from one width, given to a card of another: the error names the file, the first
    tensor whose shape differs with both shapes, and the card the file would fit."""
    from support import REGISTRY
    built = harness.build(REGISTRY.get(small), "seeded")
    f = tmp_path / ("w" + frameworks.get(fw).weight_suffixes[0])
    harness.client(fw).save_native(built.key, f)
    r = nontrivial_check(harness, REGISTRY.get(big), f"file:{f}")
    assert r.status == "error" and f.name in r.reason and "in the file but" in r.reason, r.reason
    # every card of the file's width fits it: for keras that is the width at each of its five input sizes
    fits = [c.id for c in REGISTRY.select([fw]) if c.id == small
            or (fw == "keras" and c.build["alpha"] == REGISTRY.get(small).build["alpha"])]
    assert len(fits) == (5 if fw == "keras" else 1) and f"fits {', '.join(fits)}" in r.reason, r.reason
    assert harness.fitting_cards(REGISTRY.get(big), f) == f"{f.name} fits {', '.join(fits)}"


def test_real_weight_files_pass_the_parents_format_check(harness, tmp_path):
    """What the parent accepts before any work: torch.save's zip and legacy formats, a pickled state dict of arrays,
    an HDF5 file (with or without a user block); what it refuses: the same bytes damaged."""
    import subprocess

    from parity.weights.formats import problem
    built = harness.build(REGISTRY.get("timm/mobilenetv2_050.lamb_in1k"), "seeded")
    zipped = tmp_path / "w.pth"
    harness.client("timm").save_native(built.key, zipped)
    legacy = tmp_path / "legacy.pth"
    subprocess.run([harness.pool.get("timm").python, "-c", "import sys, torch; torch.save({'a': torch.ones(3)}, "
                    "sys.argv[1], _use_new_zipfile_serialization=False)", str(legacy)], check=True)
    pd = tmp_path / "w.pdparams"
    pd.write_bytes(pickle.dumps({"a": np.ones(3, np.float32)}, protocol=4))
    h5 = tmp_path / "w.weights.h5"
    h5.write_bytes(b"\0" * 512 + b"\x89HDF\r\n\x1a\n" + b"\0" * 100)   # the signature after a 512-byte user block
    assert [problem(f, fmt) for f, fmt in [(zipped, "torch-pickle"), (legacy, "torch-pickle"), (pd, "paddle-pickle"),
                                           (h5, "keras-h5")]] == ["", "", "", ""]
    cut = tmp_path / "cut.pth"
    cut.write_bytes(legacy.read_bytes()[:10])
    other = tmp_path / "plain.pth"
    other.write_bytes(pickle.dumps({"a": 1}, protocol=2))
    assert problem(cut, "torch-pickle") and problem(other, "torch-pickle") and problem(pd, "torch-pickle")
    assert problem(zipped, "paddle-pickle") and problem(zipped, "keras-h5")


def test_a_worker_error_names_its_kind_once(harness):
    """The worker's reply text starts with its error class; the check's reason says it once."""
    from parity.checks.base import guard
    r = guard(TIMM, "probe", "-", lambda: harness.pool.call("timm", "no_such_op"))
    assert r.status == "error" and r.reason.startswith("AdapterError: ") and r.reason.count("AdapterError") == 1, r.reason


def test_keras_weights_file_renamed_to_h5_is_told_to_be_renamed(harness, tmp_path):
    """A keras 3 weights file (.weights.h5 layout) saved as `.h5` (keras 3 reads that layout only from
    `.weights.h5`): the error says so and names the rename, not "a corrupt file"; renamed back, it loads."""
    card = REGISTRY.get("keras/mobilenet_v2.alpha_0.35_96")
    built = harness.build(card, "seeded")
    good = tmp_path / "mine.weights.h5"
    harness.client("keras").save_native(built.key, good)
    renamed = tmp_path / "mine.h5"
    good.rename(renamed)
    r = nontrivial_check(harness, card, f"file:{renamed}")
    assert r.status == "error" and "mine.h5: a keras 3 weights file" in r.reason, r.reason
    assert "rename it to mine.weights.h5" in r.reason and "corrupt" not in r.reason, r.reason
    renamed.rename(good)
    assert nontrivial_check(harness, card, f"file:{good}").status == "pass"
