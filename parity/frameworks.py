"""The framework table: the only place in the core that names a framework. Framework-free.

Everything the core knows about an ecosystem is one ``Framework`` row here: the worker stack (and so the
virtualenv / interpreter) its adapter runs in, the paddings it can build a MobileNetV2 with, its native weight
files, its ecosystem cache, the reference card that represents it in the cross-framework matrix and transplants,
the ONNX opsets its exporter supports, and how its native-vs-ONNX bisection is done. CLI choices, worker stacks,
transplant/cross, the watch, the tests and the nightly matrix all read this table. Adding a framework is: a row
here, a stack row if it needs its own environment, ``adapters/<name>.py`` and its cards in the registry.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stack:
    """A worker environment: one virtualenv (a tox env), one interpreter, the frameworks imported in it."""
    name: str
    tox_env: str
    modules: tuple[str, ...]          # top-level import names of the deep-learning packages it holds
    distributions: tuple[str, ...]    # their PyPI names (versions shown by `doctor`)

    @property
    def env_var(self) -> str:
        return f"MBV2_PARITY_PYTHON_{self.name.upper()}"


@dataclass(frozen=True)
class Framework:
    name: str
    stack: str
    native_padding: str               # how the ecosystem's own MobileNetV2 pads stride-2 convs
    paddings: tuple[str, ...]         # paddings its adapter can build
    weight_suffixes: tuple[str, ...]  # native weight files (`transplant --to` writes the first)
    weight_format: str                # torch-pickle | paddle-pickle | keras-h5
    cache: str                        # ecosystem cache (parity.weights.download.cache_dir)
    reference_card: str               # the width-1.0 card used by cross / transplant
    opsets: tuple[int, int]           # ONNX opsets its exporter supports (inclusive); outside: refused up front
    opset_source: str                 # where that range comes from
    bisect_exporter: str = "keep-bn"  # export whose BatchNormalization outputs the native-vs-ONNX bisection reads
    bisect_skip_units: tuple[int, ...] = ()   # ONNX BN outputs with no canonical unit (ppcls's t=1 expand conv)
    bisect_refused: str = ""          # why a native-vs-ONNX bisection cannot be done ("" = it can)
    tflite_host: bool = False         # its worker also runs the TFLite interpreter (the TF stack)
    deploy_runtimes: tuple[str, ...] = ()   # the deployment runtimes its stack hosts (deploy_export/deploy_run ops)
    any_card_canonical: bool = False  # every card of it (not only the reference) exports canonical weights
    ships_meta: bool = True           # its code ships weight metadata (URL/numbers) the meta check compares


@dataclass(frozen=True)
class Cache:
    """An ecosystem's own weights cache: ``$home_var`` (else ``default_home``, ``~`` or ``$XDG_CACHE_HOME`` based)
    joined with ``subdir``. ``MBV2_PARITY_CACHE`` moves every cache under one root."""
    name: str
    home_var: str
    default_home: str
    subdir: str


STACKS: dict[str, Stack] = {s.name: s for s in (
    Stack("torch", "w-torch", ("torch", "torchvision", "timm", "mmpretrain", "mmengine", "mmcv"),
          ("torch", "torchvision", "timm", "mmpretrain", "mmengine", "onnx", "numpy")),
    Stack("tf", "w-tf", ("tensorflow", "keras", "tf2onnx"), ("tensorflow", "keras", "tf2onnx", "onnx", "numpy")),
    Stack("paddle", "w-paddle", ("paddle", "paddle2onnx", "paddleclas"),
          ("paddlepaddle", "paddle2onnx", "paddleclas", "onnx", "onnxruntime", "numpy")),
    Stack("deploy", "w-deploy", ("openvino", "nncf", "onnxconverter_common"),
          ("openvino", "nncf", "onnxconverter-common", "onnxruntime", "onnx", "numpy")),
    Stack("executorch", "w-executorch", ("executorch", "torchao", "torch", "torchvision", "timm"),
          ("executorch", "torchao", "torch", "torchvision", "timm", "numpy")),
)}

# Workers that host deployment toolchains rather than a model framework: adapter module -> stack.
# `deploy` (adapters/deploy.py): OpenVINO, NNCF and ONNX Runtime's quantization and fp16 conversion.
# `executorch` (adapters/executorch.py): torch.export -> to_edge -> XNNPACK .pte files, PT2E int8, the ExecuTorch
# runtime; its pins (executorch 1.5.1, torchao 0.18) live beside the torch stack's card code, not in it.
HOSTS: dict[str, str] = {"deploy": "deploy", "executorch": "executorch"}

# Hosts that build a stack's cards themselves, with that stack's adapter code, from the same card and weights:
# host -> the stack whose cards it builds (its deployment runtimes run those cards only).
CARD_HOSTS: dict[str, str] = {"executorch": "torch"}

CACHES: dict[str, Cache] = {c.name: c for c in (
    Cache("torch-hub", "TORCH_HOME", "$XDG_CACHE_HOME/torch", "hub/checkpoints"),   # torchvision, timm, mmpretrain
    Cache("keras", "KERAS_HOME", "~/.keras", "models"),                              # keras.utils.get_file
    Cache("paddle", "", "~/.cache/paddle", "weights"),                               # paddle.utils.download.WEIGHTS_HOME
)}

_TORCH_OPSETS = ((7, 20), "torch.onnx._constants: ONNX_MIN_OPSET 7, ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET 20 (torch 2.14)")

FRAMEWORKS: dict[str, Framework] = {f.name: f for f in (
    Framework("torchvision", "torch", "symmetric", ("symmetric", "same"), (".pth", ".pt"), "torch-pickle",
              "torch-hub", "torchvision/mobilenet_v2.IMAGENET1K_V1", *_TORCH_OPSETS, any_card_canonical=True,
              deploy_runtimes=("torchscript", "torch-quantized")),
    Framework("timm", "torch", "symmetric", ("symmetric", "same"), (".pth", ".pt"), "torch-pickle", "torch-hub",
              "timm/mobilenetv2_100.ra_in1k", *_TORCH_OPSETS, deploy_runtimes=("torchscript",)),
    Framework("mmcls", "torch", "symmetric", ("symmetric", "same"), (".pth", ".pt"), "torch-pickle", "torch-hub",
              "mmcls/mobilenet-v2_8xb32_in1k.20200708-3b2dc3af", *_TORCH_OPSETS, deploy_runtimes=("torchscript",)),
    Framework("tonylins", "torch", "symmetric", ("symmetric", "same"), (".pth", ".pth.tar", ".pt"), "torch-pickle",
              "torch-hub", "tonylins/mobilenet_v2.omz", *_TORCH_OPSETS, any_card_canonical=True,
              deploy_runtimes=("torchscript",), ships_meta=False),
    Framework("ppcls", "paddle", "symmetric", ("symmetric", "same"), (".pdparams",), "paddle-pickle", "paddle",
              "ppcls/MobileNetV2.pretrained", (7, 21),
              "paddle2onnx 2.1.0, measured: opsets 7-21 export; 6 and 22 abort the process",
              bisect_exporter="default", bisect_skip_units=(1,), deploy_runtimes=("paddle-inference",)),
    Framework("keras", "tf", "same", ("same",), (".weights.h5", ".h5"), "keras-h5", "keras",
              "keras/mobilenet_v2.alpha_1.0_224", (9, 18), "tf2onnx 1.17 README: opsets 9-18",
              bisect_refused="tf2onnx folded BatchNorm into the convs: no per-unit outputs in the ONNX graph",
              tflite_host=True, deploy_runtimes=("tflite",)),
)}

PADDINGS = ("symmetric", "same")


def get(name: str) -> Framework:
    try:
        return FRAMEWORKS[name]
    except KeyError:
        from .errors import UsageError
        raise UsageError(f"unknown framework {name!r}", hint=f"one of {', '.join(FRAMEWORKS)}") from None


def stack_of(name: str) -> Stack:
    """The stack of a framework or of a toolchain host (``HOSTS``)."""
    if name in HOSTS:
        return STACKS[HOSTS[name]]
    return STACKS[get(name).stack]


# What container each weight format is, for the parent's check of a file before any work (parity/weights/formats.py)
WEIGHT_CONTAINERS: dict[str, str] = {"torch-pickle": "torch-zip-or-legacy-pickle", "paddle-pickle": "pickle",
                                     "keras-h5": "hdf5"}


def names() -> tuple[str, ...]:
    return tuple(FRAMEWORKS)


def by_suffix(path: str) -> list[Framework]:
    """The frameworks whose native weight files end like ``path``."""
    return [f for f in FRAMEWORKS.values() if any(path.endswith(s) for s in f.weight_suffixes)]


def built_by(host: str) -> tuple[str, ...]:
    """The frameworks whose cards host ``host`` builds (``CARD_HOSTS``)."""
    return tuple(f.name for f in FRAMEWORKS.values() if f.stack == CARD_HOSTS.get(host))


def tflite_host() -> Framework:
    return next(f for f in FRAMEWORKS.values() if f.tflite_host)
