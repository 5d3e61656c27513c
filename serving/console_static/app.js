// The console page: chat, threads, checkpoints, memories. Plain ES modules, no build
// step (see docs/design.md). Routes: /  (a new thread), /threads/<id>, /memories;
// ?view=history on a thread shows its checkpoints.

import { api, ApiError, identity, resumeTurn, runs, startTurn } from "./api.js";
import { append, clear, el, json, when } from "./dom.js";

const $ = (id) => document.getElementById(id);

const state = {
  status: null,
  threadId: null,
  view: "chat",
  busy: false,
};

// ---------------------------------------------------------------- errors

function showError(error) {
  const box = $("error");
  if (!error) {
    box.hidden = true;
    box.textContent = "";
    return;
  }
  const status = error instanceof ApiError ? error.status : null;
  box.textContent =
    status === 403
      ? `403 Forbidden: ${error.message}. You can only open your own threads.`
      : status
        ? `${status}: ${error.message}`
        : String(error.message || error);
  box.hidden = false;
}

// ---------------------------------------------------------------- status and identity

function renderStatus(status) {
  const box = clear($("status"));
  const memory = status.memory_available
    ? el("span", { class: "badge ok", title: status.memory_status }, "Memory on")
    : el("span", { class: "badge warn", title: status.memory_status }, "Memory off");
  const longTerm = status.long_term_memory_available
    ? el("span", { class: "badge ok", title: status.long_term_memory_status }, "Long-term memory on")
    : el("span", { class: "badge warn", title: status.long_term_memory_status }, "Long-term memory off");
  append(box, memory, longTerm);
  append(
    box,
    status.offline_model
      ? el("span", { class: "badge offline", title: status.model }, "Offline model (rule-based, not an LLM)")
      : el("span", { class: "badge" }, `Model: ${status.model}`),
  );
  const details = el(
    "details",
    { class: "status-details" },
    el("summary", {}, "Details"),
    el("p", {}, status.memory_status),
    el("p", {}, status.long_term_memory_status),
    el("p", {}, `Model: ${status.model}`),
    el("p", {}, status.background_runs ? "Background runs: on" : "Background runs: off (a run started here still finishes if you close the tab)"),
  );
  append(box, details);
}

function renderIdentity(status) {
  const box = clear($("identity"));
  if (status.deployed) {
    append(
      box,
      status.user_id
        ? el("span", { class: "user", id: "signed-in" }, "Signed in as ", el("strong", {}, status.user_id))
        : el("span", { class: "user warn", id: "signed-in" }, "Not signed in: the Databricks Apps proxy sent no identity"),
    );
    return;
  }
  const input = el("input", {
    id: "local-user",
    type: "text",
    value: identity.localUser,
    autocomplete: "off",
    placeholder: "e.g. alice",
    "aria-describedby": "local-user-note",
  });
  const form = el(
    "form",
    {
      class: "local-user",
      onsubmit: async (event) => {
        event.preventDefault();
        identity.setLocalUser(input.value);
        await refreshAll();
      },
    },
    el("label", { for: "local-user" }, "User"),
    input,
    el("button", { type: "submit" }, "Use"),
    el("small", { id: "local-user-note", class: "local-only" }, "local only: deployed, the user is whoever Databricks signs in"),
  );
  append(box, form);
}

// ---------------------------------------------------------------- threads

async function renderThreads() {
  const list = clear($("thread-list"));
  let threads = [];
  try {
    threads = await api.threads();
  } catch (error) {
    append(list, el("li", { class: "note" }, error.message));
    return;
  }
  if (!threads.length) append(list, el("li", { class: "note" }, "No threads yet."));
  for (const thread of threads) {
    const link = el(
      "a",
      {
        href: `/threads/${encodeURIComponent(thread.thread_id)}`,
        class: "thread-link",
        "aria-current": thread.thread_id === state.threadId ? "page" : undefined,
        dataset: { threadId: thread.thread_id },
        onclick: (event) => {
          event.preventDefault();
          navigate(`/threads/${encodeURIComponent(thread.thread_id)}`);
        },
      },
      el("span", { class: "title" }, thread.title),
      el("span", { class: "preview" }, thread.preview),
      el(
        "span",
        { class: "meta" },
        when(thread.updated_at),
        thread.waiting_for_approval ? el("span", { class: "badge warn" }, "waiting for approval") : null,
      ),
    );
    append(list, el("li", {}, link));
  }
}

// ---------------------------------------------------------------- chat

function bubble(role, text, extra = {}) {
  return el(
    "li",
    { class: `message ${role}`, ...extra },
    el("span", { class: "role" }, role === "user" ? "You" : role === "assistant" ? "Agent" : role),
    el("div", { class: "text" }, text),
  );
}

function toolCallItem(name, args) {
  return el(
    "li",
    { class: "message tool-call" },
    el("span", { class: "role" }, "Tool call"),
    el("code", {}, `${name}(${typeof args === "string" ? args : JSON.stringify(args)})`),
  );
}

function toolResultItem(name, output, status) {
  return el(
    "li",
    { class: `message tool-result ${status === "error" ? "failed" : ""}` },
    el("span", { class: "role" }, name ? `Result of ${name}` : "Tool result"),
    el("div", { class: "text" }, output),
  );
}

function approvalCard(approval) {
  const argsText = typeof approval.arguments === "string" ? approval.arguments : JSON.stringify(approval.arguments);
  const editor = el("textarea", { rows: 3, id: `edit-${approval.id}`, class: "args-editor" }, argsText);
  const editLabel = el("label", { for: `edit-${approval.id}` }, "Arguments (JSON)");
  const editBox = el("div", { class: "edit-box", hidden: true }, editLabel, editor);
  const outcome = el("p", { class: "outcome", role: "status" });
  const buttons = el("div", { class: "actions" });
  const card = el(
    "li",
    { class: "message approval", dataset: { approvalId: approval.id } },
    el("span", { class: "role" }, "Approval needed"),
    el("p", {}, approval.description || `The agent wants to run ${approval.tool}.`),
    el("code", {}, `${approval.tool}(${argsText})`),
    editBox,
    buttons,
    outcome,
  );
  const settle = (label, answer) => async () => {
    for (const button of buttons.querySelectorAll("button")) button.disabled = true;
    outcome.textContent = label;
    card.classList.add("settled");
    await runTurn({ input: [], approval: answer });
  };
  const allow = el("button", { type: "button", class: "primary", onclick: settle("Allowed", "approve") }, "Allow");
  const deny = el("button", { type: "button", class: "danger", onclick: settle("Denied", { action: "reject", reason: "denied in the console" }) }, "Deny");
  const edit = el(
    "button",
    {
      type: "button",
      onclick: async () => {
        if (editBox.hidden) {
          editBox.hidden = false;
          edit.textContent = "Run with these arguments";
          editor.focus();
          return;
        }
        let args;
        try {
          args = JSON.parse(editor.value);
        } catch (error) {
          outcome.textContent = `Not valid JSON: ${error.message}`;
          return;
        }
        await settle("Edited and allowed", { action: "edit", args })();
      },
    },
    "Edit",
  );
  append(buttons, allow, deny, edit);
  return card;
}

function renderMessages(messages, pending) {
  const list = clear($("messages"));
  const toolNames = {};
  for (const message of messages) {
    if (message.role === "user") append(list, bubble("user", message.text));
    else if (message.role === "assistant") {
      if (message.text) append(list, bubble("assistant", message.text));
      for (const call of message.tool_calls || []) {
        toolNames[call.id] = call.name;
        append(list, toolCallItem(call.name, call.arguments));
      }
    } else if (message.role === "tool") {
      append(list, toolResultItem(message.name || toolNames[message.tool_call_id], message.text, message.status));
    }
  }
  for (const approval of pending || []) append(list, approvalCard(approval));
  if (!messages.length && !(pending || []).length) {
    append(list, el("li", { class: "note empty" }, "Start the conversation below."));
  }
  list.lastElementChild?.scrollIntoView({ block: "end" });
}

// Apply one Responses API stream event to the conversation on screen.
function streamer() {
  const list = $("messages");
  list.querySelector(".empty")?.remove();
  const streaming = new Map();
  const toolNames = {};
  let threadId = state.threadId;
  return {
    get threadId() {
      return threadId;
    },
    apply(event) {
      if (event.type === "error" || event.error) {
        const message = event.message || event.error?.message || event.error;
        showError(new Error(typeof message === "string" ? message : "the run failed"));
        return;
      }
      if (event.type === "response.output_item.added" && event.item?.type === "message") {
        const node = bubble("assistant", "", { "aria-busy": "true" });
        node.classList.add("streaming");
        streaming.set(event.item.id, node);
        append(list, node);
      } else if (event.type === "response.output_text.delta") {
        const node = streaming.get(event.item_id);
        if (node) node.querySelector(".text").append(document.createTextNode(event.delta));
      } else if (event.type === "response.output_item.done") {
        const item = event.item;
        if (item.type === "message") {
          const text = (item.content || []).map((part) => part.text || "").join("");
          let node = streaming.get(item.id);
          if (!node) {
            node = bubble("assistant", "");
            append(list, node);
          }
          node.querySelector(".text").textContent = text;
          node.classList.remove("streaming");
          node.removeAttribute("aria-busy");
          streaming.delete(item.id);
        } else if (item.type === "function_call") {
          toolNames[item.call_id] = item.name;
          append(list, toolCallItem(item.name, item.arguments));
        } else if (item.type === "function_call_output") {
          append(list, toolResultItem(toolNames[item.call_id], item.output));
        } else if (item.type === "mcp_approval_request") {
          append(list, approvalCard({ id: item.id, tool: item.name, arguments: item.arguments }));
        }
      } else if (event.type === "response.completed") {
        threadId = event.response?.custom_outputs?.thread_id || event.custom_outputs?.thread_id || threadId;
      }
      list.lastElementChild?.scrollIntoView({ block: "end" });
    },
  };
}

function setBusy(busy, note) {
  state.busy = busy;
  $("send").disabled = busy;
  const box = $("run-note");
  box.hidden = !note;
  box.textContent = note || "";
}

// A new thread's id is chosen here, before the first message is sent, so the page's
// URL names the thread from the start: a reload mid-run reopens the same thread.
function newThreadId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return [...bytes].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}

async function runTurn({ input, approval }) {
  showError(null);
  if (!state.threadId) {
    state.threadId = newThreadId();
    history.replaceState(null, "", `/threads/${encodeURIComponent(state.threadId)}`);
  }
  setBusy(true, "The agent is working…");
  const view = streamer();
  try {
    await startTurn(
      { threadId: state.threadId, input, approval, background: state.status?.background_runs },
      (event) => view.apply(event),
    );
  } catch (error) {
    showError(error);
  }
  if (view.threadId && view.threadId !== state.threadId) {
    state.threadId = view.threadId;
    history.replaceState(null, "", `/threads/${encodeURIComponent(view.threadId)}`);
  }
  runs.set(state.threadId, null);
  // The saved thread replaces the streamed view before the page takes input again.
  await renderThreads();
  if (state.threadId) await loadThread(state.threadId, { quiet: true });
  setBusy(false);
}

async function send(event) {
  event.preventDefault();
  const box = $("message");
  const text = box.value.trim();
  if (!text || state.busy) return;
  box.value = "";
  append($("messages"), bubble("user", text));
  $("messages").querySelector(".empty")?.remove();
  await runTurn({ input: [{ role: "user", content: text }] });
  box.focus();
}

// A run still going on this thread (started before a reload, or in another tab):
// follow it to the end, from the last event seen when the server has background runs.
async function followRun(threadId) {
  setBusy(true, "The agent is still working on this thread…");
  try {
    if (state.status?.background_runs && runs.get(threadId)) {
      const view = streamer();
      await resumeTurn(threadId, (event) => view.apply(event));
    } else {
      for (;;) {
        await new Promise((resolve) => setTimeout(resolve, 500));
        if (state.threadId !== threadId) return;
        const thread = await api.thread(threadId);
        if (!thread.running) break;
      }
    }
  } catch (error) {
    showError(error);
  } finally {
    setBusy(false);
  }
  if (state.threadId === threadId) await loadThread(threadId, { quiet: true });
}

async function loadThread(threadId, { quiet = false } = {}) {
  let thread;
  try {
    thread = await api.thread(threadId);
  } catch (error) {
    clear($("messages"));
    clear($("checkpoints"));
    showError(error);
    $("composer").hidden = error.status === 403 || error.status === 404;
    return null;
  }
  $("composer").hidden = false;
  renderMessages(thread.messages, thread.pending);
  const forked = $("forked-from");
  forked.hidden = !thread.forked_from;
  if (thread.forked_from) {
    forked.textContent = `Forked from thread ${thread.forked_from.thread_id} at checkpoint ${thread.forked_from.checkpoint_id}.`;
  }
  if (thread.running && !quiet && !state.busy) followRun(threadId);
  return thread;
}

// ---------------------------------------------------------------- checkpoints

async function renderCheckpoints() {
  const list = clear($("checkpoints"));
  $("state").hidden = true;
  if (!state.threadId) {
    append(list, el("li", { class: "note" }, "Open a thread to see its checkpoints."));
    $("delete-thread").hidden = true;
    return;
  }
  $("delete-thread").hidden = false;
  let rows;
  try {
    rows = await api.checkpoints(state.threadId);
  } catch (error) {
    showError(error);
    return;
  }
  for (const row of rows) {
    const open = el("button", { type: "button", onclick: () => showState(row.checkpoint_id) }, "Open state");
    const fork = el(
      "button",
      {
        type: "button",
        class: "fork",
        onclick: async () => {
          try {
            const forked = await api.fork(state.threadId, row.checkpoint_id);
            navigate(`/threads/${encodeURIComponent(forked.thread_id)}`);
            await renderThreads();
          } catch (error) {
            showError(error);
          }
        },
      },
      "Fork into a new thread",
    );
    fork.setAttribute("aria-label", `Fork step ${row.step ?? "?"} into a new thread`);
    open.setAttribute("aria-label", `Open the state at step ${row.step ?? "?"}`);
    append(
      list,
      el(
        "li",
        { class: "checkpoint", dataset: { checkpointId: row.checkpoint_id } },
        el("span", { class: "step" }, `step ${row.step ?? "?"}`),
        el("span", { class: "node" }, row.node || row.source || ""),
        el("time", { datetime: row.created_at }, when(row.created_at)),
        el("span", { class: "preview" }, row.preview),
        row.waiting_for_approval ? el("span", { class: "badge warn" }, "waiting for approval") : null,
        el("span", { class: "actions" }, open, fork),
      ),
    );
  }
}

async function showState(checkpointId) {
  for (const row of document.querySelectorAll(".checkpoint")) {
    row.classList.toggle("selected", row.dataset.checkpointId === checkpointId);
  }
  const box = clear($("state"));
  box.hidden = false;
  let snapshot;
  try {
    snapshot = await api.stateAt(state.threadId, checkpointId);
  } catch (error) {
    showError(error);
    return;
  }
  append(
    box,
    el("h3", {}, `State at step ${snapshot.step ?? "?"}`),
    el("p", { class: "note" }, `Checkpoint ${snapshot.checkpoint_id} · ${when(snapshot.created_at)} · next: ${snapshot.next.join(", ") || "nothing (the run ended here)"}`),
  );
  const messages = el("ol", { class: "messages compact" });
  for (const message of snapshot.messages) {
    const calls = (message.tool_calls || []).map((call) => ` → ${call.name}(${JSON.stringify(call.arguments)})`).join("");
    append(messages, bubble(message.role, `${message.text}${calls}`));
  }
  append(box, messages);
  if (Object.keys(snapshot.values).length) append(box, el("pre", {}, json(snapshot.values)));
  for (const pending of snapshot.pending) {
    append(box, el("p", { class: "badge warn" }, `Waiting for approval: ${pending.description || pending.tool}`));
  }
  box.scrollIntoView({ block: "nearest" });
}

async function deleteThread() {
  try {
    await api.deleteThread(state.threadId);
  } catch (error) {
    showError(error);
    return;
  }
  $("delete-confirm").hidden = true;
  state.lastThreadId = null;
  navigate("/");
  await renderThreads();
}

// ---------------------------------------------------------------- memories

async function renderMemories(query) {
  const list = clear($("memory-list"));
  let items;
  try {
    items = await api.memories(query);
  } catch (error) {
    append(list, el("li", { class: "note" }, error.message));
    return;
  }
  if (!items.length) append(list, el("li", { class: "note" }, query ? "No memory matches." : "No memories yet."));
  for (const item of items) append(list, memoryRow(item, query));
}

function memoryRow(item, query) {
  const content = el("p", { class: "content" }, item.content);
  const source = item.source?.thread_id
    ? el(
        "a",
        { href: `/threads/${encodeURIComponent(item.source.thread_id)}`, class: "source" },
        `saved in thread ${item.source.thread_id}`,
      )
    : el("span", { class: "source" }, "where it was saved is not recorded");
  const meta = el(
    "p",
    { class: "meta" },
    query && item.score !== null ? el("span", { class: "score" }, `score ${item.score.toFixed(3)}`) : null,
    el("span", {}, `key ${item.key}`),
    el("span", {}, `updated ${when(item.updated_at)}`),
    source,
  );
  const outcome = el("p", { class: "outcome", role: "status" });
  const row = el("li", { class: "memory", dataset: { key: item.key } }, content, meta, outcome);
  const actions = el("div", { class: "actions" });
  const edit = el("button", { type: "button", onclick: () => startEdit() }, "Edit");
  const remove = el("button", { type: "button", class: "danger", onclick: () => askDelete() }, "Delete");
  append(actions, edit, remove);
  append(row, actions);

  function startEdit() {
    const id = `memory-edit-${item.key}`;
    const editor = el("textarea", { id, rows: 2 }, item.content);
    const form = el(
      "form",
      {
        class: "edit-box",
        onsubmit: async (event) => {
          event.preventDefault();
          try {
            const saved = await api.editMemory(item.key, editor.value);
            row.replaceWith(memoryRow(saved, null));
          } catch (error) {
            outcome.textContent = error.message;
          }
        },
      },
      el("label", { for: id }, "Memory text"),
      editor,
      el("button", { type: "submit", class: "primary" }, "Save"),
      el("button", { type: "button", onclick: () => row.replaceWith(memoryRow(item, query)) }, "Cancel"),
    );
    actions.replaceWith(form);
    editor.focus();
  }

  // Deleting is delete_memory: it needs a human's approval, as when the agent asks.
  function askDelete() {
    const card = el(
      "div",
      { class: "approval inline" },
      el("p", {}, "Approval needed: delete_memory", el("code", {}, `(key=${JSON.stringify(item.key)})`), " removes this memory for good."),
    );
    const decide = (approval) => async () => {
      try {
        const result = await api.deleteMemory(item.key, approval);
        if (result.deleted) {
          row.remove();
        } else {
          card.replaceWith(actions);
          outcome.textContent = "Denied: the memory was kept.";
        }
      } catch (error) {
        outcome.textContent = error.message;
      }
    };
    append(
      card,
      el("div", { class: "actions" },
        el("button", { type: "button", class: "danger", onclick: decide("approve") }, "Allow"),
        el("button", { type: "button", onclick: decide({ action: "reject" }) }, "Deny"),
      ),
    );
    actions.replaceWith(card);
    card.querySelector("button").focus();
  }
  return row;
}

// ---------------------------------------------------------------- routing

function route() {
  const path = location.pathname;
  const params = new URLSearchParams(location.search);
  if (path.startsWith("/threads/")) {
    return { threadId: decodeURIComponent(path.slice("/threads/".length)), view: params.get("view") === "history" ? "history" : "chat" };
  }
  if (path === "/memories") return { threadId: null, view: "memories" };
  return { threadId: null, view: "chat" };
}

function navigate(url) {
  history.pushState(null, "", url);
  render();
}

function showView(view) {
  state.view = view;
  for (const tab of document.querySelectorAll("[role=tab]")) {
    const selected = tab.dataset.view === view;
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
    $(tab.getAttribute("aria-controls")).hidden = !selected;
  }
}

async function render() {
  showError(null);
  const { threadId, view } = route();
  state.threadId = threadId;
  if (threadId) state.lastThreadId = threadId;
  showView(view);
  for (const link of document.querySelectorAll(".thread-link")) {
    if (link.dataset.threadId === threadId) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (view === "memories") {
    await renderMemories($("memory-query").value.trim());
    return;
  }
  if (view === "history") {
    await renderCheckpoints();
    return;
  }
  if (threadId) await loadThread(threadId);
  else {
    $("composer").hidden = false;
    renderMessages([], []);
  }
}

async function refreshAll() {
  try {
    state.status = await api.status();
    renderStatus(state.status);
    renderIdentity(state.status);
  } catch (error) {
    showError(error);
  }
  await renderThreads();
  await render();
}

function tabTo(view) {
  // Back from the memories, the chat and checkpoint tabs show the thread last open.
  const threadId = state.threadId || state.lastThreadId;
  if (view === "memories") navigate("/memories");
  else if (threadId) navigate(`/threads/${encodeURIComponent(threadId)}${view === "history" ? "?view=history" : ""}`);
  else if (view === "history") {
    showView("history");
    renderCheckpoints();
  } else navigate("/");
}

function wire() {
  $("composer").addEventListener("submit", send);
  $("message").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });
  $("new-thread").addEventListener("click", () => {
    state.lastThreadId = null;
    navigate("/");
    $("message").focus();
  });
  const tabs = [...document.querySelectorAll("[role=tab]")];
  for (const tab of tabs) {
    tab.addEventListener("click", () => tabTo(tab.dataset.view));
    tab.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      const next = tabs[(tabs.indexOf(tab) + step + tabs.length) % tabs.length];
      next.focus();
      tabTo(next.dataset.view);
    });
  }
  $("delete-thread").addEventListener("click", () => {
    $("delete-confirm").hidden = false;
    $("delete-no").focus();
  });
  $("delete-no").addEventListener("click", () => {
    $("delete-confirm").hidden = true;
  });
  $("delete-yes").addEventListener("click", deleteThread);
  $("memory-search").addEventListener("submit", (event) => {
    event.preventDefault();
    renderMemories($("memory-query").value.trim());
  });
  $("memory-all").addEventListener("click", () => {
    $("memory-query").value = "";
    renderMemories("");
  });
  window.addEventListener("popstate", render);
}

wire();
refreshAll();
