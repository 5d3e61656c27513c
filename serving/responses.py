"""The graph as an MLflow ResponsesAgent: Responses API requests in, output items out.

One request is one *turn* on one thread:

- **Thread**: ``custom_inputs.thread_id`` → ``context.conversation_id`` → a new
  UUID, always echoed in ``custom_outputs`` with ``user_id`` and
  ``memory_available``.
- **History**: chat UIs resend the whole conversation every time. Once the
  thread has a checkpoint, only the request's newest user message is added
  (the checkpoint already holds the rest); a new thread takes the request's
  messages. Tool-call items in the request are never replayed into the
  thread: they name tools this agent may not have, and an unpaired call
  makes model endpoints reject the whole thread. Nor are client system or
  developer messages: the agent's instructions are the server's.
- **Ownership**: a thread answers only the user it belongs to
  (``checkpointing.ownership``: recorded at its first write; a thread started
  without a user answers only callers without one); 403 otherwise.
- **Approvals**: a run that pauses in ``interrupt()`` answers with one
  ``mcp_approval_request`` output item per pending call (the Responses API's
  own item for "this tool call needs a human", rendered by Databricks' chat
  UI) plus a message saying how to answer. The next request resumes it with
  any of: an ``mcp_approval_response`` input item, ``custom_inputs.approval``
  (``"approve"``, ``"reject"`` or ``{"action": ..., ...}``), or a user message
  that is just "approve"/"yes" or "reject"/"no". A request ending in any
  other user message declines the pending call(s) and answers that message
  (the graph's rule, see graph.builder): with Databricks' chat UI, Deny sends
  nothing, so the next message is what moves the thread on. A request that
  answers the approval *and* ends in a new user message (the chat UI without
  its database sends both at once) gets both: the decision, then the answer.
  A request with neither repeats the pending request.
- **Output items** follow what Databricks' chat UI renders: a tool call is
  shown when it runs (``function_call`` with its ``function_call_output``);
  a paused call is only an ``mcp_approval_request`` (after the message saying
  how to answer), and the run that decides it closes that card with a
  ``function_call_output`` whose ``call_id`` is the approval request's id.
- **One-off requests** with no thread (no ``thread_id``, no
  ``conversation_id``) and their own system or developer instructions, like
  the chat UI's title request, are answered by the model alone following
  those instructions: no thread, no memory, no tools, nothing saved.

This module imports MLflow, so only the server and the evaluation import it.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncGenerator, Generator, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    SystemMessage,
    ToolMessage,
)
from langgraph.types import Command, Interrupt
from mlflow.pyfunc import ResponsesAgent
from mlflow.types.responses import (
    ResponsesAgentRequest,
    ResponsesAgentResponse,
    ResponsesAgentStreamEvent,
    create_function_call_item,
    create_function_call_output_item,
    create_text_delta,
    create_text_output_item,
    to_chat_completions_input,
)

from checkpointing.ownership import ThreadOfAnotherUser as OwnershipError
from checkpointing.ownership import check_owner
from checkpointing.thread_lock import HeldLock, ThreadBusyError
from checkpointing.threads import InvalidThreadId, resolve_thread_id
from graph.context import Context
from graph.settings import Settings
from graph.validation import (
    InputTooLarge,
    InvalidInput,
    check_item_count,
    check_message_text,
    check_text,
    validate_messages,
)
from nodes.review_tool_calls import InvalidDecision, parse_decision
from serving.identity import (
    Identities,
    IdentityUnavailable,
    InvalidUserId,
    UnverifiedIdentity,
    resolve_user_id,
)

APPROVAL_SERVER_LABEL = "memory-agent"
APPROVE_WORDS = frozenset({"approve", "approved", "yes", "y", "ok", "okay", "go ahead"})
REJECT_WORDS = frozenset({"reject", "rejected", "no", "n", "deny", "denied", "cancel"})
MODEL_NODE = "call_model"
STREAM_MODES = ["messages", "updates"]
CONVERSATION_ROLES = frozenset({"user", "assistant"})
INSTRUCTION_ROLES = frozenset({"system", "developer"})


class RequestError(ValueError):
    """A request that cannot be served as sent.

    ``status`` is the HTTP status to answer with and ``code`` the stable error
    code in the body (docs/server.md lists them); the message is written for
    the client and never carries exception text from below.
    """

    status = 400
    code = "bad_request"


class IdentityRequired(RequestError):
    """Deployed, and the request carries no identity the app can trust."""

    status = 401
    code = "identity_required"


class ThreadOfAnotherUser(RequestError):
    """The thread belongs to someone else: its history is not the caller's to see."""

    status = 403
    code = "thread_of_another_user"


class RequestTooLarge(RequestError):
    """Over a size cap: the body, a message, or the number of items."""

    status = 413
    code = "too_large"


def check_request(request: ResponsesAgentRequest) -> None:
    """The input rules (graph.validation) over the whole request, before anything is read or saved.

    Every item counts, not only the message the turn adds: a NUL byte in a
    resent history or in custom_inputs would otherwise reach a query.
    """
    try:
        check_item_count(len(request.input), "input items")
        for position, item in enumerate(request.input, start=1):
            check_message_text(item.model_dump(exclude_none=True), f"input item {position}")
        check_text(request.custom_inputs or {}, "custom_inputs")
        if request.context is not None:
            check_text(request.context.model_dump(exclude_none=True), "context")
    except InputTooLarge as exc:
        raise RequestTooLarge(str(exc)) from None
    except InvalidInput as exc:
        raise RequestError(str(exc)) from None


class ThreadBusy(RequestError):
    """Another run holds the thread (one run at a time per thread, across processes)."""

    status = 409
    code = "thread_busy"


@dataclass(frozen=True)
class PendingApproval:
    """A tool call paused in ``interrupt()``, waiting for a human."""

    id: str
    """The interrupt id: the ``approval_request_id`` an answer must carry."""
    tool: str
    arguments: dict[str, Any]
    value: Any
    """The interrupt's payload as the graph raised it."""
    tool_call_id: str | None = None
    """The model's id for the paused call (its ToolMessage answers this id)."""

    @classmethod
    def from_interrupt(cls, interrupt: Interrupt) -> PendingApproval:
        value = interrupt.value
        details = value if isinstance(value, Mapping) else {}
        # The payload's shape belongs to the approval node; read the usual spellings.
        tool = next(
            (str(details[k]) for k in ("tool", "name", "tool_name", "action") if details.get(k)),
            "action",
        )
        arguments: Any = next(
            (details[k] for k in ("args", "arguments", "tool_args") if k in details), {}
        )
        if not isinstance(arguments, Mapping):
            arguments = {"value": arguments}
        call_id = details.get("tool_call_id")
        return cls(
            id=interrupt.id,
            tool=tool,
            arguments=dict(arguments),
            value=value,
            tool_call_id=str(call_id) if call_id else None,
        )

    def describe(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in self.arguments.items())
        return f"{self.tool}({shown})"

    def description(self) -> str | None:
        """The approval node's own words for what would happen, if it gave any."""
        text = self.value.get("description") if isinstance(self.value, Mapping) else None
        return str(text) if text else None

    def output_item(self) -> dict[str, Any]:
        return {
            "type": "mcp_approval_request",
            "id": self.id,
            "name": self.tool,
            "arguments": json.dumps(self.arguments, ensure_ascii=False, default=str),
            "server_label": APPROVAL_SERVER_LABEL,
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tool": self.tool,
            "arguments": self.arguments,
            "value": _jsonable(self.value),
        }


@dataclass(frozen=True)
class ThreadView:
    """What the request planner needs to know about the thread before the run."""

    has_messages: bool = False
    pending: tuple[PendingApproval, ...] = ()
    owner: str | None = None
    """Who the thread belongs to: a user id, ``""`` (ownerless) or None (new, or untracked)."""


@dataclass(frozen=True)
class Turn:
    """One request, resolved: which thread, which user, and what to send the graph."""

    thread_id: str
    user_id: str | None
    graph_input: Any
    """``{"messages": [...]}``, a ``Command(resume=...)``, or None: nothing to run."""
    waiting: tuple[PendingApproval, ...] = ()
    """Approvals the request did not answer (only when ``graph_input`` is None)."""
    continues: bool = False
    """Run the graph with no new input: go on from the thread's last checkpoint (a
    background run taken over from a process that died, serving.background)."""
    answering: tuple[PendingApproval, ...] = ()
    """Approvals this turn decides or declines: their cards are closed in the output."""
    then: Any = None
    """``{"messages": [...]}`` to run after ``graph_input`` (a decision plus a new message)."""
    instructions: tuple[BaseMessage, ...] = ()
    """A one-off request's own system/developer messages: answered by the model alone."""

    def runs(self) -> list[Any]:
        """The graph inputs to run, in order (``None``: go on from the last checkpoint)."""
        if self.graph_input is None:
            return [None] if self.continues else []
        return [self.graph_input] if self.then is None else [self.graph_input, self.then]

    def closes(self) -> dict[str, str]:
        """Tool call id → approval request id, for the calls this turn decides or declines."""
        return {a.tool_call_id: a.id for a in self.answering if a.tool_call_id}

    @property
    def config(self) -> dict[str, Any]:
        # The user goes into the checkpoint's metadata: the next request can check that
        # the thread is its caller's (see plan_turn).
        config: dict[str, Any] = {"configurable": {"thread_id": self.thread_id}}
        if self.user_id is not None:
            config["metadata"] = {"user_id": self.user_id}
        return config

    @property
    def context(self) -> Context:
        return Context(user_id=self.user_id)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _item_dicts(request: ResponsesAgentRequest) -> list[dict[str, Any]]:
    return [item.model_dump(exclude_none=True) for item in request.input]


def _is_message(item: Mapping[str, Any]) -> bool:
    return item.get("type", "message") == "message" and "role" in item


def _text_of(item: Mapping[str, Any]) -> str:
    content = item.get("content")
    if isinstance(content, str):
        return content
    parts = [part.get("text", "") for part in content or [] if isinstance(part, Mapping)]
    return " ".join(str(part) for part in parts if part)


def _approval_from_value(value: Any, source: str) -> dict[str, Any]:
    """Check ``"approve"`` / ``{"action": "edit", "args": {...}, "reason": ...}`` as a decision.

    The approval node's own parser decides what is valid; checking here turns a
    bad answer into a 400 before any run starts.
    """
    if isinstance(value, str):
        value = value.strip().lower()
    elif isinstance(value, Mapping) and isinstance(value.get("action"), str):
        value = {**value, "action": value["action"].strip().lower()}
    try:
        decision = parse_decision(value)
    except InvalidDecision as exc:
        raise RequestError(f"{source}: {exc}") from None
    answer: dict[str, Any] = {"action": decision.action}
    if decision.args is not None:
        answer["args"] = decision.args
    if decision.reason is not None:
        answer["reason"] = decision.reason
    return answer


def _decisions(
    items: Sequence[Mapping[str, Any]],
    custom_inputs: Mapping[str, Any],
    pending: Sequence[PendingApproval],
) -> dict[str, Any]:
    """Map interrupt id → resume value from whatever form of answer the request carries."""
    pending_ids = {approval.id for approval in pending}
    # 1. mcp_approval_response items (Databricks' chat UI, OpenAI clients). A resent
    #    history also carries answers to earlier approvals: only pending ids count.
    answers = {}
    for item in items:
        if item.get("type") == "mcp_approval_response":
            request_id = item.get("approval_request_id")
            if request_id in pending_ids:
                approve = item.get("approve")
                # Only a literal true approves: "false" (a string) is truthy in Python.
                if not isinstance(approve, bool):
                    raise RequestError(
                        "mcp_approval_response.approve must be true or false, "
                        f"got {type(approve).__name__}"
                    )
                decision: dict[str, Any] = {"action": "approve" if approve else "reject"}
                if item.get("reason"):
                    decision["reason"] = item["reason"]
                answers[request_id] = decision
    if answers:
        return answers
    # 2. custom_inputs.approval applies to every pending call.
    if "approval" in custom_inputs:
        decision = _approval_from_value(custom_inputs["approval"], "custom_inputs.approval")
        return {approval.id: decision for approval in pending}
    # 3. A new user message that is only a yes or a no (it must be the request's last item,
    #    so a resent history whose last user message asked for the action does not count).
    if items and _is_message(items[-1]) and items[-1].get("role") == "user":
        word = _text_of(items[-1]).strip().strip(".!").strip().lower()
        if word in APPROVE_WORDS:
            return {approval.id: {"action": "approve"} for approval in pending}
        if word in REJECT_WORDS:
            return {approval.id: {"action": "reject"} for approval in pending}
    return {}


def _ends_with_user_message(items: Sequence[Mapping[str, Any]]) -> bool:
    return bool(items) and _is_message(items[-1]) and items[-1].get("role") == "user"


def _message_after_approval_response(items: Sequence[Mapping[str, Any]]) -> bool:
    """The request ends in a user message sent after its mcp_approval_response item(s)."""
    answered = [i for i, item in enumerate(items) if item.get("type") == "mcp_approval_response"]
    return bool(answered) and _ends_with_user_message(items) and answered[-1] < len(items) - 1


def _messages_to_add(items: Sequence[Mapping[str, Any]], thread: ThreadView) -> list[BaseMessage]:
    # Only the conversation is stored: the agent's instructions are the server's, and a
    # client system/developer message saved in the thread would steer every later turn.
    messages = [item for item in items if _is_message(item) and item["role"] in CONVERSATION_ROLES]
    if thread.has_messages:
        users = [item for item in messages if item.get("role") == "user"]
        if not users:
            raise RequestError("the request has no user message to add to the thread")
        messages = users[-1:]
    if not messages:
        raise RequestError("the request has no messages; send at least one user message")
    try:
        return validate_messages(to_chat_completions_input([dict(m) for m in messages]))
    except InputTooLarge as exc:
        raise RequestTooLarge(str(exc)) from None
    except InvalidInput as exc:
        raise RequestError(str(exc)) from exc


def plan_turn(
    request: ResponsesAgentRequest,
    thread: ThreadView,
    *,
    thread_id: str,
    user_id: str | None,
) -> Turn:
    """Decide what this request sends the graph, given the thread as it stands."""
    try:
        # Thread ids travel in request bodies; without this check anyone who learns
        # one could read (and continue) another user's conversation. The graph checks
        # the same rule again when the run starts (checkpointing.ownership).
        check_owner(thread_id, thread.owner, user_id)
    except OwnershipError as exc:
        raise ThreadOfAnotherUser(str(exc)) from None
    items = _item_dicts(request)
    custom_inputs = request.custom_inputs or {}
    if thread.pending:
        decisions = _decisions(items, custom_inputs, thread.pending)
        if not decisions:
            if _ends_with_user_message(items):  # declined by the graph, then answered
                messages = {"messages": _messages_to_add(items, thread)}
                return Turn(thread_id, user_id, messages, answering=thread.pending)
            return Turn(thread_id, user_id, None, waiting=thread.pending)
        single = len(decisions) == 1 and len(thread.pending) == 1
        resume: Command[Any] = Command(
            resume=next(iter(decisions.values())) if single else decisions
        )
        then = None
        if _message_after_approval_response(items):
            then = {"messages": _messages_to_add(items, thread)}
        return Turn(thread_id, user_id, resume, answering=thread.pending, then=then)
    if "approval" in custom_inputs:
        raise RequestError(f"thread {thread_id!r} has nothing waiting for approval")
    return Turn(thread_id, user_id, {"messages": _messages_to_add(items, thread)})


class IdentityServiceUnavailable(RequestError):
    """The workspace could not be asked who a forwarded token belongs to."""

    status = 503
    code = "identity_unavailable"


def names_a_thread(request: ResponsesAgentRequest) -> bool:
    """Whether the request names a thread (custom_inputs.thread_id or context.conversation_id)."""
    custom_inputs = request.custom_inputs or {}
    return bool(custom_inputs.get("thread_id") or getattr(request.context, "conversation_id", None))


def plan_one_off(request: ResponsesAgentRequest, user_id: str | None) -> Turn | None:
    """A request with no thread and its own instructions: answered by the model alone.

    Such a request (a chat UI's title request, a one-off classification) is not
    a conversation turn: saving it would start a thread nobody continues, and
    the agent's own instructions and memory would override the ones it sent.
    """
    if names_a_thread(request):
        return None
    items = _item_dicts(request)
    instructions = [
        SystemMessage(content=_text_of(item))
        for item in items
        if _is_message(item) and item["role"] in INSTRUCTION_ROLES
    ]
    if not instructions:
        return None
    conversation = [i for i in items if _is_message(i) and i["role"] in CONVERSATION_ROLES]
    if not conversation:
        raise RequestError("the request has no messages; send at least one user message")
    try:
        messages = validate_messages(to_chat_completions_input([dict(m) for m in conversation]))
    except InvalidInput as exc:
        raise RequestError(str(exc)) from exc
    return Turn("", user_id, {"messages": messages}, instructions=tuple(instructions))


def resolve_identity(
    request: ResponsesAgentRequest,
    headers: Mapping[str, str],
    settings: Settings,
    identities: Identities | None = None,
) -> tuple[str, str | None]:
    """The request's (thread_id, user_id); bad values raise ``RequestError``.

    Deployed, a request without an identity the app can trust is refused
    (``IdentityRequired``, 401); locally it runs without a user, as before.
    """
    custom_inputs = request.custom_inputs or {}
    context = request.context
    try:
        thread_id = resolve_thread_id(
            custom_inputs, getattr(context, "conversation_id", None) or None
        )
        user_id = resolve_user_id(
            headers,
            custom_inputs,
            getattr(context, "user_id", None),
            deployed=settings.serving.deployed,
            trust_client_user_id=settings.serving.trust_client_user_id,
            identities=identities,
        )
    except (InvalidThreadId, InvalidUserId) as exc:
        raise RequestError(str(exc)) from exc
    except UnverifiedIdentity as exc:
        raise IdentityRequired(str(exc)) from None
    except IdentityUnavailable as exc:
        raise IdentityServiceUnavailable(str(exc)) from None
    if user_id is None and settings.serving.deployed:
        raise IdentityRequired(
            "this app needs to know who you are: call it through Databricks Apps "
            "(which forwards your identity) or with your access token"
        )
    return thread_id, user_id


def _thread_view(snapshot: Any, owner: str | None = None) -> ThreadView:
    if snapshot is None:
        return ThreadView()
    messages = (snapshot.values or {}).get("messages") or []
    pending = tuple(PendingApproval.from_interrupt(i) for i in snapshot.interrupts)
    return ThreadView(has_messages=bool(messages), pending=pending, owner=owner)


@dataclass
class OutputBuilder:
    """Turns the graph's stream into Responses API stream events and output items.

    The events follow OpenAI's protocol closely enough for the OpenAI client's
    accumulating ``client.responses.stream()`` helper: ``response.created``
    first; every item announced (``output_item.added``) before it is finished
    (``output_item.done``); text deltas addressed by ``output_index``; and
    ``response.completed`` last, carrying every item and the custom outputs.
    """

    response_id: str = field(default_factory=lambda: _new_id("resp"))
    created_at: float = field(default_factory=time.time)
    items: list[dict[str, Any]] = field(default_factory=list)
    _next_index: int = 0
    closes: dict[str, str] = field(default_factory=dict)
    """Tool call id → the approval request id whose card this turn's result closes."""
    _streaming: dict[str, int] = field(default_factory=dict)
    """Output index of each message whose text is being streamed, by message id."""
    _held: dict[str, dict[str, Any]] = field(default_factory=dict)
    """function_call items not yet shown, by call id: a call is shown when it has run."""
    _sequence: int = 0

    def _event(self, type: str, **fields: Any) -> dict[str, Any]:
        self._sequence += 1
        return {"type": type, "sequence_number": self._sequence, **fields}

    def _response(self, status: str, **fields: Any) -> dict[str, Any]:
        return {
            "id": self.response_id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "output": list(self.items),
            **fields,
        }

    def start(self) -> list[dict[str, Any]]:
        return [self._event("response.created", response=self._response("in_progress"))]

    def completed(self, custom_outputs: dict[str, Any]) -> dict[str, Any]:
        return self._event(
            "response.completed",
            response=self._response("completed", custom_outputs=custom_outputs),
            custom_outputs=custom_outputs,
        )

    def on_message_chunk(self, chunk: Any, metadata: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Text deltas of the model's answer as it is generated."""
        if not isinstance(chunk, AIMessageChunk) or metadata.get("langgraph_node") != MODEL_NODE:
            return []
        text = chunk.text if isinstance(chunk.text, str) else ""
        if not text or not chunk.id:
            return []
        events = []
        if chunk.id not in self._streaming:
            index = self._streaming[chunk.id] = self._claim_index()
            placeholder = {
                "type": "message",
                "id": chunk.id,
                "role": "assistant",
                "status": "in_progress",
                "content": [],
            }
            events.append(
                self._event("response.output_item.added", item=placeholder, output_index=index)
            )
            events.append(
                self._event(
                    "response.content_part.added",
                    item_id=chunk.id,
                    output_index=index,
                    content_index=0,
                    part={"type": "output_text", "text": "", "annotations": []},
                )
            )
        delta = create_text_delta(delta=text, item_id=chunk.id)
        events.append(
            self._event(
                delta.pop("type"), **delta, output_index=self._streaming[chunk.id], content_index=0
            )
        )
        return events

    def on_update(self, update: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Finished output items for the messages a node added."""
        events = []
        for node_update in update.values():
            if not isinstance(node_update, Mapping):
                continue  # "__interrupt__" carries a tuple; approvals are read from the state
            for message in node_update.get("messages") or []:
                for item in self._items_for(message):
                    events.extend(self._finish(item))
        return events

    def on_answer(self, message: AIMessage) -> list[dict[str, Any]]:
        """The output items of a model answer given outside the graph (a one-off request)."""
        events = []
        for item in self._items_for(message):
            events.extend(self._finish(item))
        return events

    def on_pending(self, pending: Sequence[PendingApproval]) -> list[dict[str, Any]]:
        """A message saying how to answer, then an approval request item per paused call.

        That order, and no ``function_call`` item for a paused call, is what
        Databricks' chat UI renders as one Allow/Deny card per call.
        """
        events: list[dict[str, Any]] = []
        if pending:
            calls = " ".join(
                approval.description() or f"The agent wants to run {approval.describe()}."
                for approval in pending
            )
            text = (
                f"{calls} Waiting for your approval: reply “approve” or “reject” "
                "(or send custom_inputs.approval, or an mcp_approval_response item)."
            )
            events.extend(self._finish(create_text_output_item(text=text, id=_new_id("msg"))))
        for approval in pending:
            if approval.tool_call_id:
                self._held.pop(approval.tool_call_id, None)
            events.extend(self._finish(approval.output_item()))
        return events

    def _claim_index(self) -> int:
        index = self._next_index
        self._next_index += 1
        return index

    def _finish(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        events = []
        index = self._streaming.pop(item.get("id", ""), None)
        if index is None:  # not streamed: announce it now
            index = self._claim_index()
            events.append(self._event("response.output_item.added", item=item, output_index=index))
        self.items.append(item)
        events.append(self._event("response.output_item.done", item=item, output_index=index))
        return events

    def _items_for(self, message: Any) -> list[dict[str, Any]]:
        if isinstance(message, AIMessage):
            items = []
            text = message.text if isinstance(message.text, str) else ""
            if text:
                item = create_text_output_item(text=text, id=message.id or _new_id("msg"))
                items.append({**item, "status": "completed"})
            for call in message.tool_calls:
                # Held until the call has run: a paused call shows as its approval card
                # only, and a call shown before it runs reads as "Completed" in chat UIs.
                self._held[call["id"] or ""] = create_function_call_item(
                    id=f"fc_{call['id']}",
                    call_id=call["id"] or "",
                    name=call["name"],
                    arguments=json.dumps(call["args"], ensure_ascii=False, default=str),
                )
            return items
        if isinstance(message, ToolMessage):
            output = (
                message.content
                if isinstance(message.content, str)
                else json.dumps(message.content, default=str)
            )
            held = self._held.pop(message.tool_call_id, None)
            if message.tool_call_id in self.closes:
                # The decided call's card is the approval request: close that one.
                closing = self.closes[message.tool_call_id]
                return [create_function_call_output_item(call_id=closing, output=output)]
            shown = [held] if held is not None else []
            return [
                *shown,
                create_function_call_output_item(call_id=message.tool_call_id, output=output),
            ]
        return []


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


class MemoryResponsesAgent(ResponsesAgent):
    """The compiled graph behind the Responses API, sync (``predict``) and async (``a*``).

    ``settings`` decides whom to trust for the user id; ``headers`` are the HTTP
    request's (empty outside the server).
    """

    def __init__(
        self, graph: Any, settings: Settings, identities: Identities | None = None
    ) -> None:
        self.graph = graph
        self.settings = settings
        self.identities = identities or Identities(settings.serving.databricks_host)

    # Planning ---------------------------------------------------------------

    def custom_outputs(self, turn: Turn, pending: Sequence[PendingApproval]) -> dict[str, Any]:
        outputs: dict[str, Any] = {
            "thread_id": turn.thread_id or None,
            "user_id": turn.user_id,
            "memory_available": bool(self.graph.memory_available),
        }
        if pending:
            outputs["pending_approvals"] = [approval.as_json() for approval in pending]
        return outputs

    def _has_checkpointer(self) -> bool:
        return self.graph.checkpointer is not None

    # The sync path (evaluation, Model Serving) probes the lock before planning, so
    # the usual case, a second request while a run is going, is a ThreadBusy; a run
    # that loses a race after the probe still fails cleanly in the graph. The server
    # does better: it holds the lock from planning to the end of the run (aopen_turn).
    def _probe_thread(self, thread_id: str) -> None:
        lock = getattr(self.graph, "thread_lock", None)
        if lock is None:
            return
        try:
            with lock.hold(thread_id):
                pass
        except ThreadBusyError as exc:
            raise ThreadBusy(str(exc)) from None

    def prepare(
        self, request: ResponsesAgentRequest, headers: Mapping[str, str] | None = None
    ) -> Turn:
        """Resolve thread and user and plan the turn against the thread's checkpoint."""
        thread_id, user_id = resolve_identity(
            request, headers or {}, self.settings, self.identities
        )
        check_request(request)
        if (one_off := plan_one_off(request, user_id)) is not None:
            return one_off
        self._probe_thread(thread_id)
        if not self._has_checkpointer():
            return plan_turn(request, ThreadView(), thread_id=thread_id, user_id=user_id)
        snapshot = self.graph.get_state({"configurable": {"thread_id": thread_id}})
        owner = self.graph.owner_of(thread_id) if hasattr(self.graph, "owner_of") else None
        return plan_turn(
            request, _thread_view(snapshot, owner), thread_id=thread_id, user_id=user_id
        )

    async def aopen_turn(
        self, request: ResponsesAgentRequest, headers: Mapping[str, str] | None = None
    ) -> tuple[Turn, HeldLock | AsyncExitStack]:
        """Plan the turn while holding the thread's lock; ``aclose()`` it after the run.

        The lock is taken before the thread is read, so the owner check and the plan
        hold for the run (two server processes cannot interleave a check and a use),
        and a busy thread is a ``ThreadBusy`` before any response is sent.
        """
        # Verifying a forwarded token is a blocking HTTP call: off the event loop.
        thread_id, user_id = await asyncio.to_thread(
            resolve_identity, request, headers or {}, self.settings, self.identities
        )
        check_request(request)
        if (one_off := plan_one_off(request, user_id)) is not None:
            return one_off, AsyncExitStack()  # no thread: nothing to lock
        lock = getattr(self.graph, "thread_lock", None)
        held: HeldLock | AsyncExitStack = AsyncExitStack()  # nothing to release without a lock
        if lock is not None:
            try:
                held = await lock.aacquire(thread_id)
            except ThreadBusyError as exc:
                raise ThreadBusy(str(exc)) from None
        try:
            if not self._has_checkpointer():
                turn = plan_turn(request, ThreadView(), thread_id=thread_id, user_id=user_id)
            else:
                snapshot = await self.graph.aget_state({"configurable": {"thread_id": thread_id}})
                owner = (
                    await self.graph.aowner_of(thread_id)
                    if hasattr(self.graph, "aowner_of")
                    else None
                )
                turn = plan_turn(
                    request, _thread_view(snapshot, owner), thread_id=thread_id, user_id=user_id
                )
        except BaseException:
            await held.aclose()
            raise
        return turn, held

    async def aprepare(
        self, request: ResponsesAgentRequest, headers: Mapping[str, str] | None = None
    ) -> Turn:
        """Async twin of ``prepare`` (the lock is released once the turn is planned)."""
        turn, held = await self.aopen_turn(request, headers)
        await held.aclose()
        return turn

    # Running ----------------------------------------------------------------

    def _pending_after(self, snapshot: Any) -> tuple[PendingApproval, ...]:
        return _thread_view(snapshot).pending

    def _model(self) -> Any:
        model = getattr(self.graph, "chat_model", None)
        if model is None:
            from graph.offline_model import OfflineChatModel

            model = OfflineChatModel()
        return model

    async def astream_turn(
        self, turn: Turn, builder: OutputBuilder | None = None
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Run ``turn`` and yield Responses API stream events, ending with response.completed.

        ``builder`` (default: a new one) numbers the events and collects the output.
        """
        _trace_session(turn)
        builder = builder or OutputBuilder()
        builder.closes.update(turn.closes())
        for event in builder.start():
            yield event
        pending: Sequence[PendingApproval] = turn.waiting
        if turn.instructions:
            messages = [*turn.instructions, *turn.graph_input["messages"]]
            for event in builder.on_answer(await self._model().ainvoke(messages)):
                yield event
        elif turn.graph_input is not None or turn.continues:
            for graph_input in turn.runs():
                async for mode, chunk in self.graph.astream(
                    graph_input, turn.config, context=turn.context, stream_mode=STREAM_MODES
                ):
                    events = (
                        builder.on_message_chunk(*chunk)
                        if mode == "messages"
                        else builder.on_update(chunk)
                    )
                    for event in events:
                        yield event
            if self._has_checkpointer():
                pending = self._pending_after(await self.graph.aget_state(turn.config))
        for event in builder.on_pending(pending):
            yield event
        yield builder.completed(self.custom_outputs(turn, pending))

    def stream_turn(self, turn: Turn) -> Iterator[dict[str, Any]]:
        """Sync twin of ``astream_turn``."""
        _trace_session(turn)
        builder = OutputBuilder(closes=turn.closes())
        yield from builder.start()
        pending: Sequence[PendingApproval] = turn.waiting
        if turn.instructions:
            messages = [*turn.instructions, *turn.graph_input["messages"]]
            yield from builder.on_answer(self._model().invoke(messages))
        elif turn.graph_input is not None:
            for graph_input in turn.runs():
                for mode, chunk in self.graph.stream(
                    graph_input, turn.config, context=turn.context, stream_mode=STREAM_MODES
                ):
                    yield from (
                        builder.on_message_chunk(*chunk)
                        if mode == "messages"
                        else builder.on_update(chunk)
                    )
            if self._has_checkpointer():
                pending = self._pending_after(self.graph.get_state(turn.config))
        yield from builder.on_pending(pending)
        yield builder.completed(self.custom_outputs(turn, pending))

    @staticmethod
    def response_from_events(events: Sequence[Mapping[str, Any]]) -> ResponsesAgentResponse:
        completed = events[-1]["response"]
        return ResponsesAgentResponse(
            id=completed["id"],
            created_at=completed["created_at"],
            status="completed",
            output=completed["output"],
            custom_outputs=completed["custom_outputs"],
        )

    async def ainvoke_turn(self, turn: Turn) -> ResponsesAgentResponse:
        return self.response_from_events([event async for event in self.astream_turn(turn)])

    # ResponsesAgent (sync: evaluation, Model Serving) ------------------------

    # MLflow's ResponsesAgent narrows PythonModel.predict to (request); mypy sees an override.
    def predict(self, request: ResponsesAgentRequest) -> ResponsesAgentResponse:  # type: ignore[override]
        return self.response_from_events(list(self.stream_turn(self.prepare(request))))

    def predict_stream(  # type: ignore[override]
        self, request: ResponsesAgentRequest
    ) -> Generator[ResponsesAgentStreamEvent, None, None]:
        for event in self.stream_turn(self.prepare(request)):
            yield ResponsesAgentStreamEvent(**event)


def _trace_session(turn: Turn) -> None:
    """Tag the active MLflow trace with the thread (as its session) and the user."""
    import mlflow

    if mlflow.get_current_active_span() is None or not turn.thread_id:
        return
    mlflow.update_current_trace(session_id=turn.thread_id, user=turn.user_id)
