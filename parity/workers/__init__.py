"""Worker processes (one per framework, in its stack's interpreter), their op contract and the typed client."""
from .client import AdapterClient, Built, Exported, Meta
from .process import WorkerCrashed, WorkerError, WorkerPool, WorkerTimeout

__all__ = ["AdapterClient", "Built", "Exported", "Meta", "WorkerCrashed", "WorkerError", "WorkerPool", "WorkerTimeout"]
