"""The deployment preprocessing audit (``mbv2-parity audit``): read the config a deployment engineer ships with
(one importer per toolchain format, ``importers/``), compare it field by field with the card's upstream spec
(``diff``), price each difference on real images in tensor error and top-1 (``cost``), and write the corrected
config in the same format (each importer's ``fix``). Framework-free: the model runs in ONNX Runtime."""
