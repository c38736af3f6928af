'use strict';
// One Playwright session with the official client, timed in the bench's phases:
// connect -> newPage -> goto. Prints one line `RESULT {json}`; exit 1 on a failed check, 2 on an error.
//
// Env: PW_URL (ws://...), PW_TARGET_URL (page to load), PW_HEADERS (JSON object of extra upgrade headers,
// e.g. for token identity), PW_TIMEOUT_MS (default 120000). Run with `node -r ./bind-source.js` and
// SOURCE_IP to connect from a chosen loopback address.
const { chromium } = require('playwright-core');

(async () => {
  const timeout = Number(process.env.PW_TIMEOUT_MS || 120000);
  const headers = process.env.PW_HEADERS ? JSON.parse(process.env.PW_HEADERS) : undefined;
  const t0 = performance.now();
  const browser = await chromium.connect(process.env.PW_URL, { timeout, headers });
  const t1 = performance.now();
  const context = await browser.newContext();
  const page = await context.newPage();
  const t2 = performance.now();
  const resp = await page.goto(process.env.PW_TARGET_URL, { waitUntil: 'load', timeout });
  const t3 = performance.now();
  const title = await page.title();
  const result = {
    status: resp ? resp.status() : null,
    title,
    connect_ms: t1 - t0,
    newPage_ms: t2 - t1,
    goto_ms: t3 - t2,
    total_ms: t3 - t0,
    version: browser.version(),
  };
  await browser.close();
  console.log(`RESULT ${JSON.stringify(result)}`);
  process.exit(resp && resp.ok() ? 0 : 1);
})().catch((err) => {
  console.error(`ERROR ${err && err.message ? err.message : err}`);
  process.exit(2);
});
