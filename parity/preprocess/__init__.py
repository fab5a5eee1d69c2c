"""Preprocessing: the framework-free reference pipeline of a ``PreprocessSpec`` (``reference``) and the
difference matrix between specs (``matrix``)."""
from .reference import (
                        ImageDecodeError,
                        center_crop,
                        decode,
                        geometric,
                        normalize,
                        normalize_batch,
                        preprocess,
                        preprocess_batch,
                        resize,
                        resized_hw,
)

__all__ = ["ImageDecodeError", "center_crop", "decode", "geometric", "normalize", "normalize_batch", "preprocess",
           "preprocess_batch", "resize", "resized_hw"]
