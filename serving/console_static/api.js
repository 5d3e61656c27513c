// The console's calls to its server: JSON endpoints under /console/api and the chat
// stream. Identity: deployed, the Databricks Apps proxy adds it to every request;
// locally, the user field's value travels in X-Memory-Agent-User (the server
// ignores that header when deployed).

const USER_KEY = "memory-agent-console.user";
const RUNS_KEY = "memory-agent-console.runs";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export const identity = {
  localUser: localStorage.getItem(USER_KEY) || "",
  setLocalUser(value) {
    this.localUser = value.trim();
    localStorage.setItem(USER_KEY, this.localUser);
  },
  headers() {
    return this.localUser ? { "X-Memory-Agent-User": this.localUser } : {};
  },
};

async function errorOf(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    const detail = body.detail ?? body.message ?? body.error;
    if (typeof detail === "string") message = detail;
    else if (detail && typeof detail.message === "string") message = detail.message;
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(response.status, message);
}

export async function call(method, path, body) {
  const options = { method, headers: { ...identity.headers() } };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(`/console/api${path}`, options);
  if (!response.ok) throw await errorOf(response);
  return response.json();
}

export const api = {
  status: () => call("GET", "/status"),
  threads: () => call("GET", "/threads"),
  thread: (id) => call("GET", `/threads/${encodeURIComponent(id)}`),
  deleteThread: (id) => call("DELETE", `/threads/${encodeURIComponent(id)}`),
  checkpoints: (id) => call("GET", `/threads/${encodeURIComponent(id)}/checkpoints`),
  stateAt: (id, checkpoint) =>
    call("GET", `/threads/${encodeURIComponent(id)}/checkpoints/${encodeURIComponent(checkpoint)}`),
  fork: (id, checkpoint) =>
    call(
      "POST",
      `/threads/${encodeURIComponent(id)}/checkpoints/${encodeURIComponent(checkpoint)}/fork`,
    ),
  memories: (query) =>
    call("GET", `/memories${query ? `?query=${encodeURIComponent(query)}` : ""}`),
  editMemory: (key, content) => call("PUT", `/memories/${encodeURIComponent(key)}`, { content }),
  deleteMemory: (key, approval) =>
    call("DELETE", `/memories/${encodeURIComponent(key)}`, { approval }),
};

// Runs in flight, by thread: the background run's id and the last event seen, kept
// across reloads so a reopened thread resumes its stream where it left off.
export const runs = {
  all() {
    try {
      return JSON.parse(localStorage.getItem(RUNS_KEY) || "{}");
    } catch {
      return {};
    }
  },
  get(threadId) {
    return this.all()[threadId];
  },
  set(threadId, run) {
    const all = this.all();
    if (run) all[threadId] = run;
    else delete all[threadId];
    localStorage.setItem(RUNS_KEY, JSON.stringify(all));
  },
};

// Read a server-sent event stream ("data: {...}" lines); call onEvent for each event.
async function readEvents(response, onEvent) {
  if (!response.ok) throw await errorOf(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = frame
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).trimStart())
        .join("\n");
      if (!data || data === "[DONE]") continue;
      onEvent(JSON.parse(data));
    }
  }
}

// One chat turn. With background runs on the server (status.background_runs), the
// turn is a background run on /responses, and a reload resumes it (resumeTurn);
// without them, the console's own route runs the turn to the end even if the tab goes.
export async function startTurn({ threadId, input, approval, background }, onEvent) {
  const customInputs = {};
  if (threadId) customInputs.thread_id = threadId;
  if (identity.localUser) customInputs.user_id = identity.localUser;
  if (approval !== undefined) customInputs.approval = approval;
  const body = { input, custom_inputs: customInputs, stream: true };
  if (background) body.background = true;
  const response = await fetch(background ? "/responses" : "/console/api/responses", {
    method: "POST",
    headers: { "Content-Type": "application/json", ...identity.headers() },
    body: JSON.stringify(body),
  });
  let responseId = null;
  await readEvents(response, (event) => {
    if (background) {
      // The bridge's contract tags every frame with response_id (the run's id, which
      // GET /responses/{id} knows); response.id inside an event may be the agent's own.
      responseId = responseId || event.response_id || event.response?.id || null;
      const thread = threadId || event.response?.custom_outputs?.thread_id;
      if (responseId && thread && event.sequence_number !== undefined) {
        runs.set(thread, { responseId, after: event.sequence_number });
      }
    }
    onEvent(event);
  });
}

// Follow a background run from the last event this browser saw (background runs only).
export async function resumeTurn(threadId, onEvent) {
  const run = runs.get(threadId);
  if (!run) return false;
  const url = `/responses/${encodeURIComponent(run.responseId)}?stream=true&starting_after=${run.after}`;
  const response = await fetch(url, { headers: identity.headers() });
  await readEvents(response, (event) => {
    if (event.sequence_number !== undefined) {
      runs.set(threadId, { responseId: run.responseId, after: event.sequence_number });
    }
    onEvent(event);
  });
  runs.set(threadId, null);
  return true;
}
