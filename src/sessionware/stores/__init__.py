"""Session stores. Network stores live in their own modules so their clients stay optional."""

from .base import Store, StoreDriver, SyncStore
from .memory import MemoryStore

__all__ = ["MemoryStore", "Store", "StoreDriver", "SyncStore"]
