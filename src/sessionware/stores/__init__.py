"""Session stores. Network stores live in their own modules so their clients stay optional."""

from .base import RecordStore, Store, SyncRecordStore, SyncStore
from .memory import MemoryStore
from .urls import from_url

__all__ = ["MemoryStore", "RecordStore", "Store", "SyncRecordStore", "SyncStore", "from_url"]
