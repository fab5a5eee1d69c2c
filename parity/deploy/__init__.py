"""Deployment: what users ship -- other runtimes, lower precisions, quantized artifacts -- measured against the fp32
native reference. ``calibration`` (the calibration set, preprocessed with the card's own spec), ``precisions``
(the judging per precision, SQNR), ``artifacts`` (fp16 and int8 files made by the deploy host, recording how),
``blame`` (per-layer SQNR of a quantized model)."""
