"""`mbv2-parity verify ARTIFACT`: the file a user ships, read, identified and judged (``formats``: sniffing and the
one-line refusals; ``structure``: what the parent reads without a framework; ``artifact``: I/O and running in the
worker of its stack; ``identify``: which card and weights; ``verdict``: preprocessing, measures, named findings)."""
