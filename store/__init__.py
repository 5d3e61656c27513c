"""Long-term memory: embeddings, the pgvector store, user namespaces, memory tools."""
