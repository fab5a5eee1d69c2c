"""Framework adapters. Each module here imports its framework at module import time, so a module is only
ever imported inside that framework's worker process (``python -m adapters.worker <framework>``).
The parent process only uses ``parity`` (framework-free)."""
