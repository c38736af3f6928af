'use strict';
// A test agent for pods (the sandcanary-agent image, test/node/agent/Dockerfile). It plays a user's agent:
// the official Playwright client, or the official MCP SDK, connects through sandcanary-proxy, drives the
// sandbox's browser and prints one line per run:
//   RESULT {"ok":true,"mode":"playwright","run":1,"status":200,"title":...,"eval":...,"profile":...}
// and, after the last run, `AGENT_DONE {"ok":<all runs ok>,"runs":N}`.
//
// Environment:
//   AGENT_MODE         playwright (default), mcp, or keep: one Playwright session held open (the page
//                      evaluated every 250 ms, `KEEP_OPEN {...}` printed once it works) until the proxy
//                      closes it; then reconnects every 250 ms until a page works again, and prints
//                      RESULT {"mode":"keep","closed_at":..,"reconnected_at":..,"wait_ms":..,"attempts":..}
//   PW_URL             playwright mode: the proxy's WebSocket URL, e.g. ws://sandcanary-proxy.playwright:9000/
//   MCP_URL            mcp mode: the proxy's MCP URL, e.g. http://sandcanary-proxy.playwright:9000/mcp
//   PW_TARGET_URL      page to load (default: a data: URL, so no web server is needed)
//   AGENT_EVAL         JavaScript expression evaluated in the page (default: document.title)
//   AGENT_PROFILE      playwright mode: "true" (default) also reads the browser's profile path from
//                      chrome://version, which tells one sandbox's browser from another's
//   PW_HEADERS         JSON object of extra request headers (e.g. a token in token identity mode)
//   PW_TIMEOUT_MS      per-step timeout (default 60000)
//   AGENT_RUNS         how many connect cycles (default 1); AGENT_INTERVAL_MS between them (default 1000)
//   AGENT_HOLD         "true": stay running after the last run (a pod stays Running, its log stays readable)
// Exit status (without AGENT_HOLD): 0 every run ok, 1 a run failed, 2 invalid configuration.
const { chromium } = require('playwright-core');

function configError(msg) {
  process.stderr.write(`agent: ${msg}\n`);
  process.exit(2);
}

function intEnv(name, dflt, min) {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  if (!/^\d+$/.test(v) || Number(v) < min) configError(`${name}: ${JSON.stringify(v)} is not an integer >= ${min}`);
  return Number(v);
}

function boolEnv(name, dflt) {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  if (v !== 'true' && v !== 'false') configError(`${name}: ${JSON.stringify(v)} is not true or false`);
  return v === 'true';
}

const mode = process.env.AGENT_MODE || 'playwright';
if (!['playwright', 'mcp', 'keep'].includes(mode)) configError(`AGENT_MODE: ${JSON.stringify(mode)} is not playwright, mcp or keep`);
const urlVar = mode === 'mcp' ? 'MCP_URL' : 'PW_URL';
const url = process.env[urlVar];
if (!url) configError(`${urlVar} is not set (AGENT_MODE=${mode})`);
try {
  new URL(url);
} catch (e) {
  configError(`${urlVar}: ${JSON.stringify(url)} is not a URL`);
}
let headers = {};
if (process.env.PW_HEADERS) {
  try {
    headers = JSON.parse(process.env.PW_HEADERS);
  } catch (e) {
    configError(`PW_HEADERS: not JSON (${e.message})`);
  }
  if (!headers || typeof headers !== 'object' || Array.isArray(headers)) configError('PW_HEADERS: not a JSON object');
}
const target = process.env.PW_TARGET_URL ||
  'data:text/html,<title>sandcanary-agent</title><p id="ok">agent page</p>';
const expr = process.env.AGENT_EVAL || 'document.title';
const readProfile = boolEnv('AGENT_PROFILE', true);
const timeout = intEnv('PW_TIMEOUT_MS', 60000, 1);
const runs = intEnv('AGENT_RUNS', 1, 1);
const interval = intEnv('AGENT_INTERVAL_MS', 1000, 0);
const hold = boolEnv('AGENT_HOLD', false);

const ms = (a, b) => Math.round((b - a) * 10) / 10;

async function playwrightRun() {
  const t0 = performance.now();
  const browser = await chromium.connect(url, { timeout, headers });
  try {
    const t1 = performance.now();
    const context = await browser.newContext();
    const page = await context.newPage();
    const t2 = performance.now();
    const resp = await page.goto(target, { waitUntil: 'load', timeout });
    const t3 = performance.now();
    const title = await page.title();
    const value = await page.evaluate(expr);
    let profile = null;
    if (readProfile) {
      // chrome://version names the user data directory of this browser process: one per sandbox.
      await page.goto('chrome://version', { timeout });
      profile = await page.evaluate(() => {
        const el = document.querySelector('#profile_path');
        return el ? el.innerText.trim() : null;
      });
    }
    // data: URLs have no HTTP response; a page that loaded is a success there.
    const status = resp ? resp.status() : null;
    return {
      ok: (resp === null || resp.ok()) && (!readProfile || !!profile),
      status, title, eval: value, profile,
      browser_version: browser.version(),
      connect_ms: ms(t0, t1), newPage_ms: ms(t1, t2), goto_ms: ms(t2, t3), total_ms: ms(t0, t3),
    };
  } finally {
    await browser.close();
  }
}

// One page through a fresh connection; the browser stays open for the caller.
async function openPage() {
  const browser = await chromium.connect(url, { timeout, headers });
  const page = await (await browser.newContext()).newPage();
  await page.goto(target, { waitUntil: 'load', timeout });
  return { browser, page };
}

// keep mode: how long a client whose proxy pod goes away waits for a working session again.
async function keepRun() {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const { browser, page } = await openPage();
  const opened_at = Date.now();
  console.log(`KEEP_OPEN ${JSON.stringify({ opened_at })}`);
  let last_ok_at = opened_at;
  let error = null;
  for (;;) {
    try {
      await page.evaluate('1');
      last_ok_at = Date.now();
    } catch (err) {
      error = String(err && err.message ? err.message : err).split('\n')[0].slice(0, 300);
      break;
    }
    await sleep(250);
  }
  const closed_at = Date.now();
  browser.close().catch(() => {});
  let attempts = 0;
  for (;;) {
    attempts++;
    try {
      const again = await openPage();
      await again.page.evaluate('1');
      const reconnected_at = Date.now();
      await again.browser.close();
      return { ok: true, opened_at, last_ok_at, closed_at, reconnected_at, wait_ms: reconnected_at - closed_at, attempts, error };
    } catch (err) {
      if (Date.now() - closed_at > timeout) {
        return { ok: false, opened_at, last_ok_at, closed_at, attempts, error: String(err).slice(0, 300) };
      }
      await sleep(250);
    }
  }
}

async function mcpRun() {
  const { Client } = require('@modelcontextprotocol/sdk/client/index.js');
  const { StreamableHTTPClientTransport } = require('@modelcontextprotocol/sdk/client/streamableHttp.js');
  const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
  const client = new Client({ name: 'sandcanary-agent', version: '0.1.0' });
  const t0 = performance.now();
  await client.connect(transport);
  try {
    const t1 = performance.now();
    const names = (await client.listTools()).tools.map((t) => t.name);
    if (!names.includes('browser_navigate')) throw new Error(`no browser_navigate tool in ${names.join(',')}`);
    const nav = await client.callTool({ name: 'browser_navigate', arguments: { url: target } });
    const t2 = performance.now();
    const text = (r) => (r.content || []).map((c) => c.text || '').join('\n');
    let value = null;
    let evalError = false;
    if (names.includes('browser_evaluate')) {
      const ev = await client.callTool({ name: 'browser_evaluate', arguments: { function: `() => (${expr})` } });
      value = text(ev).slice(0, 2000);
      evalError = !!ev.isError;
    }
    return {
      ok: !nav.isError && !evalError,
      session_id: transport.sessionId || null,
      tool_count: names.length,
      navigated: text(nav).slice(0, 2000),
      eval: value,
      connect_ms: ms(t0, t1), navigate_ms: ms(t1, t2),
    };
  } finally {
    await client.close();
  }
}

(async () => {
  let allOk = true;
  for (let run = 1; run <= runs; run++) {
    let result;
    try {
      result = await (mode === 'mcp' ? mcpRun() : mode === 'keep' ? keepRun() : playwrightRun());
    } catch (err) {
      // Playwright's call log is coloured: drop the escape sequences from the one-line result.
      const msg = String(err && err.message ? err.message : err).replace(/\u001b\[[0-9;]*m/g, '');
      result = { ok: false, error: msg.slice(0, 2000) };
    }
    allOk = allOk && result.ok;
    console.log(`RESULT ${JSON.stringify({ mode, run, at: Date.now(), ...result })}`);
    if (run < runs) await new Promise((r) => setTimeout(r, interval));
  }
  console.log(`AGENT_DONE ${JSON.stringify({ ok: allOk, runs })}`);
  if (!hold) process.exit(allOk ? 0 : 1);
  // Hold: keep the event loop alive until the pod is stopped.
  process.on('SIGTERM', () => process.exit(allOk ? 0 : 1));
  setInterval(() => {}, 1 << 30);
})();
