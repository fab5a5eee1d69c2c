"""Weights: the modes a card's weights come in (``modes``), the verified download (``download``), the canonical
framework-neutral format (``canonical``), TFLite import (``tflite_import``), moving weights between frameworks
(``transplant``), layer-wise bisection (``bisect``) and the restricted unpickler (``safe_pickle``)."""
