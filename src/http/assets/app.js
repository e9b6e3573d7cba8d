// The dashboard: plain JavaScript, no build step, no network beyond this server. It shows the
// orchestrations (#/), an orchestration's graph (#/o/ID) and a task's panel (#/o/ID/t/TASK),
// reading /api/v1 again after every `change` the server's event stream sends. Every text from
// the server goes in through textContent, never as markup.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const STATES = ["waiting", "pending", "running", "completed", "failed", "cancelled", "skipped"];
const ORCHESTRATION_STATES = ["pending", "running", "completed", "failed", "cancelled"];

const main = document.getElementById("main");
const panel = document.getElementById("panel");
const banner = document.getElementById("banner");
const live = document.getElementById("live");
const filters = { state: "", project: "" };
let refreshing = null;
let again = false;
let log = null; // { task, next, finished } of the log the panel follows

// ---- the server ----

class Unauthorized extends Error {}

async function api(path, options = {}) {
  const response = await fetch(path, {
    credentials: "same-origin",
    headers: options.body ? { "content-type": "application/json" } : {},
    ...options,
  });
  if (response.status === 401) {
    askToken();
    throw new Unauthorized("this server needs its token");
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(body.error || `${response.status} ${response.statusText}`);
  }
  return body;
}

function post(path, body) {
  return api(path, { method: "POST", body: body === undefined ? undefined : JSON.stringify(body) });
}

// ---- small DOM helpers ----

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    // Through the CSSOM: the Content-Security-Policy refuses style attributes.
    else if (key === "style") node.style.cssText = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function badge(state) {
  return el("span", { class: `badge state-${state}` }, el("span", { class: "icon" }), " ", state);
}

function money(usd) {
  return `$${Number(usd || 0).toFixed(4)}`;
}

function seconds(ms) {
  const s = Math.max(0, ms) / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.floor(s % 60)).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

function clip(text, chars) {
  return text.length <= chars ? text : text.slice(0, chars - 1) + "…";
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean);
  if (parts[0] === "o" && parts[1]) return { orchestration: parts[1], task: parts[2] === "t" ? parts[3] : null };
  return { orchestration: null, task: null };
}

// ---- what is shown ----

async function refresh() {
  if (refreshing) {
    again = true;
    return refreshing;
  }
  refreshing = (async () => {
    try {
      const where = route();
      if (where.orchestration) await showGraph(where.orchestration, where.task);
      else await showList();
    } catch (error) {
      if (!(error instanceof Unauthorized)) {
        main.replaceChildren(el("p", { class: "error" }, error.message));
      }
    }
  })();
  await refreshing;
  refreshing = null;
  if (again) {
    again = false;
    return refresh();
  }
}

function showBanner(status) {
  if (status && status.paused_until) {
    banner.className = "banner";
    banner.replaceChildren(
      el("span", {}, status.paused_reason || `Paused by the usage limit until ${when(status.paused_until)}.`),
      el("button", { "data-action": "resume", onclick: () => act(() => post("/api/v1/resume")) }, "Resume now"),
    );
    banner.hidden = false;
  } else if (status && status.message && status.kind === "orchestration") {
    banner.className = "banner budget";
    banner.replaceChildren(el("span", {}, status.message));
    banner.hidden = false;
  } else {
    banner.hidden = true;
  }
}

async function showList() {
  panel.hidden = true;
  log = null;
  const query = new URLSearchParams({ all_projects: "true", limit: "200" });
  if (filters.state) query.set("status", filters.state);
  const list = await api(`/api/v1/orchestrations?${query}`);
  const projects = [...new Set(list.orchestrations.map((o) => o.project))].sort();
  const shown = list.orchestrations.filter((o) => !filters.project || o.project === filters.project);
  showBanner(list.orchestrations.find((o) => o.paused_until));
  const stateFilter = el("select", { id: "filter-state", "aria-label": "state",
    onchange: (e) => { filters.state = e.target.value; refresh(); } },
    el("option", { value: "" }, "every state"),
    ORCHESTRATION_STATES.map((s) => el("option", { value: s, selected: filters.state === s }, s)));
  const projectFilter = el("select", { id: "filter-project", "aria-label": "project",
    onchange: (e) => { filters.project = e.target.value; refresh(); } },
    el("option", { value: "" }, "every project"),
    projects.map((p) => el("option", { value: p, selected: filters.project === p }, p)));
  const items = shown.map((o) => {
    const total = o.total_tasks || 0;
    const bar = el("div", { class: "bar", title: `${o.completed_tasks}/${total} completed` },
      ["completed", "failed", "cancelled", "skipped", "running", "pending"].map((state) => {
        const n = o[`${state}_tasks`] || 0;
        return n && total ? el("span", { class: `state-${state}`, style: `width:${(100 * n) / total}%` }) : null;
      }));
    return el("li", { class: "orchestration", "data-orchestration-id": o.orchestration_id },
      el("a", { href: `#/o/${o.orchestration_id}` },
        el("div", { class: "row" },
          badge(o.status),
          el("b", { class: "grow" }, `#${o.orchestration_id} ${o.name || ""}`),
          el("span", {}, money(o.cost_usd))),
        bar,
        el("div", { class: "meta" },
          `${o.completed_tasks}/${total} completed`,
          o.failed_tasks ? ` · ${o.failed_tasks} failed` : "",
          o.running_tasks ? ` · ${o.running_tasks} running` : "",
          o.budget ? ` · budget ${o.budget}` : "",
          ` · ${o.project} · ${when(o.created_at)}`)));
  });
  main.replaceChildren(
    el("div", { class: "filters" }, stateFilter, projectFilter),
    items.length ? el("ul", { class: "orchestrations" }, items) : el("p", { class: "muted" }, "No orchestrations yet."));
}

async function showGraph(id, task) {
  const graph = await api(`/api/v1/orchestrations/${encodeURIComponent(id)}/graph`);
  const o = graph.orchestration;
  showBanner(o);
  const unfinished = ["pending", "running"].includes(o.status) || o.pending_tasks || o.running_tasks || o.waiting_tasks;
  const retryable = o.failed_tasks || o.cancelled_tasks || o.skipped_tasks;
  const budget = el("input", { type: "number", min: "0.01", step: "0.5", placeholder: "budget $",
    "aria-label": "new budget in dollars", style: "width:8em" });
  const actions = el("div", { class: "actions" },
    unfinished ? el("button", { class: "danger", "data-action": "cancel-orchestration",
      onclick: () => confirm(`Cancel orchestration #${o.orchestration_id}?`) &&
        act(() => post(`/api/v1/orchestrations/${o.orchestration_id}/cancel`, { reason: "cancelled from the dashboard" })) },
      "Cancel") : null,
    retryable ? el("button", { "data-action": "retry-orchestration",
      onclick: () => act(() => post(`/api/v1/orchestrations/${o.orchestration_id}/retry`)) }, "Retry") : null,
    o.max_budget_usd !== undefined ? [budget, el("button", { "data-action": "raise-budget",
      onclick: () => budget.value &&
        act(() => post(`/api/v1/orchestrations/${o.orchestration_id}/retry`, { max_budget_usd: Number(budget.value) })) },
      "Set budget")] : null);
  const head = el("div", { class: "head" },
    el("a", { href: "#/" }, "←"),
    el("h1", {}, `#${o.orchestration_id} ${o.name || ""}`),
    badge(o.status),
    el("span", { class: "muted" },
      `${o.completed_tasks}/${o.total_tasks} completed · ${money(o.cost_usd)}`,
      o.budget ? ` · budget ${o.budget}` : ""),
    actions);
  // Drawn again on every change: what the person scrolled to or typed stays.
  const old = main.querySelector(".graph");
  const scroll = old ? [old.scrollLeft, old.scrollTop] : null;
  const typed = main.querySelector("input[aria-label='new budget in dollars']");
  const typing = typed !== null && document.activeElement === typed;
  if (typed) budget.value = typed.value;
  const drawn = drawGraph(graph, id, task);
  main.replaceChildren(head, drawn);
  if (graph.tasks_not_drawn) main.append(el("p", { class: "muted" }, `${graph.tasks_not_drawn} more tasks are not drawn.`));
  if (scroll && old.dataset.orchestration === String(id)) [drawn.scrollLeft, drawn.scrollTop] = scroll;
  // For the benchmark of the first paint: when the graph was first in the page.
  if (!performance.getEntriesByName("graph-drawn").length) performance.mark("graph-drawn");
  if (typing) budget.focus();
  if (task) await showPanel(id, task);
  else {
    panel.hidden = true;
    log = null;
  }
}

function drawGraph(graph, id, selected) {
  const width = Math.max(graph.width, 320);
  const height = Math.max(graph.height, 80);
  const picture = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `graph of orchestration ${id}` });
  picture.append(svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5,
    markerWidth: 7, markerHeight: 7, orient: "auto" }, svg("path", { d: "M0,0 L10,5 L0,10 z", fill: "#94a3b8" }))));
  const at = new Map(graph.nodes.map((n) => [n.task_id, n]));
  const [w, h] = [graph.box_width, graph.box_height];
  for (const [from, to] of graph.edges) {
    const a = at.get(from);
    const b = at.get(to);
    const [x1, y1, x2, y2] = [a.x + w, a.y + h / 2, b.x, b.y + h / 2];
    const bend = (x2 - x1) / 2;
    picture.append(svg("path", { class: "edge", "data-from": from, "data-to": to, "marker-end": "url(#arrow)",
      d: `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}` }));
  }
  for (const node of graph.nodes) {
    const open = () => { location.hash = `#/o/${id}/t/${node.task_id}`; };
    const group = svg("g", { class: `node state-${node.status}${String(node.task_id) === String(selected) ? " selected" : ""}`,
      "data-task-id": node.task_id, "data-status": node.status, tabindex: 0, role: "button",
      "aria-label": `${node.task_identifier}: ${node.status}` },
      svg("title", {}, `#${node.task_id} ${node.task_identifier}: ${node.note}`),
      svg("rect", { x: node.x, y: node.y, width: w, height: h, rx: 8 }),
      svg("text", { class: "name", x: node.x + 10, y: node.y + 24 }, `${node.icon} ${clip(node.task_identifier, 24)}`),
      svg("text", { class: "note", x: node.x + 10, y: node.y + 44, "data-started": node.status === "running" ? node.started_at : null },
        clip(noteOf(node), 34)));
    group.addEventListener("click", open);
    group.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") open(); });
    picture.append(group);
  }
  return el("div", { class: "graph", "data-orchestration": id }, picture);
}

/// A box's second line: its state, time, cost and current action; a running task's time ticks.
function noteOf(node) {
  if (node.status !== "running" || !node.started_at) return node.note;
  const parts = [node.status, seconds(Date.now() - Date.parse(node.started_at))];
  if (node.cost_usd) parts.push(money(node.cost_usd));
  if (node.last_action) parts.push(node.last_action);
  return parts.join(" · ");
}

async function showPanel(orchestration, task) {
  const details = await api(`/api/v1/tasks/${encodeURIComponent(task)}/details`);
  const t = details.task;
  const unfinished = ["waiting", "pending", "running"].includes(t.status);
  const section = (title, ...content) => [el("h3", {}, title), ...content];
  const settings = Object.entries(details.settings).filter(([, v]) => v !== null && v !== "" && !(Array.isArray(v) && !v.length));
  const logView = el("pre", { class: "log", id: "task-log" });
  if (!log || log.task !== t.task_id) log = { task: t.task_id, next: 0, finished: false, text: "" };
  logView.textContent = log.text;
  const detailedUrl = `/api/v1/tasks/${t.task_id}/log?log=detailed&format=text`;
  const scrolled = panel.dataset.task === String(t.task_id) ? panel.scrollTop : 0;
  const parts = [
    el("button", { class: "close", "aria-label": "close", onclick: () => { location.hash = `#/o/${orchestration}`; } }, "✕"),
    el("h2", {}, `#${t.task_id} ${t.task_identifier}`),
    el("div", { class: "row", style: "margin-top:8px" }, badge(t.status),
      el("span", { class: "muted" }, `attempt ${t.attempt}/${t.max_attempts} · ${money(t.cost_usd)}`,
        t.started_at ? ` · ${seconds((t.ended_at ? Date.parse(t.ended_at) : Date.now()) - Date.parse(t.started_at))}` : "")),
    el("div", { class: "actions", style: "margin-top:10px" },
      unfinished ? el("button", { class: "danger", "data-action": "cancel-task",
        onclick: () => act(() => post(`/api/v1/tasks/${t.task_id}/cancel`, { reason: "cancelled from the dashboard" })) }, "Cancel task") : null,
      ["failed", "cancelled"].includes(t.status) ? el("button", { "data-action": "retry-task",
        onclick: () => act(() => post(`/api/v1/tasks/${t.task_id}/retry`)) }, "Retry task") : null),
    t.error ? section("Error", el("pre", { class: "error" }, `${t.error.kind}: ${t.error.message}`)) : null,
    t.result ? section("Result", el("pre", { id: "task-result" }, t.result)) : null,
    t.structured_result !== undefined ? section("Structured result", el("pre", {}, JSON.stringify(t.structured_result, null, 2))) : null,
    t.isolation ? section("Isolation", el("dl", {}, Object.entries(t.isolation).flatMap(([k, v]) =>
      [el("dt", {}, k), el("dd", {}, typeof v === "string" ? v : JSON.stringify(v))]))) : null,
    section("Log", logView, el("p", {}, el("a", { href: detailedUrl, target: "_blank", rel: "noopener" }, "detailed log"))),
    section("Prompt", el("pre", {}, details.prompt)),
    section("Settings", el("dl", {}, settings.flatMap(([k, v]) =>
      [el("dt", {}, k), el("dd", {}, typeof v === "string" ? v : JSON.stringify(v))]))),
    section("History", el("ul", { class: "history" }, details.history.map((e) =>
      el("li", {}, el("time", {}, when(e.at)), `${e.kind}${e.attempt ? ` (attempt ${e.attempt})` : ""}`, e.detail ? `: ${e.detail}` : "")))),
  ];
  panel.replaceChildren(...parts.flat().filter((part) => part !== null && part !== undefined && part !== false));
  panel.dataset.task = t.task_id;
  panel.hidden = false;
  panel.scrollTop = scrolled;
  logView.scrollTop = logView.scrollHeight;
  await followLog();
}

/// Reads what the followed log gained since last time; the panel shows it, scrolled to the end
/// when it was at the end.
async function followLog() {
  if (!log) return;
  const following = log;
  for (let pieces = 0; pieces < 16; pieces++) {
    const piece = await api(`/api/v1/tasks/${following.task}/log?from=${following.next}`);
    if (log !== following) return;
    following.text += piece.text;
    following.next = piece.next;
    following.finished = piece.finished;
    const view = document.getElementById("task-log");
    if (view && piece.text) {
      const atEnd = view.scrollTop + view.clientHeight >= view.scrollHeight - 4;
      view.textContent = following.text;
      if (atEnd) view.scrollTop = view.scrollHeight;
    }
    if (piece.next >= piece.size) break;
  }
}

async function act(action) {
  try {
    await action();
  } catch (error) {
    if (!(error instanceof Unauthorized)) alert(error.message);
  }
  refresh();
}

// ---- signing in ----

function askToken() {
  const dialog = document.getElementById("login");
  if (!dialog.open) dialog.showModal();
}

document.getElementById("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const problem = document.getElementById("login-error");
  const response = await fetch("/login", { method: "POST", credentials: "same-origin",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ token: document.getElementById("login-token").value }) });
  if (response.ok) {
    document.getElementById("login").close();
    problem.hidden = true;
    connect();
    refresh();
  } else {
    problem.textContent = (await response.json().catch(() => ({}))).error || "wrong token";
    problem.hidden = false;
  }
});

// ---- live ----

let events = null;

function connect() {
  if (events) events.close();
  events = new EventSource("/api/v1/events");
  events.addEventListener("open", () => live.classList.remove("off"));
  events.addEventListener("change", () => { live.classList.remove("off"); refresh(); });
  events.addEventListener("error", () => live.classList.add("off"));
}

// A running task's time moves every second without asking the server; its log is read again
// every second while the panel shows it (a task's log grows without other changes).
setInterval(() => {
  for (const text of document.querySelectorAll("text[data-started]")) {
    const group = text.closest(".node");
    const started = Date.parse(text.getAttribute("data-started"));
    const parts = text.textContent.split(" · ");
    parts[1] = seconds(Date.now() - started);
    text.textContent = clip(parts.join(" · "), 34);
    if (!group) break;
  }
  if (log && !log.finished && !panel.hidden) followLog().catch(() => {});
}, 1000);

window.addEventListener("hashchange", () => refresh());
connect();
refresh();
