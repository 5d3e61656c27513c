"""The real ``memory-agent`` CLI, with the scripted test model and test tools plugged in.

    python -m tests.workers.cli ARGS...

Only the model and the tools differ from the shipped CLI (``open_agent``
receives them, as an application embedding the agent would pass its own).
"""

from __future__ import annotations

import sys
from typing import Any

import graph.agent
from cli.main import main
from tests.workers.kit import ScriptedModel, scripted_tools

_open_agent = graph.agent.open_agent


def _open_agent_with_test_tools(*args: Any, **kwargs: Any) -> Any:
    kwargs["model"] = ScriptedModel()  # whatever model the command chose
    return _open_agent(*args, tools=scripted_tools(), **kwargs)


if __name__ == "__main__":
    graph.agent.open_agent = _open_agent_with_test_tools  # type: ignore[assignment]
    sys.exit(main(sys.argv[1:]))
