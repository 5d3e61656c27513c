"""The ``memory-agent`` command and the demo (``make demo``)."""

__all__: list[str] = []
