"""Evaluating the agent's memory with MLflow (``make eval``)."""

__all__: list[str] = []
