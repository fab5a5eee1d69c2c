"""FLOPs/params counting conventions on the exported graph (``flops``)."""
