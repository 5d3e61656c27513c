"""Choose the chat model from settings; SDKs are imported only for the model chosen.

``import databricks_langchain`` costs seconds, so it happens inside the branch
that needs it, never at module import.
"""

from __future__ import annotations

from langchain_core.language_models import BaseChatModel

from graph.settings import ModelSettings


def load_chat_model(settings: ModelSettings) -> BaseChatModel:
    """Build the chat model ``settings`` describe."""
    if settings.kind == "offline":
        from graph.offline_model import OfflineChatModel

        return OfflineChatModel()
    if settings.kind == "databricks":
        from databricks_langchain import ChatDatabricks

        return ChatDatabricks(model=settings.name)
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(model=settings.name, base_url=settings.base_url, api_key=settings.api_key)  # type: ignore[arg-type]
