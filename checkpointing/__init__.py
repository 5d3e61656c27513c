"""Short-term memory: LangGraph's Postgres checkpointer on the shared pool.

Conversations are threads (``config["configurable"]["thread_id"]``); every step
of a run is a checkpoint in the tables LangGraph's ``PostgresSaver`` owns.
"""

from checkpointing.saver import (
    CHECKPOINT_TABLES,
    AsyncMemoryAgentSaver,
    MemoryAgentSaver,
    amissing_tables,
    asetup_checkpoint_tables,
    missing_tables,
    setup_checkpoint_tables,
)
from checkpointing.threads import InvalidThreadId, resolve_thread_id, validate_thread_id

__all__ = [
    "CHECKPOINT_TABLES",
    "AsyncMemoryAgentSaver",
    "InvalidThreadId",
    "MemoryAgentSaver",
    "amissing_tables",
    "asetup_checkpoint_tables",
    "missing_tables",
    "resolve_thread_id",
    "setup_checkpoint_tables",
    "validate_thread_id",
]
