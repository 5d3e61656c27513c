"""Short-term memory: LangGraph's Postgres checkpointer on the shared pool.

Conversations are threads (``config["configurable"]["thread_id"]``); every step
of a run is a checkpoint in the tables LangGraph's ``PostgresSaver`` owns. Runs
are guarded by a per-thread advisory lock (``thread_lock``) and side-effecting
tool calls are recorded in a ledger (``tool_ledger``) so a resume never repeats them.
"""

from checkpointing.ownership import (
    OWNERS_TABLE,
    ThreadOfAnotherUser,
    ThreadOwners,
    asetup_thread_owners,
    setup_thread_owners,
)
from checkpointing.saver import (
    CHECKPOINT_TABLES,
    AsyncMemoryAgentSaver,
    MemoryAgentSaver,
    amissing_tables,
    asetup_checkpoint_tables,
    missing_tables,
    setup_checkpoint_tables,
)
from checkpointing.thread_lock import ThreadBusyError, ThreadLock
from checkpointing.threads import InvalidThreadId, resolve_thread_id, validate_thread_id
from checkpointing.tool_ledger import (
    LEDGER_TABLE,
    ToolCallLedger,
    asetup_tool_ledger,
    current_tool_connection,
    setup_tool_ledger,
)

# Every table short-term memory needs: LangGraph's checkpoint tables, our tool ledger
# and the record of who owns each thread.
RUN_TABLES = (*CHECKPOINT_TABLES, LEDGER_TABLE, OWNERS_TABLE)

__all__ = [
    "CHECKPOINT_TABLES",
    "LEDGER_TABLE",
    "OWNERS_TABLE",
    "RUN_TABLES",
    "AsyncMemoryAgentSaver",
    "InvalidThreadId",
    "MemoryAgentSaver",
    "ThreadBusyError",
    "ThreadLock",
    "ThreadOfAnotherUser",
    "ThreadOwners",
    "ToolCallLedger",
    "amissing_tables",
    "asetup_checkpoint_tables",
    "asetup_thread_owners",
    "asetup_tool_ledger",
    "current_tool_connection",
    "missing_tables",
    "resolve_thread_id",
    "setup_checkpoint_tables",
    "setup_thread_owners",
    "setup_tool_ledger",
    "validate_thread_id",
]
