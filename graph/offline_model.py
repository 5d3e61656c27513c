"""A deterministic, rule-based chat model that needs no network: the offline default.

It is not an LLM and says so. It exists so the whole graph (memory, tool calls,
approvals) runs with no keys: it reads the conversation history and the
memories given to it in the system prompt, and it emits real tool calls for the
tools it has been bound to. The same input always gives the same output, and
tool-call ids are derived from the conversation, so they are unique per turn.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import BaseTool

OFFLINE_LABEL = "offline (deterministic rule-based model, not an LLM)"
MEMORIES_START = "<memories>"
MEMORIES_END = "</memories>"

_FACT = re.compile(
    r"\bmy ([a-z][a-z ]{0,30}?) is ([^.!?,;]+?)(?=\s+and\s+my\b|[.!?,;]|$)", re.IGNORECASE
)
_QUESTION = re.compile(r"\bwhat(?:'s| is) my ([a-z][a-z ]{0,30}?)\s*\??$", re.IGNORECASE)
_WHO_AM_I = re.compile(r"\bwho am i\b", re.IGNORECASE)
_TIME = re.compile(r"\b(what time|the time|current time|what day|what date|today's date)\b", re.I)
_REMEMBER = re.compile(r"^\s*(?:please\s+)?remember(?:\s+that)?\s+(.+?)\s*[.!]?\s*$", re.I | re.S)
_FORGET = re.compile(r"^\s*(?:please\s+)?forget(?:\s+that)?\s+(.+?)\s*[.!]?\s*$", re.I | re.S)
_ABOUT_ME = re.compile(r"\bwhat do you (?:know|remember) about me\b", re.I)
_EARLIER = re.compile(r"\bwhat (?:did|have) i (?:say|said|tell you|told you|ask|asked)\b", re.I)
_TITLE = re.compile(r"\b(?:generate|write|give|create)\b.{0,40}\btitle\b", re.I | re.S)
_GREETING = re.compile(r"^\s*(hi|hello|hey|good (morning|afternoon|evening))\b", re.I)


class OfflineChatModel(BaseChatModel):
    """Rule-based stand-in for an LLM: deterministic answers and real tool calls."""

    tool_names: tuple[str, ...] = ()
    """Names of the tools bound with ``bind_tools``; only these are ever called."""

    @property
    def _llm_type(self) -> str:
        return "offline-rule-based"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> OfflineChatModel:
        names = tuple(
            tool.name if isinstance(tool, BaseTool) else str(getattr(tool, "__name__", tool))
            for tool in tools
        )
        return self.model_copy(update={"tool_names": names})

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=respond(messages, self.tool_names))])


def respond(messages: Sequence[BaseMessage], tool_names: Sequence[str] = ()) -> AIMessage:
    """The offline model's reply to ``messages`` given the bound ``tool_names``."""
    if messages and isinstance(messages[-1], ToolMessage):
        return AIMessage(content=_answer_from_tool_results(messages))
    text = _latest_user_text(messages)
    if messages and isinstance(messages[0], SystemMessage) and _TITLE.search(_text_of(messages[0])):
        return AIMessage(content=_title_for(text))
    tools = set(tool_names)

    def call(name: str, args: dict[str, Any]) -> AIMessage:
        return AIMessage(
            content="", tool_calls=[{"name": name, "args": args, "id": _call_id(messages, name)}]
        )

    if _TIME.search(text) and "get_current_time" in tools:
        return call("get_current_time", {})
    if match := _REMEMBER.match(text):
        if "save_memory" in tools:
            args = {"content": match.group(1)}
            if key := _memory_key_replaced_by(messages, match.group(1)):
                args["key"] = key  # a new value for a remembered fact overwrites it
            return call("save_memory", args)
        return AIMessage(content=_NO_LONG_TERM_MEMORY)
    if match := _FORGET.match(text):
        if "delete_memory" in tools and (key := _memory_key_matching(messages, match.group(1))):
            return call("delete_memory", {"key": key})
        if "search_memories" in tools:
            return AIMessage(content=f"I have no saved memory matching “{match.group(1)}”.")
        return AIMessage(content=_NO_LONG_TERM_MEMORY)
    if _ABOUT_ME.search(text):
        if "search_memories" in tools:
            return call("search_memories", {"query": text})
        return AIMessage(content=_describe_known_facts(messages))
    if _EARLIER.search(text):
        return AIMessage(content=_recap(messages))
    if (question := _QUESTION.search(text)) or _WHO_AM_I.search(text):
        attribute = question.group(1).strip().lower() if question else "name"
        return AIMessage(content=_answer_about(attribute, messages))
    facts = _FACT.findall(text)
    if facts:
        said = "; ".join(f"your {attr.strip().lower()} is {value.strip()}" for attr, value in facts)
        return AIMessage(content=f"Noted: {said}. I'll remember that in this conversation.")
    if _GREETING.match(text):
        return AIMessage(
            content="Hello! I'm the offline demo model: I answer from simple rules, this conversation and your saved memories."
        )
    turn = sum(isinstance(m, HumanMessage) for m in messages)
    return AIMessage(
        content=f"You said: “{text}”. (Message {turn} in this conversation; I'm the offline model, so I only follow simple rules.)"
    )


def _title_for(text: str) -> str:
    """Instructions asking for a title (a chat UI's one-off request): the user's first words.

    Chat UIs send the first message as text or as their own JSON message
    object; the title is its text, without quotes or colons, at most 80
    characters, cut at a word.
    """
    try:
        message = json.loads(text)
    except ValueError:
        message = text
    if isinstance(message, dict):
        parts = message.get("parts") or message.get("content") or []
        if isinstance(parts, str):
            parts = [{"text": parts}]
        text = " ".join(str(p.get("text", "")) for p in parts if isinstance(p, dict))
    words = re.sub(r"[\"“”':]", "", text).split()
    title = ""
    for word in words:
        if len(title) + len(word) + 1 > 80:
            break
        title = f"{title} {word}".strip()
    return title or "New chat"


_NO_LONG_TERM_MEMORY = (
    "I can't keep long-term memories in this run (no user id, or no memory store), "
    "so I'll only remember it within this conversation."
)


def _latest_user_text(messages: Sequence[BaseMessage]) -> str:
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return _text_of(message).strip()
    return ""


def _text_of(message: BaseMessage) -> str:
    if isinstance(message.content, str):
        return message.content
    parts = [
        block if isinstance(block, str) else str(block.get("text", "")) for block in message.content
    ]
    return " ".join(part for part in parts if part)


def _call_id(messages: Sequence[BaseMessage], name: str) -> str:
    # Derived from the conversation so far: deterministic, and different for every turn.
    digest = hashlib.sha256(
        f"{len(messages)}|{name}|{_latest_user_text(messages)}".encode()
    ).hexdigest()
    return f"call_{digest[:20]}"


def _remembered_lines(messages: Sequence[BaseMessage]) -> list[str]:
    """Memory lines the recall step put in the system prompt, between the markers."""
    for message in messages:
        if isinstance(message, SystemMessage) and isinstance(message.content, str):
            content = message.content
            if MEMORIES_START in content and MEMORIES_END in content:
                block = content.split(MEMORIES_START, 1)[1].split(MEMORIES_END, 1)[0]
                return [
                    line.strip()[2:] for line in block.splitlines() if line.strip().startswith("- ")
                ]
    return []


def _memory_key_matching(messages: Sequence[BaseMessage], phrase: str) -> str | None:
    """The key of the recalled memory that best matches ``phrase`` (lines look like ``[key] text``)."""
    words = set(re.findall(r"\w+", phrase.lower()))
    best: tuple[int, str] | None = None
    for line in _remembered_lines(messages):
        if not line.startswith("[") or "]" not in line:
            continue
        key, text = line[1:].split("]", 1)
        overlap = len(words & set(re.findall(r"\w+", text.lower())))
        if overlap and (best is None or overlap > best[0]):
            best = (overlap, key)
    return best[1] if best else None


def _memory_key_replaced_by(messages: Sequence[BaseMessage], content: str) -> str | None:
    """The key of the recalled memory ``content`` gives a new value for, if any.

    Only one-fact memories (``my X is Y``) are replaced, so that updating one fact
    never drops another stored beside it; otherwise the new fact is saved on its own.
    """
    stated = _FACT.findall(content)
    if len(stated) != 1:
        return None
    attribute, value = (part.strip().lower() for part in stated[0])
    for line in _remembered_lines(messages):
        if not line.startswith("[") or "]" not in line:
            continue
        key, text = line[1:].split("]", 1)
        known = _FACT.findall(text)
        if len(known) == 1 and known[0][0].strip().lower() == attribute:
            return key if known[0][1].strip().lower() != value else None
    return None


def _facts(messages: Sequence[BaseMessage]) -> dict[str, str]:
    """Facts the user stated (“my X is Y”), from memories first, then this thread (newest wins)."""
    facts: dict[str, str] = {}
    for line in _remembered_lines(messages):
        for attribute, value in _FACT.findall(line):
            facts[attribute.strip().lower()] = value.strip()
    for message in (
        messages[:-1] if messages and isinstance(messages[-1], HumanMessage) else messages
    ):
        if isinstance(message, HumanMessage):
            for attribute, value in _FACT.findall(_text_of(message)):
                facts[attribute.strip().lower()] = value.strip()
    return facts


def _answer_about(attribute: str, messages: Sequence[BaseMessage]) -> str:
    facts = _facts(messages)
    if attribute in facts:
        return f"Your {attribute} is {facts[attribute]}."
    return f"I don't know your {attribute} yet. Tell me with “my {attribute} is …”."


def _describe_known_facts(messages: Sequence[BaseMessage]) -> str:
    facts = _facts(messages)
    if not facts:
        return "I don't know anything about you yet."
    return (
        "From this conversation: " + "; ".join(f"your {k} is {v}" for k, v in facts.items()) + "."
    )


def _recap(messages: Sequence[BaseMessage]) -> str:
    earlier = [_text_of(m) for m in messages[:-1] if isinstance(m, HumanMessage)]
    if not earlier:
        return "This is the start of our conversation; you haven't said anything before this."
    listed = "; ".join(f"“{text}”" for text in earlier[-5:])
    return f"Earlier in this conversation you said: {listed}."


def _answer_from_tool_results(messages: Sequence[BaseMessage]) -> str:
    results: list[ToolMessage] = []
    for message in reversed(messages):
        if not isinstance(message, ToolMessage):
            break
        results.append(message)
    lines = []
    for result in reversed(results):
        content = result.content if isinstance(result.content, str) else str(result.content)
        if result.status == "error":
            lines.append(f"I couldn't complete {result.name}: {content}")
        elif result.name == "get_current_time":
            lines.append(f"It is {content} (UTC).")
        elif result.name == "search_memories" and content.startswith("No memories"):
            lines.append("I don't have any saved memories about you yet.")
        elif result.name == "search_memories":
            lines.append(f"Here is what I remember about you: {content}")
        else:
            lines.append(content)
    return " ".join(lines)
