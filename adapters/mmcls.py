"""mmcls adapter: ``mmpretrain.get_model('mobilenet-v2_8xb32_in1k')`` (mmcls's successor), exported with
``torch.onnx.export`` of the classifier in test mode returning logits (``mode='tensor'``: backbone, neck, head
``LinearClsHead`` pre-softmax scores; the ``data_preprocessor`` normalization is the spec's job, outside the
graph, as for every other framework)."""
from __future__ import annotations

import logging
import warnings
from typing import ClassVar

warnings.filterwarnings("ignore", message=".*MultiScaleDeformableAttention.*")
warnings.filterwarnings("ignore", category=UserWarning, module="mmengine")

import mmengine
import mmpretrain
import torch
import torch.nn as nn
from mmpretrain.apis import ModelHub

from parity.spec import PreprocessSpec

from . import torch_common as tc
from .base import AdapterError, BaseAdapter

logging.getLogger("mmengine").setLevel(logging.ERROR)


class Logits(nn.Module):
    """``ImageClassifier`` in test mode as a plain ``x -> logits`` module (what is exported and compared)."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(x, mode="tensor")


class Adapter(tc.TorchAdapter, BaseAdapter):
    framework = "mmcls"
    UNSUPPORTED: ClassVar[dict[str, str]] = {"tflite_run": "the TFLite interpreter runs in the TensorFlow stack"}

    def versions(self) -> dict[str, str]:
        return {**tc.versions(), "mmpretrain": mmpretrain.__version__, "mmengine": mmengine.__version__}

    @staticmethod
    def model_info(card: dict):
        name = card["arch"]
        try:
            return ModelHub.get(name)
        except ValueError:
            raise AdapterError(f"mmpretrain {mmpretrain.__version__} has no model {name!r}",
                               hint="upstream renamed it; see mmpretrain.list_models('mobilenet-v2*')") from None

    def _classifier(self, card: dict) -> nn.Module:
        self.model_info(card)
        b = card.get("build", {})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = mmpretrain.get_model(card["arch"], pretrained=False,
                                         backbone={"widen_factor": float(b.get("widen_factor", 1.0))})
        return model

    def create(self, card: dict) -> nn.Module:
        return Logits(self._classifier(card)).eval()

    def weights_target(self, model: nn.Module) -> nn.Module:
        return model.classifier  # the checkpoint holds the ImageClassifier's state_dict ("backbone.*", "head.fc.*")

    def count_native(self, model):
        out = tc.count_native(model)
        from mmengine.analysis import get_model_complexity_info
        logging.getLogger("mmengine").setLevel(logging.CRITICAL)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out["mmengine"] = int(get_model_complexity_info(model, input_shape=(3, 224, 224), show_table=False,
                                                            show_arch=False)["flops"])
        return out

    def derive_spec(self, card: dict) -> PreprocessSpec:
        """The model's test pipeline (built with mmpretrain's own TRANSFORMS registry) + its data_preprocessor.

        ``LoadImageFromFile`` decodes with cv2 (BGR); the resize runs on that array with the pipeline's
        ``backend``; ``data_preprocessor.to_rgb`` flips to RGB before mean/std on the 0-255 scale.
        """
        from mmpretrain.registry import TRANSFORMS
        info = self.model_info(card)
        cfg = info.config
        found: dict = {}
        for step in cfg.test_dataloader.dataset.pipeline:
            t = TRANSFORMS.build(dict(step))
            name = type(t).__name__
            if name == "LoadImageFromFile":
                backend = getattr(t, "imdecode_backend", "cv2")
                if backend not in ("cv2", "pillow"):
                    raise AdapterError(f"LoadImageFromFile decodes with {backend}: not modelled")
                if getattr(t, "color_type", "color") != "color":
                    raise AdapterError(f"LoadImageFromFile color_type={t.color_type}: not modelled")
                found["decoder"] = {"cv2": "cv2", "pillow": "pil"}[backend]
            elif name == "ResizeEdge":
                if t.edge != "short":
                    raise AdapterError(f"ResizeEdge edge={t.edge!r}: not a shorter-side resize")
                backend = {"pillow": "pil", "cv2": "cv2"}[t.backend]
                found.update(resize_size=int(t.scale), interpolation=t.interpolation, backend=backend,
                             antialias=backend == "pil", resize_rounding="floor")  # int(scale * long / short)
            elif name == "CenterCrop":
                cs = t.crop_size
                found["crop_size"] = int(cs if isinstance(cs, int) else cs[0])
            elif name == "PackInputs":
                pass
            else:
                raise AdapterError(f"unexpected step {name} in mmpretrain's test pipeline", hint="extend the mmcls adapter")
        dp = cfg.data_preprocessor
        return PreprocessSpec(
            resize_mode="shorter_side", channel_order="RGB" if dp.get("to_rgb", False) else "BGR", scale=1.0,
            mean=tuple(float(v) for v in dp["mean"]), std=tuple(float(v) for v in dp["std"]), layout="NCHW",
            dtype="float32", crop_rounding="round",
            source=f"mmpretrain {mmpretrain.__version__} {info.name} config test pipeline + data_preprocessor",
            **found)

    def native_preprocess(self, card: dict, images: list[str]):
        """mmpretrain's test pipeline (``LoadImageFromFile`` ... ``PackInputs``, built by its registry) and the
        model's own ``data_preprocessor`` (to_rgb, mean/std), exactly as ``test_step`` runs them."""
        import torch
        from mmcv.transforms import Compose
        from mmpretrain.registry import TRANSFORMS
        info = self.model_info(card)
        pipe = Compose([TRANSFORMS.build(dict(s)) for s in info.config.test_dataloader.dataset.pipeline])
        clf = self._classifier(card)
        packed = [pipe({"img_path": p}) for p in images]
        data = {"inputs": [d["inputs"] for d in packed], "data_samples": [d["data_samples"] for d in packed]}
        with torch.no_grad():
            return clf.data_preprocessor(data, False)["inputs"].numpy()

    def meta(self, card: dict) -> dict:
        info = self.model_info(card)
        md = info.data.get("Metadata")
        metrics = {}
        for r in info.results or []:
            if r.dataset == "ImageNet-1k":
                metrics = dict(r.metrics)
        fields = {"top1": ("Top 1 Accuracy", metrics.get("Top 1 Accuracy")),
                  "top5": ("Top 5 Accuracy", metrics.get("Top 5 Accuracy")),
                  "flops": ("Metadata.FLOPs", getattr(md, "flops", None)),
                  "params": ("Metadata.Parameters", getattr(md, "parameters", None))}
        return {"url": info.weights, "source": "mmpretrain-metafile",
                "meta": {"name": info.name, "config": str(info.config.filename)},
                "published": {k: {"field": f, "value": v} for k, (f, v) in fields.items() if v is not None}}
