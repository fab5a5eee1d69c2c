"""timm adapter: ``timm.create_model('mobilenetv2_*')`` with the tag's ``pretrained_cfg``."""
from __future__ import annotations

from typing import ClassVar

import timm
from timm.data import create_transform, resolve_data_config

from parity.spec import PreprocessSpec

from . import torch_common as tc
from .base import AdapterError, BaseAdapter


class Adapter(tc.TorchAdapter, BaseAdapter):
    framework = "timm"
    UNSUPPORTED: ClassVar[dict[str, str]] = {"tflite_run": "the TFLite interpreter runs in the TensorFlow stack"}

    def versions(self) -> dict[str, str]:
        return {**tc.versions(), "timm": timm.__version__}

    @staticmethod
    def model_name(card: dict) -> str:
        name = f"{card['arch']}.{card['tag']}"
        if name not in timm.list_pretrained(card["arch"] + "*"):
            raise AdapterError(f"timm {timm.__version__} has no pretrained tag {name}",
                               hint="upstream renamed or removed the tag; update the registry")
        return name

    def create(self, card: dict):
        kw = {k: v for k, v in card.get("build", {}).items() if k not in ("padding", "faults")}
        if card.get("build", {}).get("padding") == "same":
            kw["pad_type"] = "same"  # timm's own TF-'SAME' convs (Conv2dSame)
        model = timm.create_model(self.model_name(card), pretrained=False, **kw)
        model._mbv2_padding = "same" if kw.get("pad_type") == "same" else "symmetric"
        return model

    def derive_spec(self, card: dict) -> PreprocessSpec:
        model = self.create(card)
        cfg = resolve_data_config({}, model=model)
        tf = create_transform(**cfg, is_training=False)  # the eval pipeline timm itself builds
        found: dict = {}
        for t in tf.transforms:
            name = type(t).__name__
            if name in ("Resize", "ResizeKeepRatio"):
                size = t.size if isinstance(t.size, int) else (t.size[0] if len(t.size) == 1 else None)
                if size is None:
                    raise AdapterError(f"timm eval transform resizes to a fixed {t.size}, not the shorter side")
                found.update(resize_size=int(size), interpolation=tc.interp_name(t.interpolation),
                             antialias=bool(getattr(t, "antialias", True)))
            elif name == "CenterCrop":
                found["crop_size"] = int(t.size[0])
            elif name == "Normalize":
                found.update(mean=tuple(float(v) for v in t.mean), std=tuple(float(v) for v in t.std))
            elif name in ("MaybeToTensor", "ToTensor"):
                found["scale"] = 1 / 255
            else:
                raise AdapterError(f"unexpected step {name} in timm's eval transform", hint="extend the timm adapter")
        return PreprocessSpec(resize_mode="shorter_side", backend="pil", channel_order="RGB", layout="NCHW",
                              dtype="float32", crop_pct=float(cfg["crop_pct"]),
                              source=f"timm {timm.__version__} create_transform(resolve_data_config(model))",
                              **found)

    def native_preprocess(self, card: dict, images: list[str]):
        """timm's ``ImageDataset`` loading (``Image.open(f).convert('RGB')``) + the eval ``create_transform``."""
        import torch
        from PIL import Image
        model = self.create(card)
        tf = create_transform(**resolve_data_config({}, model=model), is_training=False)
        out = []
        for p in images:
            with open(p, "rb") as f:
                out.append(tf(Image.open(f).convert("RGB")))
        return torch.stack(out).numpy()

    def meta(self, card: dict) -> dict:
        cfg = timm.models.get_pretrained_cfg(self.model_name(card))
        d = cfg.to_dict()
        meta = {k: v for k, v in d.items() if isinstance(v, (str, int, float, bool, list, tuple))}
        return {"url": d.get("url"), "meta": meta,  # timm's cfg carries no accuracy numbers
                "card_fields": {"preprocess.crop_pct": d.get("crop_pct"), "weights.hf_hub_id": d.get("hf_hub_id")}}
