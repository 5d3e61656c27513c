"""Keep the prompt within a token budget by folding older messages into a running summary.

``call_model`` sends the system prompt (with recalled memories and the
summary) and the messages after ``state.summarized_through``. When that passes
``PromptBudget.max_tokens`` it folds the oldest of those messages into the
summary, keeping the newest ones up to ``keep_tokens`` verbatim, so a fold
happens once per ``max_tokens - keep_tokens`` of conversation, not on every
call (the trigger and the size of the slice kept are separate, langmem#85).
It runs on every model call, inside tool loops too (langmem#118). What the
prompt always keeps whole:

- the newest user message: if it falls in the folded part it is sent again
  right after the summary (langmem#77 lost it);
- every tool call with its results: the cut is never just before a
  ``ToolMessage``, so a result is never sent without its call.

Recalled memories count against the same budget (they are in the system
prompt). The summary is capped at ``summary_tokens``, so the prompt stays
within the budget however long the thread grows (langmem#101), unless the
newest user message and the tool calls it started are alone bigger than it.

The messages themselves all stay in the state and the checkpoints: history,
time travel and the notebooks still show every message. Tokens are LangChain's
``count_tokens_approximately`` (about four characters a token), which needs no
tokenizer download. The offline model gets an extractive summary (the user's
own sentences, newest first, its "my X is Y" facts kept longest); a real model
writes its own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.utils import count_tokens_approximately

from graph.offline_model import SUMMARY_END, SUMMARY_START, OfflineChatModel

DEFAULT_PROMPT_TOKENS = 16_000  # graph.settings reads MEMORY_AGENT_PROMPT_TOKENS


@dataclass(frozen=True)
class PromptBudget:
    """How big the prompt may get and what a fold keeps."""

    max_tokens: int = DEFAULT_PROMPT_TOKENS
    """A prompt over this many tokens triggers a fold."""
    keep_fraction: float = 0.5
    """Share of the budget the newest messages keep verbatim after a fold."""
    summary_fraction: float = 0.2
    """Share of the budget the summary may use."""

    @property
    def keep_tokens(self) -> int:
        return int(self.max_tokens * self.keep_fraction)

    @property
    def summary_tokens(self) -> int:
        return int(self.max_tokens * self.summary_fraction)


@dataclass(frozen=True)
class Window:
    """The messages to send after the system prompt, and the state update a fold makes."""

    messages: list[BaseMessage]
    update: dict[str, Any]


def tokens(messages: Sequence[BaseMessage]) -> int:
    """Approximate token count of ``messages`` (LangChain's estimate)."""
    return count_tokens_approximately(list(messages)) if messages else 0


def unsummarized(messages: Sequence[BaseMessage], summarized_through: str | None) -> int:
    """Index of the first message after ``summarized_through``; scans from the end.

    The part after the marker is bounded by the budget, so this costs the same
    at turn 10 and turn 1,000. An unknown marker (an edited fork) means nothing
    is summarized yet.
    """
    if summarized_through is None:
        return 0
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].id == summarized_through:
            return index + 1
    return 0


def _cut(tail: Sequence[BaseMessage], keep_tokens: int) -> int:
    """Where to split ``tail``: the newest messages within ``keep_tokens`` stay, and a
    kept ``ToolMessage`` always keeps the call it answers."""
    kept = 0
    cut = len(tail)
    while cut > 0:
        size = tokens([tail[cut - 1]])
        if kept + size > keep_tokens:
            break
        kept += size
        cut -= 1
    while 0 < cut < len(tail) and isinstance(tail[cut], ToolMessage):
        cut -= 1  # never open the kept part with a tool result
    return cut


def _newest_user_index(messages: Sequence[BaseMessage]) -> int | None:
    for index in range(len(messages) - 1, -1, -1):
        if isinstance(messages[index], HumanMessage):
            return index
    return None


def plan_window(
    system: SystemMessage,
    messages: Sequence[BaseMessage],
    summarized_through: str | None,
    budget: PromptBudget | None,
) -> tuple[list[BaseMessage], list[BaseMessage]]:
    """(messages to fold into the summary, messages to send verbatim)."""
    start = unsummarized(messages, summarized_through)
    tail = list(messages[start:])
    folded: list[BaseMessage] = []
    if budget is not None and tokens([system, *tail]) > budget.max_tokens:
        cut = _cut(tail, budget.keep_tokens)
        folded, tail = tail[:cut], tail[cut:]
    # The question being answered stays verbatim, even once it is summarized.
    newest_user = _newest_user_index(messages)
    if newest_user is not None and newest_user < start + len(folded):
        tail = [messages[newest_user], *tail]
    return folded, tail


_FACT = re.compile(r"\bmy [a-z][a-z ]{0,30}? is [^.!?,;]+", re.IGNORECASE)
_LINE_CHARACTERS = 160


def _text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return " ".join(content.split())
    parts = [part if isinstance(part, str) else str(part.get("text", "")) for part in content]
    return " ".join(" ".join(parts).split())


def _clip(text: str) -> str:
    return text if len(text) <= _LINE_CHARACTERS else text[: _LINE_CHARACTERS - 1] + "…"


def extractive_summary(previous: str, folded: Sequence[BaseMessage], max_tokens: int) -> str:
    """The offline summary: facts the user stated, then their recent lines, within ``max_tokens``.

    Deterministic and model-free. Facts ("my X is Y", newest wording wins) are
    kept longest; the other lines are the user's messages and the assistant's
    answers, newest first, clipped, until the budget is spent.
    """
    old_facts: list[str] = []
    old_lines: list[str] = []
    for line in previous.splitlines():
        if line.startswith("- fact: "):
            old_facts.append(line)
        elif line.startswith("- "):
            old_lines.append(line)
    facts: dict[str, str] = {}
    for line in old_facts:
        facts[line.split(" is ", 1)[0].lower()] = line
    lines: list[str] = []
    for message in folded:
        text = _text(message)
        if not text:
            continue
        if isinstance(message, HumanMessage):
            for fact in _FACT.findall(text):
                entry = f"- fact: the user said {fact.strip()}"
                facts[entry.split(" is ", 1)[0].lower()] = entry
            lines.append(f"- user: {_clip(text)}")
        elif isinstance(message, AIMessage):
            lines.append(f"- assistant: {_clip(text)}")
        elif isinstance(message, ToolMessage):
            lines.append(f"- tool {message.name}: {_clip(text)}")
    budget_characters = max_tokens * 4
    chosen = list(facts.values())
    used = sum(len(line) + 1 for line in chosen)
    recent: list[str] = []
    for line in reversed(old_lines + lines):
        if used + len(line) + 1 > budget_characters:
            break
        recent.append(line)
        used += len(line) + 1
    while chosen and used > budget_characters:
        used -= len(chosen.pop(0)) + 1  # the oldest facts go last, and only if they must
    return "\n".join([*chosen, *reversed(recent)])


SUMMARY_INSTRUCTIONS = (
    "You maintain a running summary of a conversation between a user and an assistant. "
    "Rewrite the summary so it also covers the new messages. Keep facts about the user, "
    "decisions, open questions and the results of tool calls; drop small talk. "
    "Answer with the summary only, at most {words} words."
)


def _summary_request(
    previous: str, folded: Sequence[BaseMessage], max_tokens: int
) -> list[BaseMessage]:
    rendered = "\n".join(f"{message.type}: {_text(message)}" for message in folded)
    return [
        SystemMessage(SUMMARY_INSTRUCTIONS.format(words=max(20, int(max_tokens * 0.7)))),
        HumanMessage(f"Summary so far:\n{previous or '(none)'}\n\nNew messages:\n{rendered}"),
    ]


def _capped(text: str, max_tokens: int) -> str:
    limit = max_tokens * 4  # the model may overrun the length it was asked for
    return text if len(text) <= limit else text[: limit - 1] + "…"


def summarize(
    model: BaseChatModel, previous: str, folded: Sequence[BaseMessage], max_tokens: int
) -> str:
    """The new running summary: extractive for the offline model, written by a real one."""
    if isinstance(model, OfflineChatModel):
        return extractive_summary(previous, folded, max_tokens)
    reply = model.invoke(_summary_request(previous, folded, max_tokens))
    return _capped(_text(reply), max_tokens)


async def asummarize(
    model: BaseChatModel, previous: str, folded: Sequence[BaseMessage], max_tokens: int
) -> str:
    """Async twin of ``summarize``."""
    if isinstance(model, OfflineChatModel):
        return extractive_summary(previous, folded, max_tokens)
    reply = await model.ainvoke(_summary_request(previous, folded, max_tokens))
    return _capped(_text(reply), max_tokens)


def summary_block(summary: str) -> str:
    """The summary as it appears in the system prompt."""
    if not summary:
        return ""
    return f"\nSummary of the earlier conversation:\n{SUMMARY_START}\n{summary}\n{SUMMARY_END}"


def fold_update(folded: Sequence[BaseMessage], summary: str) -> dict[str, Any]:
    """The state update recording a fold."""
    return {"summary": summary, "summarized_through": folded[-1].id}
