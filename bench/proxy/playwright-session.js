'use strict';
// Benchmarks 2 and 3 of docs/benchmarks/proxy.md, with the official Playwright client
// (playwright-core from test/playwright) against real Chromium sandboxes (deploy/sandbox/server.js)
// on the proxy's local backend:
//   2. warm session (connect + newPage + goto) through the proxy vs direct to the same sandbox,
//      interleaved in ABBA order;
//   3. cold session (a fresh id, bound from the warm pool) vs warm session, both through the proxy,
//      with the pool refilled and the machine settled before every cold sample.
//
// Usage: node bench/proxy/playwright-session.js --proxy <path to sandcanary-proxy>
//        [--warm-samples 40] [--cold-samples 8] [--pool 1]
// It starts the proxy itself on free loopback ports and stops it (and so every sandbox) at the end.
const fs = require('fs');
const http = require('http');
const net = require('net');
const path = require('path');
const crypto = require('crypto');
const { spawn } = require('child_process');

const root = path.resolve(__dirname, '..', '..');
const { chromium } = require(path.join(root, 'test/playwright/node_modules/playwright-core'));

function parseArgs(argv) {
  const opts = { proxy: null, warmSamples: 40, coldSamples: 8, pool: 1 };
  for (let i = 0; i < argv.length; i++) {
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${argv[i]} needs a value`);
      return argv[++i];
    };
    const int = (name, v) => {
      if (!/^\d+$/.test(v) || Number(v) < 1) throw new Error(`${name}: ${JSON.stringify(v)} is not a positive integer`);
      return Number(v);
    };
    switch (argv[i]) {
      case '--proxy': opts.proxy = next(); break;
      case '--warm-samples': opts.warmSamples = int('--warm-samples', next()); break;
      case '--cold-samples': opts.coldSamples = int('--cold-samples', next()); break;
      case '--pool': opts.pool = int('--pool', next()); break;
      default: throw new Error(`unknown argument ${argv[i]}`);
    }
  }
  if (!opts.proxy) throw new Error('--proxy <path to sandcanary-proxy> is required');
  if (!fs.existsSync(opts.proxy)) throw new Error(`--proxy: ${opts.proxy} does not exist (build it first)`);
  return opts;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// --- a local page to load -------------------------------------------------------------------
const TITLE = 'proxybench fixture';
function startFixture() {
  const body = `<!doctype html><html><head><title>${TITLE}</title></head>` +
    `<body><h1>${TITLE}</h1><p>${'x'.repeat(2000)}</p></body></html>`;
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

// --- the proxy ------------------------------------------------------------------------------
async function startProxy(opts) {
  const dataPort = await freePort();
  const adminPort = await freePort();
  const identityToken = crypto.randomBytes(18).toString('hex');
  const sessionToken = crypto.randomBytes(18).toString('hex');
  const tmp = fs.mkdtempSync(path.join(require('os').tmpdir(), 'proxybench-pw-'));
  const child = spawn(opts.proxy, [], {
    cwd: root,
    stdio: ['ignore', 'ignore', 'inherit'],
    env: {
      ...process.env,
      LISTEN_ADDR: `127.0.0.1:${dataPort}`,
      METRICS_ADDR: `127.0.0.1:${adminPort}`,
      BACKEND: 'local',
      IDENTITY: 'token',
      IDENTITY_TOKEN: identityToken,
      SESSION_API_TOKEN: sessionToken,
      LOCAL_SANDBOX_SERVER: path.join(root, 'deploy/sandbox/server.js'),
      LOCAL_WARM_POOL: String(opts.pool),
      LOCAL_MAX_SANDBOXES: String(opts.pool + 4),
      LOCAL_TMP_DIR: tmp,
      IDLE_TTL: '1h',
      LOG_FORMAT: 'text',
      RUST_LOG: 'warn',
    },
  });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const proxy = {
    child, exited, tmp, identityToken, sessionToken,
    data: `127.0.0.1:${dataPort}`,
    admin: `http://127.0.0.1:${adminPort}`,
  };
  const deadline = Date.now() + 30000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error('sandcanary-proxy exited during start-up');
    try {
      const r = await fetch(`${proxy.admin}/readyz`);
      if (r.status === 200) break;
    } catch (_) { /* not listening yet */ }
    if (Date.now() > deadline) throw new Error('sandcanary-proxy not ready within 30 s');
    await sleep(100);
  }
  return proxy;
}

async function stopProxy(proxy) {
  if (proxy.child.exitCode === null && proxy.child.signalCode === null) {
    proxy.child.kill('SIGTERM');
    const timer = setTimeout(() => proxy.child.kill('SIGKILL'), 20000);
    await proxy.exited;
    clearTimeout(timer);
  }
  fs.rmSync(proxy.tmp, { recursive: true, force: true });
}

async function api(proxy, method, p) {
  const r = await fetch(`${proxy.admin}${p}`, { method, headers: { authorization: `Bearer ${proxy.sessionToken}` } });
  const text = await r.text();
  if (r.status >= 300) throw new Error(`${method} ${p}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

// --- pool readiness from /proc ---------------------------------------------------------------
// A sandbox server listens only after its Chromium is up, so "child with a listening TCP socket"
// means "ready sandbox". The proxy has no pool gauge, so this is how the bench knows the pool is full.
function listeningInodes() {
  const inodes = new Set();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try { text = fs.readFileSync(file, 'utf8'); } catch (_) { continue; }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length > 9 && f[3] === '0A') inodes.add(f[9]);
    }
  }
  return inodes;
}

function childrenOf(pid) {
  const kids = [];
  let tasks = [];
  try { tasks = fs.readdirSync(`/proc/${pid}/task`); } catch (_) { return kids; }
  for (const t of tasks) {
    try {
      kids.push(...fs.readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').split(/\s+/).filter(Boolean).map(Number));
    } catch (_) { /* task ended */ }
  }
  return kids;
}

function readySandboxes(proxyPid) {
  const listening = listeningInodes();
  let ready = 0;
  for (const kid of childrenOf(proxyPid)) {
    let fds = [];
    try { fds = fs.readdirSync(`/proc/${kid}/fd`); } catch (_) { continue; }
    const isReady = fds.some((fd) => {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${kid}/fd/${fd}`));
        return m && listening.has(m[1]);
      } catch (_) { return false; }
    });
    if (isReady) ready++;
  }
  return ready;
}

async function waitForPool(proxy, expected, budgetMs) {
  const deadline = Date.now() + budgetMs;
  while (readySandboxes(proxy.child.pid) < expected) {
    if (Date.now() > deadline) throw new Error(`warm pool not refilled to ${expected} sandboxes within ${budgetMs} ms`);
    await sleep(100);
  }
}

// --- one Playwright session -------------------------------------------------------------------
async function session(wsUrl, headers, pageUrl) {
  const t0 = performance.now();
  const browser = await chromium.connect(wsUrl, { headers, timeout: 60000 });
  const t1 = performance.now();
  try {
    const page = await browser.newPage();
    const t2 = performance.now();
    await page.goto(pageUrl, { waitUntil: 'load', timeout: 60000 });
    const t3 = performance.now();
    const title = await page.title();
    if (title !== TITLE) throw new Error(`page title ${JSON.stringify(title)}, expected ${JSON.stringify(TITLE)}`);
    return { connect: t1 - t0, newPage: t2 - t1, goto: t3 - t2, total: t3 - t0 };
  } finally {
    await browser.close();
  }
}

// --- statistics and tables --------------------------------------------------------------------
function quantile(xs, q) {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  // Nearest rank.
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
}
const median = (xs) => quantile(xs, 0.5);
const fmt = (x) => x.toFixed(1);

function table(title, header, rows) {
  console.log(`\n### ${title}\n`);
  console.log(`| ${header.join(' | ')} |`);
  console.log(`|${'---|'.repeat(header.length)}`);
  for (const r of rows) console.log(`| ${r.join(' | ')} |`);
  console.log('');
}

function phaseRows(a, aName, b, bName) {
  return ['connect', 'newPage', 'goto', 'total'].map((k) => {
    const ma = median(a.map((s) => s[k]));
    const mb = median(b.map((s) => s[k]));
    return [k, fmt(ma), fmt(mb), (mb / ma).toFixed(3), fmt(quantile(a.map((s) => s[k]), 0.95)), fmt(quantile(b.map((s) => s[k]), 0.95))];
  });
}

// PROXYBENCH_NICE (e.g. -10): run this script, the proxy, the sandboxes and their Chromium at that
// nice value, so other work on a shared machine delays both sides of each comparison less.
function applyNice() {
  const raw = process.env.PROXYBENCH_NICE;
  if (raw === undefined || raw === '') return;
  if (!/^-?\d+$/.test(raw.trim()) || Number(raw) < -20 || Number(raw) > 19) {
    throw new Error(`PROXYBENCH_NICE: ${JSON.stringify(raw)} is not an integer in -20..19`);
  }
  require('os').setPriority(Number(raw));
  console.log(`running at nice ${Number(raw)} (PROXYBENCH_NICE)`);
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  applyNice();
  const fixture = await startFixture();
  const pageUrl = `http://127.0.0.1:${fixture.address().port}/`;
  const proxy = await startProxy(opts);
  try {
    const proxyHeaders = (id) => ({ authorization: `Bearer ${proxy.identityToken}`, 'x-sandbox-id': id });
    const proxied = (id) => session(`ws://${proxy.data}/`, proxyHeaders(id), pageUrl);

    // 2. Warm: one sandbox, reached directly and through the proxy.
    const warm = await api(proxy, 'PUT', '/v1/sessions/warm');
    const direct = () => session(`ws://${warm.endpoint}/`, {}, pageUrl);
    for (let i = 0; i < 3; i++) { await direct(); await proxied('warm'); }
    const d = [];
    const p = [];
    for (let i = 0; i < opts.warmSamples; i++) {
      // ABBA: direct, proxy, proxy, direct, ...
      if (i % 2 === 0) { d.push(await direct()); p.push(await proxied('warm')); } else { p.push(await proxied('warm')); d.push(await direct()); }
    }
    const ratio = median(p.map((s) => s.total)) / median(d.map((s) => s.total));
    table(`Warm Playwright session, proxied vs direct to the same sandbox (ms, n=${opts.warmSamples} each, interleaved)`,
      ['phase', 'direct median', 'proxied median', 'ratio', 'direct p95', 'proxied p95'], phaseRows(d, 'direct', p, 'proxied'));
    console.log(`warm session total: ratio ${ratio.toFixed(3)} (target <= 1.03): ${ratio <= 1.03 ? 'met' : 'NOT met'}`);

    // 3. Cold (fresh id, bound from the warm pool) vs warm, both through the proxy.
    const cold = [];
    const warm2 = [];
    const prebound = [];
    const ensureMs = [];
    for (let i = 0; i < opts.coldSamples; i++) {
      // Pool full (opts.pool ready sandboxes beside the one bound to "warm"), then let Chromium's start-up settle.
      await waitForPool(proxy, opts.pool + 1, 120000);
      await sleep(1500);
      warm2.push(await proxied('warm'));
      const id = `cold-${i}-${crypto.randomBytes(3).toString('hex')}`;
      cold.push(await proxied(id));
      // The ensure alone, on a separate fresh id, right after: the pool may still be refilling, so
      // this is informative only; the cold session above is the measured figure.
      await api(proxy, 'DELETE', `/v1/sessions/${id}`);
      await waitForPool(proxy, opts.pool + 1, 120000);
      await sleep(500);
      const eid = `ensure-${i}-${crypto.randomBytes(3).toString('hex')}`;
      const t0 = performance.now();
      await api(proxy, 'PUT', `/v1/sessions/${eid}`);
      ensureMs.push(performance.now() - t0);
      // Diagnostic arm: the same never-used sandbox, but only after the pool has refilled, so the
      // refill's Chromium start no longer competes for the CPU. Cold minus this is refill contention;
      // this minus warm is the cost of a browser's first session.
      await waitForPool(proxy, opts.pool + 2, 120000);
      await sleep(1500);
      prebound.push(await proxied(eid));
      await api(proxy, 'DELETE', `/v1/sessions/${eid}`);
    }
    const coldRatio = median(cold.map((s) => s.total)) / median(warm2.map((s) => s.total));
    table(`Cold session from the warm pool (LOCAL_WARM_POOL=${opts.pool}) vs warm session, both through the proxy (ms, n=${opts.coldSamples} each)`,
      ['phase', 'warm median', 'cold median', 'ratio', 'warm p95', 'cold p95'], phaseRows(warm2, 'warm', cold, 'cold'));
    table('Diagnostic: fresh sandbox bound first, session only after the pool refilled (ms)',
      ['phase', 'warm median', 'fresh, refilled median', 'ratio', 'warm p95', 'fresh, refilled p95'], phaseRows(warm2, 'warm', prebound, 'prebound'));
    console.log(`session API ensure of a fresh id from a full pool: median ${fmt(median(ensureMs))} ms, max ${fmt(Math.max(...ensureMs))} ms`);
    console.log(`cold total / warm total: ${coldRatio.toFixed(3)} (target <= 1.2): ${coldRatio <= 1.2 ? 'met' : 'NOT met'}`);
  } finally {
    await stopProxy(proxy);
    fixture.close();
  }
}

main().catch((err) => {
  process.stderr.write(`playwright-session: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
