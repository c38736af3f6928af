'use strict';
// MCP over streamable HTTP with the official SDK: initialize, tools/list, a browser_navigate call.
// Prints `RESULT {json}` with the session id the server assigned (the transport sends it back on every
// later request, so the calls after initialize only work if the proxy passes the header both ways).
//
// Env: MCP_URL (http://proxy/mcp), PW_TARGET_URL, PW_HEADERS (JSON, optional), SOURCE_IP via bind-source.js.
const { Client } = require('@modelcontextprotocol/sdk/client/index.js');
const { StreamableHTTPClientTransport } = require('@modelcontextprotocol/sdk/client/streamableHttp.js');

(async () => {
  const headers = process.env.PW_HEADERS ? JSON.parse(process.env.PW_HEADERS) : {};
  const transport = new StreamableHTTPClientTransport(new URL(process.env.MCP_URL), {
    requestInit: { headers },
  });
  const client = new Client({ name: 'sandcanary-test', version: '0.1.0' });
  const t0 = performance.now();
  await client.connect(transport);
  const t1 = performance.now();
  const tools = await client.listTools();
  const t2 = performance.now();
  const names = tools.tools.map((t) => t.name);
  if (!names.includes('browser_navigate')) throw new Error(`no browser_navigate in ${names.join(',')}`);
  const res = await client.callTool({ name: 'browser_navigate', arguments: { url: process.env.PW_TARGET_URL } });
  const t3 = performance.now();
  const text = (res.content || []).map((c) => c.text || '').join('\n');
  console.log(`RESULT ${JSON.stringify({
    session_id: transport.sessionId,
    tool_count: names.length,
    is_error: !!res.isError,
    navigated_text: text.slice(0, 2000),
    connect_ms: t1 - t0,
    tools_ms: t2 - t1,
    navigate_ms: t3 - t2,
  })}`);
  await client.close();
  process.exit(res.isError ? 1 : 0);
})().catch((err) => {
  console.error(`ERROR ${err && err.stack ? err.stack : err}`);
  process.exit(2);
});
