"""torchvision adapter: ``torchvision.models.mobilenet_v2`` with ``MobileNet_V2_Weights``."""
from __future__ import annotations

from typing import ClassVar

import torchvision
from torchvision.models import get_model, get_model_weights

from parity import faults as F
from parity.spec import PreprocessSpec

from . import torch_common as tc
from .base import AdapterError, BaseAdapter, intercept_download


class Adapter(tc.TorchAdapter, BaseAdapter):
    framework = "torchvision"
    UNSUPPORTED: ClassVar[dict[str, str]] = {"tflite_run": "the TFLite interpreter runs in the TensorFlow stack"}

    def versions(self) -> dict[str, str]:
        return {**tc.versions(), "torchvision": torchvision.__version__}

    @staticmethod
    def weights_enum(card: dict):
        try:
            return get_model_weights(card["arch"])[card["tag"]]
        except (KeyError, ValueError):
            raise AdapterError(f"torchvision {torchvision.__version__} has no weights {card['arch']}.{card['tag']}",
                               hint="upstream renamed or removed the weight tag; update the registry") from None

    def derive_spec(self, card: dict) -> PreprocessSpec:
        w = self.weights_enum(card)
        t = w.transforms()  # torchvision's ImageClassification preset bound to these weights
        # ImageClassification.forward resizes and crops the PIL image, then pil_to_tensor + convert_image_dtype
        # (uint8 -> float: / 255), then normalize: so the resize backend is PIL for PIL inputs.
        return PreprocessSpec(
            resize_mode="shorter_side", resize_size=int(t.resize_size[0]), crop_size=int(t.crop_size[0]),
            interpolation=tc.interp_name(t.interpolation), antialias=bool(t.antialias), backend="pil",
            channel_order="RGB", scale=1 / 255, mean=tuple(t.mean), std=tuple(t.std), layout="NCHW",
            dtype="float32", source=f"torchvision {torchvision.__version__} {w}.transforms()",
        )

    def create(self, card: dict):
        b = card.get("build", {})
        model = get_model(card["arch"], weights=None, width_mult=b.get("width_mult", 1.0),
                          num_classes=b.get("num_classes", 1000))
        drop = F.arg_of("drop_block", b.get("faults", []))
        if drop is not None:  # a construct-stage fault for the count check: one residual block removed
            idx = int(drop)
            block = model.features[idx]
            if not getattr(block, "use_res_connect", False):
                raise AdapterError(f"features[{idx}] is not a residual block: dropping it would break the shapes")
            del model.features[idx]
        return model

    def native_preprocess(self, card: dict, images: list[str]):
        """``datasets.folder.default_loader`` (PIL, convert RGB) + ``weights.transforms()``: what an ImageFolder
        evaluation with these weights does."""
        import torch
        from torchvision.datasets.folder import default_loader
        t = self.weights_enum(card).transforms()
        return torch.stack([t(default_loader(p)) for p in images]).numpy()

    def meta(self, card: dict) -> dict:
        """The published metadata torchvision ships with the weights (compared against the registry)."""
        w = self.weights_enum(card)
        m = dict(w.meta)
        m.pop("categories", None)
        acc = m.get("_metrics", {}).get("ImageNet-1K", {})
        fields = {"params": ("num_params", m.get("num_params")), "flops": ("_ops", m.get("_ops")),
                  "file_size": ("_file_size", m.get("_file_size")), "top1": ("acc@1", acc.get("acc@1")),
                  "top5": ("acc@5", acc.get("acc@5"))}
        m["legacy_pretrained_url"] = legacy_pretrained_url(card["arch"])
        return {"url": w.url, "source": "torchvision-meta", "meta": m,
                "published": {k: {"field": f, "value": v} for k, (f, v) in fields.items() if v is not None}}


def legacy_pretrained_url(arch: str) -> str | None:
    """The file ``torchvision.models.<arch>(pretrained=True)`` asks for: the call seed 004's torch.hub entry point
    makes (``hubconf`` re-exports the model builders). torchvision's download is intercepted; nothing is fetched."""
    import warnings

    import torchvision.models as tvm
    import torchvision.models._api as api
    with intercept_download(api, "load_state_dict_from_url") as asked, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 'pretrained' is deprecated: that is the legacy path being shown
        try:
            getattr(tvm, arch)(pretrained=True)
        except TypeError:  # the legacy keyword is gone from this torchvision
            return None
    return asked.get("url")
