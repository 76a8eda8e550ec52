// A headless Debian Chromium driven by playwright-core, for the console
// tests: reads one JSON command per line on stdin, answers one JSON line on
// stdout ({"ok": true, "result": ...} or {"ok": false, "error": ...}), so a
// pytest test can interleave page actions with its own MCP calls.
// Usage: node browser.mjs BASE_URL   (BERTH_NODE_MODULES names node_modules)
//
// Commands (selectors are CSS; each action waits for the page to settle):
//   {"op": "goto", "path": "/admin/"}        -> {status, headers, url}
//   {"op": "fill", "selector", "value"}      {"op": "select", "selector", "value"}
//   {"op": "click", "selector", "navigates"?} -> {url}
//   {"op": "text", "selector"}               -> {visible, text} (null if absent)
//   {"op": "rows", "selector"}               -> [{data: dataset, cells: [text]}] of tbody rows
//   {"op": "attr", "selector", "name"}       -> the attribute's value
//   {"op": "problems"}                       -> console errors, page errors, refused loads
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { pathToFileURL } from "node:url";

const nm = process.env.BERTH_NODE_MODULES;
const { chromium } = await import(pathToFileURL(path.join(nm, "playwright-core/index.mjs")).href);

const base = process.argv[2];
const profile = fs.mkdtempSync(path.join(os.tmpdir(), "berth-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
context.setDefaultTimeout(15_000);
const page = context.pages()[0] ?? (await context.newPage());
const problems = [];
page.on("console", (m) => {
  if (m.type() === "error") problems.push(`console: ${m.text()} (${m.location().url})`);
});
page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
page.on("requestfailed", (r) => problems.push(`requestfailed: ${r.url()} ${r.failure()?.errorText ?? ""}`));

/** Waits until the page has loaded and, on the console and account pages
 * (whose <body data-busy> counts work in flight), until that work is done. */
async function settle() {
  await page.waitForLoadState("load");
  await page.waitForFunction(() => !document.body || [undefined, "0"].includes(document.body.dataset.busy));
}

const ops = {
  async goto({ path: p }) {
    const url = new URL(p, base);
    const res = await page.goto(url.href);
    // A hash-only change loads nothing: wait for the page to switch views.
    if (url.hash) await page.waitForFunction((v) => document.body.dataset.view === v, url.hash.slice(1));
    await settle();
    return { status: res?.status(), headers: res ? await res.allHeaders() : {}, url: page.url() };
  },
  async fill({ selector, value }) {
    await page.fill(selector, value);
  },
  async select({ selector, value }) {
    await page.selectOption(selector, value);
    await settle();
  },
  async click({ selector, navigates }) {
    // A click that leaves the page (a link, a form another site answers):
    // wait for the navigation it starts, redirects and all, to load.
    if (navigates) await Promise.all([page.waitForNavigation(), page.click(selector)]);
    else await page.click(selector);
    await settle();
    return { url: page.url() };
  },
  async text({ selector }) {
    const e = await page.$(selector);
    if (!e) return null;
    return { visible: await e.isVisible(), text: (await e.innerText()).trim() };
  },
  async rows({ selector }) {
    return page.$$eval(`${selector} tbody tr:not(.empty)`, (trs) =>
      trs.map((tr) => ({ data: { ...tr.dataset }, cells: [...tr.cells].map((c) => c.innerText.trim()) })),
    );
  },
  async attr({ selector, name }) {
    return page.getAttribute(selector, name);
  },
  async problems() {
    return problems.splice(0);
  },
};

const out = (v) => process.stdout.write(JSON.stringify(v) + "\n");
out({ ok: true, result: "ready" });
for await (const line of readline.createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  try {
    const cmd = JSON.parse(line);
    const op = ops[cmd.op];
    if (!op) throw new Error(`unknown op ${cmd.op}`);
    out({ ok: true, result: (await op(cmd)) ?? null });
  } catch (e) {
    out({ ok: false, error: String(e && e.message ? e.message : e) });
  }
}
await context.close();
fs.rmSync(profile, { recursive: true, force: true });
