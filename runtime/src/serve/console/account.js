// A signed-in user's accounts at the OAuth providers berth knows: which are
// connected, and a link that connects (or reconnects) each. Reads only
// /account/providers with the session cookie; renders every value as text.
// <body data-busy> is "1" until the answer is on the page (tests wait for "0").
"use strict";

const $ = (id) => document.getElementById(id);

function row(p) {
  const tr = document.createElement("tr");
  tr.dataset.provider = p.id;
  tr.dataset.connected = String(Boolean(p.connected));
  const name = document.createElement("td");
  name.textContent = p.id;
  const status = document.createElement("td");
  status.textContent = p.connected ? "connected" : p.status === "not connected" ? "not connected" : `connect again (${p.status})`;
  status.className = p.connected ? "connected" : "";
  const action = document.createElement("td");
  const link = document.createElement("a");
  link.className = p.connected ? "button connect" : "button primary connect";
  link.textContent = p.connected ? "Reconnect" : "Connect";
  // Only berth's own /connect links: the URL comes from berth, but a link
  // elsewhere (or a javascript: one) would be a way out of this origin.
  const url = new URL(p.connectUrl, location.origin);
  if (url.origin === location.origin && url.pathname.startsWith("/connect/")) link.href = url.pathname;
  action.append(link);
  tr.append(name, status, action);
  return tr;
}

async function load() {
  const res = await fetch("/account/providers", { credentials: "same-origin", cache: "no-store" });
  const data = await res.json().catch(() => ({}));
  if (res.status === 401) {
    $("signed-out").hidden = false;
    const signIn = data.details && data.details.signIn;
    if (signIn && signIn.startsWith("/")) {
      $("sign-in").href = signIn;
      $("sign-in").hidden = false;
      $("sign-in-how").hidden = true;
    }
    return;
  }
  if (!res.ok) {
    $("error").textContent = data.error || `${res.status} ${res.statusText}`;
    $("error").hidden = false;
    return;
  }
  $("user").textContent = data.user;
  const rows = (data.providers || []).map(row);
  if (!rows.length) {
    const tr = document.createElement("tr");
    tr.className = "empty";
    const td = document.createElement("td");
    td.colSpan = 3;
    td.textContent = "No OAuth provider is registered.";
    tr.append(td);
    rows.push(tr);
  }
  $("providers-table").tBodies[0].replaceChildren(...rows);
  $("accounts").hidden = false;
}

document.addEventListener("DOMContentLoaded", () => {
  load()
    .catch((e) => {
      $("error").textContent = String(e);
      $("error").hidden = false;
    })
    .finally(() => {
      document.body.dataset.busy = "0";
    });
});
