"""Short-term memory: LangGraph's Postgres checkpointer on the shared pool."""
