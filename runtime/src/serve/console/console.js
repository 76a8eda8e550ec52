// berth's admin console: a client of the admin API (/admin/v1) and nothing
// more. The operator's bearer token lives in this tab's sessionStorage and is
// sent by fetch() with cookies omitted, so no ambient credential authorizes
// an admin call. Every value from the server is rendered as text
// (textContent / text nodes), never parsed as HTML.
"use strict";

const TOKEN_KEY = "berth-admin-token";
const API = "/admin/v1";
const VIEWS = ["connectors", "instances", "policies", "audit"];

const $ = (id) => document.getElementById(id);

/** An element with attributes and children; strings become text nodes. */
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "dataset") Object.assign(e.dataset, v);
    else if (k === "onclick") e.addEventListener("click", v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return e;
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** One admin API call; the parsed JSON answer, or an ApiError. */
async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY) ?? ""}` };
  const init = { method, headers, credentials: "omit", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(API + path, init);
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) throw new ApiError(res.status, (data && data.error) || text || res.statusText);
  return data;
}

/** A connector name in a URL path: each segment encoded, its slashes kept. */
const namePath = (name) => name.split("/").map(encodeURIComponent).join("/");
const list = (s) => s.split(",").map((t) => t.trim()).filter(Boolean);
const when = (ms) => (typeof ms === "number" ? new Date(ms).toISOString().replace("T", " ").replace("Z", "") : "");

function show(id, message) {
  const p = $(id);
  p.textContent = message ?? "";
  p.hidden = !message;
}
const fail = (message) => show("error", message);
const notice = (message) => show("notice", message);

/** Counts work in flight on <body data-busy>, so a test (or a curious
 * operator) can tell when the page has settled. */
async function tracked(work) {
  const body = document.body;
  body.dataset.busy = String(Number(body.dataset.busy || 0) + 1);
  try {
    return await work();
  } finally {
    body.dataset.busy = String(Number(body.dataset.busy) - 1);
  }
}

/** Runs a view's loader; a refused token sends the operator back to sign in. */
const guarded = (work) => tracked(() => guardedWork(work));

async function guardedWork(work) {
  fail("");
  try {
    await work();
  } catch (e) {
    if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
      signOut(`The admin API refused the token (${e.status}): ${e.message}`);
    } else {
      fail(e instanceof ApiError ? `${e.status}: ${e.message}` : String(e));
    }
  }
}

function fill(tbody, rows, empty) {
  tbody.replaceChildren(...rows);
  if (!rows.length) {
    const cols = tbody.closest("table").querySelectorAll("thead th").length;
    tbody.append(el("tr", { class: "empty" }, el("td", { colspan: cols }, empty)));
  }
}

// ---- connectors -------------------------------------------------------------

/** Every version of every connector, deleted ones included, page by page. */
async function allEntries() {
  const out = [];
  let cursor = null;
  for (let page = 0; page < 100; page++) {
    const q = new URLSearchParams({ limit: "100", include_deleted: "true" });
    if (cursor) q.set("cursor", cursor);
    const res = await api("GET", `/connectors?${q}`);
    out.push(...(res.servers ?? []));
    cursor = res.metadata && res.metadata.nextCursor;
    if (!cursor) break;
  }
  return out;
}

async function loadConnectors() {
  const entries = await allEntries();
  const rows = entries.map((e) => {
    const meta = (e._meta || {})["io.modelcontextprotocol.registry/official"] || {};
    const hosted = (e._meta || {})["dev.berth/hosted"] || {};
    const url = hosted.path ? new URL(hosted.path, location.origin).href : "";
    return el(
      "tr",
      { dataset: { connector: e.server.name, version: e.server.version, status: meta.status || "" } },
      el("td", {}, e.server.name),
      el("td", {}, e.server.version),
      el("td", { class: `status-${meta.status}` }, meta.status),
      el("td", {}, meta.isLatest ? "latest" : ""),
      el("td", {}, meta.publishedAt),
      el("td", {}, el("code", {}, url)),
    );
  });
  fill($("connectors-table").tBodies[0], rows, "No connector is published yet.");
}

// ---- instances --------------------------------------------------------------

async function loadInstances() {
  const pools = await api("GET", "/instances");
  const rows = [];
  for (const p of pools) {
    for (const i of p.instances ?? []) {
      rows.push(
        el(
          "tr",
          { dataset: { connector: p.connector, pool: p.pool, state: i.state } },
          el("td", {}, p.connector),
          el("td", {}, p.pool),
          el("td", {}, i.pid ?? ""),
          el("td", { class: `state-${i.state}` }, i.state),
          el("td", {}, i.in_flight),
          el("td", {}, i.cpu_seconds == null ? "" : `${i.cpu_seconds.toFixed(2)} s`),
          el("td", {}, i.memory_bytes == null ? "" : `${(i.memory_bytes / 1048576).toFixed(1)} MiB`),
        ),
      );
    }
  }
  fill($("instances-table").tBodies[0], rows, "No instance is running (servers start on their first request).");
}

// ---- users and policies -----------------------------------------------------

/** Names of connectors that have a version not deleted (policies need one). */
async function connectorNames() {
  const names = new Set();
  for (const e of await allEntries()) {
    const meta = (e._meta || {})["io.modelcontextprotocol.registry/official"] || {};
    if (meta.status !== "deleted") names.add(e.server.name);
  }
  return [...names].sort();
}

async function loadPolicies() {
  const people = await api("GET", "/users");
  fill($("users-table").tBodies[0], people.map(userRow), "berth knows of no user yet.");
  const names = await connectorNames();
  const select = $("policy-connector");
  const chosen = select.value;
  select.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
  if (names.includes(chosen)) select.value = chosen;
  const rows = [];
  const answers = await Promise.all(names.map((n) => api("GET", `/connectors/${namePath(n)}/policies`)));
  for (const { connector, users } of answers) {
    for (const [user, p] of Object.entries(users ?? {})) rows.push(policyRow(connector, user, p));
  }
  rows.sort((a, b) => (a.dataset.user + "\0" + a.dataset.connector).localeCompare(b.dataset.user + "\0" + b.dataset.connector));
  fill($("policies-table").tBodies[0], rows, "No user has a policy of their own.");
  await loadTools();
}

/** A user, with a two-step Offboard button (the first click arms it). */
function userRow(u) {
  const offboard = (ev) => {
    const button = ev.currentTarget;
    if (button.dataset.armed !== "yes") {
      button.dataset.armed = "yes";
      button.textContent = `Confirm: offboard ${u.user}`;
      return;
    }
    guarded(async () => {
      const done = await api("POST", `/users/${encodeURIComponent(u.user)}/offboard`);
      notice(
        `Offboarded ${u.user}: ${done.tokensRevoked} token(s) revoked, ${done.signInsEnded} sign-in(s) ended, ` +
          `${done.accountsRemoved} account(s) and ${done.policiesRemoved} policy(ies) removed, ` +
          `${done.instancesStopped} instance(s) stopped.`,
      );
      await loadPolicies();
    });
  };
  return el(
    "tr",
    { dataset: { user: u.user } },
    el("td", {}, u.user),
    el("td", {}, (u.groups ?? []).join(", ")),
    el("td", {}, String(u.tokens ?? 0)),
    el("td", {}, u.signedIn ? "yes" : "no"),
    el("td", {}, (u.accounts ?? []).join(", ")),
    el("td", {}, when(u.lastCallMs)),
    el("td", {}, el("button", { type: "button", class: "offboard", onclick: offboard }, "Offboard")),
  );
}

function policyRow(connector, user, p) {
  const allow = (p.allow ?? []).join(", ");
  const deny = (p.deny ?? []).join(", ");
  const edit = () => {
    $("policy-connector").value = connector;
    $("policy-user").value = user;
    $("policy-default").value = p.default ?? "allow";
    $("policy-allow").value = allow;
    $("policy-deny").value = deny;
    $("policy-user").focus();
  };
  const remove = () =>
    guarded(async () => {
      await api("DELETE", `/connectors/${namePath(connector)}/policies/${encodeURIComponent(user)}`);
      notice(`Removed ${user}'s policy on ${connector}.`);
      await loadPolicies();
    });
  return el(
    "tr",
    { dataset: { user, connector } },
    el("td", {}, user),
    el("td", {}, connector),
    el("td", {}, p.default ?? "allow"),
    el("td", {}, allow),
    el("td", {}, deny),
    el(
      "td",
      {},
      el("button", { type: "button", class: "edit", onclick: edit }, "Edit"),
      " ",
      el("button", { type: "button", class: "remove", onclick: remove }, "Remove"),
    ),
  );
}

/** The tools the chosen connector has shown, as suggestions for the lists. */
async function loadTools() {
  const name = $("policy-connector").value;
  let tools = [];
  if (name) {
    try {
      tools = [...new Set((await api("GET", `/connectors/${namePath(name)}/tools`)).map((p) => p.tool))];
    } catch {
      tools = []; // suggestions only; the lists accept any name
    }
  }
  $("policy-tools").replaceChildren(...tools.map((t) => el("option", { value: t })));
}

async function savePolicy(ev) {
  ev.preventDefault();
  const connector = $("policy-connector").value;
  const user = $("policy-user").value.trim();
  if (!connector || !user) return fail("Choose a connector and name a user.");
  if (user.includes("/")) return fail("A user name cannot contain '/'.");
  const doc = { default: $("policy-default").value, allow: list($("policy-allow").value), deny: list($("policy-deny").value) };
  await guarded(async () => {
    await api("PUT", `/connectors/${namePath(connector)}/policies/${encodeURIComponent(user)}`, doc);
    notice(`Saved ${user}'s policy on ${connector}.`);
    await loadPolicies();
  });
}

// ---- audit ------------------------------------------------------------------

async function loadAudit() {
  const q = new URLSearchParams();
  for (const k of ["user", "connector", "tool", "decision", "limit"]) {
    const v = $(`audit-${k}`).value.trim();
    if (v) q.set(k, v);
  }
  const since = $("audit-since").value;
  if (since) {
    const ms = new Date(since).getTime();
    if (Number.isNaN(ms)) return fail("'Since' is not a date.");
    q.set("since_ms", String(ms));
  }
  const records = await api("GET", `/audit?${q}`);
  const rows = records.map((r) =>
    el(
      "tr",
      { dataset: { user: r.user, tool: r.tool, decision: r.decision, outcome: r.outcome } },
      el("td", {}, when(r.at_ms)),
      el("td", {}, r.user),
      el("td", {}, r.client_id),
      el("td", {}, r.connector),
      el("td", {}, r.tool),
      el("td", { class: `decision-${r.decision}` }, r.decision),
      el("td", {}, r.outcome),
      el("td", {}, r.error),
      el("td", {}, r.duration_ms),
    ),
  );
  $("audit-count").textContent = `${records.length} record${records.length === 1 ? "" : "s"}, newest first.`;
  fill($("audit-table").tBodies[0], rows, "No record matches.");
}

// ---- navigation and sign-in -------------------------------------------------

const LOADERS = { connectors: loadConnectors, instances: loadInstances, policies: loadPolicies, audit: loadAudit };

function currentView() {
  const v = location.hash.slice(1);
  return VIEWS.includes(v) ? v : "connectors";
}

async function route() {
  const signedIn = Boolean(sessionStorage.getItem(TOKEN_KEY));
  $("signin").hidden = signedIn;
  $("nav").hidden = !signedIn;
  const view = currentView();
  for (const v of VIEWS) {
    $(v).hidden = !signedIn || v !== view;
    // Nothing from an earlier token stays on screen.
    if (!signedIn) for (const tb of $(v).querySelectorAll("tbody")) tb.replaceChildren();
  }
  for (const a of $("nav").querySelectorAll("a[href^='#']")) a.classList.toggle("active", a.getAttribute("href") === `#${view}`);
  document.body.dataset.view = signedIn ? view : "signin";
  if (signedIn) await guarded(LOADERS[view]);
  else $("token").focus();
}

/** Forgets the token; the signed-out branch of route() runs synchronously,
 * so the message is shown over an already emptied page. */
function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  notice("");
  route();
  fail(message);
}

const signIn = (ev) => {
  ev.preventDefault();
  return tracked(() => checkToken());
};

async function checkToken() {
  const token = $("token").value.trim();
  $("token").value = "";
  if (!token) return;
  sessionStorage.setItem(TOKEN_KEY, token);
  // Check the token before showing anything: a refused one leaves no data.
  try {
    await api("GET", "/connectors?limit=1");
  } catch (e) {
    sessionStorage.removeItem(TOKEN_KEY);
    const why = e instanceof ApiError ? `The admin API refused the token (${e.status}): ${e.message}` : String(e);
    await route();
    fail(why);
    return;
  }
  fail("");
  await route();
}

document.addEventListener("DOMContentLoaded", () => {
  $("signin-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", () => signOut(""));
  $("policy-form").addEventListener("submit", savePolicy);
  $("policy-connector").addEventListener("change", () => guarded(loadTools));
  $("audit-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded(loadAudit);
  });
  for (const b of document.querySelectorAll("button.refresh")) b.addEventListener("click", () => guarded(LOADERS[currentView()]));
  window.addEventListener("hashchange", () => {
    notice("");
    route();
  });
  // The page starts busy (<body data-busy="1">) so nothing reads it before
  // this script runs; from here tracked() counts the work in flight.
  document.body.dataset.busy = "0";
  route();
});
