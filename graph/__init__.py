"""State, run-time context, settings, model selection, graph wiring, CLI."""
