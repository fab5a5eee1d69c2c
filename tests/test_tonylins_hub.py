"""Seed 004's systems: the tonylins/pytorch-mobilenet-v2 MobileNetV2 (a sixth source in the torch stack, implemented
in adapters/tonylins.py) with the Open Model Zoo and CSAIL weight files, and torch.hub loading as a way to reach
torchvision V1."""
import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from parity.preprocess import preprocess_batch
from parity.probes import probe_images
from parity.registry import Registry, RegistryError
from parity.weights import transplant as T
from support import REGISTRY, onnx_check, seeded_canonical

TV = REGISTRY.get("torchvision/mobilenet_v2.IMAGENET1K_V1")
OMZ = REGISTRY.get("tonylins/mobilenet_v2.omz")
HUB = "hub:pytorch/vision:v0.6.0/mobilenet_v2"


@pytest.fixture(scope="module")
def tv_canon(harness):
    return seeded_canonical(harness, TV, "tv-seeded")


def logits(harness, card, weights):
    built = harness.build(card, weights)
    x = preprocess_batch([im for _, im in probe_images()], card.preprocess)
    return np.load(harness.client(card.framework).run(built.key, harness.pool.put_array(x, "tl"))[0])


def test_the_hub_entry_point_resolves_to_the_torchvision_v1_file(harness):
    """What `torch.hub.load('pytorch/vision:v0.6.0', 'mobilenet_v2', pretrained=True)` downloads is V1's file: the
    registry says so, and torchvision's own legacy `pretrained=True` path (download intercepted) asks for it."""
    (entry,) = REGISTRY.hub
    assert entry.id == HUB and REGISTRY.get(HUB) is TV and entry.resolves_to == TV.weights.url
    assert harness.client("torchvision").meta(TV).meta["legacy_pretrained_url"] == TV.weights.url


def test_hub_ids_select_their_card_on_the_cli_and_unknown_ones_are_refused():
    ok = subprocess.run([sys.executable, "-m", "parity.cli", "list", HUB], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and TV.id in ok.stdout, ok.stderr
    bad = subprocess.run([sys.executable, "-m", "parity.cli", "list", "hub:pytorch/vision:v0.5.0/mobilenet_v2"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "unknown hub entry" in bad.stderr and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_a_hub_record_pointing_at_other_weights_is_refused():
    wrong = dataclasses.replace(REGISTRY.hub[0], resolves_to="https://download.pytorch.org/models/other.pth")
    sections = {**REGISTRY.sections, "hub": [dataclasses.asdict(wrong)]}
    with pytest.raises(RegistryError, match="not the same weights"):
        Registry(REGISTRY.cards, REGISTRY.sources, sections=sections)


def test_torchvision_weights_transplant_exactly_into_the_tonylins_class(harness, tv_canon, tmp_path):
    """At width 1.0 the tonylins class is torchvision's unit for unit: torchvision's seeded weights, written as a
    tonylins native file (its own key names), load strictly and give torchvision's logits."""
    res = T.transplant(harness, tv_canon, "tonylins", tmp_path / "tl.pth")
    a = logits(harness, TV, "seeded")
    b = logits(harness, OMZ, f"file:{res['path']}")
    assert np.abs(a - b).max() <= T.EXACT_MAX_ABS and (a.argmax(1) == b.argmax(1)).all()
    assert a.std() > 1.0                                           # realistic logits, not ~1e-9


def test_key_names_are_tonylins_own_and_loading_is_strict(harness, tmp_path):
    """torchvision's native file does not load into the tonylins class (features.1.conv.1 is a 1x1 conv there, a BatchNorm here):
    refused with the first differing tensor named, where seed 004's load_state_dict(strict=False) loads nothing."""
    path = tmp_path / "tv.pth"
    harness.client("torchvision").save_native(harness.build(TV, "seeded").key, path)
    r = onnx_check(harness, OMZ, f"file:{path}")
    assert r.status == "error" and "features.1.conv.1.weight has shape" in r.reason, r.reason


def test_other_widths_are_refused_with_the_unit_and_shapes(harness, tmp_path):
    """int(c * width_mult) vs torchvision's _make_divisible: at width 0.5 block 1 has 12 channels here, 16 there."""
    half = TV.variant(width_mult=0.5)
    path = tmp_path / "half.safetensors"
    harness.client("torchvision").export_canonical(harness.build(half, "seeded").key, path)
    r = onnx_check(harness, OMZ.variant(width_mult=0.5), f"canonical:{path}")
    assert r.status == "error" and "width mismatch" in r.reason, r.reason


def test_omz_cells_are_recorded_with_their_pins():
    assert OMZ.weights.sha256 == "ecbe2b568c8602549fa9e1d5833c63848f490a48d92e5d224d1eb2063e152cf8"
    cells = {(p.source, p.metric): p.digits for p in OMZ.published}
    assert cells[("omz-accuracy-check", "top1")] == "0.719" and cells[("omz-accuracy-check", "top5")] == "0.903"
    assert cells[("omz-model-yml", "file_size")] == "14205652"
    csail = REGISTRY.get("tonylins/mobilenet_v2.csail")
    assert not csail.weights.sha256 and "strict=False" in csail.weights.unpinned
