"""HTTP: the Responses API server, the request protocol, identity and tracing.

``python -m serving.server`` (``make serve``) runs it; Databricks Apps runs the
same command (app.yaml). This package sits above the agent: it imports
``graph`` and never the other way round.
"""

__all__: list[str] = []
