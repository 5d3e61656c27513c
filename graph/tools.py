"""Tools every run has, whoever the user is."""

from __future__ import annotations

from datetime import UTC, datetime

from langchain_core.tools import tool


@tool
def get_current_time() -> str:
    """Get the current date and time (UTC, ISO 8601). Use it for any question about time or date."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


BASE_TOOLS = [get_current_time]
