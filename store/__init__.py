"""The history store: SQLite in WAL mode, one batched writer, a hash chain, search and export.

Never imports textual: the daemon and the CLI use it without the TUI.
"""

from store.audit import PruneResult, VerifyResult, load_or_create_key, verify
from store.db import SCHEMA_VERSION, SchemaError, StoreError, migrate, open_db
from store.writer import StoreWriter

__all__ = [
    "SCHEMA_VERSION",
    "PruneResult",
    "SchemaError",
    "StoreError",
    "StoreWriter",
    "VerifyResult",
    "load_or_create_key",
    "migrate",
    "open_db",
    "verify",
]
