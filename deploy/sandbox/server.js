'use strict';
// The sandbox workload. One Chromium behind playwright-core's launchServer on PORT (WebSocket, wsPath
// PW_WS_PATH), and optionally @playwright/mcp on MCP_PORT (MCP over HTTP). The same program runs in the
// container image (deploy/sandbox/Dockerfile) and as a child of the proxy's local backend.
//
// Environment:
//   PORT            WebSocket port (default 80)
//   HOST            bind address (default 0.0.0.0; the local backend passes 127.0.0.1)
//   PW_WS_PATH      launchServer wsPath (default "/", so clients use ws://proxy:9000/)
//   CHROMIUM_PATH   browser executable (default /usr/bin/chromium)
//   CHROMIUM_ARGS   extra comma-separated Chromium flags
//   MCP_PORT        unset: WebSocket only; set: integer 1..65535, @playwright/mcp listens there first
//
// When both listeners are up it prints one line on stdout:
//   SANDBOX_READY {"ws":"ws://...","mcp":<port|null>,"pid":<pid>}
// The WebSocket port being bound therefore implies the MCP port is up too.
const net = require('net');
const path = require('path');
const { spawn } = require('child_process');
const { chromium } = require('playwright-core');

function fail(msg) {
  process.stderr.write(`sandbox: ${msg}\n`);
  process.exit(1);
}

function parsePort(name, value, dflt) {
  if (value === undefined || value === '') return dflt;
  if (!/^\d+$/.test(value)) fail(`${name}: ${JSON.stringify(value)} is not an integer`);
  const n = Number(value);
  if (n < 1 || n > 65535) fail(`${name}: ${n} out of range 1..65535`);
  return n;
}

const port = parsePort('PORT', process.env.PORT, 80);
const host = process.env.HOST || '0.0.0.0';
const wsPath = process.env.PW_WS_PATH || '/';
const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const mcpPort = process.env.MCP_PORT === undefined ? null : parsePort('MCP_PORT', process.env.MCP_PORT, null);
const extraArgs = (process.env.CHROMIUM_ARGS || '').split(',').map((s) => s.trim()).filter(Boolean);
// Without these Chromium tries to reach Google's services at every start (refused on closed networks).
const quietArgs = ['--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--no-first-run', '--disable-quic', '--disable-gpu'];

let mcpChild = null;
let server = null;

function waitForPort(p, budgetMs) {
  const deadline = Date.now() + budgetMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const left = deadline - Date.now();
      if (left <= 0) return reject(new Error(`MCP port ${p} not listening after ${budgetMs} ms`));
      const s = net.connect({ port: p, host: '127.0.0.1' });
      s.setTimeout(Math.min(left, 1000));
      s.once('connect', () => { s.destroy(); resolve(); });
      const retry = () => { s.destroy(); setTimeout(attempt, 100); };
      s.once('error', retry);
      s.once('timeout', retry);
    };
    attempt();
  });
}

async function startMcp() {
  const cli = path.join(path.dirname(require.resolve('@playwright/mcp/package.json')), 'cli.js');
  mcpChild = spawn(process.execPath, [cli, '--port', String(mcpPort), '--host', host, '--headless', '--isolated',
    '--no-sandbox', '--browser', 'chromium', '--executable-path', executablePath,
    // The proxy rewrites Host to the upstream authority; allow any so the MCP server accepts it.
    '--allowed-hosts', '*'], { stdio: ['ignore', 'inherit', 'inherit'] });
  mcpChild.on('exit', (code, signal) => {
    if (shuttingDown) return;
    process.stderr.write(`sandbox: MCP server exited (code ${code}, signal ${signal})\n`);
    process.exit(code || 1);
  });
  await waitForPort(mcpPort, 60000);
}

let shuttingDown = false;
async function shutdown() {
  if (shuttingDown) return;
  shuttingDown = true;
  // A clean close removes Chromium's profile and Singleton* files; a signal would leave them behind.
  try { if (server) await server.close(); } catch (_) { /* exiting anyway */ }
  if (mcpChild) mcpChild.kill('SIGTERM');
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

(async () => {
  if (mcpPort !== null) await startMcp();
  server = await chromium.launchServer({
    executablePath,
    args: [...quietArgs, ...extraArgs],
    host,
    port,
    wsPath,
  });
  process.stdout.write(`SANDBOX_READY ${JSON.stringify({ ws: server.wsEndpoint(), mcp: mcpPort, pid: process.pid })}\n`);
})().catch((err) => fail(err && err.stack ? err.stack : String(err)));
