"""Load a logged agent model with ``mlflow.pyfunc.load_model`` and send it requests.

    python -m tests.workers.served_model MODEL_URI USER THREAD:MESSAGE [...] [--no-database THREAD:MESSAGE ...]

Prints one JSON line per request: the answer text and the custom outputs.
The model reads its database from this process's environment when it first
answers. After ``--no-database`` the model is loaded again with every database
variable removed from the environment (a second load, as on an endpoint with
no database set), which spares the tests a second process start.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def _answer(response: Any) -> str:
    texts = []
    for item in response["output"]:
        if item.get("type") == "message":
            texts.extend(part["text"] for part in item["content"] if part.get("text"))
    return " ".join(texts)


def main(argv: list[str]) -> int:
    import mlflow

    model_uri, user, *turns = argv
    model = mlflow.pyfunc.load_model(model_uri)
    for turn in turns:
        if turn == "--no-database":
            for name in ("DATABASE_URL", "AUTO_SETUP", "MEMORY_AGENT_HOME"):
                os.environ.pop(name, None)
            model = mlflow.pyfunc.load_model(model_uri)
            continue
        thread, message = turn.split(":", 1)
        response = model.predict(
            {
                "input": [{"role": "user", "content": message}],
                "custom_inputs": {"thread_id": thread, "user_id": user},
            }
        )
        print(json.dumps({"answer": _answer(response), **response["custom_outputs"]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
