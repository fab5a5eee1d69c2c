"""Top-1/top-5 evaluation: dataset readers and label checks (``dataset``), the streaming evaluator with its tensor
cache and verdicts (``evaluate``)."""
