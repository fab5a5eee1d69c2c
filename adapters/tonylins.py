"""tonylins adapter: the MobileNetV2 class of tonylins/pytorch-mobilenet-v2, the one seed 004 prints and loads the
CSAIL scene-parsing weights into, and the architecture Open Model Zoo's ``mobilenet-v2-pytorch`` converts.

There is no package to import: the architecture is implemented here from its description (seed 004's listing,
tonylins's README), with its own module tree and so its own state-dict key names:

* widths ``int(c * width_mult)`` (stem ``int(32 * width_mult)``), no rounding to multiples of 8;
* ``last_channel`` = ``int(1280 * width_mult)`` above width 1.0, else 1280;
* blocks ``features.N.conv.K`` (a flat ``nn.Sequential``: the t=1 block is dw/BN/ReLU6/pw-linear/BN, the others
  pw/BN/ReLU6/dw/BN/ReLU6/pw-linear/BN), stem ``features.0.{0,1}``, last conv ``features.18.{0,1}``;
* head ``x.mean(3).mean(2)`` then ``classifier = Sequential(Dropout(0.2), Linear)`` (``classifier.1.*``).

At width 1.0 this is torchvision's MobileNetV2 unit for unit (only the key names and the pooling call differ), so
canonical import/export and transplants are exact. At other widths ``int()`` and torchvision's ``_make_divisible``
give different channel counts, and a transplant is refused with the unit and both shapes.
"""
from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn as nn

from parity.spec import PreprocessSpec

from . import torch_common as tc
from .base import BaseAdapter

SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def conv_bn(inp: int, oup: int, k: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(inp, oup, k, stride, k // 2, bias=False), nn.BatchNorm2d(oup), nn.ReLU6(inplace=True)]


class InvertedResidual(nn.Module):
    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = round(inp * expand_ratio)
        self.use_res_connect = stride == 1 and inp == oup
        dw = [nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
              nn.ReLU6(inplace=True)]
        pw_linear = [nn.Conv2d(hidden, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup)]
        expand = [] if expand_ratio == 1 else conv_bn(inp, hidden, 1, 1)
        self.conv = nn.Sequential(*expand, *dw, *pw_linear)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self, n_class: int = 1000, input_size: int = 224, width_mult: float = 1.0):
        super().__init__()
        if input_size % 32:
            raise ValueError(f"input_size {input_size} is not a multiple of 32 (the class asserts it)")
        inp = int(32 * width_mult)
        self.last_channel = int(1280 * width_mult) if width_mult > 1.0 else 1280
        layers: list[nn.Module] = [nn.Sequential(*conv_bn(3, inp, 3, 2))]
        for t, c, n, s in SETTING:
            out = int(c * width_mult)
            for i in range(n):
                layers.append(InvertedResidual(inp, out, s if i == 0 else 1, t))
                inp = out
        layers.append(nn.Sequential(*conv_bn(inp, self.last_channel, 1, 1)))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(self.last_channel, n_class))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = x.mean(3).mean(2)
        return self.classifier(x)


class Adapter(tc.TorchAdapter, BaseAdapter):
    framework = "tonylins"
    UNSUPPORTED: ClassVar[dict[str, str]] = {"tflite_run": "the TFLite interpreter runs in the TensorFlow stack"}

    def versions(self) -> dict[str, str]:
        return {**tc.versions(), "torchvision": __import__("torchvision").__version__}

    def create(self, card: dict):
        b = card.get("build", {})
        size = int(b.get("input_size", 224))
        model = MobileNetV2(int(b.get("num_classes", 1000)), size, float(b.get("width_mult", 1.0)))
        model._mbv2_input_size = size
        return model

    @staticmethod
    def val_transform(card: dict):
        """tonylins's README, "Data Pre-processing": the validation loader, verbatim in torchvision terms."""
        from torchvision import transforms
        size = int(card.get("build", {}).get("input_size", 224))
        normalize = transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
        return transforms.Compose([transforms.Resize(int(size / 0.875)), transforms.CenterCrop(size),
                                   transforms.ToTensor(), normalize])

    def derive_spec(self, card: dict) -> PreprocessSpec:
        """Read back from the transform objects the README's validation pipeline builds (their defaults included:
        ``Resize`` bilinear, antialiased on PIL images)."""
        resize, crop, _, norm = self.val_transform(card).transforms
        return PreprocessSpec(
            resize_mode="shorter_side", resize_size=int(resize.size), crop_size=int(crop.size[0]),
            interpolation=tc.interp_name(resize.interpolation), antialias=bool(resize.antialias), backend="pil",
            channel_order="RGB", scale=1 / 255, mean=tuple(norm.mean), std=tuple(norm.std), layout="NCHW",
            dtype="float32", source="tonylins/pytorch-mobilenet-v2 README val_loader (Resize(int(224/0.875)), "
                                    "CenterCrop, ToTensor, Normalize)")

    def native_preprocess(self, card: dict, images: list[str]):
        """``datasets.ImageFolder`` loading (``default_loader``: PIL, RGB) + the README's validation transform."""
        from torchvision.datasets.folder import default_loader
        t = self.val_transform(card)
        return torch.stack([t(default_loader(p)) for p in images]).numpy()

    def meta(self, card: dict) -> dict:
        """tonylins's code ships no weight metadata (no URL table, no hash, no accuracy): nothing to compare."""
        return {"url": None, "meta": {"ships": "nothing: the weights are linked from READMEs and model.yml files"}}
