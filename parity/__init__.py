"""mbv2-parity core: framework-free (imports no deep-learning framework).

Only ``adapters/`` imports torch / tensorflow / paddle, and only inside worker processes.
"""
__version__ = "0.1.0"
